//! The `window_post` task.

use std::collections::BTreeMap;
use std::path::PathBuf;

use damocles_core::sealer_api::WindowPoStOutput;
use damocles_core::{ActorId, Failure, FailureLevel, Opaque, ProofStage};
use filecoin_proofs_api::{post, PrivateReplicaInfo, RegisteredPoStProof, SectorId};
use serde::{Deserialize, Serialize};

use super::super::{proof_failure, prover_id};
use super::ProcessorTask;

/// One sector of a [`WindowPoSt`]: its commitment and where its files are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoStReplicaInfo {
    /// The sector number.
    pub sector_id: SectorId,
    /// The replica commitment on chain.
    pub comm_r: [u8; 32],
    /// The cache directory (`p_aux`, the last tree).
    pub cache_dir: PathBuf,
    /// The replica.
    pub sealed_file: PathBuf,
}

/// WindowPoSt: `generate_window_post` over the replicas (their vanilla proofs, then the
/// SNARK). Answers `{"proofs": [base64…], "faults": []}`, or, when sectors cannot be
/// proven, `{"proofs": [], "faults": [sector numbers]}` (the original's processor's
/// answers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowPoSt {
    /// The miner (its prover id is derived from it).
    pub miner_id: ActorId,
    /// The WindowPoSt proof type, e.g. `"StackedDrgWindow2KiBV1_2"`.
    pub proof_type: RegisteredPoStProof,
    /// The sectors to prove.
    pub replicas: Vec<PoStReplicaInfo>,
    /// The challenge randomness.
    pub seed: [u8; 32],
}

impl ProcessorTask for WindowPoSt {
    const STAGE: ProofStage = ProofStage::WindowPost;
    type Output = WindowPoStOutput;

    fn execute(self) -> Result<Self::Output, Failure> {
        let replicas: BTreeMap<SectorId, PrivateReplicaInfo> = self
            .replicas
            .into_iter()
            .map(|r| {
                let info =
                    PrivateReplicaInfo::new(self.proof_type, r.comm_r, r.cache_dir, r.sealed_file);
                (r.sector_id, info)
            })
            .collect();
        match post::generate_window_post(&self.seed, &replicas, prover_id(self.miner_id)) {
            Ok(proofs) => Ok(WindowPoStOutput {
                proofs: proofs.into_iter().map(|(_, proof)| Opaque(proof)).collect(),
                faults: Vec::new(),
            }),
            Err(e) => match e.downcast_ref::<storage_proofs_core::error::Error>() {
                Some(storage_proofs_core::error::Error::FaultySectors(sectors)) => {
                    Ok(WindowPoStOutput {
                        proofs: Vec::new(),
                        faults: sectors.iter().map(|&id| u64::from(id)).collect(),
                    })
                }
                _ => Err(proof_failure(FailureLevel::Permanent, "window PoSt", e)),
            },
        }
    }
}
