//! The sealer API the sealer plan calls (`Venus.*`, reference §7.2), on both sides:
//! [`sealer_call`] serves it over any [`SectorManager`]; [`HttpSectorManager`] is a
//! [`SectorManager`] that calls a manager over HTTP.

use std::time::Duration;

use async_trait::async_trait;
use damocles_core::sealer_api::{
    AcquireDealsSpec, AllocateSectorSpec, AllocateSnapUpSpec, AllocatedSector,
    AllocatedSnapUpSector, Cid, PollStateResp, PreCommitOnChainInfo, ProofOnChainInfo,
    ReportStateReq, SectorPiece, SectorRebuildInfo, SectorStateResp, SectorUnsealInfo,
    SnapUpOnChainInfo, StoreBasicInfo, SubmitResp, Ticket, WaitSeedResp,
    SECTOR_STATE_NOT_FOUND_CODE,
};
use damocles_core::{ManagerError, SealProof, SectorId, SectorManager};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{CallError, RpcClient, Timeouts};
use crate::jsonrpc::{result, Params, RpcError, RpcResult};
use crate::method::{MethodSpec, Permission};

/// The path the manager serves its API at.
pub const MANAGER_PATH: &str = "/rpc/v0";

macro_rules! sealer_methods {
    ($( $name:literal [$($param:literal),*] -> $result:literal : $summary:literal ),+ $(,)?) => {
        /// The sealer API's methods.
        pub const SEALER_METHODS: &[MethodSpec] = &[
            $(MethodSpec {
                name: $name,
                params: &[$($param),*],
                result: $result,
                permission: Permission::Admin,
                summary: $summary,
            }),+
        ];
    };
}

sealer_methods! {
    "Venus.AllocateSector" ["spec: AllocateSectorSpec"] -> "AllocatedSector | null": "a new sector to seal",
    "Venus.AcquireDeals" ["id: SectorID", "spec: AcquireDealsSpec"] -> "[SectorPiece] | null": "the sector's deal pieces (null: CC)",
    "Venus.AssignTicket" ["id: SectorID"] -> "Ticket": "the sector's ticket",
    "Venus.SubmitPreCommit" ["sector: AllocatedSector", "info: PreCommitOnChainInfo", "reset: bool"] -> "SubmitResp": "submits the pre-commit",
    "Venus.PollPreCommitState" ["id: SectorID"] -> "PollStateResp": "where the pre-commit stands",
    "Venus.StoreReserveSpace" ["id: SectorID", "size: u64", "candidates: [string]"] -> "StoreBasicInfo | null": "reserves room in one of the stores",
    "Venus.StoreBasicInfo" ["instance: string"] -> "StoreBasicInfo | null": "what the manager knows of a store",
    "Venus.SubmitPersisted" ["id: SectorID", "instance: string"] -> "bool": "the files are persisted (legacy)",
    "Venus.SubmitPersistedEx" ["id: SectorID", "instance: string", "is_upgrade: bool"] -> "bool": "the files are persisted",
    "Venus.WaitSeed" ["id: SectorID", "proof_type: SealProof"] -> "WaitSeedResp": "the seed, or how long to wait",
    "Venus.SubmitProof" ["id: SectorID", "info: ProofOnChainInfo", "reset: bool"] -> "SubmitResp": "submits the proof (verified)",
    "Venus.PollProofState" ["id: SectorID"] -> "PollStateResp": "where the proof stands",
    "Venus.ReportState" ["id: SectorID", "req: ReportStateReq"] -> "SectorStateResp": "a state change of the sector",
    "Venus.ReportFinalized" ["id: SectorID"] -> "null": "the sector is done",
    "Venus.ReportAborted" ["id: SectorID", "reason: string"] -> "null": "the sector is dropped",
    "Venus.AllocateSanpUpSector" ["spec: AllocateSnapUpSpec"] -> "AllocatedSnapUpSector | null": "a sealed CC sector to upgrade with deals (the original's spelling)",
    "Venus.SubmitSnapUpProof" ["id: SectorID", "info: SnapUpOnChainInfo"] -> "SubmitResp": "submits the update proof (verified by the mock)",
    "Venus.AllocateRebuildSector" ["spec: AllocateSectorSpec"] -> "SectorRebuildInfo | null": "a sealed sector whose files must be re-created",
    "Venus.AllocateUnsealSector" ["spec: AllocateSectorSpec"] -> "SectorUnsealInfo | null": "a deal piece to read back out of a sealed sector",
    "Venus.AcquireUnsealDest" ["id: SectorID", "piece_cid: Cid"] -> "[string] | null": "where the unsealed piece goes",
    "Venus.AchieveUnsealSector" ["id: SectorID", "piece_cid: Cid", "error: string"] -> "null": "the unsealed piece was delivered (or why not)",
}

