//! The sealer API the sealer plan calls (`Venus.*`, reference §7.2), on both sides:
//! [`sealer_call`] (the table's dispatch) serves it over any [`SectorManager`]; [`HttpSectorManager`] is a
//! [`SectorManager`] that calls a manager over HTTP.

use std::time::Duration;

use async_trait::async_trait;
use damocles_core::sealer_api::{
    AcquireDealsSpec, AllocatePoStSpec, AllocateSectorSpec, AllocateSnapUpSpec, AllocatedSector,
    AllocatedSnapUpSector, Cid, ManagerErrorKind, PollStateResp, PreCommitOnChainInfo,
    ProofOnChainInfo, ReportStateReq, SectorPiece, SectorRebuildInfo, SectorStateResp,
    SectorUnsealInfo, SnapUpOnChainInfo, SubmitResp, Ticket, WaitSeedResp, WdPoStJob,
    WindowPoStOutput, SECTOR_STATE_NOT_FOUND_CODE,
};
use damocles_core::{ManagerError, SealProof, SectorId, SectorManager};

use crate::client::{CallError, RpcClient, Timeouts};
use crate::jsonrpc::RpcError;
use crate::method::{handlers, rpc_methods, RpcMethod};

/// The path the manager serves its API at.
pub const MANAGER_PATH: &str = "/rpc/v0";

/// What the manager knows of a store (the method of that name is [`StoreBasicInfo`]).
type StoreInfo = damocles_core::sealer_api::StoreBasicInfo;

