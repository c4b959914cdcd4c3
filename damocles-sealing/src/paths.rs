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
    /// `data/sealed/<sector>`: the replica (for a snap-up, the sector key: the replica of
    /// the CC sector being upgraded).
    pub sealed: PathBuf,
    /// `data/update/<sector>`: a snap-up's updated replica.
    pub update: PathBuf,
    /// `data/update-cache/<sector>/`: its trees, `p_aux` and `t_aux`.
    pub update_cache: PathBuf,
}

/// The marker PC1 leaves in the cache directory once the sealed file holds a plain copy of
/// the staged data. PC2 removes it before it encodes the file in place; a PC2 that does
/// not find it (a crash mid-PC2, or a resume at `PC1Done` after PC2 ran) restores the
/// sealed file from the staged copy first, so the replica is never encoded twice.
pub const SEALED_UNENCODED_MARKER: &str = ".sealed_unencoded";

impl SectorPaths {
    /// The paths of `sector` under `data_dir` (a location's `data/`).
    pub fn new(data_dir: &Path, sector: SectorId) -> Self {
        let name = sector.to_string();
        Self {
            staged: data_dir.join("unsealed").join(&name),
            cache_dir: data_dir.join("cache").join(&name),
            sealed: data_dir.join("sealed").join(&name),
            update: data_dir.join("update").join(&name),
            update_cache: data_dir.join("update-cache").join(&name),
        }
    }

    /// The marker that says the sealed file is still the unencoded copy PC1 made.
    pub fn unencoded_marker(&self) -> PathBuf {
        self.cache_dir.join(SEALED_UNENCODED_MARKER)
    }

    /// Whether the cache directory holds a file whose name contains `part`.
    pub fn cache_has(&self, part: &str) -> bool {
        std::fs::read_dir(&self.cache_dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|name| name.contains(part))
            })
        })
    }
}
