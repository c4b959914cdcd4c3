//! The worker's TOML configuration: the keys of the original's `damocles-worker.toml` that
//! apply to what this worker does.
//!
//! Durations read like `30s` or `1m 30s`, sizes like `2KiB` or `8GiB`. A key this worker
//! does not know is not an error: [`WorkerConfig::load`] returns it as a warning naming
//! the key (the original's files carry keys this worker has no use for). A
//! value of the wrong kind is an error naming the key and the file.
//!
//! Relative locations are taken relative to the working directory, as the original does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use damocles_core::{ActorId, Plan, ProofStage, SectorSize};
use serde::Deserialize;

use crate::limits::StageLimits;
use crate::options::SealingOptions;

mod processors;
mod scan;
mod serde_forms;

use processors::check_processors;
pub use processors::{
    CgroupSection, ExternalProcessorSection, Interval, LimitationSection, ProcessorsSection,
};
pub(crate) use serde_forms::deserialize_toml;
use serde_forms::{from_str_list, from_str_opt, one_or_many};

/// A persistent store sealed files are copied to (`[[attached]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedStore {
    /// The instance name the manager knows it by.
    pub name: String,
    /// Its directory.
    pub location: PathBuf,
    /// Read-only stores are never written to.
    pub readonly: bool,
}

/// The admin API port the original listens on, and the CLI's default target.
pub const DEFAULT_ADMIN_PORT: u16 = 17890;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// `[worker]`.
    pub worker: WorkerSection,
    /// `[sector_manager]`.
    pub sector_manager: SectorManagerSection,
    /// `[sealing]`: options of every thread.
    pub sealing: SealingSection,
    /// `[[sealing_thread]]`.
    pub sealing_thread: Vec<SealingThreadSection>,
    /// `[[attached]]`: where sealed sectors are persisted.
    pub attached: Vec<AttachedSection>,
    /// `[processors]`.
    pub processors: ProcessorsSection,
    /// `[metrics]`.
    pub metrics: MetricsSection,
    /// `[remote_store]`: the original's deprecated single persistent store, read as one
    /// more `[[attached]]` store (with a warning).
    pub remote_store: Option<AttachedSection>,
    /// `[attached_selection]`: accepted for the original's files, without effect (the
    /// manager picks the store a sector is persisted to; a warning says so).
    pub attached_selection: Option<toml::Value>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MetricsSection {
    /// Serve `GET /metrics`.
    pub enable: bool,
    /// Where (loopback by default; the original listens on every interface).
    pub http_listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enable: false,
            http_listen: "127.0.0.1:9000".into(),
        }
    }
}

/// `[worker]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkerSection {
    /// The instance name the manager knows this worker by (default: the local address
    /// used to reach the manager).
    pub name: Option<String>,
    /// Where the admin API listens.
    pub rpc_server: RpcServerSection,
    /// How often the worker reports to the manager.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A directory of deal pieces by CID (legacy; `local_pieces_dirs` wins).
    pub local_pieces_dir: Option<PathBuf>,
    /// Directories of deal pieces by CID (`<dir>/<piece cid>`), searched in order before
    /// the manager's piece store is asked.
    pub local_pieces_dirs: Option<Vec<PathBuf>>,
    /// Directories that `file://` unseal destinations may write into (absolute paths;
    /// none by default, which refuses every `file://` destination). Not in the original,
    /// which writes wherever a manager says.
    pub unseal_file_dirs: Vec<PathBuf>,
    /// A PEM file of CA certificates trusted for `https://` besides the system's roots:
    /// the manager (`rpc_client.addr = "https://…"`), unseal destinations (`https://…`,
    /// `market://…?scheme=https`). For a cluster's own CA. Not in the original.
    pub tls_ca_file: Option<PathBuf>,
    /// WindowPoSt before sealing (default true): while a wdpost thread proves a job, no
    /// new PC2, C2 or snap prove starts in this worker and the external processors of C2
    /// and snap prove are stopped until it is done (an in-process C2 keeps its cores: see
    /// [`crate::priority`]). Set false where WindowPoSt has cores or a GPU of its own. Not
    /// in the original.
    pub wdpost_priority: bool,
    /// Glob patterns of persistent stores: each matching directory with a
    /// `sectorstore.json` is attached (the original's key; alias `ScanPersistStores`).
    #[serde(alias = "ScanPersistStores")]
    pub scan_persist_stores: Vec<String>,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self {
            name: None,
            rpc_server: RpcServerSection::default(),
            ping_interval: Duration::from_secs(30),
            local_pieces_dir: None,
            local_pieces_dirs: None,
            unseal_file_dirs: Vec::new(),
            tls_ca_file: None,
            wdpost_priority: true,
            scan_persist_stores: Vec::new(),
        }
    }
}

