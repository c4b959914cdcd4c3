//! The tasks a processor runs, in the original's JSON shapes (its `vc-processors` task
//! structs: field names as they are, proof types and outputs as `filecoin-proofs-api`
//! serialises them), so that its processor programs and ours are interchangeable.
//!
//! | stage | task fields | output |
//! |---|---|---|
//! | `pc1` | `registered_proof`, `cache_path`, `in_path`, `out_path`, `prover_id`, `sector_id`, `ticket`, `piece_infos` | `SealPreCommitPhase1Output` |
//! | `pc2` | `pc1out`, `cache_dir`, `sealed_file` | `SealPreCommitPhase2Output` (`registered_proof`, `comm_r`, `comm_d`) |
//! | `c2` | `c1out`, `prover_id`, `sector_id`, `miner_id` | `SealCommitPhase2Output` (`proof`) |
//! | `add_pieces` | `seal_proof_type`, `pieces` (`[{piece_file: {"local": path} \| {"url": …} \| "pledge", payload_size, piece_size}]`), `staged_filepath` | `[{commitment, size}]` |
//! | `snap_encode` | `registered_proof`, `new_replica_path`, `new_cache_path`, `sector_path`, `sector_cache_path`, `staged_data_path`, `piece_infos` | `comm_r_new`, `comm_r_last_new`, `comm_d_new` |
//! | `snap_prove` | `registered_proof`, `vannilla_proofs` (sic), `comm_r_old`, `comm_r_new`, `comm_d_new` | the proof, an array of numbers |
//! | `unseal` | `registered_proof`, `prover_id`, `sector_id`, `comm_d`, `ticket`, `cache_dir`, `sealed_file`, `unsealed_output`, `offset`, `num_bytes` | bytes written, a number |
//! | `window_post` | `miner_id`, `proof_type`, `replicas` (`sector_id`, `comm_r`, `cache_dir`, `sealed_file`), `seed` | `proofs` (base64), `faults` |
//! | `transfer` | `stores` (`{name: {name, meta}}`), `routes` (`[{src: {store_name, uri}, dest: {store_name, uri}, opt: {is_dir, allow_link} \| null}]`) | `true` |
//!
//! Byte arrays (commitments, tickets, the prover id) are arrays of numbers; proof types
//! are their variant names (`"StackedDrg2KiBV1_1"`). Source: the original's
//! `vc-processors/src/builtin/tasks.rs`.
//!
//! A task holds only the proof call; what the worker does around it (clearing the cache
//! before PC1, restoring the replica before PC2) stays in the worker, in `proofs`.

use std::path::PathBuf;

use damocles_core::{Failure, FailureLevel, ProofStage};
use filecoin_proofs_api::seal::{
    self, SealCommitPhase1Output, SealCommitPhase2Output, SealPreCommitPhase1Output,
    SealPreCommitPhase2Output,
};
use filecoin_proofs_api::{PieceInfo, ProverId, RegisteredSealProof, SectorId, Ticket};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::proof_failure;

mod add_pieces;
mod post;
mod transfer;
mod unseal;
mod update;

pub use add_pieces::{AddPieces, Piece, PieceFile};
pub use post::{PoStReplicaInfo, WindowPoSt};
pub use transfer::{Transfer, TransferItem, TransferOption, TransferRoute, TransferStoreInfo};
pub use unseal::Unseal;
pub use update::{SnapEncode, SnapProve};

/// One stage's task: what crosses to a processor and what comes back.
pub trait ProcessorTask: Serialize + DeserializeOwned + Send + 'static {
    /// The stage whose processors run it.
    const STAGE: ProofStage;
    /// What it answers.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Runs it here (blocking: the proof call itself).
    ///
    /// # Errors
    /// The proof library's error, as a permanent failure.
    fn execute(self) -> Result<Self::Output, Failure>;
}

/// PC1: `seal_pre_commit_phase1`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PC1 {
    /// The seal proof type.
    pub registered_proof: RegisteredSealProof,
    /// The sector's cache directory (labels and tree D land there).
    pub cache_path: PathBuf,
    /// The staged (unsealed) file.
    pub in_path: PathBuf,
    /// The sealed file to write.
    pub out_path: PathBuf,
    /// The miner's prover id.
    pub prover_id: ProverId,
    /// The sector number.
    pub sector_id: SectorId,
    /// The ticket.
    pub ticket: Ticket,
    /// The pieces, in order.
    pub piece_infos: Vec<PieceInfo>,
}

impl ProcessorTask for PC1 {
    const STAGE: ProofStage = ProofStage::PC1;
    type Output = SealPreCommitPhase1Output;

    fn execute(self) -> Result<Self::Output, Failure> {
        seal::seal_pre_commit_phase1(
            self.registered_proof,
            &self.cache_path,
            &self.in_path,
            &self.out_path,
            self.prover_id,
            self.sector_id,
            self.ticket,
            &self.piece_infos,
        )
        .map_err(|e| proof_failure(FailureLevel::Permanent, "pc1", e))
    }
}

/// PC2: `seal_pre_commit_phase2`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PC2 {
    /// PC1's output.
    pub pc1out: SealPreCommitPhase1Output,
    /// The sector's cache directory.
    pub cache_dir: PathBuf,
    /// The sealed file, encoded in place.
    pub sealed_file: PathBuf,
}

impl ProcessorTask for PC2 {
    const STAGE: ProofStage = ProofStage::PC2;
    type Output = SealPreCommitPhase2Output;

    fn execute(self) -> Result<Self::Output, Failure> {
        seal::seal_pre_commit_phase2(self.pc1out, &self.cache_dir, &self.sealed_file)
            .map_err(|e| proof_failure(FailureLevel::Permanent, "pc2", e))
    }
}

/// C2: `seal_commit_phase2`, the SNARK.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct C2 {
    /// C1's output.
    pub c1out: SealCommitPhase1Output,
    /// The miner's prover id.
    pub prover_id: ProverId,
    /// The sector number.
    pub sector_id: SectorId,
    /// The miner's actor id.
    pub miner_id: u64,
}

impl ProcessorTask for C2 {
    const STAGE: ProofStage = ProofStage::C2;
    type Output = SealCommitPhase2Output;

    fn execute(self) -> Result<Self::Output, Failure> {
        seal::seal_commit_phase2(self.c1out, self.prover_id, self.sector_id)
            .map_err(|e| proof_failure(FailureLevel::Permanent, "c2", e))
    }
}
