//! `damocles-manager mock`: the mock chain and the worker registry at /rpc/v0, and
//! optionally a worker in the same process (the one-command quickstart).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use damocles_core::listing::{ChainJobRow, SectorRow, WdPostJobRow};
use damocles_core::sealer_api::{Cid, ExtendedSectorInfo};
use damocles_core::{ActorId, PoStProof, SealProof, SectorId, SectorNumber, SectorSize};
use damocles_rpc::manager::{ChainView, JobRequestError};
use damocles_rpc::metrics::{ManagerMetrics, MetricsServer, Renderer, SCRAPE_WAIT};
use damocles_rpc::pg::{DbError, DbErrorKind};
use damocles_rpc::sealer::MANAGER_PATH;
use damocles_rpc::{
    ManagerService, PgRegistry, Registry, RpcServer, ServerOptions, WorkerRegistry,
};
use damocles_sealing::config::WorkerConfig;
use damocles_sealing::mock_chain::{ChainJob, ChainSector, MockChain, WdPostJob};
use damocles_sealing::options::CheckLimits;
use damocles_sealing::params::{self, Generated};
use damocles_sealing::store::Location;

use super::dashboard::Dashboard;
use super::shared_chain::SharedChain;
use crate::exit::{self, CliError, ErrorKind};
use crate::render;
use crate::worker_cli::daemon::{self, ManagerChoice};

/// What `mock` was asked for.
pub struct MockOptions {
    pub miner: u64,
    pub sector_size: SectorSize,
    pub listen: String,
    pub home: Option<PathBuf>,
    pub with_worker: Option<PathBuf>,
    pub expiration: Duration,
    pub max_sectors: Option<u64>,
    pub report_delay: Duration,
    pub admin_token: Option<String>,
    pub read_token: Option<String>,
    pub metrics_listen: Option<String>,
    /// Serve the dashboard at `/dashboard/`.
    pub dashboard: bool,
    /// Names besides addresses and localhost by which browsers may reach the manager.
    pub dashboard_hosts: Vec<String>,
    /// The workers' admin token, sent by the dashboard's relays.
    pub worker_token: Option<String>,
    pub deals: Option<f64>,
    /// Stores the worker persists to (name, path), which the rebuild check reads.
    pub persist_stores: Vec<(String, PathBuf)>,
    /// A WindowPoSt round this often.
    pub wdpost_interval: Duration,
    /// Each WindowPoSt job's deadline this long after its round starts.
    pub wdpost_window: Duration,
    /// Sectors per WindowPoSt job.
    pub wdpost_job_sectors: usize,
    /// How long `util sealer proving check` gives one sector (all of them: twice that).
    pub proving_check_timeout: Duration,
    /// A PostgreSQL URL: the worker registry there, shared with every manager using it.
    pub db: Option<String>,
}

/// The mock chain's records, as the rows of its listings, and the limits of its proving
/// checks.
struct MockChainView(MockChain, CheckLimits);

#[async_trait::async_trait]
impl ChainView for MockChainView {
    fn sectors(&self) -> Vec<SectorRow> {
        self.0.sectors().iter().map(ChainSector::row).collect()
    }

    fn jobs(&self) -> Vec<ChainJobRow> {
        self.0.jobs().iter().map(ChainJob::row).collect()
    }

    fn records_unreadable(&self) -> Option<String> {
        self.0.records_unreadable()
    }

    fn wdpost_jobs(&self) -> Vec<WdPostJobRow> {
        self.0.wdpost_jobs().iter().map(WdPostJob::row).collect()
    }

    fn reset_wdpost_job(&self, id: &str) -> Result<(), JobRequestError> {
        self.0.reset_wdpost_job(id).map(drop).map_err(Into::into)
    }

    fn remove_wdpost_job(&self, id: &str) -> Result<bool, JobRequestError> {
        Ok(self.0.remove_wdpost_job(id)?)
    }

    async fn check_provable(
        &self,
        miner: ActorId,
        proof: PoStProof,
        sectors: Vec<ExtendedSectorInfo>,
        strict: bool,
    ) -> Result<BTreeMap<SectorNumber, String>, JobRequestError> {
        let (chain, limits) = (self.0.clone(), self.1);
        let checked = tokio::task::spawn_blocking(move || {
            chain.check_provable(miner, proof, &sectors, strict, &limits)
        })
        .await?;
        Ok(checked?)
    }

