//! Where a thread finds the bytes of its sector's deal pieces: the worker's local piece
//! directories first (`<dir>/<piece cid>`, `[worker] local_pieces_dirs`), then the
//! manager's piece store, whose copy is downloaded into the location
//! (`data/pieces/<piece cid>`) and removed once AddPieces has written it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use damocles_core::piece;
use damocles_core::sealer_api::SectorPiece;
use damocles_core::{Failure, PieceStore};

use crate::proofs::DealPieceFile;

/// The piece sources of a thread.
#[derive(Clone, Default)]
pub struct PieceSource {
    /// Directories holding pieces by CID, searched in order.
    pub local_dirs: Vec<PathBuf>,
    /// The manager's piece store, for pieces no local directory holds.
    pub remote: Option<Arc<dyn PieceStore>>,
}

impl std::fmt::Debug for PieceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceSource")
            .field("local_dirs", &self.local_dirs)
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

/// A deal piece's file: found in a local directory, or downloaded (and so to be removed
/// once written into the sector).
#[derive(Debug, Clone)]
pub struct LocatedPiece {
    /// The piece and its file.
    pub file: DealPieceFile,
    /// Whether the file is a download of this thread's.
    pub downloaded: bool,
}

impl PieceSource {
    /// The files of the deal pieces among `pieces` (pledge pieces are skipped), in order.
    /// Pieces no local directory holds are fetched from the manager's piece store into
    /// `download_dir`.
    ///
    /// # Errors
    ///
    /// A permanent failure naming the CID for a piece that is not a piece CID, has no valid
    /// size, or is nowhere to be found; a temporary one when the piece store cannot be
    /// reached.
    pub async fn locate(
        &self,
        pieces: &[SectorPiece],
        download_dir: &Path,
    ) -> Result<Vec<LocatedPiece>, Failure> {
        let mut located = Vec::new();
        for deal in pieces.iter().filter(|p| !p.is_pledge()) {
            let cid = &deal.piece.cid;
            piece::comm_p(cid).map_err(|e| Failure::permanent(e.to_string()))?;
            let padded_size = deal.piece.size;
            let limit = piece::unpadded_size(padded_size).ok_or_else(|| {
                Failure::permanent(format!(
                    "piece {}: size {padded_size} is not a padded piece size",
                    cid.text
                ))
            })?;
            let local = self
                .local_dirs
                .iter()
                .map(|dir| dir.join(&cid.text))
                .find(|path| path.is_file());
            let (path, downloaded) = match (local, &self.remote) {
                (Some(path), _) => (path, false),
                (None, Some(remote)) => {
                    let path = download_dir.join(&cid.text);
                    std::fs::create_dir_all(download_dir).map_err(|e| {
                        Failure::critical(format!("create {}: {e}", download_dir.display()))
                    })?;
                    remote
                        .fetch(cid, &path, limit)
                        .await
                        .map_err(|e| e.into_failure().context("get piece"))?;
                    (path, true)
                }
                (None, None) => {
                    return Err(Failure::permanent(format!(
                        "get piece: piece {}: not found in {} and no piece store to ask",
                        cid.text,
                        self.searched()
                    )))
                }
            };
            located.push(LocatedPiece {
                file: DealPieceFile {
                    cid: cid.clone(),
                    padded_size,
                    path,
                },
                downloaded,
            });
        }
        Ok(located)
    }

    fn searched(&self) -> String {
        if self.local_dirs.is_empty() {
            "no local piece directory".to_owned()
        } else {
            self.local_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// Removes the downloaded copies among `pieces` (their bytes are in the staged file now).
pub fn remove_downloads(pieces: &[LocatedPiece]) {
    for piece in pieces.iter().filter(|p| p.downloaded) {
        if let Err(e) = std::fs::remove_file(&piece.file.path) {
            tracing::warn!(
                "cannot remove the downloaded piece {}: {e}",
                piece.file.path.display()
            );
        }
    }
}