rpc_methods! {
    /// The sealer API's methods.
    pub const SEALER_METHODS;
    /// Runs sealer method `name` on a [`SectorManager`]; `None` when `name` is not a
    /// sealer method.
    pub async fn sealer_call;
    /// A new sector to seal.
    AllocateSector = "Venus.AllocateSector", Admin, (spec: AllocateSectorSpec = "an AllocateSectorSpec")
        -> Option<AllocatedSector> = "AllocatedSector | null", "a new sector to seal";
    /// The sector's deal pieces.
    AcquireDeals = "Venus.AcquireDeals", Admin, (id: SectorId = "a SectorID {Miner, Number}", spec: AcquireDealsSpec = "an AcquireDealsSpec")
        -> Option<Vec<SectorPiece>> = "[SectorPiece] | null", "the sector's deal pieces (null: CC)";
    /// The sector's ticket.
    AssignTicket = "Venus.AssignTicket", Admin, (id: SectorId = "a SectorID {Miner, Number}")
        -> Ticket = "Ticket", "the sector's ticket";
    /// Submits the pre-commit.
    SubmitPreCommit = "Venus.SubmitPreCommit", Admin, (
        sector: AllocatedSector = "an AllocatedSector",
        info: PreCommitOnChainInfo = "a PreCommitOnChainInfo",
        reset: Option<bool> = "a boolean, default false",
    ) -> SubmitResp = "SubmitResp", "submits the pre-commit";
    /// Where the pre-commit stands.
    PollPreCommitState = "Venus.PollPreCommitState", Admin, (id: SectorId = "a SectorID {Miner, Number}")
        -> PollStateResp = "PollStateResp", "where the pre-commit stands";
    /// Reserves room in one of the stores.
    StoreReserveSpace = "Venus.StoreReserveSpace", Admin, (
        id: SectorId = "a SectorID {Miner, Number}",
        size: u64 = "a size in bytes",
        candidates: Vec<String> = "a list of store names",
    ) -> Option<StoreInfo> = "StoreBasicInfo | null", "reserves room in one of the stores";
    /// What the manager knows of a store.
    StoreBasicInfo = "Venus.StoreBasicInfo", Admin, (instance: String = "a store name")
        -> Option<StoreInfo> = "StoreBasicInfo | null",
        "what the manager knows of a store";
    /// The files are persisted (legacy).
    SubmitPersisted = "Venus.SubmitPersisted", Admin, (id: SectorId = "a SectorID {Miner, Number}", instance: String = "a store name")
        -> bool = "bool", "the files are persisted (legacy)";
    /// The files are persisted.
    SubmitPersistedEx = "Venus.SubmitPersistedEx", Admin, (
        id: SectorId = "a SectorID {Miner, Number}",
        instance: String = "a store name",
        is_upgrade: Option<bool> = "a boolean, default false",
    ) -> bool = "bool", "the files are persisted";
    /// The seed, or how long to wait.
    WaitSeed = "Venus.WaitSeed", Admin, (id: SectorId = "a SectorID {Miner, Number}", proof_type: SealProof = "a seal proof type")
        -> WaitSeedResp = "WaitSeedResp", "the seed, or how long to wait";
    /// Submits the proof.
    SubmitProof = "Venus.SubmitProof", Admin, (
        id: SectorId = "a SectorID {Miner, Number}",
        info: ProofOnChainInfo = "a ProofOnChainInfo",
        reset: Option<bool> = "a boolean, default false",
    ) -> SubmitResp = "SubmitResp", "submits the proof (verified)";
    /// Where the proof stands.
    PollProofState = "Venus.PollProofState", Admin, (id: SectorId = "a SectorID {Miner, Number}")
        -> PollStateResp = "PollStateResp", "where the proof stands";
    /// A state change of the sector.
    ReportState = "Venus.ReportState", Admin, (id: SectorId = "a SectorID {Miner, Number}", req: ReportStateReq = "a ReportStateReq")
        -> SectorStateResp = "SectorStateResp", "a state change of the sector";
    /// The sector is done.
    ReportFinalized = "Venus.ReportFinalized", Admin, (id: SectorId = "a SectorID {Miner, Number}")
        -> () = "null", "the sector is done";
    /// The sector is dropped.
    ReportAborted = "Venus.ReportAborted", Admin, (id: SectorId = "a SectorID {Miner, Number}", reason: String = "a string")
        -> () = "null", "the sector is dropped";
    /// A sealed CC sector to upgrade.
    AllocateSnapUpSector = "Venus.AllocateSanpUpSector", Admin, (spec: AllocateSnapUpSpec = "an AllocateSnapUpSpec")
        -> Option<AllocatedSnapUpSector> = "AllocatedSnapUpSector | null",
        "a sealed CC sector to upgrade with deals (the original's spelling)";
    /// Submits the update proof.
    SubmitSnapUpProof = "Venus.SubmitSnapUpProof", Admin, (id: SectorId = "a SectorID {Miner, Number}", info: SnapUpOnChainInfo = "a SnapUpOnChainInfo")
        -> SubmitResp = "SubmitResp", "submits the update proof (verified by the mock)";
    /// A sealed sector whose files must be re-created.
    AllocateRebuildSector = "Venus.AllocateRebuildSector", Admin, (spec: AllocateSectorSpec = "an AllocateSectorSpec")
        -> Option<SectorRebuildInfo> = "SectorRebuildInfo | null", "a sealed sector whose files must be re-created";
    /// A deal piece to read back out of a sealed sector.
    AllocateUnsealSector = "Venus.AllocateUnsealSector", Admin, (spec: AllocateSectorSpec = "an AllocateSectorSpec")
        -> Option<SectorUnsealInfo> = "SectorUnsealInfo | null", "a deal piece to read back out of a sealed sector";
    /// Where the unsealed piece goes.
    AcquireUnsealDest = "Venus.AcquireUnsealDest", Admin, (id: SectorId = "a SectorID {Miner, Number}", piece_cid: Cid = "a Cid {\"/\": …}")
        -> Option<Vec<String>> = "[string] | null", "where the unsealed piece goes";
    /// The unsealed piece was delivered (or why not).
    AchieveUnsealSector = "Venus.AchieveUnsealSector", Admin, (
        id: SectorId = "a SectorID {Miner, Number}",
        piece_cid: Cid = "a Cid {\"/\": …}",
        error: Option<String> = "a string, empty for none",
    ) -> () = "null", "the unsealed piece was delivered (or why not)";
    /// WindowPoSt jobs for a worker.
    WdPoStAllocateJobs = "Venus.WdPoStAllocateJobs", Admin, (
        spec: AllocatePoStSpec = "an AllocatePoStSpec {AllowedMiners, AllowedProofTypes}",
        num: u32 = "how many jobs at most",
        worker: String = "the worker's name",
    ) -> Option<Vec<WdPoStJob>> = "[WdPoStJob] | null", "WindowPoSt jobs for a worker (proof types by name)";
    /// The worker is still proving these jobs.
    WdPoStHeartbeatJobs = "Venus.WdPoStHeartbeatJobs", Admin, (
        ids: Vec<String> = "a list of job ids",
        worker: String = "the worker's name",
    ) -> () = "null", "the worker is still proving these jobs";
    /// A job's proof and faults, or why it failed.
    WdPoStFinishJob = "Venus.WdPoStFinishJob", Admin, (
        id: String = "a job id",
        output: Option<WindowPoStOutput> = "a WindowPoStOutput {proofs, faults} | null",
        error: Option<String> = "a string, empty for none",
    ) -> () = "null", "a job's proof and faults (verified by the mock), or why it failed";
}

