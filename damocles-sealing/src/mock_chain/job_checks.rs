//! What an unseal or rebuild thread sends back, checked against the chain: an unsealed
//! piece by its CID, rebuilt files by the comm_r on chain.

use super::jobs::taken_job;
use super::*;
use crate::unseal::Destination;

impl MockChain {
    /// `AchieveUnsealSector`: the thread delivered the piece (`error` empty) or gives up.
    /// Delivered, every destination the mock can read (`file://`, a store it knows, its
    /// piece store's uploads) must hold bytes whose piece CID is the piece's; an `http`
    /// destination is taken on the worker's word. A refusal is an error naming why (the
    /// worker retries); the job keeps it.
    pub(super) async fn achieve_unseal(
        &self,
        id: SectorId,
        piece: Cid,
        error: String,
    ) -> Result<(), ManagerError> {
        let dest = self.unseal_dest(id, &piece)?;
        if !error.is_empty() {
            return self.fail_job(id, error);
        }
        let (proof, stores, uploads) = {
            let state = self.settings();
            let uploads = state.offer.as_ref().map(|o| o.dir.clone());
            (self.proof_type, state.stores.clone(), uploads)
        };
        let size = self.deal_piece_size(&piece).unwrap_or(0);
        let wanted = UnsealedPiece {
            cid: piece.clone(),
            proof,
            size,
        };
        let verdict =
            tokio::task::spawn_blocking(move || check_unsealed(&dest, &stores, uploads, &wanted))
                .await
                .map_err(|e| ManagerError::remote(1, format!("unseal check panicked: {e}")))?;
        let mut state = self.lock();
        let super::ChainState { jobs, counters, .. } = &mut *state;
        let Some(job) = taken_job(jobs, id) else {
            return Err(ManagerError::remote(
                1,
                "the unseal job was dropped meanwhile",
            ));
        };
        let answer = match verdict {
            Ok(()) if job.accepted => Ok(()),
            Ok(()) => {
                job.accepted = true;
                job.refused = None;
                counters.unseals_accepted += 1;
                Ok(())
            }
            Err(why) => {
                tracing::warn!(
                    "mock chain: unsealed piece {} of {id} refused: {why}",
                    piece.text
                );
                job.refused = Some(why.to_string());
                counters.unseals_rejected += 1;
                Err(ManagerError::remote(
                    1,
                    format!("unsealed piece refused: {why}"),
                ))
            }
        };
        state.save();
        state.commit()?;
        answer
    }

    /// `SubmitPersistedEx` of a rebuilt sector: accepted only if the files persisted in
    /// `instance` give the comm_r on chain (and, for an upgraded sector, the updated
    /// replica's files the comm_r of its upgrade); refused (`false`, the reason kept in
    /// the job) otherwise. The job is done once the thread reports it finished.
    pub(super) async fn check_rebuilt(
        &self,
        id: SectorId,
        instance: String,
        is_upgrade: bool,
    ) -> Result<bool, ManagerError> {
        let sector = self.with_sector(id, |s, _| s.clone())?;
        let store = self.settings().stores.get(&instance).cloned();
        let verdict = match store {
            None => Err(FilesRefused::UnknownStore(instance.clone())),
            Some(store) => {
                tokio::task::spawn_blocking(move || check_files(&sector, &store, is_upgrade))
                    .await
                    .map_err(|e| ManagerError::remote(1, format!("rebuild check panicked: {e}")))?
            }
        };
        let mut state = self.lock();
        let super::ChainState {
            jobs,
            sectors,
            counters,
            ..
        } = &mut *state;
        let Some(job) = taken_job(jobs, id) else {
            return Ok(false);
        };
        let accepted = match verdict {
            // Sent again (a restart after the answer was lost): the same answer.
            Ok(()) if job.accepted => true,
            Ok(()) => {
                job.accepted = true;
                job.refused = None;
                counters.rebuilds_accepted += 1;
                if let Some(sector) = sectors.get_mut(&id) {
                    sector.rebuilt += 1;
                    sector.persisted = Some(instance.clone());
                    if let Some(accepted) =
                        sector.upgrade.as_mut().and_then(|u| u.accepted.as_mut())
                    {
                        accepted.store = instance;
                    }
                }
                true
            }
            Err(why) => {
                tracing::warn!("mock chain: rebuilt files of {id} refused: {why}");
                job.refused = Some(why.to_string());
                counters.rebuilds_rejected += 1;
                false
            }
        };
        state.save();
        state.commit()?;
        Ok(accepted)
    }
}

/// The piece an unseal job delivers: its CID, and what computing a CID needs.
struct UnsealedPiece {
    cid: Cid,
    proof: SealProof,
    size: u64,
}

/// Why an unsealed piece was refused (kept as the job's `refused` text).
#[derive(Debug, thiserror::Error)]
enum UnsealedRefused {
    /// A destination that is not one.
    #[error("{0}")]
    BadDestination(String),
    /// A copy the mock cannot read.
    #[error("{}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A copy whose piece CID cannot be computed.
    #[error("{0}")]
    NoPieceCid(String),
    /// A copy of another piece.
    #[error("{} gives piece CID {found}, not {wanted}", path.display())]
    OtherPiece {
        path: PathBuf,
        found: String,
        wanted: String,
    },
}

