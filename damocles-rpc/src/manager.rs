//! The manager's API at `/rpc/v0`, namespace `Venus`: worker pings into the
//! the [`Registry`] (redb or PostgreSQL), registry queries, the sealer API over any `SectorManager`, and
//! (additive, namespace `Damocles`) the chain's sector list when the manager has one to
//! show. [`ManagerClient`] calls it.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use damocles_core::listing::{ChainJobRow, SectorRow, WdPostJobRow};
use damocles_core::sealer_api::{Cid, ExtendedSectorInfo};
use damocles_core::{
    ActorId, PoStProof, ReportError, Reporter, SectorId, SectorManager, SectorNumber, WorkerReport,
};

use crate::client::{CallError, RpcClient, Timeouts};
use crate::fleet::{fleet_call, Fleet, FLEET_METHODS};
use crate::jsonrpc::{Params, RpcError, RpcResult};
use crate::method::{handlers, rpc_methods, MethodSpec, Permission};
use crate::registry::{PingEntry, PingError, Registry};
use crate::sealer::{self, MANAGER_PATH, SEALER_METHODS};
use crate::server::{Caller, RpcService};

rpc_methods! {
    /// The registry's and the manager's own methods.
    pub const OWN_METHODS;
    /// Runs one of the manager's own methods on a [`ManagerService`]; `None` when `name`
    /// is not one.
    pub async fn own_call;
    /// A worker's periodic report.
    WorkerPing = "Venus.WorkerPing", Admin, (info: WorkerReport = "a WorkerInfo {Name, Dest, Version, Summary}")
        -> () = "null", "a worker's periodic report";
    /// One worker's last report.
    WorkerGetPingInfo = "Venus.WorkerGetPingInfo", Read, (name: String = "a worker name")
        -> Option<PingEntry> = "WorkerPingInfo | null", "one worker's last report, with its liveness";
    /// Every worker's last report.
    WorkerPingInfoList = "Venus.WorkerPingInfoList", Read, ()
        -> Option<Vec<PingEntry>> = "[WorkerPingInfo] | null (an original manager's none)", "every worker's last report, by name, with its liveness";
    /// Forgets a worker.
    WorkerPingInfoRemove = "Venus.WorkerPingInfoRemove", Admin, (name: String = "a worker name")
        -> () = "null", "forgets a worker";
    /// The manager's version.
    Version = "Venus.Version", Read, () -> String = "string", "the manager's version";
    /// Every sector the chain knows (additive).
    ChainSectors = "Damocles.ChainSectors", Read, ()
        -> Vec<SectorRow> = "[ChainSector]", "every sector the (mock) chain knows, with what verifies its proof";
    /// The manager's rebuild and unseal jobs (additive).
    ChainJobs = "Damocles.ChainJobs", Read, ()
        -> Vec<ChainJobRow> = "[ChainJob]", "the (mock) manager's rebuild and unseal jobs, oldest first";
    /// The manager's WindowPoSt jobs (additive).
    WdPostJobs = "Damocles.WdPostJobs", Read, ()
        -> Vec<WdPostJobRow> = "[WdPostJob]", "the (mock) manager's WindowPoSt jobs, oldest first, with what verifies each proof";
    /// Asks for a sector's files to be rebuilt (additive).
    SectorRebuild = "Damocles.SectorRebuild", Admin, (id: SectorId = "a SectorID {Miner, Number}")
        -> ChainJobRow = "ChainJob", "asks for a sector's files to be rebuilt: a job a rebuild thread takes";
    /// Asks for a deal piece to be unsealed (additive).
    SectorUnseal = "Damocles.SectorUnseal", Admin, (
        id: SectorId = "a SectorID {Miner, Number}",
        piece_cid: Cid = "a Cid {\"/\": …}",
        dest: Option<Vec<String>> = "a list of destination URLs, or null for the piece store",
    ) -> ChainJobRow = "ChainJob",
        "asks for a deal piece to be unsealed and delivered: a job an unseal thread takes";
    /// Offers a WindowPoSt job again from the start (the original's name).
    WdPoStResetJob = "Damocles.WdPoStResetJob", Admin, (id: String = "a WindowPoSt job id")
        -> () = "null", "offers a WindowPoSt job again from the start, as if new";
    /// Forgets a WindowPoSt job (the original's name).
    WdPoStRemoveJob = "Damocles.WdPoStRemoveJob", Admin, (id: String = "a WindowPoSt job id")
        -> () = "null", "forgets a WindowPoSt job (none by that id: not an error)";
    /// Checks sectors' files as a WindowPoSt round would (the original's name and shape).
    CheckProvable = "Damocles.CheckProvable", Admin, (
        miner: ActorId = "an ActorID",
        post_proof: i64 = "a RegisteredPoStProof integer (10: StackedDrgWindow2KiBV1_2)",
        sectors: Vec<ExtendedSectorInfo> = "[ExtendedSectorInfo {SealProof, SectorNumber, SectorKey, SealedCID}]",
        strict: bool = "true: a vanilla proof of each sector; false: its files' presence and sizes",
        state_check: bool = "accepted and ignored (the original also checks the sector's state on chain)",
    ) -> BTreeMap<SectorNumber, String> = "{\"<SectorNumber>\": reason} of the bad sectors only",
        "checks sectors' files where the manager sees them, as a WindowPoSt round checks them";
}