fn to_rpc(error: ManagerError) -> RpcError {
    if error.is_sector_not_found() {
        // Go's ErrorCode prints as "error code N", wrapped once: "error code 11001: …".
        let prefix = format!("error code {SECTOR_STATE_NOT_FOUND_CODE}");
        let message = if error.message.starts_with(&prefix) {
            error.message
        } else {
            format!("{prefix}: {error}")
        };
        RpcError::new(SECTOR_STATE_NOT_FOUND_CODE, message)
    } else if let ManagerErrorKind::Remote { code } = error.kind {
        RpcError::new(code, error.to_string())
    } else {
        RpcError::new(1, error.to_string())
    }
}

handlers! { dyn SectorManager, |m, _caller| {
    AllocateSector => |(spec,)| m.allocate_sector(spec).await.map_err(to_rpc);
    AcquireDeals => |(id, spec)| m.acquire_deals(id, spec).await.map_err(to_rpc);
    AssignTicket => |(id,)| m.assign_ticket(id).await.map_err(to_rpc);
    SubmitPreCommit => |(sector, info, reset)| m
        .submit_pre_commit(sector, info, reset.unwrap_or(false))
        .await
        .map_err(to_rpc);
    PollPreCommitState => |(id,)| m.poll_pre_commit_state(id).await.map_err(to_rpc);
    StoreReserveSpace => |(id, size, candidates)| m
        .store_reserve_space(id, size, candidates)
        .await
        .map_err(to_rpc);
    StoreBasicInfo => |(instance,)| m.store_basic_info(instance).await.map_err(to_rpc);
    SubmitPersisted => |(id, instance)| m
        .submit_persisted(id, instance, false)
        .await
        .map_err(to_rpc);
    SubmitPersistedEx => |(id, instance, upgrade)| m
        .submit_persisted(id, instance, upgrade.unwrap_or(false))
        .await
        .map_err(to_rpc);
    WaitSeed => |(id, proof)| m.wait_seed(id, proof).await.map_err(to_rpc);
    SubmitProof => |(id, info, reset)| m
        .submit_proof(id, info, reset.unwrap_or(false))
        .await
        .map_err(to_rpc);
    PollProofState => |(id,)| m.poll_proof_state(id).await.map_err(to_rpc);
    ReportState => |(id, req)| m.report_state(id, req).await.map_err(to_rpc);
    ReportFinalized => |(id,)| m.report_finalized(id).await.map_err(to_rpc);
    ReportAborted => |(id, reason)| m.report_aborted(id, reason).await.map_err(to_rpc);
    AllocateSnapUpSector => |(spec,)| m.allocate_snapup_sector(spec).await.map_err(to_rpc);
    SubmitSnapUpProof => |(id, info)| m.submit_snapup_proof(id, info).await.map_err(to_rpc);
    AllocateRebuildSector => |(spec,)| m.allocate_rebuild_sector(spec).await.map_err(to_rpc);
    AllocateUnsealSector => |(spec,)| m.allocate_unseal_sector(spec).await.map_err(to_rpc);
    AcquireUnsealDest => |(id, cid)| m.acquire_unseal_dest(id, cid).await.map(Some).map_err(to_rpc);
    AchieveUnsealSector => |(id, cid, error)| m
        .achieve_unseal_sector(id, cid, error.unwrap_or_default())
        .await
        .map_err(to_rpc);
    WdPoStAllocateJobs => |(spec, num, worker)| m
        .wdpost_allocate_jobs(spec, num, worker)
        .await
        .map(Some)
        .map_err(to_rpc);
    WdPoStHeartbeatJobs => |(ids, worker)| m
        .wdpost_heartbeat_jobs(ids, worker)
        .await
        .map_err(to_rpc);
    WdPoStFinishJob => |(id, output, error)| m
        .wdpost_finish_job(id, output, error.unwrap_or_default())
        .await
        .map_err(to_rpc);
}}

