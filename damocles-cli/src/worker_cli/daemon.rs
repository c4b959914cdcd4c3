//! `damocles-worker daemon`: the sealing threads of a configuration, their admin API and
//! their reports to the manager, until a signal stops them. [`start`] is also what
//! `damocles-manager mock --with-worker` runs in its own process.

use std::path::Path;
use std::sync::Arc;

use damocles_core::{PieceStore, Reporter, SectorManager, SectorSize};
use damocles_rpc::metrics::{MetricsServer, Renderer};
use damocles_rpc::sealer::{manager_host_port, SEALER_TIMEOUTS};
use damocles_rpc::{
    AdminService, HttpPieceStore, HttpSectorManager, ManagerClient, RpcServer, ServerOptions,
    Timeouts,
};
use damocles_sealing::config::WorkerConfig;
use damocles_sealing::mock_chain::MockChain;
use damocles_sealing::reporting::{spawn_reporting, ReportIdentity};
use damocles_sealing::{assemble, params, Worker};
use tokio::task::JoinHandle;

use crate::exit;

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

/// A failure to start, with the exit code it deserves.
#[derive(Debug)]
pub struct StartError {
    /// The exit code.
    pub code: u8,
    /// What went wrong.
    pub message: String,
}

fn bad_input(message: impl Into<String>) -> StartError {
    StartError {
        code: exit::BAD_INPUT,
        message: message.into(),
    }
}

/// A started worker.
pub struct RunningWorker {
    worker: Arc<Worker>,
    server: RpcServer,
    metrics: Option<MetricsServer>,
    reporting: Option<JoinHandle<()>>,
    /// The start-up check of the attached stores, retried until the manager answers.
    checking: Option<JoinHandle<()>>,
    /// The locations stay this process's until it has stopped.
    _locks: Vec<damocles_sealing::store::LocationLock>,
}

impl RunningWorker {
    /// Where its admin API listens.
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// The worker.
    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    /// Stops reporting and serving, then stops the threads (after their proof calls).
    pub async fn stop(self) {
        for task in [&self.reporting, &self.checking].into_iter().flatten() {
            task.abort();
        }
        if let Some(metrics) = self.metrics {
            metrics.shutdown();
        }
        self.server.shutdown().await;
        self.worker.shutdown().await;
    }
}

/// Loads the configuration and starts the threads, the admin API and the reports.
pub async fn start(config_path: &Path, choice: ManagerChoice) -> Result<RunningWorker, StartError> {
    let loaded = WorkerConfig::load(config_path).map_err(|e| bad_input(e.to_string()))?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config;
    let manager_addr = match &choice {
        ManagerChoice::At(addr) => addr.clone(),
        _ => config.sector_manager.rpc_client.addr.clone(),
    };
    let mut checking = None;
    type Sides = (
        Arc<dyn SectorManager>,
        Option<Arc<dyn Reporter>>,
        Arc<dyn PieceStore>,
    );
    let (manager, reporter, pieces): Sides = match choice {
        ManagerChoice::MockChain(miner) => {
            let size = config
                .sealing
                .allowed_sizes
                .as_ref()
                .and_then(|sizes| sizes.first().copied())
                .unwrap_or(SectorSize::KIB_2);
            let proof = params::proof_for(size).map_err(|e| bad_input(e.to_string()))?;
            // Kept beside the config, so that a restart does not hand out sector numbers
            // that threads still hold (a second s-t0…-1 would overwrite the first's files in
            // the attached store).
            let records = config_path
                .parent()
                .unwrap_or(Path::new("."))
                .join(format!("mock-chain-t0{miner}.json"));
            let chain = MockChain::open(&records, miner, proof).map_err(|e| StartError {
                code: exit::FAILED,
                message: format!("mock chain records {}: {e}", records.display()),
            })?;
            tracing::info!(
                "sealing {size} sectors for an in-process mock chain, miner {miner}, records in {}",
                records.display()
            );
            (Arc::new(chain.clone()), None, Arc::new(chain))
        }
        ManagerChoice::FromConfig | ManagerChoice::At(_) => {
            let token = config.sector_manager.rpc_client.token.clone();
            let sealer = HttpSectorManager::new(&manager_addr, token.clone(), SEALER_TIMEOUTS)
                .map_err(|e| bad_input(format!("[sector_manager] rpc_client.addr: {e}")))?;
            let piece_token = config
                .sector_manager
                .piece_token
                .clone()
                .or_else(|| token.clone());
            let pieces = HttpPieceStore::new(&manager_addr, piece_token, Timeouts::default())
                .map_err(|e| bad_input(format!("[sector_manager] rpc_client.addr: {e}")))?;
            let pinger = ManagerClient::new(&manager_addr, token, Timeouts::default())
                .map_err(|e| bad_input(format!("[sector_manager] rpc_client.addr: {e}")))?;
            let sealer = Arc::new(sealer);
            match check_stores(&sealer, &config).await {
                Ok(()) => {}
                // The manager is down: start anyway (the admin API serves, the threads
                // idle saying why) and check once it answers.
                Err(e) if e.code == exit::UNREACHABLE => {
                    tracing::warn!(
                        "{}; starting anyway: the threads idle until it answers",
                        e.message
                    );
                    let (sealer, config) = (sealer.clone(), config.clone());
                    checking = Some(tokio::spawn(async move {
                        check_stores_until_reachable(&sealer, &config).await;
                    }));
                }
                Err(e) => return Err(e),
            }
            (sealer, Some(Arc::new(pinger)), Arc::new(pieces))
        }
    };
    let manager_host = manager_host_port(&manager_addr).ok();
    let local_ip = manager_host
        .as_deref()
        .and_then(damocles_rpc::net::local_ip_toward)
        .map(|ip| ip.to_string());
    let name = config
        .worker
        .name
        .clone()
        .or_else(|| local_ip.clone())
        .unwrap_or_else(|| "damocles-worker".to_owned());
    let assembled = assemble::thread_contexts(&config, &name, manager, Some(pieces))
        .map_err(|e| bad_input(format!("config {}: {e}", config_path.display())))?;
    let worker = Arc::new(Worker::start(assembled.contexts, version()));
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
    let server = match RpcServer::bind(&config.admin_addr(), admin, options).await {
        Ok(server) => server,
        Err(e) => {
            worker.shutdown().await;
            return Err(StartError {
                code: exit::FAILED,
                message: format!(
                    "cannot listen on {}: {e} (is another worker running? set [worker] rpc_server.port)",
                    config.admin_addr()
                ),
            });
        }
    };
    let bound = server.local_addr();
    let metrics = if config.metrics.enable {
        let scraped = worker.clone();
        let render: Renderer = Arc::new(move || scraped.render_metrics());
        match MetricsServer::bind(&config.metrics.http_listen, render).await {
            Ok(metrics) => {
                eprintln!("metrics on http://{}/metrics", metrics.local_addr());
                Some(metrics)
            }
            Err(e) => {
                server.shutdown().await;
                worker.shutdown().await;
                return Err(StartError {
                    code: exit::FAILED,
                    message: format!(
                        "cannot serve metrics on {}: {e} (set [metrics] http_listen)",
                        config.metrics.http_listen
                    ),
                });
            }
        }
    } else {
        None
    };
    let dest_host = match rpc.host.as_str() {
        "" | "0.0.0.0" | "::" => local_ip.unwrap_or_else(|| "127.0.0.1".to_owned()),
        host => host.to_owned(),
    };
    let reporting = reporter.map(|reporter| {
        spawn_reporting(
            worker.clone(),
            reporter,
            ReportIdentity {
                name: name.clone(),
                dest: format!("{dest_host}:{}", bound.port()),
            },
            config.worker.ping_interval,
        )
    });
    eprintln!(
        "damocles-worker {} '{name}': {} sealing thread(s); admin API listening on {bound}",
        version(),
        worker.threads().len(),
    );
    Ok(RunningWorker {
        worker,
        server,
        metrics,
        reporting,
        checking,
        _locks: assembled.locks,
    })
}