/// Every method the manager serves.
pub static MANAGER_METHODS: LazyLock<Vec<MethodSpec>> = LazyLock::new(|| {
    SEALER_METHODS
        .iter()
        .chain(OWN_METHODS)
        .chain(FLEET_METHODS)
        .copied()
        .collect()
});

/// The JSON-RPC error code of a listing whose records the manager cannot read now (its
/// database is down): `util sealer … list` exits 3, as for a manager it cannot reach.
pub const RECORDS_UNREADABLE: i64 = 12001;

/// What a manager can show of its chain (the mock chain's sector records and jobs), and
/// the jobs an operator can ask it for.
#[async_trait]
pub trait ChainView: Send + Sync {
    /// Every sector.
    fn sectors(&self) -> Vec<SectorRow>;

    /// Why the records behind the listings could not be read by the last listing or call,
    /// and since when (a database outage); `None` while they are read. The listings then
    /// answer [`RECORDS_UNREADABLE`] instead of what the manager holds in memory.
    fn records_unreadable(&self) -> Option<String> {
        None
    }

    /// Every job, oldest first.
    fn jobs(&self) -> Vec<ChainJobRow>;

    /// Every WindowPoSt job, oldest first.
    fn wdpost_jobs(&self) -> Vec<WdPostJobRow>;

    /// Asks for `id`'s files to be rebuilt: the new job, or why not.
    fn request_rebuild(&self, id: SectorId) -> Result<ChainJobRow, JobRequestError>;

    /// Asks for deal piece `piece` of `id` to be unsealed and delivered to `dest` (none:
    /// the manager's piece store): the new job, or why not.
    fn request_unseal(
        &self,
        id: SectorId,
        piece: Cid,
        dest: Vec<String>,
    ) -> Result<ChainJobRow, JobRequestError>;

    /// Offers WindowPoSt job `id` again from the start; an unknown id is an error.
    fn reset_wdpost_job(&self, id: &str) -> Result<(), JobRequestError>;

    /// Forgets WindowPoSt job `id`: whether there was one.
    fn remove_wdpost_job(&self, id: &str) -> Result<bool, JobRequestError>;

    /// Checks the files of `sectors` of `miner` where this manager sees them, as a
    /// WindowPoSt round of `proof` would (`strict`: a vanilla proof of each; otherwise
    /// their presence and sizes): the bad ones, by number, with why.
    async fn check_provable(
        &self,
        miner: ActorId,
        proof: PoStProof,
        sectors: Vec<ExtendedSectorInfo>,
        strict: bool,
    ) -> Result<BTreeMap<SectorNumber, String>, JobRequestError>;
}

/// Why a [`ChainView`] refuses a job: its own error (the mock chain's `JobRefused`).
pub type JobRequestError = Box<dyn std::error::Error + Send + Sync>;

/// What anyone can do to a manager that requires no token (see
/// [`crate::ServerOptions::exposure`]).
pub const MANAGER_EXPOSURE: &str = "remove workers and register any name at any address, where `util worker` commands then send the worker token";

/// The manager's API.
pub struct ManagerService {
    sealer: Arc<dyn SectorManager>,
    registry: Arc<dyn Registry>,
    expiration: Duration,
    version: String,
    chain: Option<Arc<dyn ChainView>>,
    fleet: Fleet,
}

impl ManagerService {
    /// Serves `sealer` and `registry`; entries older than `expiration` are `expired`.
    pub fn new(
        sealer: Arc<dyn SectorManager>,
        registry: Arc<dyn Registry>,
        expiration: Duration,
        version: impl Into<String>,
        chain: Option<Arc<dyn ChainView>>,
    ) -> Self {
        Self {
            fleet: Fleet::new(registry.clone(), None),
            sealer,
            registry,
            expiration,
            version: version.into(),
            chain,
        }
    }

    /// Sends `token` to the workers when it relays the `Damocles.Fleet*` calls (the
    /// workers' admin token, where they require one).
    pub fn with_worker_token(mut self, token: Option<String>) -> Self {
        self.fleet = Fleet::new(self.registry.clone(), token);
        self
    }