impl WorkerSection {
    /// The local piece directories: `local_pieces_dirs`, else `local_pieces_dir`, as the
    /// original reads them.
    pub fn piece_dirs(&self) -> Vec<PathBuf> {
        match (&self.local_pieces_dirs, &self.local_pieces_dir) {
            (Some(dirs), _) => dirs.clone(),
            (None, Some(dir)) => vec![dir.clone()],
            (None, None) => Vec::new(),
        }
    }
}

/// `[worker] rpc_server`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RpcServerSection {
    /// Listen host. Loopback by default (the original listens on every interface).
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// With this token, callers may use every method (additive; the original has no
    /// tokens).
    pub admin_token: Option<String>,
    /// With this token, callers may list threads and read the version.
    pub read_token: Option<String>,
}

impl std::fmt::Debug for RpcServerSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |t: &Option<String>| t.as_ref().map(|_| "<hidden>");
        f.debug_struct("RpcServerSection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("admin_token", &hidden(&self.admin_token))
            .field("read_token", &hidden(&self.read_token))
            .finish()
    }
}

impl Default for RpcServerSection {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: DEFAULT_ADMIN_PORT,
            admin_token: None,
            read_token: None,
        }
    }
}

/// `[sector_manager]`. Its `Debug` never shows the piece token.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct SectorManagerSection {
    /// `rpc_client`.
    pub rpc_client: RpcClientSection,
    /// The token sent to the manager's piece store (default: `rpc_client.token`).
    pub piece_token: Option<String>,
}

impl std::fmt::Debug for SectorManagerSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectorManagerSection")
            .field("rpc_client", &self.rpc_client)
            .field(
                "piece_token",
                &self.piece_token.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

/// `[sector_manager] rpc_client`. Its `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RpcClientSection {
    /// The manager: a multiaddr (`/ip4/127.0.0.1/tcp/1789`) or a URL; or a list of
    /// them (managers sharing one database), kept here joined with commas: calls go to
    /// the first that answers, and move on when it stops answering.
    #[serde(deserialize_with = "one_or_many")]
    pub addr: String,
    /// The manager's admin token, when it requires one (additive).
    pub token: Option<String>,
    /// Extra HTTP headers (the original's key, which it parses and never sends): accepted,
    /// not sent either (a warning says so).
    pub headers: BTreeMap<String, String>,
    /// The largest answer read from the manager, in bytes (additive; default 32 MiB, far
    /// above a WindowPoSt job over a whole deadline's sectors): a longer answer fails the
    /// call instead of growing the worker.
    pub max_answer_bytes: Option<usize>,
}

impl std::fmt::Debug for RpcClientSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClientSection")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for RpcClientSection {
    fn default() -> Self {
        Self {
            addr: "/ip4/127.0.0.1/tcp/1789".into(),
            token: None,
            max_answer_bytes: None,
            headers: BTreeMap::new(),
        }
    }
}

/// `[sealing]` or a thread's `sealing.*`: every key optional; a thread's keys override
/// the global ones, which override the defaults of [`SealingOptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SealingSection {
    /// Miners to seal for.
    pub allowed_miners: Option<Vec<ActorId>>,
    /// Sector sizes to seal, e.g. `["2KiB"]`.
    #[serde(deserialize_with = "from_str_list")]
    pub allowed_sizes: Option<Vec<SectorSize>>,
    /// Ask the manager for deals.
    pub enable_deals: Option<bool>,
    /// Take no sector without deals.
    pub disable_cc: Option<bool>,
    /// At most this many deals a sector.
    pub max_deals: Option<u64>,
    /// Only take deals filling at least this much, e.g. `8GiB`.
    #[serde(deserialize_with = "from_str_opt")]
    pub min_deal_space: Option<SectorSize>,
    /// Temporary failures of a sector before the thread pauses.
    pub max_retries: Option<u32>,
    /// Pause between sectors.
    #[serde(with = "humantime_serde")]
    pub seal_interval: Option<Duration>,
    /// Pause before retrying.
    #[serde(with = "humantime_serde")]
    pub recover_interval: Option<Duration>,
    /// Pause between polls of on-chain state.
    #[serde(with = "humantime_serde")]
    pub rpc_polling_interval: Option<Duration>,
    /// Skip waiting for the proof to land.
    pub ignore_proof_check: Option<bool>,
    /// Idle rounds before a round ends.
    pub request_task_max_retries: Option<u32>,
    /// Check PC2's output with a C1 run.
    pub verify_after_pc2: Option<bool>,
    /// Flag a thread as stuck after this long in one state (additive), e.g. `6h`.
    #[serde(with = "humantime_serde")]
    pub stuck_after: Option<Duration>,
    /// WindowPoSt: sectors checked at once (default 32).
    pub wdpost_check_parallel: Option<usize>,
    /// WindowPoSt: how long one sector's check may take before it is a fault, e.g. `10m`.
    #[serde(with = "humantime_serde")]
    pub wdpost_check_timeout: Option<Duration>,
    /// WindowPoSt: how long a job's checks may take in all, e.g. `20m`.
    #[serde(with = "humantime_serde")]
    pub wdpost_partition_check_timeout: Option<Duration>,
}

