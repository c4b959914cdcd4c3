//! `damocles-worker daemon`: the sealing threads of a configuration, their admin API and
//! their reports to the manager, until a signal stops them: the manager's clients and
//! the servers around a [`WorkerBuilder`]. [`start`] is also what
//! `damocles-manager mock --with-worker` runs in its own process.

use std::path::Path;
use std::sync::Arc;

use damocles_core::{PieceStore, Reporter, SectorManager, SectorSize};
use damocles_rpc::metrics::{renderer, MetricsServer, Renderer};
use damocles_rpc::sealer::{manager_host_port, SEALER_TIMEOUTS};
use damocles_rpc::tls::TlsTrust;
use damocles_rpc::{
    AdminService, HttpPieceStore, HttpSectorManager, ManagerClient, RpcServer, ServerOptions,
    Timeouts,
};
use damocles_sealing::config::WorkerConfig;
use damocles_sealing::mock_chain::MockChain;
use damocles_sealing::{params, BuildError, RunningWorker, Worker, WorkerBuilder};

use crate::exit::{self, CliError};
use crate::worker_ops::STOPPED_ON_REQUEST;

/// The version the worker reports, in the original's `v<semver>-<build>` form.
pub fn version() -> String {
    format!("v{}-damocles-rs", env!("CARGO_PKG_VERSION"))
}

/// Whom the worker seals for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerChoice {
    /// The manager of the config's `[sector_manager] rpc_client.addr`.
    FromConfig,
    /// The manager at this address instead.
    At(String),
    /// An in-process mock chain of this miner (no manager, no reports).
    MockChain(u64),
}

/// A started daemon: the worker, its admin API and its metrics server.
pub struct Daemon {
    running: RunningWorker,
    server: RpcServer,
    metrics: Option<MetricsServer>,
}

impl Daemon {
    /// Where its admin API listens.
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// The worker.
    pub fn worker(&self) -> &Arc<Worker> {
        self.running.worker()
    }

    /// Stops serving, then stops the threads (after their proof calls).
    /// Stops the threads, then the admin API and the metrics: while proof calls return,
    /// `worker list` still answers (and names an external call's pid).
    pub async fn stop(self) {
        self.running.shutdown().await;
        if let Some(metrics) = self.metrics {
            metrics.shutdown();
        }
        self.server.shutdown().await;
    }
}

/// The manager's sides: whom the threads seal for, whom the worker reports to, where deal
/// pieces come from.
struct Sides {
    manager: Arc<dyn SectorManager>,
    reporter: Option<Arc<dyn Reporter>>,
    pieces: Arc<dyn PieceStore>,
}

/// Loads the configuration and starts the threads (through [`WorkerBuilder`]), the admin
/// API, the metrics server and the reports.
pub async fn start(config_path: &Path, choice: ManagerChoice) -> Result<Daemon, CliError> {
    let loaded = WorkerConfig::load(config_path).map_err(|e| CliError::bad_input(e.to_string()))?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config;
    let manager_addr = match &choice {
        ManagerChoice::At(addr) => addr.clone(),
        _ => config.sector_manager.rpc_client.addr.clone(),
    };
    let sides = match choice {
        ManagerChoice::MockChain(miner) => mock_chain_sides(config_path, &config, miner)?,
        ManagerChoice::FromConfig | ManagerChoice::At(_) => remote_sides(&manager_addr, &config)?,
    };
    let local_ip = manager_host_port(manager_addr.split(',').next().unwrap_or_default().trim())
        .ok()
        .as_deref()
        .and_then(damocles_rpc::net::local_ip_toward)
        .map(|ip| ip.to_string());
    let mut builder = WorkerBuilder::from_config(config.clone())
        .version(version())
        .manager(sides.manager)
        .piece_store(sides.pieces);
    if let (None, Some(ip)) = (&config.worker.name, &local_ip) {
        builder = builder.name(ip);
    }
    let mut running = builder.start().await.map_err(|e| match e {
        BuildError::UnknownStore { .. } => {
            CliError::failed(format!("the manager at {manager_addr}: {e}"))
        }
        e => CliError::bad_input(format!("config {}: {e}", config_path.display())),
    })?;
    let worker = running.worker().clone();
    let rpc = &config.worker.rpc_server;
    let server = match serve_admin(&config, &worker).await {
        Ok(server) => server,
        Err(e) => {
            running.shutdown().await;
            return Err(e);
        }
    };
    let bound = server.local_addr();
    let metrics = match serve_metrics(&config, &worker).await {
        Ok(metrics) => metrics,
        Err(e) => {
            server.shutdown().await;
            running.shutdown().await;
            return Err(e);
        }
    };
    let dest_host = match rpc.host.as_str() {
        "" | "0.0.0.0" | "::" => local_ip.unwrap_or_else(|| "127.0.0.1".to_owned()),
        host => host.to_owned(),
    };
    if let Some(reporter) = sides.reporter {
        running.report_to(reporter, format!("{dest_host}:{}", bound.port()));
    }
    eprintln!(
        "damocles-worker {} '{}': {} sealing thread(s); admin API listening on {bound}",
        version(),
        running.name(),
        worker.threads().len(),
    );
    Ok(Daemon {
        running,
        server,
        metrics,
    })
}