    fn request_rebuild(&self, id: SectorId) -> Result<ChainJobRow, JobRequestError> {
        Ok(self.0.request_rebuild(id)?.row())
    }

    fn request_unseal(
        &self,
        id: SectorId,
        piece: Cid,
        dest: Vec<String>,
    ) -> Result<ChainJobRow, JobRequestError> {
        Ok(self.0.request_unseal(id, piece, dest)?.row())
    }
}

/// A database error as the CLI reports it: a bad URL is bad input, an unreachable or
/// refusing server is unreachable.
fn db_failure(e: DbError) -> CliError {
    let kind = match e.kind {
        DbErrorKind::BadUrl => ErrorKind::BadInput,
        DbErrorKind::Unreachable | DbErrorKind::Refused => ErrorKind::Unreachable,
        _ => ErrorKind::Failed,
    };
    CliError::new(kind, e.to_string())
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".damocles-manager")
}

/// Runs the mock manager until a signal; returns the exit code.
pub async fn run(options: MockOptions) -> u8 {
    serve(options)
        .await
        .unwrap_or_else(|e| render::failure(false, &e))
}

async fn serve(options: MockOptions) -> Result<u8, CliError> {
    let proof =
        params::proof_for(options.sector_size).map_err(|e| CliError::bad_input(e.to_string()))?;
    let home = options.home.clone().unwrap_or_else(default_home);
    let registry: Arc<dyn Registry> = match &options.db {
        Some(url) => Arc::new(PgRegistry::connect(url).await.map_err(db_failure)?),
        None => Arc::new(WorkerRegistry::open(&home).map_err(|e| CliError::failed(e.to_string()))?),
    };
    let chain = open_chain(&options, &home, proof).await?;
    let metrics = Arc::new(ManagerMetrics::default());
    let server = serve_api(&options, &chain, registry.clone(), metrics.clone()).await?;
    let addr = server.local_addr();
    announce(&options, proof, &home, addr);
    let metrics_server = match &options.metrics_listen {
        None => None,
        Some(listen) => {
            match serve_metrics(listen, metrics, registry, &chain, options.expiration).await {
                Ok(m) => Some(m),
                Err(e) => {
                    server.shutdown().await;
                    return Err(e);
                }
            }
        }
    };
    let worker = match &options.with_worker {
        None => None,
        Some(config) => match start_worker(config, options.sector_size, &addr.to_string()).await {
            Ok(worker) => worker,
            Err(e) => {
                server.shutdown().await;
                return Err(e);
            }
        },
    };
    let code = match worker {
        Some(running) => daemon::run_until_stopped(running).await,
        None => {
            daemon::wait_for_signal().await;
            exit::OK
        }
    };
    if let Some(m) = metrics_server {
        m.shutdown();
    }
    server.shutdown().await;
    eprintln!("manager stopped");
    Ok(code)
}