/// Checks every destination the mock can read (`file://`, a store in `stores`, the
/// piece store's `uploads`, a market store there): each holds `wanted`. An `http`
/// destination, or one the mock cannot see, is taken on the worker's word.
fn check_unsealed(
    dest: &[String],
    stores: &BTreeMap<String, PathBuf>,
    uploads: Option<PathBuf>,
    wanted: &UnsealedPiece,
) -> Result<(), UnsealedRefused> {
    for url in dest {
        let path = match crate::unseal::parse_destination(url) {
            Ok(Destination::File(path)) => path,
            Ok(Destination::Store { instance, path }) => match stores.get(&instance) {
                Some(store) => store.join(path),
                None => continue,
            },
            Ok(Destination::PieceStore(_)) => match &uploads {
                Some(dir) => dir.join("unsealed").join(&wanted.cid.text),
                None => continue,
            },
            // Sent to this mock standing in for venus-market (`PUT /resource`): checked;
            // to a market elsewhere: taken on the worker's word.
            Ok(Destination::Market { store, .. }) => match &uploads {
                Some(dir) if dir.join("market").join(&store).is_dir() => {
                    dir.join("market").join(store).join(&wanted.cid.text)
                }
                _ => continue,
            },
            Ok(Destination::Http(_)) => continue,
            Err(e) => return Err(UnsealedRefused::BadDestination(e.to_string())),
        };
        let bytes = std::fs::read(&path).map_err(|source| UnsealedRefused::Unreadable {
            path: path.clone(),
            source,
        })?;
        let found = proofs::piece_cid_of(wanted.proof, &bytes, wanted.size)
            .map_err(|e| UnsealedRefused::NoPieceCid(e.to_string()))?;
        if found != wanted.cid {
            return Err(UnsealedRefused::OtherPiece {
                path,
                found: found.text,
                wanted: wanted.cid.text.clone(),
            });
        }
    }
    Ok(())
}

/// Why the rebuilt files of a sector were refused (kept as the job's `refused` text).
#[derive(Debug, thiserror::Error)]
pub(super) enum FilesRefused {
    /// The store the worker named is not one the mock reads.
    #[error(
        "the mock does not know where store {0} is: start it with --persist-store {0}=PATH (or --with-worker)"
    )]
    UnknownStore(String),
    /// `is_upgrade` does not say what the chain holds.
    #[error("submitted with is_upgrade = {is_upgrade}, but the sector {} upgraded", if *.upgraded { "is" } else { "is not" })]
    UpgradeMismatch {
        /// What the worker said.
        is_upgrade: bool,
        /// What the chain holds.
        upgraded: bool,
    },
    /// Nothing to check the files against.
    #[error("the sector was never pre-committed")]
    NeverPreCommitted,
    /// A replica cannot be read.
    #[error("{}: {error}", .file.display())]
    Unreadable {
        /// The replica.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A replica is not the sector's size.
    #[error("{} holds {len} bytes, not {size}", .file.display())]
    WrongSize {
        /// The replica.
        file: PathBuf,
        /// Its length.
        len: u64,
        /// The sector's size.
        size: u64,
    },
    /// The cache's `p_aux` cannot be read.
    #[error(transparent)]
    PAux(#[from] proofs::PAuxError),
    /// The cache gives another comm_r.
    #[error("{} gives comm_r {}, but the chain holds {}", .cache.display(), hex::encode(.found), hex::encode(.expected))]
    WrongCommR {
        /// The cache directory.
        cache: PathBuf,
        /// The comm_r its `p_aux` gives.
        found: [u8; 32],
        /// The comm_r on chain.
        expected: [u8; 32],
    },
}

/// The check of a rebuilt sector's files in `store`: the sealed replica is there at the
/// sector's size and its cache's `p_aux` gives the pre-committed comm_r; for an upgraded
/// sector the same of the updated replica against the accepted update's comm_r.
pub(super) fn check_files(
    sector: &ChainSector,
    store: &Path,
    is_upgrade: bool,
) -> Result<(), FilesRefused> {
    let name = sector.id.to_string();
    let upgrade = sector
        .upgrade
        .as_ref()
        .and_then(|u| u.accepted.as_ref())
        .map(|a| a.comm_r_new);
    if is_upgrade != upgrade.is_some() {
        return Err(FilesRefused::UpgradeMismatch {
            is_upgrade,
            upgraded: upgrade.is_some(),
        });
    }
    let pre_commit = sector
        .pre_commit
        .as_ref()
        .ok_or(FilesRefused::NeverPreCommitted)?;
    let mut replicas: Vec<(&str, &str, [u8; 32])> = vec![("sealed", "cache", pre_commit.comm_r)];
    if let Some(comm_r_new) = upgrade {
        replicas.push(("update", "update-cache", comm_r_new));
    }
    let size = sector.proof_type.sector_size().bytes();
    for (file_dir, cache_dir, expected) in replicas {
        let file: PathBuf = store.join(file_dir).join(&name);
        let len = match std::fs::metadata(&file) {
            Ok(meta) => meta.len(),
            Err(error) => return Err(FilesRefused::Unreadable { file, error }),
        };
        if len != size {
            return Err(FilesRefused::WrongSize { file, len, size });
        }
        let cache = store.join(cache_dir).join(&name);
        let found = proofs::comm_r_of_cache(&cache)?;
        if found != expected {
            return Err(FilesRefused::WrongCommR {
                cache,
                found,
                expected,
            });
        }
    }
    Ok(())
}
