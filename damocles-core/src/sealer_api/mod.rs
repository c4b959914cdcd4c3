//! The sealer API the sealer plan calls on the manager (reference §7.2), as types in the
//! Go wire shape (PascalCase, `[32]byte` as arrays of numbers, byte slices as base64, CIDs
//! as `{"/": …}`, enums as integers), and the [`SectorManager`] trait with one method per
//! call.

use std::fmt;

use async_trait::async_trait;

use crate::failure::{Failure, FailureLevel};
use crate::sector::{SealProof, SectorId};

pub use crate::wire::{base64_32, base64_bytes, go_nullable, Cid};

mod jobs;
mod reports;
mod sealing;

pub use jobs::*;
pub use reports::*;
pub use sealing::*;

/// What went wrong calling the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagerErrorKind {
    /// The manager does not know the sector (JSON-RPC code 11001): abort it.
    SectorStateNotFound,
    /// The manager could not be reached or answered garbage: retry.
    Transport,
    /// The manager answered with another error code: retry.
    Remote {
        /// The JSON-RPC error code.
        code: i64,
    },
}

/// An error from a [`SectorManager`] call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ManagerError {
    /// What kind of error.
    pub kind: ManagerErrorKind,
    /// What happened.
    pub message: String,
}

/// The JSON-RPC error code the manager uses for an unknown sector.
pub const SECTOR_STATE_NOT_FOUND_CODE: i64 = 11001;

impl ManagerError {
    /// A sector-state-not-found error.
    pub fn sector_not_found(message: impl Into<String>) -> Self {
        Self {
            kind: ManagerErrorKind::SectorStateNotFound,
            message: message.into(),
        }
    }

    /// A transport error.
    pub fn transport(message: impl Into<String>) -> Self {
        Self {
            kind: ManagerErrorKind::Transport,
            message: message.into(),
        }
    }

    /// A remote error with a code.
    pub fn remote(code: i64, message: impl Into<String>) -> Self {
        Self {
            kind: ManagerErrorKind::Remote { code },
            message: message.into(),
        }
    }

    /// Whether the manager said it does not know the sector.
    pub fn is_sector_not_found(&self) -> bool {
        self.kind == ManagerErrorKind::SectorStateNotFound
    }

    /// The failure level of this error in a sealing step: abort for an unknown sector,
    /// temporary for everything else (an outage is retried, not fatal).
    pub fn level(&self) -> FailureLevel {
        match self.kind {
            ManagerErrorKind::SectorStateNotFound => FailureLevel::Abort,
            ManagerErrorKind::Transport | ManagerErrorKind::Remote { .. } => {
                FailureLevel::Temporary
            }
        }
    }

    /// This error as a classified failure, with the call's name as context.
    pub fn into_failure(self, call: impl fmt::Display) -> Failure {
        let context = match self.kind {
            ManagerErrorKind::SectorStateNotFound => {
                format!("{call}: from error code: sector state not found, with msg")
            }
            _ => format!("{call}: rpc error"),
        };
        Failure::new(self.level(), self.message).context(context)
    }
}

/// The manager as the sealer plan sees it: one method per sealer API call.
#[async_trait]
pub trait SectorManager: Send + Sync {
    /// `Venus.AllocateSector`: a new sector, or `None` when there is none to seal.
    async fn allocate_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<AllocatedSector>, ManagerError>;