fn to_rpc(error: ManagerError) -> RpcError {
    if error.is_sector_not_found() {
        RpcError::new(
            SECTOR_STATE_NOT_FOUND_CODE,
            format!("error code {SECTOR_STATE_NOT_FOUND_CODE}: {error}"),
        )
    } else {
        RpcError::new(1, error.to_string())
    }
}

fn answer<T: Serialize>(outcome: Result<T, ManagerError>) -> RpcResult {
    result(&outcome.map_err(to_rpc)?)
}

const ID: &str = "a sector id {\"Miner\": n, \"Number\": n}";

/// Runs sealer method `name` on `manager`; `None` when `name` is not a sealer method.
pub async fn sealer_call(manager: &dyn SectorManager, name: &str, p: &Params) -> Option<RpcResult> {
    let id = || p.required::<SectorId>(0, "id", ID);
    Some(match name {
        "Venus.AllocateSector" => {
            match p.required::<AllocateSectorSpec>(0, "spec", "an AllocateSectorSpec") {
                Ok(spec) => answer(manager.allocate_sector(spec).await),
                Err(e) => Err(e),
            }
        }
        "Venus.AcquireDeals" => match (id(), p.required(1, "spec", "an AcquireDealsSpec")) {
            (Ok(id), Ok(spec)) => answer(manager.acquire_deals(id, spec).await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "Venus.AssignTicket" => match id() {
            Ok(id) => answer(manager.assign_ticket(id).await),
            Err(e) => Err(e),
        },
        "Venus.SubmitPreCommit" => match (
            p.required::<AllocatedSector>(0, "sector", "an AllocatedSector"),
            p.required(1, "info", "a PreCommitOnChainInfo"),
            p.optional::<bool>(2, "reset", "a boolean"),
        ) {
            (Ok(sector), Ok(info), Ok(reset)) => answer(
                manager
                    .submit_pre_commit(sector, info, reset.unwrap_or(false))
                    .await,
            ),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        "Venus.PollPreCommitState" => match id() {
            Ok(id) => answer(manager.poll_pre_commit_state(id).await),
            Err(e) => Err(e),
        },
        "Venus.StoreReserveSpace" => match (
            id(),
            p.required(1, "size", "a size in bytes"),
            p.required(2, "candidates", "a list of store names"),
        ) {
            (Ok(id), Ok(size), Ok(candidates)) => {
                answer(manager.store_reserve_space(id, size, candidates).await)
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        "Venus.StoreBasicInfo" => match p.required(0, "instance", "a store name") {
            Ok(instance) => answer(manager.store_basic_info(instance).await),
            Err(e) => Err(e),
        },
        "Venus.SubmitPersisted" | "Venus.SubmitPersistedEx" => match (
            id(),
            p.required(1, "instance", "a store name"),
            p.optional::<bool>(2, "is_upgrade", "a boolean"),
        ) {
            (Ok(id), Ok(instance), Ok(upgrade)) => answer(
                manager
                    .submit_persisted(id, instance, upgrade.unwrap_or(false))
                    .await,
            ),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        "Venus.WaitSeed" => match (
            id(),
            p.required::<SealProof>(1, "proof_type", "a seal proof type"),
        ) {
            (Ok(id), Ok(proof)) => answer(manager.wait_seed(id, proof).await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "Venus.SubmitProof" => match (
            id(),
            p.required(1, "info", "a ProofOnChainInfo"),
            p.optional::<bool>(2, "reset", "a boolean"),
        ) {
            (Ok(id), Ok(info), Ok(reset)) => {
                answer(manager.submit_proof(id, info, reset.unwrap_or(false)).await)
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        "Venus.PollProofState" => match id() {
            Ok(id) => answer(manager.poll_proof_state(id).await),
            Err(e) => Err(e),
        },
        "Venus.ReportState" => match (id(), p.required(1, "req", "a ReportStateReq")) {
            (Ok(id), Ok(req)) => answer(manager.report_state(id, req).await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "Venus.ReportFinalized" => match id() {
            Ok(id) => answer(manager.report_finalized(id).await),
            Err(e) => Err(e),
        },
        "Venus.ReportAborted" => match (id(), p.required(1, "reason", "a string")) {
            (Ok(id), Ok(reason)) => answer(manager.report_aborted(id, reason).await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "Venus.AllocateSanpUpSector" => match p.required(0, "spec", "an AllocateSnapUpSpec") {
            Ok(spec) => answer(manager.allocate_snapup_sector(spec).await),
            Err(e) => Err(e),
        },
        "Venus.SubmitSnapUpProof" => match (id(), p.required(1, "info", "a SnapUpOnChainInfo")) {
            (Ok(id), Ok(info)) => answer(manager.submit_snapup_proof(id, info).await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "Venus.AllocateRebuildSector" => match p.required(0, "spec", "an AllocateSectorSpec") {
            Ok(spec) => answer(manager.allocate_rebuild_sector(spec).await),
            Err(e) => Err(e),
        },
        "Venus.AllocateUnsealSector" => match p.required(0, "spec", "an AllocateSectorSpec") {
            Ok(spec) => answer(manager.allocate_unseal_sector(spec).await),
            Err(e) => Err(e),
        },
        "Venus.AcquireUnsealDest" => match (id(), p.required(1, "piece_cid", "a Cid {\"/\": …}"))
        {
            (Ok(id), Ok(cid)) => answer(manager.acquire_unseal_dest(id, cid).await),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "Venus.AchieveUnsealSector" => match (
            id(),
            p.required(1, "piece_cid", "a Cid {\"/\": …}"),
            p.optional::<String>(2, "error", "a string"),
        ) {
            (Ok(id), Ok(cid), Ok(error)) => answer(
                manager
                    .achieve_unseal_sector(id, cid, error.unwrap_or_default())
                    .await,
            ),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        _ => return None,
    })
}

/// A manager address that is neither a multiaddr, a URL nor `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid manager address {0:?}: expected a multiaddr like /ip4/127.0.0.1/tcp/1789 or a URL like http://127.0.0.1:1789"
)]
pub struct InvalidManagerAddress(pub String);

/// Turns a manager address into `host:port`: a multiaddr (`/ip4/127.0.0.1/tcp/1789`,
/// `/dns/host/tcp/1789`), a URL (`http://host:1789[/rpc/v0]`) or `host:port`.
pub fn manager_host_port(addr: &str) -> Result<String, InvalidManagerAddress> {
    let bad = || InvalidManagerAddress(addr.to_owned());
    if let Some(rest) = addr.strip_prefix('/') {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [proto, host, "tcp", port, ..]
                if matches!(*proto, "ip4" | "ip6" | "dns" | "dns4" | "dns6")
                    && port.parse::<u16>().is_ok() =>
            {
                Ok(if *proto == "ip6" {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                })
            }
            _ => Err(bad()),
        };
    }
    let rest = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
        .unwrap_or(addr);
    let host_port = rest.split('/').next().unwrap_or_default();
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(host_port.to_owned())
        }
        _ => Err(bad()),
    }
}

/// An [`RpcClient`] of the manager API at `addr` (multiaddr, URL or host:port).
pub(crate) fn manager_client(
    addr: &str,
    token: Option<String>,
    timeouts: Timeouts,
) -> Result<RpcClient, InvalidManagerAddress> {
    let host_port = manager_host_port(addr)?;
    RpcClient::new(&host_port, MANAGER_PATH, token, timeouts)
        .map_err(|_| InvalidManagerAddress(addr.to_owned()))
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

    /// The client, for the other `Venus.*` calls.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, ManagerError> {
        self.rpc.call(method, params).await.map_err(manager_error)
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
        self.call("Venus.AllocateSector", json!([spec])).await
    }

    async fn acquire_deals(
        &self,
        id: SectorId,
        spec: AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError> {
        self.call("Venus.AcquireDeals", json!([id, spec])).await
    }

    async fn assign_ticket(&self, id: SectorId) -> Result<Ticket, ManagerError> {
        self.call("Venus.AssignTicket", json!([id])).await
    }

    async fn submit_pre_commit(
        &self,
        sector: AllocatedSector,
        info: PreCommitOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError> {
        self.call("Venus.SubmitPreCommit", json!([sector, info, reset]))
            .await
    }

    async fn poll_pre_commit_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError> {
        self.call("Venus.PollPreCommitState", json!([id])).await
    }

    async fn store_reserve_space(
        &self,
        id: SectorId,
        size: u64,
        candidates: Vec<String>,
    ) -> Result<Option<StoreBasicInfo>, ManagerError> {
        self.call("Venus.StoreReserveSpace", json!([id, size, candidates]))
            .await
    }

    async fn store_basic_info(
        &self,
        instance: String,
    ) -> Result<Option<StoreBasicInfo>, ManagerError> {
        self.call("Venus.StoreBasicInfo", json!([instance])).await
    }

    async fn submit_persisted(
        &self,
        id: SectorId,
        instance: String,
        is_upgrade: bool,
    ) -> Result<bool, ManagerError> {
        self.call("Venus.SubmitPersistedEx", json!([id, instance, is_upgrade]))
            .await
    }

    async fn wait_seed(
        &self,
        id: SectorId,
        proof_type: SealProof,
    ) -> Result<WaitSeedResp, ManagerError> {
        self.call("Venus.WaitSeed", json!([id, proof_type])).await
    }

    async fn submit_proof(
        &self,
        id: SectorId,
        info: ProofOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError> {
        self.call("Venus.SubmitProof", json!([id, info, reset]))
            .await
    }

    async fn poll_proof_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError> {
        self.call("Venus.PollProofState", json!([id])).await
    }

    async fn report_state(
        &self,
        id: SectorId,
        req: ReportStateReq,
    ) -> Result<SectorStateResp, ManagerError> {
        self.call("Venus.ReportState", json!([id, req])).await
    }

    async fn report_finalized(&self, id: SectorId) -> Result<(), ManagerError> {
        self.call::<Value>("Venus.ReportFinalized", json!([id]))
            .await
            .map(drop)
    }

    async fn report_aborted(&self, id: SectorId, reason: String) -> Result<(), ManagerError> {
        self.call::<Value>("Venus.ReportAborted", json!([id, reason]))
            .await
            .map(drop)
    }

    async fn allocate_snapup_sector(
        &self,
        spec: AllocateSnapUpSpec,
    ) -> Result<Option<AllocatedSnapUpSector>, ManagerError> {
        self.call("Venus.AllocateSanpUpSector", json!([spec])).await
    }

    async fn submit_snapup_proof(
        &self,
        id: SectorId,
        info: SnapUpOnChainInfo,
    ) -> Result<SubmitResp, ManagerError> {
        self.call("Venus.SubmitSnapUpProof", json!([id, info]))
            .await
    }

    async fn allocate_rebuild_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<SectorRebuildInfo>, ManagerError> {
        self.call("Venus.AllocateRebuildSector", json!([spec]))
            .await
    }

    async fn allocate_unseal_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<SectorUnsealInfo>, ManagerError> {
        self.call("Venus.AllocateUnsealSector", json!([spec])).await
    }

    async fn acquire_unseal_dest(
        &self,
        id: SectorId,
        piece_cid: Cid,
    ) -> Result<Vec<String>, ManagerError> {
        // The original answers null for none.
        self.call::<Option<Vec<String>>>("Venus.AcquireUnsealDest", json!([id, piece_cid]))
            .await
            .map(Option::unwrap_or_default)
    }

    async fn achieve_unseal_sector(
        &self,
        id: SectorId,
        piece_cid: Cid,
        error: String,
    ) -> Result<(), ManagerError> {
        self.call::<Value>("Venus.AchieveUnsealSector", json!([id, piece_cid, error]))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::{manager_host_port, InvalidManagerAddress};

    #[test]
    fn manager_addresses_in_every_form() {
        assert_eq!(
            manager_host_port("/ip4/127.0.0.1/tcp/1789"),
            Ok("127.0.0.1:1789".into())
        );
        assert_eq!(
            manager_host_port("/ip4/10.0.0.1/tcp/1789/http"),
            Ok("10.0.0.1:1789".into())
        );
        assert_eq!(
            manager_host_port("/dns/manager/tcp/80"),
            Ok("manager:80".into())
        );
        assert_eq!(
            manager_host_port("/ip6/::1/tcp/1789"),
            Ok("[::1]:1789".into())
        );
        assert_eq!(
            manager_host_port("http://127.0.0.1:1789/rpc/v0"),
            Ok("127.0.0.1:1789".into())
        );
        assert_eq!(
            manager_host_port("127.0.0.1:1789"),
            Ok("127.0.0.1:1789".into())
        );
        for bad in [
            "/ip4/127.0.0.1/udp/1789",
            "/ip4/127.0.0.1",
            "http://host",
            "",
            "host:x",
        ] {
            assert_eq!(
                manager_host_port(bad),
                Err(InvalidManagerAddress(bad.to_owned())),
                "{bad}"
            );
        }
        let error = super::HttpSectorManager::new("host:x", None, Default::default())
            .expect_err("a bad address");
        assert!(
            error
                .to_string()
                .starts_with("invalid manager address \"host:x\": expected a multiaddr"),
            "{error}"
        );
    }
}