/// A manager address this worker cannot use, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid manager address {addr:?}: {reason}")]
pub struct InvalidManagerAddress {
    /// The address as given.
    pub addr: String,
    /// Why it cannot be used.
    pub reason: String,
}

const ADDRESS_FORMS: &str =
    "expected a multiaddr like /ip4/127.0.0.1/tcp/1789 or a URL like http://127.0.0.1:1789 (https:// for TLS)";

/// The `host:port` of each manager in `addrs`, a comma-separated list of what
/// [`manager_host_port`] takes (the config's `rpc_client.addr` list, joined).
///
/// # Errors
/// The first entry that is not an address, or one that names a manager already listed.
pub fn manager_host_ports(addrs: &str) -> Result<Vec<String>, InvalidManagerAddress> {
    let mut listed: Vec<String> = Vec::new();
    for addr in addrs.split(',').map(str::trim) {
        let host_port = manager_host_port(addr)?;
        if listed.contains(&host_port) {
            return Err(InvalidManagerAddress {
                addr: addr.to_owned(),
                reason: format!("{host_port} is listed twice"),
            });
        }
        listed.push(host_port);
    }
    Ok(listed)
}

/// Turns a manager address into `host:port`, or `https://host:port` for TLS: a multiaddr
/// (`/ip4/127.0.0.1/tcp/1789`, `/dns/host/tcp/1789`, with `/https` or `/tls` for TLS), a
/// URL (`http(s)://host:1789[/rpc/v0]`) or `host:port`.
///
/// # Errors
/// None of those forms; a URL with a user or password (send `rpc_client.token` instead)
/// or with a path other than `/rpc/v0`.
pub fn manager_host_port(addr: &str) -> Result<String, InvalidManagerAddress> {
    let refused = |reason: &str| InvalidManagerAddress {
        addr: without_secrets(addr),
        reason: reason.to_owned(),
    };
    let bad = || refused(ADDRESS_FORMS);
    if let Some(rest) = addr.strip_prefix('/') {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [proto, host, "tcp", port, rest @ ..]
                if matches!(*proto, "ip4" | "ip6" | "dns" | "dns4" | "dns6")
                    && port.parse::<u16>().is_ok() =>
            {
                let host_port = if *proto == "ip6" {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                Ok(
                    if rest.iter().any(|p| matches!(*p, "https" | "tls" | "wss")) {
                        format!("https://{host_port}")
                    } else {
                        host_port
                    },
                )
            }
            _ => Err(bad()),
        };
    }
    let (tls, rest) = match addr.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, addr.strip_prefix("http://").unwrap_or(addr)),
    };
    let (host_port, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host_port.contains('@') {
        return Err(refused(
            "a user or password in the address is not sent; set [sector_manager] rpc_client.token",
        ));
    }
    if rest.contains('?') {
        return Err(refused(
            "a query in the address is not sent; set [sector_manager] rpc_client.token",
        ));
    }
    if !matches!(path, "" | "rpc/v0" | "rpc/v0/") {
        return Err(refused(&format!(
            "the path /{path} is not served: the manager's API is at {MANAGER_PATH}"
        )));
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(if tls {
            format!("https://{host_port}")
        } else {
            host_port.to_owned()
        }),
        _ => Err(bad()),
    }
}