    /// Serves this manager at [`MANAGER_PATH`] on `addr` (port 0 picks a free one),
    /// without tokens: for tests, benchmarks and single-machine setups.
    pub async fn serve(self, addr: &str) -> std::io::Result<crate::RpcServer> {
        let options = crate::ServerOptions {
            path: Some(MANAGER_PATH.into()),
            exposure: MANAGER_EXPOSURE,
            dialect: crate::dialect::Dialect::GoJsonRpc,
            ..crate::ServerOptions::default()
        };
        crate::RpcServer::bind(addr, Arc::new(self), options).await
    }

    fn chain(&self) -> Result<&dyn ChainView, RpcError> {
        self.chain
            .as_deref()
            .ok_or_else(|| RpcError::new(1, "this manager has no chain records to show"))
    }

    /// A listing of the chain's records, refused with [`RECORDS_UNREADABLE`] (saying since
    /// when) when they could not be read: what the manager holds in memory may be stale.
    fn listing<Row>(
        &self,
        list: impl FnOnce(&dyn ChainView) -> Vec<Row>,
    ) -> Result<Vec<Row>, RpcError> {
        let chain = self.chain()?;
        let rows = list(chain);
        match chain.records_unreadable() {
            Some(why) => Err(RpcError::new(RECORDS_UNREADABLE, why)),
            None => Ok(rows),
        }
    }