impl SealingSection {
    /// These keys over `base`.
    pub fn apply(&self, base: SealingOptions) -> SealingOptions {
        SealingOptions {
            allowed_miners: self.allowed_miners.clone().or(base.allowed_miners),
            allowed_sizes: self.allowed_sizes.clone().or(base.allowed_sizes),
            enable_deals: self.enable_deals.unwrap_or(base.enable_deals),
            disable_cc: self.disable_cc.unwrap_or(base.disable_cc),
            max_deals: self.max_deals.or(base.max_deals),
            min_deal_space: self
                .min_deal_space
                .map(SectorSize::bytes)
                .or(base.min_deal_space),
            max_retries: self.max_retries.unwrap_or(base.max_retries),
            seal_interval: self.seal_interval.unwrap_or(base.seal_interval),
            recover_interval: self.recover_interval.unwrap_or(base.recover_interval),
            rpc_polling_interval: self
                .rpc_polling_interval
                .unwrap_or(base.rpc_polling_interval),
            ignore_proof_check: self.ignore_proof_check.unwrap_or(base.ignore_proof_check),
            request_task_max_retries: self
                .request_task_max_retries
                .unwrap_or(base.request_task_max_retries),
            verify_after_pc2: self.verify_after_pc2.unwrap_or(base.verify_after_pc2),
            stuck_after: self.stuck_after.or(base.stuck_after),
            wdpost_checks: crate::options::CheckLimits {
                parallel: self
                    .wdpost_check_parallel
                    .unwrap_or(base.wdpost_checks.parallel),
                sector: self
                    .wdpost_check_timeout
                    .unwrap_or(base.wdpost_checks.sector),
                partition: self
                    .wdpost_partition_check_timeout
                    .unwrap_or(base.wdpost_checks.partition),
            },
        }
    }
}

/// `[[sealing_thread]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SealingThreadSection {
    /// The thread's location (see `store sealing-init`).
    pub location: PathBuf,
    /// Its plan (default `sealer`).
    #[serde(default)]
    pub plan: Plan,
    /// Its overrides of `[sealing]`.
    #[serde(default)]
    pub sealing: SealingSection,
}

/// `[[attached]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AttachedSection {
    /// The name the manager knows the store by (default: its location).
    pub name: Option<String>,
    /// Its directory.
    pub location: PathBuf,
    /// Never written to.
    #[serde(default)]
    pub readonly: bool,
}

impl AttachedSection {
    /// As the runtime uses it.
    pub fn store(&self) -> AttachedStore {
        AttachedStore {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| self.location.display().to_string()),
            location: self.location.clone(),
            readonly: self.readonly,
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A value is not what its key needs (or the file is not TOML).
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The key, dotted (`sealing.max_retries`, `sealing_thread[1].location`).
        key: String,
        /// What is wrong, with the line where the parser knows it.
        message: String,
    },
}

/// A loaded configuration and the keys it ignored.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: WorkerConfig,
    /// One line per unknown key, naming it.
    pub warnings: Vec<String>,
}