/// `addr` as it may be shown: a password in it and any query replaced by `***`.
fn without_secrets(addr: &str) -> String {
    let (addr, query) = match addr.split_once('?') {
        Some((addr, _)) => (addr, "?***"),
        None => (addr, ""),
    };
    let shown = match addr.split_once('@') {
        Some((userinfo, host)) => {
            let (scheme, credentials) = userinfo.rsplit_once("//").unwrap_or(("", userinfo));
            let user = credentials.split(':').next().unwrap_or_default();
            let scheme = if scheme.is_empty() {
                String::new()
            } else {
                format!("{scheme}//")
            };
            format!("{scheme}{user}:***@{host}")
        }
        None => addr.to_owned(),
    };
    shown + query
}

/// An [`RpcClient`] of the manager API at `addr` (multiaddr, URL or host:port).
pub(crate) fn manager_client(
    addr: &str,
    token: Option<String>,
    timeouts: Timeouts,
) -> Result<RpcClient, InvalidManagerAddress> {
    let host_ports = manager_host_ports(addr)?;
    RpcClient::with_failover(&host_ports, MANAGER_PATH, token, timeouts).map_err(|_| {
        InvalidManagerAddress {
            addr: addr.to_owned(),
            reason: ADDRESS_FORMS.to_owned(),
        }
    })
}

/// A [`SectorManager`] over HTTP: the sealer API of a manager at `/rpc/v0`.
///
/// JSON-RPC error 11001 becomes a sector-not-found error (the sector is aborted);
/// transport failures and other errors are transport/remote errors (retried).
#[derive(Debug)]
pub struct HttpSectorManager {
    rpc: RpcClient,
}

impl HttpSectorManager {
    /// A client of the manager at `addr` (multiaddr, URL or host:port), with the
    /// manager's token when it requires one.
    pub fn new(
        addr: &str,
        token: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self, InvalidManagerAddress> {
        manager_client(addr, token, timeouts).map(|rpc| Self { rpc })
    }

    /// The same client reading answers of at most `bytes` (default
    /// [`crate::client::DEFAULT_MAX_ANSWER`]; `[sector_manager] rpc_client.max_answer_bytes`).
    #[must_use]
    pub fn with_max_answer(self, bytes: usize) -> Self {
        Self {
            rpc: self.rpc.with_max_answer(bytes),
        }
    }

    /// The same client verifying `https://` managers against `trust`.
    ///
    /// # Errors
    ///
    /// [`crate::tls::TlsError`] when the trust's CA file cannot be used.
    pub fn with_tls(self, trust: &crate::tls::TlsTrust) -> Result<Self, crate::tls::TlsError> {
        Ok(Self {
            rpc: self.rpc.with_tls(trust)?,
        })
    }

    /// The client, for the other `Venus.*` calls.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    async fn request<M: RpcMethod>(&self, params: M::Params) -> Result<M::Result, ManagerError> {
        self.rpc.request::<M>(params).await.map_err(manager_error)
    }
}

/// A call error as the sealer plan classifies it.
pub fn manager_error(error: CallError) -> ManagerError {
    match error {
        CallError::Rpc(e) if e.code == SECTOR_STATE_NOT_FOUND_CODE => {
            ManagerError::sector_not_found(e.message)
        }
        CallError::Rpc(e) => ManagerError::remote(e.code, e.message),
        other => ManagerError::transport(other.to_string()),
    }
}

/// Timeouts for sealer calls: the manager may be slow under load, never silent for long.
pub const SEALER_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    request: Duration::from_secs(60),
};

#[async_trait]
impl SectorManager for HttpSectorManager {
    async fn allocate_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<AllocatedSector>, ManagerError> {
        self.request::<AllocateSector>((spec,)).await
    }