    fn judged(&self, entry: PingEntry) -> PingEntry {
        entry.judged(unix_now(), self.expiration)
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn internal(e: crate::registry::RegistryError) -> RpcError {
    RpcError::internal(e.to_string())
}

#[async_trait]
impl RpcService for ManagerService {
    fn methods(&self) -> &'static [MethodSpec] {
        &MANAGER_METHODS
    }

    async fn call(
        &self,
        method: &'static MethodSpec,
        params: Params,
        caller: &Caller,
    ) -> RpcResult {
        if let Some(answer) = sealer::sealer_call(&*self.sealer, method.name, &params, caller).await
        {
            return answer;
        }
        if let Some(answer) = own_call(self, method.name, &params, caller).await {
            return answer;
        }
        fleet_call(&self.fleet, method.name, &params, caller)
            .await
            .unwrap_or_else(|| Err(RpcError::method_not_found(method.name)))
    }
}

fn refused(why: JobRequestError) -> RpcError {
    RpcError::new(1, why.to_string())
}

handlers! { ManagerService, |service, caller| {
    WorkerPing => |(info,)| service.ping(info, caller).await;
    WorkerGetPingInfo => |(name,)| {
        let entry = service.registry.entry(&name).await.map_err(internal)?;
        Ok(entry.map(|e| service.judged(e)))
    };
    WorkerPingInfoList => |()| {
        let entries = service.registry.entries().await.map_err(internal)?;
        Ok(Some(entries.into_iter().map(|e| service.judged(e)).collect()))
    };
    WorkerPingInfoRemove => |(name,)| service
        .registry
        .forget(&name)
        .await
        .map(drop)
        .map_err(internal);
    Version => |()| Ok(service.version.clone());
    ChainSectors => |()| service.listing(|c| c.sectors());
    ChainJobs => |()| service.listing(|c| c.jobs());
    WdPostJobs => |()| service.listing(|c| c.wdpost_jobs());
    SectorRebuild => |(id,)| service.chain()?.request_rebuild(id).map_err(refused);
    SectorUnseal => |(id, piece, dest)| service
        .chain()?
        .request_unseal(id, piece, dest.unwrap_or_default())
        .map_err(refused);
    WdPoStResetJob => |(id,)| service.chain()?.reset_wdpost_job(&id).map_err(refused);
    WdPoStRemoveJob => |(id,)| service.chain()?.remove_wdpost_job(&id).map(drop).map_err(refused);
    CheckProvable => |(miner, post_proof, sectors, strict, _state_check)| {
        let proof = PoStProof::from_i64(post_proof).ok_or_else(|| {
            RpcError::invalid_params(format!("{post_proof} is not a RegisteredPoStProof"))
        })?;
        service
            .chain()?
            .check_provable(miner, proof, sectors, strict)
            .await
            .map_err(refused)
    };
}}

impl ManagerService {
    /// `Venus.WorkerPing`: a worker's report, checked, kept in the registry.
    async fn ping(&self, info: WorkerReport, caller: &Caller) -> Result<(), RpcError> {
        if info.name.is_empty() {
            return Err(RpcError::new(1, "worker name is required"));
        }
        if info.dest.is_empty() {
            return Err(RpcError::new(1, "worker dest is required"));
        }
        // Checked here, so that every registry answers the same: PostgreSQL refuses NUL
        // in text, redb would keep it.
        for (what, text) in [("name", &info.name), ("dest", &info.dest)] {
            if text.chars().any(char::is_control) {
                return Err(RpcError::invalid_params(format!(
                    "worker {what} {text:?} holds a control character"
                )));
            }
        }
        // Only the admin token may move a name to another dest: the dest is where `util
        // worker` sends its commands and the worker token.
        let may_move = caller.token == Some(Permission::Admin);
        match self.registry.ping(info, unix_now(), may_move).await {
            Ok(()) => Ok(()),
            Err(moved @ PingError::Moved { .. }) => Err(RpcError::new(1, moved.to_string())),
            Err(PingError::Registry(e)) => Err(RpcError::internal(e.to_string())),
        }
    }
}

/// A client of the manager's own methods (the sealer methods are
/// [`crate::sealer::HttpSectorManager`]).
#[derive(Debug)]
pub struct ManagerClient {
    rpc: RpcClient,
}

impl ManagerClient {
    /// A client of the manager at `addr` (multiaddr, URL or host:port).
    pub fn new(
        addr: &str,
        token: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self, sealer::InvalidManagerAddress> {
        sealer::manager_client(addr, token, timeouts).map(|rpc| Self { rpc })
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

    /// The manager's `host:port`.
    pub fn address(&self) -> &str {
        self.rpc.address()
    }

    /// `Venus.WorkerPing`.
    pub async fn ping(&self, report: &WorkerReport) -> Result<(), CallError> {
        self.rpc.request::<WorkerPing>((report.clone(),)).await
    }

    /// `Venus.WorkerGetPingInfo`.
    pub async fn worker(&self, name: &str) -> Result<Option<PingEntry>, CallError> {
        self.rpc
            .request::<WorkerGetPingInfo>((name.to_owned(),))
            .await
    }

    /// `Venus.WorkerPingInfoList` (an original manager answers `null` for none).
    pub async fn workers(&self) -> Result<Vec<PingEntry>, CallError> {
        self.rpc
            .request::<WorkerPingInfoList>(())
            .await
            .map(Option::unwrap_or_default)
    }

    /// `Venus.WorkerPingInfoRemove`.
    pub async fn remove(&self, name: &str) -> Result<(), CallError> {
        self.rpc
            .request::<WorkerPingInfoRemove>((name.to_owned(),))
            .await
    }

    /// `Damocles.ChainSectors`.
    pub async fn chain_sectors(&self) -> Result<Vec<SectorRow>, CallError> {
        self.rpc.request::<ChainSectors>(()).await
    }

    /// `Damocles.ChainJobs`.
    pub async fn chain_jobs(&self) -> Result<Vec<ChainJobRow>, CallError> {
        self.rpc.request::<ChainJobs>(()).await
    }

    /// `Damocles.WdPostJobs`.
    pub async fn wdpost_jobs(&self) -> Result<Vec<WdPostJobRow>, CallError> {
        self.rpc.request::<WdPostJobs>(()).await
    }

    /// `Damocles.WdPoStResetJob`.
    pub async fn reset_wdpost_job(&self, id: &str) -> Result<(), CallError> {
        self.rpc.request::<WdPoStResetJob>((id.to_owned(),)).await
    }

    /// `Damocles.WdPoStRemoveJob`.
    pub async fn remove_wdpost_job(&self, id: &str) -> Result<(), CallError> {
        self.rpc.request::<WdPoStRemoveJob>((id.to_owned(),)).await
    }

    /// `Damocles.CheckProvable`: the bad sectors among `sectors`, with why (the call
    /// takes as long as the manager's check limits allow: give the client a request
    /// timeout beyond them).
    pub async fn check_provable(
        &self,
        miner: ActorId,
        proof: PoStProof,
        sectors: Vec<ExtendedSectorInfo>,
        strict: bool,
    ) -> Result<BTreeMap<SectorNumber, String>, CallError> {
        self.rpc
            .request::<CheckProvable>((miner, proof.as_i64(), sectors, strict, false))
            .await
    }

    /// `Damocles.SectorUnseal`: the new job.
    pub async fn request_unseal(
        &self,
        id: SectorId,
        piece: &Cid,
        dest: &[String],
    ) -> Result<ChainJobRow, CallError> {
        self.rpc
            .request::<SectorUnseal>((id, piece.clone(), Some(dest.to_vec())))
            .await
    }

    /// `Damocles.SectorRebuild`: the new job.
    pub async fn request_rebuild(&self, id: SectorId) -> Result<ChainJobRow, CallError> {
        self.rpc.request::<SectorRebuild>((id,)).await
    }
}

#[async_trait]
impl Reporter for ManagerClient {
    async fn report(&self, report: &WorkerReport) -> Result<(), ReportError> {
        self.ping(report)
            .await
            .map_err(|e| ReportError(e.to_string()))
    }
}
