//! The snap-up tasks: `snap_encode` and `snap_prove`.

use std::path::PathBuf;

use damocles_core::{Failure, FailureLevel, ProofStage, SnapEncodeOutput};
use filecoin_proofs_api::{update, PartitionProofBytes, PieceInfo, RegisteredUpdateProof};
use serde::{Deserialize, Serialize};

use super::super::proof_failure;
use super::ProcessorTask;

/// Snap encode: `empty_sector_update_encode_into`, the deal data encoded into the sector
/// key as a new replica. The worker makes the new replica file (the sector's size) and an
/// empty cache directory before it sends the task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapEncode {
    /// The update proof type, e.g. `"StackedDrg2KiBV1"`.
    pub registered_proof: RegisteredUpdateProof,
    /// The updated replica to write (`update/<sector>`).
    pub new_replica_path: PathBuf,
    /// Its cache directory (`update-cache/<sector>/`).
    pub new_cache_path: PathBuf,
    /// The sector key's replica (`sealed/<sector>`).
    pub sector_path: PathBuf,
    /// The sector key's cache directory (`cache/<sector>/`).
    pub sector_cache_path: PathBuf,
    /// The staged deal data, as AddPieces wrote it.
    pub staged_data_path: PathBuf,
    /// The deal pieces, in order.
    pub piece_infos: Vec<PieceInfo>,
}

impl ProcessorTask for SnapEncode {
    const STAGE: ProofStage = ProofStage::SnapEncode;
    /// `{"comm_r_new", "comm_r_last_new", "comm_d_new"}`, each 32 numbers.
    type Output = SnapEncodeOutput;

    fn execute(self) -> Result<Self::Output, Failure> {
        let out = update::empty_sector_update_encode_into(
            self.registered_proof,
            &self.new_replica_path,
            &self.new_cache_path,
            &self.sector_path,
            &self.sector_cache_path,
            &self.staged_data_path,
            &self.piece_infos,
        )
        .map_err(|e| proof_failure(FailureLevel::Permanent, "snap encode", e))?;
        Ok(SnapEncodeOutput {
            comm_r_new: out.comm_r_new,
            comm_r_last_new: out.comm_r_last_new,
            comm_d_new: out.comm_d_new,
        })
    }
}

/// Snap prove: `generate_empty_sector_update_proof_with_vanilla`, the SNARK over the
/// partition proofs the worker generated (they read the replicas; the SNARK does not).
/// Answers the proof as an array of numbers, as the original's processor does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapProve {
    /// The update proof type.
    pub registered_proof: RegisteredUpdateProof,
    /// The vanilla partition proofs, each an array of numbers (the original's field
    /// name, misspelt as it is there).
    pub vannilla_proofs: Vec<Vec<u8>>,
    /// The sector key's replica commitment.
    pub comm_r_old: [u8; 32],
    /// The updated replica's commitment.
    pub comm_r_new: [u8; 32],
    /// The deal data's commitment.
    pub comm_d_new: [u8; 32],
}

impl ProcessorTask for SnapProve {
    const STAGE: ProofStage = ProofStage::SnapProve;
    type Output = Vec<u8>;

    fn execute(self) -> Result<Self::Output, Failure> {
        update::generate_empty_sector_update_proof_with_vanilla(
            self.registered_proof,
            self.vannilla_proofs
                .into_iter()
                .map(PartitionProofBytes)
                .collect(),
            self.comm_r_old,
            self.comm_r_new,
            self.comm_d_new,
        )
        .map(|proof| proof.0)
        .map_err(|e| proof_failure(FailureLevel::Permanent, "snap prove", e))
    }
}
