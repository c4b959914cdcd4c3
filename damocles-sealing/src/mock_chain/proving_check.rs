//! `Damocles.CheckProvable` (`util sealer proving check`), the original's call: the
//! sectors named are checked where this manager sees their files (the stores it knows,
//! `--persist-store`), as a WindowPoSt round checks them, before a round finds them bad.

use std::collections::BTreeMap;
use std::path::Path;

use damocles_core::piece::comm_r_of;
use damocles_core::sealer_api::ExtendedSectorInfo;
use damocles_core::{ActorId, PoStProof, SectorId, SectorNumber};

use super::{randomness, ChainSectorState, MockChain};
use crate::options::CheckLimits;
use crate::window_post::{self, PoStChallenge, ProvingSector};

/// Why a check was refused as a whole (a sector that cannot be checked is a bad one, with
/// its reason, instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProvingCheckError {
    /// The sectors are another miner's.
    #[error("miner t0{asked} is not this manager's (t0{own})")]
    OtherMiner {
        /// The miner asked for.
        asked: ActorId,
        /// This manager's.
        own: ActorId,
    },
    /// The proof type is not the WindowPoSt type of this manager's sectors.
    #[error("{asked:?} is not the WindowPoSt proof of this manager's sectors ({own:?})")]
    OtherProof {
        /// The proof type asked for.
        asked: PoStProof,
        /// This manager's.
        own: Option<PoStProof>,
    },
    /// The check itself failed (the challenges could not be drawn).
    #[error("{0}")]
    Failed(String),
}

impl MockChain {
    /// Checks `sectors`' files as a WindowPoSt round of `proof` would, within `limits`:
    /// that its files are there, with their sizes, without reading them, and (`strict`)
    /// a vanilla proof of each sector's challenged leaves, as a round makes: the
    /// bad ones, by number, with why, as the original answers. Blocks up to
    /// `limits.partition`: call it off the async threads.
    ///
    /// # Errors
    /// [`ProvingCheckError`]: another miner's sectors, another proof type, or a check
    /// that could not run.
    pub fn check_provable(
        &self,
        miner: ActorId,
        proof: PoStProof,
        sectors: &[ExtendedSectorInfo],
        strict: bool,
        limits: &CheckLimits,
    ) -> Result<BTreeMap<SectorNumber, String>, ProvingCheckError> {
        if miner != self.miner {
            return Err(ProvingCheckError::OtherMiner {
                asked: miner,
                own: self.miner,
            });
        }
        let own = PoStProof::window_for(self.proof_type.sector_size());
        if own != Some(proof) {
            return Err(ProvingCheckError::OtherProof { asked: proof, own });
        }
        let mut bad = BTreeMap::new();
        let mut provable = Vec::new();
        for info in sectors {
            match self.proving_sector(info) {
                Ok(sector) => provable.push(sector),
                Err(why) => {
                    bad.insert(info.sector_number, why.to_string());
                }
            }
        }
        if provable.is_empty() {
            return Ok(bad);
        }
        // The files first (as the original's check: presence and sizes, `t_aux` too,
        // which a round itself does not read); `strict` then proves the sectors that
        // passed, as a round does.
        let bytes = self.proof_type.sector_size().bytes();
        let missing = window_post::check_files(&provable, bytes, limits);
        provable.retain(|s| !missing.iter().any(|f| f.number == s.number));
        bad.extend(missing.into_iter().map(|f| (f.number, f.reason)));
        if strict && !provable.is_empty() {
            let challenge = PoStChallenge {
                proof,
                miner,
                seed: randomness(),
            };
            let faults = window_post::check(challenge, &provable, limits)
                .map_err(|e| ProvingCheckError::Failed(e.to_string()))?;
            bad.extend(faults.into_iter().map(|f| (f.number, f.reason)));
        }
        Ok(bad)
    }

    /// Where `info`'s files are, as this manager sees them, or why it cannot tell.
    fn proving_sector(&self, info: &ExtendedSectorInfo) -> Result<ProvingSector, Unprovable> {
        let number = info.sector_number;
        let comm_r = comm_r_of(&info.sealed_cid).map_err(Unprovable::SealedCid)?;
        let sector = self
            .sector(SectorId::new(self.miner, number))
            .ok_or(Unprovable::Unknown)?;
        let upgraded = info.sector_key.is_some();
        let store = if upgraded {
            let accepted = sector.upgrade.as_ref().and_then(|u| u.accepted.as_ref());
            accepted.map(|a| a.store.clone())
        } else {
            sector.persisted.clone()
        };
        let Some(store) = store else {
            return Err(match sector.state {
                ChainSectorState::Aborted(_) => Unprovable::Aborted,
                _ => Unprovable::NeverPersisted,
            });
        };
        let root = self
            .settings()
            .stores
            .get(&store)
            .cloned()
            .ok_or(Unprovable::StoreNotSeen(store))?;
        let (replica_dir, cache_dir) = match upgraded {
            true => ("update", "update-cache"),
            false => ("sealed", "cache"),
        };
        let name = sector.id.to_string();
        let at = |dir: &str| Path::new(&root).join(dir).join(&name);
        Ok(ProvingSector {
            number,
            comm_r,
            replica: at(replica_dir),
            cache: at(cache_dir),
        })
    }
}

/// Why a sector named to the check cannot be checked: its reason in the answer.
#[derive(Debug, thiserror::Error)]
enum Unprovable {
    #[error("its SealedCID: {0}")]
    SealedCid(damocles_core::wire::CommitmentCidError),
    #[error("not a sector of this manager")]
    Unknown,
    #[error("aborted")]
    Aborted,
    #[error("its files were never persisted")]
    NeverPersisted,
    #[error("its store {0} is not one this manager sees (--persist-store)")]
    StoreNotSeen(String),
}