/// The original's start-up check: the manager knows every attached store.
async fn check_stores(sealer: &HttpSectorManager, config: &WorkerConfig) -> Result<(), StartError> {
    for store in config.attached_stores() {
        match sealer.store_basic_info(store.name.clone()).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(StartError {
                    code: exit::FAILED,
                    message: format!(
                        "the manager at {} does not know the attached store '{}'",
                        sealer.rpc().address(),
                        store.name
                    ),
                })
            }
            Err(e) => {
                return Err(StartError {
                    code: exit::UNREACHABLE,
                    message: format!(
                        "cannot reach the manager at {}: {e} (is it running? e.g. damocles-manager mock --miner 10000 --sector-size 2KiB)",
                        sealer.rpc().address()
                    ),
                })
            }
        }
    }
    Ok(())
}

/// The start-up check of the attached stores, tried again with backoff (1 s doubling to
/// 1 min) until the manager answers; an unknown store is then logged as an error (its
/// sectors fail when they persist, naming it).
async fn check_stores_until_reachable(sealer: &HttpSectorManager, config: &WorkerConfig) {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        match check_stores(sealer, config).await {
            Ok(()) => {
                tracing::info!("the manager at {} answers", sealer.rpc().address());
                return;
            }
            Err(e) if e.code == exit::UNREACHABLE => {
                wait = (wait * 2).min(std::time::Duration::from_secs(60));
                tracing::warn!("{}; trying again in {}s", e.message, wait.as_secs());
            }
            Err(e) => {
                tracing::error!("{}", e.message);
                return;
            }
        }
    }
}

/// Runs the daemon until a signal; returns the exit code.
pub async fn run(config_path: &Path, choice: ManagerChoice) -> u8 {
    let running = match start(config_path, choice).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("error: {}", e.message);
            return e.code;
        }
    };
    wait_for_signal().await;
    stop_on_signal(running).await
}

/// Stops a worker after a first signal, exiting the process at once on a second one (exit
/// code [`exit::INTERRUPTED`]).
pub async fn stop_on_signal(running: RunningWorker) -> u8 {
    let in_flight = running.worker().proof_calls_in_flight();
    eprintln!(
        "stopping: waiting for {in_flight} proof call(s) to return (signal again to exit now; interrupted steps re-run at the next start)"
    );
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