    /// `Venus.AcquireDeals`: the sector's deal pieces (`None`: CC).
    async fn acquire_deals(
        &self,
        id: SectorId,
        spec: AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError>;

    /// `Venus.AssignTicket`.
    async fn assign_ticket(&self, id: SectorId) -> Result<Ticket, ManagerError>;

    /// `Venus.SubmitPreCommit`; `reset` replaces an earlier submission.
    async fn submit_pre_commit(
        &self,
        sector: AllocatedSector,
        info: PreCommitOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError>;

    /// `Venus.PollPreCommitState`.
    async fn poll_pre_commit_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError>;

    /// `Venus.StoreReserveSpace`: a store among `candidates` with `size` bytes reserved.
    async fn store_reserve_space(
        &self,
        id: SectorId,
        size: u64,
        candidates: Vec<String>,
    ) -> Result<Option<StoreBasicInfo>, ManagerError>;

    /// `Venus.StoreBasicInfo`: what the manager knows of a store.
    async fn store_basic_info(
        &self,
        instance: String,
    ) -> Result<Option<StoreBasicInfo>, ManagerError>;

    /// `Venus.SubmitPersistedEx`: whether the files are provable in that store.
    async fn submit_persisted(
        &self,
        id: SectorId,
        instance: String,
        is_upgrade: bool,
    ) -> Result<bool, ManagerError>;

    /// `Venus.WaitSeed`.
    async fn wait_seed(
        &self,
        id: SectorId,
        proof_type: SealProof,
    ) -> Result<WaitSeedResp, ManagerError>;

    /// `Venus.SubmitProof`; `reset` replaces an earlier submission.
    async fn submit_proof(
        &self,
        id: SectorId,
        info: ProofOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError>;

    /// `Venus.PollProofState`.
    async fn poll_proof_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError>;

    /// `Venus.AllocateSanpUpSector` (sic): a sealed CC sector to upgrade with deals, or
    /// `None` when there is none. A manager without snap-up jobs answers `None`, as the
    /// original's mock does.
    async fn allocate_snapup_sector(
        &self,
        _spec: AllocateSnapUpSpec,
    ) -> Result<Option<AllocatedSnapUpSector>, ManagerError> {
        Ok(None)
    }

    /// `Venus.SubmitSnapUpProof`.
    async fn submit_snapup_proof(
        &self,
        _id: SectorId,
        _info: SnapUpOnChainInfo,
    ) -> Result<SubmitResp, ManagerError> {
        Err(ManagerError::remote(
            1,
            "this manager takes no snap-up proofs (Venus.SubmitSnapUpProof)",
        ))
    }

    /// `Venus.AllocateRebuildSector`: a sealed sector whose files must be re-created, or
    /// `None` when there is none (as a manager without rebuild jobs answers).
    async fn allocate_rebuild_sector(
        &self,
        _spec: AllocateSectorSpec,
    ) -> Result<Option<SectorRebuildInfo>, ManagerError> {
        Ok(None)
    }

    /// `Venus.AllocateUnsealSector`: a piece to read back out of a sealed sector, or `None`
    /// when there is none (as a manager without unseal jobs answers).
    async fn allocate_unseal_sector(
        &self,
        _spec: AllocateSectorSpec,
    ) -> Result<Option<SectorUnsealInfo>, ManagerError> {
        Ok(None)
    }

    /// `Venus.AcquireUnsealDest`: the URLs the unsealed piece goes to (`file:///…`,
    /// `http(s)://…`, `store://<instance>/<path>`, `store:///<piece cid>`).
    async fn acquire_unseal_dest(
        &self,
        _id: SectorId,
        _piece_cid: Cid,
    ) -> Result<Vec<String>, ManagerError> {
        Ok(Vec::new())
    }

    /// `Venus.AchieveUnsealSector`: the piece was delivered (`error` empty) or could not be.
    async fn achieve_unseal_sector(
        &self,
        _id: SectorId,
        _piece_cid: Cid,
        _error: String,
    ) -> Result<(), ManagerError> {
        Err(ManagerError::remote(
            1,
            "this manager has no unseal jobs (Venus.AchieveUnsealSector)",
        ))
    }

    /// `Venus.WdPoStAllocateJobs`: at most `num` WindowPoSt jobs for worker `worker`. A
    /// manager without WindowPoSt jobs fails (the original's answers "method not found"
    /// unless started with `--worker-prover`).
    async fn wdpost_allocate_jobs(
        &self,
        _spec: AllocatePoStSpec,
        _num: u32,
        _worker: String,
    ) -> Result<Vec<WdPoStJob>, ManagerError> {
        Err(ManagerError::remote(
            -32601,
            "this manager has no WindowPoSt jobs (Venus.WdPoStAllocateJobs)",
        ))
    }

    /// `Venus.WdPoStHeartbeatJobs`: `worker` is still proving `ids`. A job whose heartbeat
    /// stops is given to another worker.
    async fn wdpost_heartbeat_jobs(
        &self,
        _ids: Vec<String>,
        _worker: String,
    ) -> Result<(), ManagerError> {
        Err(ManagerError::remote(
            -32601,
            "this manager has no WindowPoSt jobs (Venus.WdPoStHeartbeatJobs)",
        ))
    }

    /// `Venus.WdPoStFinishJob`: the job's proof and faults, or (`output` `None`) why it
    /// could not be proven.
    async fn wdpost_finish_job(
        &self,
        _id: String,
        _output: Option<WindowPoStOutput>,
        _error: String,
    ) -> Result<(), ManagerError> {
        Err(ManagerError::remote(
            -32601,
            "this manager has no WindowPoSt jobs (Venus.WdPoStFinishJob)",
        ))
    }

    /// `Venus.ReportState`.
    async fn report_state(
        &self,
        id: SectorId,
        req: ReportStateReq,
    ) -> Result<SectorStateResp, ManagerError>;

    /// `Venus.ReportFinalized`.
    async fn report_finalized(&self, id: SectorId) -> Result<(), ManagerError>;

    /// `Venus.ReportAborted`.
    async fn report_aborted(&self, id: SectorId, reason: String) -> Result<(), ManagerError>;
}