    async fn acquire_deals(
        &self,
        id: SectorId,
        spec: AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError> {
        self.request::<AcquireDeals>((id, spec)).await
    }

    async fn assign_ticket(&self, id: SectorId) -> Result<Ticket, ManagerError> {
        self.request::<AssignTicket>((id,)).await
    }

    async fn submit_pre_commit(
        &self,
        sector: AllocatedSector,
        info: PreCommitOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError> {
        self.request::<SubmitPreCommit>((sector, info, Some(reset)))
            .await
    }

    async fn poll_pre_commit_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError> {
        self.request::<PollPreCommitState>((id,)).await
    }

    async fn store_reserve_space(
        &self,
        id: SectorId,
        size: u64,
        candidates: Vec<String>,
    ) -> Result<Option<StoreInfo>, ManagerError> {
        self.request::<StoreReserveSpace>((id, size, candidates))
            .await
    }

    async fn store_basic_info(&self, instance: String) -> Result<Option<StoreInfo>, ManagerError> {
        self.request::<StoreBasicInfo>((instance,)).await
    }

    async fn submit_persisted(
        &self,
        id: SectorId,
        instance: String,
        is_upgrade: bool,
    ) -> Result<bool, ManagerError> {
        self.request::<SubmitPersistedEx>((id, instance, Some(is_upgrade)))
            .await
    }

    async fn wait_seed(
        &self,
        id: SectorId,
        proof_type: SealProof,
    ) -> Result<WaitSeedResp, ManagerError> {
        self.request::<WaitSeed>((id, proof_type)).await
    }

    async fn submit_proof(
        &self,
        id: SectorId,
        info: ProofOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError> {
        self.request::<SubmitProof>((id, info, Some(reset))).await
    }

    async fn poll_proof_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError> {
        self.request::<PollProofState>((id,)).await
    }

    async fn report_state(
        &self,
        id: SectorId,
        req: ReportStateReq,
    ) -> Result<SectorStateResp, ManagerError> {
        self.request::<ReportState>((id, req)).await
    }

    async fn report_finalized(&self, id: SectorId) -> Result<(), ManagerError> {
        self.request::<ReportFinalized>((id,)).await
    }

    async fn report_aborted(&self, id: SectorId, reason: String) -> Result<(), ManagerError> {
        self.request::<ReportAborted>((id, reason)).await
    }

    async fn allocate_snapup_sector(
        &self,
        spec: AllocateSnapUpSpec,
    ) -> Result<Option<AllocatedSnapUpSector>, ManagerError> {
        self.request::<AllocateSnapUpSector>((spec,)).await
    }

    async fn submit_snapup_proof(
        &self,
        id: SectorId,
        info: SnapUpOnChainInfo,
    ) -> Result<SubmitResp, ManagerError> {
        self.request::<SubmitSnapUpProof>((id, info)).await
    }

    async fn allocate_rebuild_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<SectorRebuildInfo>, ManagerError> {
        self.request::<AllocateRebuildSector>((spec,)).await
    }

    async fn allocate_unseal_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<SectorUnsealInfo>, ManagerError> {
        self.request::<AllocateUnsealSector>((spec,)).await
    }

    async fn acquire_unseal_dest(
        &self,
        id: SectorId,
        piece_cid: Cid,
    ) -> Result<Vec<String>, ManagerError> {
        // The original answers null for none.
        self.request::<AcquireUnsealDest>((id, piece_cid))
            .await
            .map(Option::unwrap_or_default)
    }

    async fn achieve_unseal_sector(
        &self,
        id: SectorId,
        piece_cid: Cid,
        error: String,
    ) -> Result<(), ManagerError> {
        self.request::<AchieveUnsealSector>((id, piece_cid, Some(error)))
            .await
    }

    async fn wdpost_allocate_jobs(
        &self,
        spec: AllocatePoStSpec,
        num: u32,
        worker: String,
    ) -> Result<Vec<WdPoStJob>, ManagerError> {
        // The original answers null for none.
        self.request::<WdPoStAllocateJobs>((spec, num, worker))
            .await
            .map(Option::unwrap_or_default)
    }

    async fn wdpost_heartbeat_jobs(
        &self,
        ids: Vec<String>,
        worker: String,
    ) -> Result<(), ManagerError> {
        self.request::<WdPoStHeartbeatJobs>((ids, worker)).await
    }

    async fn wdpost_finish_job(
        &self,
        id: String,
        output: Option<WindowPoStOutput>,
        error: String,
    ) -> Result<(), ManagerError> {
        self.request::<WdPoStFinishJob>((id, output, Some(error)))
            .await
    }
}

#[cfg(test)]
mod tests;
