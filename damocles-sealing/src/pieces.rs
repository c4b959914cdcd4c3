//! Where a thread finds the bytes of its sector's deal pieces: the worker's local piece
//! directories first (`<dir>/<piece cid>`, `[worker] local_pieces_dirs`), then the
//! manager's piece store, whose copy is downloaded into the location
//! (`data/pieces/<piece cid>`, through `<piece cid>.part`) and removed once AddPieces has
//! written it or has failed. A whole download a crash left behind is used again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use damocles_core::piece;
use damocles_core::sealer_api::SectorPiece;
use damocles_core::{Failure, PieceStore, SealProof};

use crate::proofs::{PiecePayload, PieceToWrite};

/// The piece sources of a thread.
#[derive(Clone, Default)]
pub struct PieceSource {
    /// Directories holding pieces by CID, searched in order.
    pub local_dirs: Vec<PathBuf>,
    /// The manager's piece store, for pieces no local directory holds.
    pub remote: Option<Arc<dyn PieceStore>>,
    /// The directories `file://` unseal destinations may write into (`[worker]
    /// unseal_file_dirs`); none: such destinations are refused.
    pub unseal_file_dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for PieceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceSource")
            .field("local_dirs", &self.local_dirs)
            .field("remote", &self.remote.is_some())
            .field("unseal_file_dirs", &self.unseal_file_dirs)
            .finish()
    }
}

/// A piece to write: a deal piece's file, found in a local directory or downloaded (and so
/// to be removed once written into the sector), or a pledge piece's zeros.
#[derive(Debug, Clone)]
pub struct LocatedPiece {
    /// The piece and where its bytes come from.
    pub file: PieceToWrite,
    /// Whether the file is a download of this thread's.
    pub downloaded: bool,
}