/// The admin API at `[worker] rpc_server`, its calls timed into the worker's metrics.
async fn serve_admin(config: &WorkerConfig, worker: &Arc<Worker>) -> Result<RpcServer, CliError> {
    let rpc = &config.worker.rpc_server;
    let recorder = worker.clone();
    let options = ServerOptions {
        admin_token: rpc.admin_token.clone(),
        read_token: rpc.read_token.clone(),
        observer: Some(Arc::new(move |method: &str, took| {
            recorder.metrics().record_admin_call(method, took);
        })),
        ..ServerOptions::default()
    };
    let admin = Arc::new(AdminService::new(worker.clone()));
    RpcServer::bind(&config.admin_addr(), admin, options)
        .await
        .map_err(|e| {
            CliError::failed(format!(
                "cannot listen on {}: {e} (is another worker running? set [worker] rpc_server.port)",
                config.admin_addr()
            ))
        })
}

/// The worker's metrics at `[metrics] http_listen`, when enabled.
async fn serve_metrics(
    config: &WorkerConfig,
    worker: &Arc<Worker>,
) -> Result<Option<MetricsServer>, CliError> {
    if !config.metrics.enable {
        return Ok(None);
    }
    let scraped = worker.clone();
    let render: Renderer = renderer(move || scraped.render_metrics());
    let metrics = MetricsServer::bind(&config.metrics.http_listen, render)
        .await
        .map_err(|e| {
            CliError::failed(format!(
                "cannot serve metrics on {}: {e} (set [metrics] http_listen)",
                config.metrics.http_listen
            ))
        })?;
    eprintln!("metrics on http://{}/metrics", metrics.local_addr());
    Ok(Some(metrics))
}

/// An in-process mock chain: no manager, no reports.
fn mock_chain_sides(
    config_path: &Path,
    config: &WorkerConfig,
    miner: u64,
) -> Result<Sides, CliError> {
    let size = config
        .sealing
        .allowed_sizes
        .as_ref()
        .and_then(|sizes| sizes.first().copied())
        .unwrap_or(SectorSize::KIB_2);
    let proof = params::proof_for(size).map_err(|e| CliError::bad_input(e.to_string()))?;
    // Kept beside the config, so that a restart does not hand out sector numbers that
    // threads still hold (a second s-t0…-1 would overwrite the first's files in the
    // attached store).
    let records = config_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("mock-chain-t0{miner}.json"));
    let chain = MockChain::open(&records, miner, proof)
        .map_err(|e| CliError::failed(format!("mock chain records {}: {e}", records.display())))?;
    tracing::info!(
        "sealing {size} sectors for an in-process mock chain, miner {miner}, records in {}",
        records.display()
    );
    Ok(Sides {
        manager: Arc::new(chain.clone()),
        reporter: None,
        pieces: Arc::new(chain),
    })
}