/// The manager's API at `--listen`: the sealer API over `chain`, the registry, the
/// listings, its piece store, every call timed into `metrics`.
async fn serve_api(
    options: &MockOptions,
    chain: &MockChain,
    registry: Arc<dyn Registry>,
    metrics: Arc<ManagerMetrics>,
) -> Result<RpcServer, CliError> {
    let view: Arc<dyn ChainView> = Arc::new(MockChainView(
        chain.clone(),
        CheckLimits {
            sector: options.proving_check_timeout,
            partition: options.proving_check_timeout * 2,
            ..CheckLimits::default()
        },
    ));
    let pages = options.dashboard.then(|| {
        let dashboard: Arc<dyn damocles_rpc::pages::Pages> = Arc::new(Dashboard::new(
            registry.clone(),
            Some(view.clone()),
            options.worker_token.clone(),
            options.expiration,
        ));
        dashboard
    });
    let service = ManagerService::new(
        Arc::new(chain.clone()),
        registry,
        options.expiration,
        format!("v{}-damocles-rs-mock", env!("CARGO_PKG_VERSION")),
        Some(view),
    )
    .with_worker_token(options.worker_token.clone());
    let server_options = ServerOptions {
        path: Some(MANAGER_PATH.to_owned()),
        exposure: damocles_rpc::manager::MANAGER_EXPOSURE,
        admin_token: options.admin_token.clone(),
        read_token: options.read_token.clone(),
        observer: Some(Arc::new(move |method: &str, took| {
            metrics.record_call(method, took)
        })),
        piece_dir: chain.piece_dir(),
        piece_fallback: options.db.as_ref().map(|_| {
            let pieces: Arc<dyn damocles_core::PieceStore> = Arc::new(chain.clone());
            pieces
        }),
        piece_check: Some(Arc::new(chain.clone())),
        dialect: damocles_rpc::dialect::Dialect::GoJsonRpc,
        pages,
        allowed_hosts: options.dashboard_hosts.clone(),
        ..ServerOptions::default()
    };
    RpcServer::bind(&options.listen, Arc::new(service), server_options)
        .await
        .map_err(|e| {
            CliError::failed(format!(
                "cannot listen on {}: {e} (is another manager running? use --listen)",
                options.listen
            ))
        })
}

/// The mock chain of `options`: its records in the database (`--db`) or in `home`,
/// with the sector limit, deals, reports, WindowPoSt schedule and stores it was given.
async fn open_chain(
    options: &MockOptions,
    home: &std::path::Path,
    proof: SealProof,
) -> Result<MockChain, CliError> {
    let chain = match &options.db {
        Some(url) => {
            for kept in ["mock-chain.json", "worker.redb"] {
                let file = home.join(kept);
                if file.exists() {
                    tracing::warn!(
                        "{} holds records of this home kept without --db; with --db they are \
                         not read (the database's are), and nothing copies them there",
                        file.display()
                    );
                }
            }
            let shared = SharedChain::connect(url, options.miner)
                .await
                .map_err(db_failure)?;
            MockChain::shared(Arc::new(shared), options.miner, proof)
                .map_err(|e| CliError::bad_input(e.to_string()))?
        }
        None => {
            let chain_file = home.join("mock-chain.json");
            MockChain::open(&chain_file, options.miner, proof).map_err(|e| {
                CliError::failed(format!("mock chain records {}: {e}", chain_file.display()))
            })?
        }
    };
    if let Some(limit) = options.max_sectors {
        chain.limit_sectors(limit);
    }
    // Snap-up jobs always come with deals, whatever share of new sectors gets them.
    let pieces = home.join("pieces");
    chain
        .offer_deals(options.deals.unwrap_or(0.0), &pieces)
        .map_err(|e| CliError::failed(format!("piece directory {}: {e}", pieces.display())))?;
    chain.delay_reports(options.report_delay);
    chain.schedule_wdpost(
        Some(options.wdpost_interval),
        options.wdpost_job_sectors,
        damocles_sealing::mock_chain::WDPOST_HEARTBEAT_TIMEOUT,
    );
    chain.wdpost_challenge_window(options.wdpost_window);
    for (name, path) in &options.persist_stores {
        chain.attach_store(name, path);
    }
    if let Some(config) = &options.with_worker {
        // The worker of this process persists into its attached stores.
        if let Ok(loaded) = WorkerConfig::load(config) {
            for store in loaded.config.attached_stores() {
                chain.attach_store(&store.name, &store.location);
            }
        }
    }
    Ok(chain)
}

/// Says on stderr what the mock manager serves, and where.
fn announce(
    options: &MockOptions,
    proof: SealProof,
    home: &std::path::Path,
    addr: std::net::SocketAddr,
) {
    let deals = match options.deals {
        Some(share) if share > 0.0 => format!("deals for {:.0}% of the sectors", share * 100.0),
        _ => "CC sectors".to_owned(),
    };
    eprintln!(
        "damocles-manager mock: miner {}, {} sectors ({proof}), {deals}, snap-up jobs with deals, rebuild and unseal jobs on request, a WindowPoSt round every {} ({} sectors a job); {}; listening on http://{addr}{MANAGER_PATH}",
        options.miner,
        options.sector_size,
        humantime::format_duration(options.wdpost_interval),
        options.wdpost_job_sectors,
        match &options.db {
            Some(url) => format!(
                "registry, chain records and deal pieces in {} (pieces cached in {})",
                damocles_rpc::pg::without_password(url),
                home.display()
            ),
            None => format!("registry and chain records in {}", home.display()),
        }
    );
    if options.dashboard {
        eprintln!("dashboard at http://{addr}/dashboard/");
    }
}