impl WorkerConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks configuration text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<LoadedConfig, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            key,
            message,
        };
        let (config, unknown): (WorkerConfig, _) = deserialize_toml(text, origin)?;
        let mut warnings: Vec<String> = unknown
            .into_iter()
            .map(|key| format!("config {origin}: unknown key {key} is ignored"))
            .collect();
        // Accepted for the original's configs, but this worker has no use for it: a thread
        // asks for its next job until it gets one, re-reading nothing in between.
        let retries_set = std::iter::once(("sealing".to_owned(), &config.sealing)).chain(
            config
                .sealing_thread
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("sealing_thread[{i}].sealing"), &t.sealing)),
        );
        for (section, sealing) in retries_set {
            if sealing.request_task_max_retries.is_some() {
                warnings.push(format!(
                    "config {origin}: {section}.request_task_max_retries has no effect in this worker and is ignored"
                ));
            }
        }
        for (key, limits) in [
            (
                "processors.limitation.concurrent",
                &config.processors.limitation.concurrent,
            ),
            ("processors.limit", &config.processors.limit),
        ] {
            // An unknown stage name fails to parse, listing the valid ones.
            for (stage, n) in limits {
                if *n == 0 {
                    return Err(invalid(
                        format!("{key}.{stage}"),
                        "0 would stop the stage for good; use at least 1".into(),
                    ));
                }
            }
        }
        check_processors(&config.processors, &mut warnings, origin)?;
        for (present, key, why) in [
            (
                config.remote_store.is_some(),
                "[remote_store]",
                "is deprecated: it is read as one more [[attached]] store; write it as [[attached]]",
            ),
            (
                config.attached_selection.is_some(),
                "[attached_selection]",
                "has no effect: the manager picks the store each sector is persisted to (the original moved that choice to the manager in v0.4.0)",
            ),
            (
                !config.sector_manager.rpc_client.headers.is_empty(),
                "sector_manager.rpc_client.headers",
                "are not sent (the original parses them and does not send them either); use rpc_client.token for the manager's token",
            ),
        ] {
            if present {
                warnings.push(format!("config {origin}: {key} {why}"));
            }
        }
        if config.sealing_thread.is_empty() {
            return Err(invalid(
                "sealing_thread".into(),
                "no [[sealing_thread]]: the worker needs at least one".into(),
            ));
        }
        Ok(LoadedConfig { config, warnings })
    }

    /// The options of thread `index`: its `sealing.*` over `[sealing]` over the defaults.
    pub fn thread_options(&self, index: usize) -> SealingOptions {
        let global = self.sealing.apply(SealingOptions::default());
        match self.sealing_thread.get(index) {
            Some(thread) => thread.sealing.apply(global),
            None => global,
        }
    }

    /// The stage limits (`limitation.concurrent` wins over the legacy `limit`) and the
    /// staggered starts (`limitation.staggered`).
    pub fn stage_limits(&self) -> StageLimits {
        let mut merged = self.processors.limit.clone();
        merged.extend(self.processors.limitation.concurrent.clone());
        let staggered = &self.processors.limitation.staggered;
        StageLimits::new(merged).with_staggered(staggered.iter().map(|(s, i)| (*s, i.0)))
    }

    /// The attached stores: `[[attached]]`, `[remote_store]`, then those
    /// `worker.scan_persist_stores` finds on disk now; with one line for each scanned
    /// match that could not be used.
    pub fn attached_stores_found(&self) -> (Vec<AttachedStore>, Vec<String>) {
        let mut stores: Vec<AttachedStore> = self
            .attached
            .iter()
            .chain(&self.remote_store)
            .map(AttachedSection::store)
            .collect();
        let (scanned, problems) = scan::scan_persist_stores(&self.worker.scan_persist_stores);
        stores.extend(scanned);
        (stores, problems)
    }

    /// The attached stores ([`WorkerConfig::attached_stores_found`]); a scanned store
    /// that cannot be used is logged and left out.
    pub fn attached_stores(&self) -> Vec<AttachedStore> {
        let (stores, problems) = self.attached_stores_found();
        for problem in problems {
            tracing::warn!("{problem}");
        }
        stores
    }

    /// Where the admin API listens.
    pub fn admin_addr(&self) -> String {
        format!(
            "{}:{}",
            self.worker.rpc_server.host, self.worker.rpc_server.port
        )
    }

    /// Where a command line on this machine reaches the admin API: the configured host
    /// (loopback when it listens everywhere) and port.
    pub fn admin_target(&self) -> String {
        let host = match self.worker.rpc_server.host.as_str() {
            "" | "0.0.0.0" | "::" => "127.0.0.1",
            host => host,
        };
        format!("{host}:{}", self.worker.rpc_server.port)
    }
}