/// The manager at `addr` over HTTP, with the config's tokens.
fn remote_sides(addr: &str, config: &WorkerConfig) -> Result<Sides, CliError> {
    let bad_addr = |e: damocles_rpc::sealer::InvalidManagerAddress| {
        CliError::bad_input(format!("[sector_manager] rpc_client.addr: {e}"))
    };
    let token = config.sector_manager.rpc_client.token.clone();
    let piece_token = config
        .sector_manager
        .piece_token
        .clone()
        .or_else(|| token.clone());
    let trust = TlsTrust {
        extra_ca_file: config.worker.tls_ca_file.clone(),
    };
    let bad_ca =
        |e: damocles_rpc::tls::TlsError| CliError::bad_input(format!("[worker] tls_ca_file: {e}"));
    Ok(Sides {
        manager: Arc::new({
            let manager = HttpSectorManager::new(addr, token.clone(), SEALER_TIMEOUTS)
                .map_err(bad_addr)?
                .with_tls(&trust)
                .map_err(bad_ca)?;
            match config.sector_manager.rpc_client.max_answer_bytes {
                Some(bytes) => manager.with_max_answer(bytes),
                None => manager,
            }
        }),
        reporter: Some(Arc::new(
            ManagerClient::new(addr, token, Timeouts::default())
                .map_err(bad_addr)?
                .with_tls(&trust)
                .map_err(bad_ca)?,
        )),
        pieces: Arc::new(
            HttpPieceStore::new(addr, piece_token, Timeouts::default())
                .map_err(bad_addr)?
                .with_tls(&trust)
                .map_err(bad_ca)?,
        ),
    })
}

/// Runs the daemon until a signal; returns the exit code.
pub async fn run(config_path: &Path, choice: ManagerChoice) -> u8 {
    let running = match start(config_path, choice).await {
        Ok(running) => running,
        Err(e) => return crate::render::failure(false, &e),
    };
    run_until_stopped(running).await
}

/// Runs a started daemon until a signal or a stop asked over its admin API; returns the
/// exit code ([`exit::OK`] after a signal, [`STOPPED_ON_REQUEST`] after a stop).
pub async fn run_until_stopped(running: Daemon) -> u8 {
    let worker = running.worker().clone();
    tokio::select! {
        () = wait_for_signal() => stop_on_signal(running).await,
        mode = worker.stop_asked() => stop_on_request(running, mode).await,
    }
}

/// Stops a worker that was asked to stop over its admin API (`worker stop`): once every
/// thread is at rest for a graceful stop, at once for `--now`; exits with
/// [`STOPPED_ON_REQUEST`] so that a service manager starts it again.
async fn stop_on_request(running: Daemon, mode: damocles_core::StopMode) -> u8 {
    if mode == damocles_core::StopMode::Now {
        eprintln!("stopping now on request; the steps in flight re-run at the next start");
        // At once, as a second signal: the blocking proof calls in flight would hold the
        // runtime's end. A moment first, for the answer to the stop to leave.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        std::process::exit(i32::from(STOPPED_ON_REQUEST));
    }
    eprintln!("stopping on request: every thread is at rest");
    running.stop().await;
    eprintln!("stopped; every thread's record is saved (exit {STOPPED_ON_REQUEST}: restart me)");
    STOPPED_ON_REQUEST
}

/// Stops a worker after a first signal, exiting the process at once on a second one (exit
/// code [`exit::INTERRUPTED`]).
pub async fn stop_on_signal(running: Daemon) -> u8 {
    match running.worker().proof_calls_in_flight() {
        0 => eprintln!("stopping"),
        in_flight => eprintln!(
            "stopping: waiting for {in_flight} proof call(s) to return (signal again to exit now; interrupted steps re-run at the next start)"
        ),
    }
    // Whoever waits on a hung external call knows which child to kill.
    for (index, thread) in running.worker().list().iter().enumerate() {
        if let damocles_core::ThreadState::Running {
            proc: Some(proc), ..
        } = &thread.thread_state
        {
            eprintln!("  thread {index} waits for {proc}");
        }
    }
    tokio::select! {
        () = running.stop() => {
            eprintln!("stopped; every thread's record is saved");
        }
        () = wait_for_signal() => {
            eprintln!("exiting now; the steps in flight re-run at the next start");
            // At once: returning would drop the runtime, which waits for the blocking
            // proof calls in flight (a C2: a minute or more).
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    }
    exit::OK
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
