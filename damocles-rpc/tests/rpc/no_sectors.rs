// A `SectorManager` that knows no sector, shared by the manager test binaries.
use async_trait::async_trait;
use damocles_core::sealer_api::{
    AcquireDealsSpec, AllocateSectorSpec, AllocatedSector, PollStateResp, PreCommitOnChainInfo,
    ProofOnChainInfo, ReportStateReq, SectorPiece, SectorStateResp, StoreBasicInfo, SubmitResp,
    Ticket, WaitSeedResp,
};
use damocles_core::{ManagerError, SealProof, SectorId, SectorManager};

/// A chain that knows no sector: every sealer call answers "sector state not found".
pub struct NoSectors;

fn not_found<T>() -> Result<T, ManagerError> {
    Err(ManagerError::sector_not_found("sector state not found"))
}

#[async_trait]
impl SectorManager for NoSectors {
    async fn allocate_sector(
        &self,
        _: AllocateSectorSpec,
    ) -> Result<Option<AllocatedSector>, ManagerError> {
        Ok(None)
    }
    async fn acquire_deals(
        &self,
        _: SectorId,
        _: AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError> {
        not_found()
    }
    async fn assign_ticket(&self, _: SectorId) -> Result<Ticket, ManagerError> {
        not_found()
    }
    async fn submit_pre_commit(
        &self,
        _: AllocatedSector,
        _: PreCommitOnChainInfo,
        _: bool,
    ) -> Result<SubmitResp, ManagerError> {
        not_found()
    }
    async fn poll_pre_commit_state(&self, _: SectorId) -> Result<PollStateResp, ManagerError> {
        not_found()
    }
    async fn store_reserve_space(
        &self,
        _: SectorId,
        _: u64,
        _: Vec<String>,
    ) -> Result<Option<StoreBasicInfo>, ManagerError> {
        not_found()
    }
    async fn store_basic_info(&self, name: String) -> Result<Option<StoreBasicInfo>, ManagerError> {
        Ok(Some(StoreBasicInfo::named(name)))
    }
    async fn submit_persisted(
        &self,
        _: SectorId,
        _: String,
        _: bool,
    ) -> Result<bool, ManagerError> {
        not_found()
    }
    async fn wait_seed(&self, _: SectorId, _: SealProof) -> Result<WaitSeedResp, ManagerError> {
        not_found()
    }
    async fn submit_proof(
        &self,
        _: SectorId,
        _: ProofOnChainInfo,
        _: bool,
    ) -> Result<SubmitResp, ManagerError> {
        not_found()
    }
    async fn poll_proof_state(&self, _: SectorId) -> Result<PollStateResp, ManagerError> {
        not_found()
    }
    async fn report_state(
        &self,
        _: SectorId,
        _: ReportStateReq,
    ) -> Result<SectorStateResp, ManagerError> {
        not_found()
    }
    async fn report_finalized(&self, _: SectorId) -> Result<(), ManagerError> {
        not_found()
    }
    async fn report_aborted(&self, _: SectorId, _: String) -> Result<(), ManagerError> {
        not_found()
    }
}
