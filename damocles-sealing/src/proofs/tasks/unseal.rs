//! The `unseal` task.

use std::fs::OpenOptions;
use std::path::PathBuf;

use damocles_core::{Failure, FailureLevel, ProofStage};
use filecoin_proofs_api::seal;
use filecoin_proofs_api::{
    ProverId, RegisteredSealProof, SectorId, Ticket, UnpaddedByteIndex, UnpaddedBytesAmount,
};
use serde::{Deserialize, Serialize};

use super::super::{io_failure, proof_failure};
use super::ProcessorTask;

/// Unseal: `get_unsealed_range_mapped`, a range of a sector's unsealed bytes recovered
/// from its replica into `unsealed_output` (created, or cut to nothing first). Answers
/// how many bytes it wrote, a number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unseal {
    /// The seal proof type.
    pub registered_proof: RegisteredSealProof,
    /// The miner's prover id.
    pub prover_id: ProverId,
    /// The sector number.
    pub sector_id: SectorId,
    /// The sector's data commitment.
    pub comm_d: [u8; 32],
    /// The sector's ticket.
    pub ticket: Ticket,
    /// The sector's cache directory (`p_aux`, `t_aux`, tree R; labels are made there).
    pub cache_dir: PathBuf,
    /// The replica.
    pub sealed_file: PathBuf,
    /// The file to write.
    pub unsealed_output: PathBuf,
    /// Where the range starts, in unpadded bytes.
    pub offset: UnpaddedByteIndex,
    /// Its length, in unpadded bytes.
    pub num_bytes: UnpaddedBytesAmount,
}

impl ProcessorTask for Unseal {
    const STAGE: ProofStage = ProofStage::Unseal;
    type Output = UnpaddedBytesAmount;

    fn execute(self) -> Result<Self::Output, Failure> {
        let output = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&self.unsealed_output)
            .map_err(|e| io_failure("create", &self.unsealed_output, e))?;
        seal::get_unsealed_range_mapped(
            self.registered_proof,
            &self.cache_dir,
            &self.sealed_file,
            output,
            self.prover_id,
            self.sector_id,
            self.comm_d,
            self.ticket,
            self.offset,
            self.num_bytes,
        )
        .map_err(|e| proof_failure(FailureLevel::Permanent, "unseal", e))
    }
}
