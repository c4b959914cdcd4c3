//! Where a sector's files live under a thread's location (reference §1.2).

use std::path::{Path, PathBuf};

use damocles_core::SectorId;

/// The files of one sector under a location's `data/` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorPaths {
    /// `data/unsealed/<sector>`: the staged file the pieces are written into.
    pub staged: PathBuf,
    /// `data/cache/<sector>/`: trees, labels, `p_aux`, `t_aux`.
    pub cache_dir: PathBuf,
    /// `data/sealed/<sector>`: the replica.
    pub sealed: PathBuf,
}

/// The marker PC2 leaves in the cache directory while it runs; finding it on a restart
/// means the sealed file may be half-encoded and must be restored from the staged copy.
pub const PC2_RUNNING_MARKER: &str = ".pc2_running";

impl SectorPaths {
    /// The paths of `sector` under `data_dir` (a location's `data/`).
    pub fn new(data_dir: &Path, sector: SectorId) -> Self {
        let name = sector.to_string();
        Self {
            staged: data_dir.join("unsealed").join(&name),
            cache_dir: data_dir.join("cache").join(&name),
            sealed: data_dir.join("sealed").join(&name),
        }
    }

    /// The PC2 running marker.
    pub fn pc2_marker(&self) -> PathBuf {
        self.cache_dir.join(PC2_RUNNING_MARKER)
    }
}