/// Serves the manager's metrics on `listen` (`GET /metrics`): the registry's and the chain
/// records' (WindowPoSt jobs, whether the database can be read).
async fn serve_metrics(
    listen: &str,
    metrics: Arc<ManagerMetrics>,
    registry: Arc<dyn Registry>,
    chain: &MockChain,
    expiration: Duration,
) -> Result<MetricsServer, CliError> {
    let view: Arc<dyn ChainView> = Arc::new(MockChainView(chain.clone(), CheckLimits::default()));
    let render: Renderer = Arc::new(move || {
        let (metrics, registry, view) = (metrics.clone(), registry.clone(), view.clone());
        Box::pin(async move {
            metrics
                .scrape(registry.as_ref(), view, expiration, SCRAPE_WAIT)
                .await
        })
    });
    let server = MetricsServer::bind(listen, render)
        .await
        .map_err(|e| CliError::failed(format!("cannot serve metrics on {listen}: {e}")))?;
    eprintln!("metrics on http://{}/metrics", server.local_addr());
    Ok(server)
}

/// Generates `circuits` (each under its lock), saying every 30 s which one it is on.
fn generate_quietly(circuits: &[params::Circuit]) -> Result<Generated, params::ParamsError> {
    params::ensure_circuits(circuits, Duration::from_secs(30), |circuit, elapsed| {
        eprintln!(
            "  still generating the {circuit} parameters: {} elapsed",
            humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
        );
    })
}

/// Prepares and starts the worker of `config`, sealing for this manager. `Ok(None)`: a
/// signal came while the parameters were being generated.
async fn start_worker(
    config_path: &std::path::Path,
    size: SectorSize,
    manager: &str,
) -> Result<Option<daemon::Daemon>, CliError> {
    let config = WorkerConfig::load(config_path)
        .map_err(|e| CliError::bad_input(e.to_string()))?
        .config;
    for thread in &config.sealing_thread {
        Location::init(&thread.location).map_err(|e| CliError::failed(e.to_string()))?;
    }
    // Sealing starts once the PoRep circuit is there; the update and WindowPoSt circuits
    // are generated beside it (the threads that need them wait, saying why).
    let circuits = params::Circuit::all_for(size).map_err(|e| CliError::failed(e.to_string()))?;
    let (porep, later) = circuits.split_at(1);
    if !porep[0].present() {
        eprintln!(
            "generating the {size} PoRep parameters into {} (once per machine; about 14 minutes on 2 cores); the other circuits follow while the worker seals",
            params::cache_dir().display()
        );
        let porep = porep.to_vec();
        let generate = tokio::task::spawn_blocking(move || generate_quietly(&porep));
        tokio::select! {
            result = generate => match result {
                Ok(Ok(Generated::Generated(took))) => {
                    eprintln!("PoRep parameters generated in {:.0} s", took.as_secs_f64());
                }
                Ok(Ok(Generated::AlreadyPresent)) => {}
                Ok(Err(e)) => return Err(CliError::failed(e.to_string())),
                Err(e) => {
                    return Err(CliError::failed(format!("parameter generation failed: {e}")))
                }
            },
            () = daemon::wait_for_signal() => return Ok(None),
        }
    }
    if later.iter().any(|c| !c.present()) {
        let later = later.to_vec();
        tokio::task::spawn_blocking(move || match generate_quietly(&later) {
            Ok(Generated::Generated(took)) => eprintln!(
                "the update and WindowPoSt parameters generated in {:.0} s",
                took.as_secs_f64()
            ),
            Ok(Generated::AlreadyPresent) => {}
            Err(e) => eprintln!("error: generating parameters: {e}"),
        });
    }
    daemon::start(config_path, ManagerChoice::At(manager.to_owned()))
        .await
        .map(Some)
}