impl PieceSource {
    /// The pieces to write for `pieces` (the manager's assignment, pledge pieces included),
    /// in order, for a sector of `proof`: a pledge piece as zeros, a deal piece from a
    /// local directory, else from `download_dir` when an earlier run downloaded it whole,
    /// else fetched from the manager's piece store into it (partial downloads of an
    /// interrupted run are removed first). Nothing is fetched unless every piece is a piece
    /// CID of a valid size and together they fit the sector.
    ///
    /// # Errors
    ///
    /// A permanent failure naming the CID for a piece that is not a piece CID, has no valid
    /// size, does not fit, or is nowhere to be found; a temporary one when the piece store
    /// cannot be reached; a critical one when the download cannot be written. Pieces this
    /// call downloaded are removed when it fails.
    pub async fn locate(
        &self,
        proof: SealProof,
        pieces: &[SectorPiece],
        download_dir: &Path,
    ) -> Result<Vec<LocatedPiece>, Failure> {
        for one in pieces {
            let cid = &one.piece.cid.text;
            piece::comm_p(&one.piece.cid).map_err(|e| Failure::permanent(e.to_string()))?;
            if piece::unpadded_size(one.piece.size).is_none() {
                return Err(Failure::permanent(format!(
                    "piece {cid}: size {} is not a padded piece size",
                    one.piece.size
                )));
            }
        }
        let (end, sector) = (
            piece::pieces_end(pieces.iter().map(|d| d.piece.size)),
            proof.sector_size().bytes(),
        );
        if end > sector {
            return Err(Failure::permanent(format!(
                "pieces {} take {end} bytes, more than the sector's {sector}",
                pieces
                    .iter()
                    .map(|d| d.piece.cid.text.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        remove_partial_downloads(download_dir);
        let mut located = Vec::new();
        for one in pieces {
            let found = if one.is_pledge() {
                Ok(LocatedPiece {
                    file: PieceToWrite {
                        cid: one.piece.cid.clone(),
                        padded_size: one.piece.size,
                        payload: PiecePayload::Zeros,
                    },
                    downloaded: false,
                })
            } else {
                self.locate_one(one, download_dir).await
            };
            match found {
                Ok(piece) => located.push(piece),
                Err(failure) => {
                    remove_downloads(&located);
                    return Err(failure);
                }
            }
        }
        Ok(located)
    }

    async fn locate_one(
        &self,
        deal: &SectorPiece,
        download_dir: &Path,
    ) -> Result<LocatedPiece, Failure> {
        let cid = &deal.piece.cid;
        let padded_size = deal.piece.size;
        let located = |path: PathBuf, downloaded: bool| LocatedPiece {
            file: PieceToWrite {
                cid: cid.clone(),
                padded_size,
                payload: PiecePayload::File(path),
            },
            downloaded,
        };
        if let Some(path) = self
            .local_dirs
            .iter()
            .map(|dir| dir.join(&cid.text))
            .find(|path| path.is_file())
        {
            return Ok(located(path, false));
        }
        let path = download_dir.join(&cid.text);
        if path.is_file() {
            // Downloaded whole (renamed into place) by a run that stopped before AddPieces
            // ended; AddPieces checks its commitment all the same.
            return Ok(located(path, true));
        }
        let Some(remote) = &self.remote else {
            return Err(Failure::permanent(format!(
                "get piece: piece {}: not found in {} and no piece store to ask",
                cid.text,
                self.searched()
            )));
        };
        std::fs::create_dir_all(download_dir)
            .map_err(|e| Failure::critical(format!("create {}: {e}", download_dir.display())))?;
        let limit = piece::unpadded_size(padded_size).unwrap_or_default();
        remote
            .fetch(cid, &path, limit)
            .await
            .map_err(|e| e.into_failure().context("get piece"))?;
        Ok(located(path, true))
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

/// Removes what interrupted downloads left in `dir` (`*.part`).
fn remove_partial_downloads(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "part") {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Removes the downloaded copies among `pieces` (once their bytes are in the staged file,
/// or when the step fails).
pub fn remove_downloads(pieces: &[LocatedPiece]) {
    for piece in pieces.iter().filter(|p| p.downloaded) {
        if let PiecePayload::File(path) = &piece.file.payload {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!("cannot remove the downloaded piece {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use damocles_core::piece::{piece_cid, PieceFetchError};
    use damocles_core::sealer_api::{Cid, DealInfo, PieceRef};
    use damocles_core::FailureLevel;

    use super::*;

    /// A piece store that serves some pieces and counts what it is asked.
    struct Served {
        pieces: HashMap<String, Vec<u8>>,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl PieceStore for Served {
        async fn fetch(&self, cid: &Cid, dest: &Path, _limit: u64) -> Result<u64, PieceFetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let bytes = self
                .pieces
                .get(&cid.text)
                .ok_or(PieceFetchError::NotFound {
                    cid: cid.text.clone(),
                    detail: "not served".into(),
                })?;
            std::fs::write(dest, bytes).expect("write");
            Ok(bytes.len() as u64)
        }
    }

    fn deal(seed: u8, size: u64) -> SectorPiece {
        SectorPiece {
            piece: PieceRef {
                size,
                cid: piece_cid(&[seed; 32]),
            },
            deal_info: DealInfo {
                deal_id: u64::from(seed),
                allocation_id: 0,
                payload_size: 10,
                is_builtin_market: true,
            },
        }
    }

    #[tokio::test]
    async fn downloads_are_checked_first_reused_and_cleaned_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let downloads = dir.path().join("pieces");
        std::fs::create_dir_all(&downloads).expect("mkdir");
        let (served, kept, missing) = (deal(1, 512), deal(2, 512), deal(3, 256));
        // What an interrupted run left: a partial download and a whole one.
        let partial = downloads.join("leftover.part");
        std::fs::write(&partial, b"half").expect("partial");
        std::fs::write(downloads.join(&kept.piece.cid.text), b"kept").expect("whole");
        let store = Arc::new(Served {
            pieces: HashMap::from([(served.piece.cid.text.clone(), b"served".to_vec())]),
            calls: AtomicUsize::new(0),
        });
        let source = PieceSource {
            local_dirs: vec![dir.path().join("nowhere")],
            remote: Some(store.clone()),
            unseal_file_dirs: Vec::new(),
        };
        let proof = SealProof::StackedDrg2KiBV1_1;

        let located = source
            .locate(proof, &[served.clone(), kept.clone()], &downloads)
            .await
            .expect("located");
        assert_eq!(
            store.calls.load(Ordering::SeqCst),
            1,
            "the whole download is used again"
        );
        assert!(!partial.exists());
        assert!(located.iter().all(|p| p.downloaded));
        remove_downloads(&located);
        assert_eq!(std::fs::read_dir(&downloads).expect("dir").count(), 0);

        // A pledge piece (deal ID 0) among them is written as zeros, in its place, and
        // never fetched.
        let pledge = deal(0, 512);
        let calls = store.calls.load(Ordering::SeqCst);
        let located = source
            .locate(proof, &[pledge.clone(), served.clone()], &downloads)
            .await
            .expect("located");
        assert_eq!(located[0].file.payload, PiecePayload::Zeros);
        assert_eq!(located[0].file.cid, pledge.piece.cid);
        assert!(!located[0].downloaded);
        assert!(matches!(located[1].file.payload, PiecePayload::File(_)));
        assert_eq!(store.calls.load(Ordering::SeqCst), calls + 1);
        remove_downloads(&located);
        assert_eq!(std::fs::read_dir(&downloads).expect("dir").count(), 0);

        // A piece nowhere to be had: permanent, named, and the others' downloads removed.
        let err = source
            .locate(proof, &[served.clone(), missing.clone()], &downloads)
            .await
            .expect_err("missing");
        assert_eq!(err.level, FailureLevel::Permanent);
        assert!(err.message.contains(&missing.piece.cid.text), "{err}");
        assert_eq!(std::fs::read_dir(&downloads).expect("dir").count(), 0);

        // Pieces that cannot fit the sector: refused before anything is fetched.
        let calls = store.calls.load(Ordering::SeqCst);
        let err = source
            .locate(proof, &[deal(4, 2048), served], &downloads)
            .await
            .expect_err("too big");
        assert!(err.message.contains("more than the sector's 2048"), "{err}");
        assert_eq!(store.calls.load(Ordering::SeqCst), calls);
    }
}
