//! [`WorkerBuilder`]: a running worker from a configuration (or from thread contexts built
//! in code) and the services it seals for. The `damocles-worker daemon` starts through it;
//! it adds only the transports (the admin API server, the HTTP manager clients).

use std::sync::Arc;
use std::time::Duration;

use damocles_core::sealer_api::ManagerErrorKind;
use damocles_core::{PieceStore, Reporter, SectorManager};
use tokio::task::JoinHandle;

use crate::assemble::{self, AssembleError};
use crate::config::WorkerConfig;
use crate::reporting::{spawn_reporting, ReportIdentity};
use crate::thread::ThreadContext;
use crate::worker::Worker;

/// Where the threads come from.
enum Threads {
    /// One per `[[sealing_thread]]`, assembled at start.
    Config(Box<WorkerConfig>),
    /// Built by the embedder.
    Contexts(Vec<ThreadContext>),
}

/// Why a worker cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A configuration needs a manager: call [`WorkerBuilder::manager`].
    #[error("no sector manager: call WorkerBuilder::manager before start")]
    NoManager,
    /// The configuration's threads cannot start.
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    /// The manager answered that it does not know an attached store (the original's
    /// start-up check).
    #[error("the manager does not know the attached store '{store}'")]
    UnknownStore {
        /// The store's name.
        store: String,
    },
}

/// Assembles and starts a worker.
///
/// From a configuration it opens (creating when missing) and locks every thread's
/// location, opens each thread's state database, checks that the manager knows every
/// attached store and starts the threads; from contexts built in code it starts them as
/// they are. A manager that cannot be reached at start is not an error: the threads idle
/// saying why, and the store check runs again (1 s doubling to 1 min) until it answers.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use damocles_core::{AdminTransport, SealProof};
/// use damocles_sealing::{config::WorkerConfig, mock_chain::MockChain, WorkerBuilder};
///
/// let chain = MockChain::new(1000, SealProof::StackedDrg2KiBV1_1); // or an HttpSectorManager
/// let config = WorkerConfig::load("worker.toml".as_ref())?.config;
/// let running = WorkerBuilder::from_config(config)
///     .manager(Arc::new(chain.clone()))
///     .piece_store(Arc::new(chain))
///     .start()
///     .await?;
/// running.worker().pause(0).await?; // AdminTransport, as the admin API serves it
/// println!("{:?}", running.worker().list()); // a snapshot, no await
/// running.shutdown().await; // waits for proof calls in flight (a C2: a minute); saves all
/// # Ok(()) }
/// ```
/// (The README's "Embedding" section shows this example.)
pub struct WorkerBuilder {
    threads: Threads,
    name: Option<String>,
    version: String,
    manager: Option<Arc<dyn SectorManager>>,
    piece_store: Option<Arc<dyn PieceStore>>,
}

impl WorkerBuilder {
    /// The threads of `config`, with its name, ping interval and attached stores.
    pub fn from_config(config: WorkerConfig) -> Self {
        Self::new(Threads::Config(Box::new(config)))
    }

    /// Threads built in code, each with its own manager, store and location.
    pub fn from_contexts(contexts: Vec<ThreadContext>) -> Self {
        Self::new(Threads::Contexts(contexts))
    }

    fn new(threads: Threads) -> Self {
        Self {
            threads,
            name: None,
            version: concat!("v", env!("CARGO_PKG_VERSION"), "-damocles-rs").to_owned(),
            manager: None,
            piece_store: None,
        }
    }

    /// The name the worker reports and gives its threads (default: the config's
    /// `[worker] name`, else `damocles-worker`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The version the admin API and the reports show (default `v<crate version>-damocles-rs`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The manager a configuration's threads seal for (required with
    /// [`WorkerBuilder::from_config`]).
    pub fn manager(mut self, manager: Arc<dyn SectorManager>) -> Self {
        self.manager = Some(manager);
        self
    }

    /// Where a configuration's threads fetch deal pieces that are not in the local piece
    /// directories.
    pub fn piece_store(mut self, pieces: Arc<dyn PieceStore>) -> Self {
        self.piece_store = Some(pieces);
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    /// [`BuildError::NoManager`] for a configuration without [`WorkerBuilder::manager`];
    /// [`BuildError::Assemble`] when a location is missing, not prepared, shared or locked
    /// by another process, or no attached store is writable;
    /// [`BuildError::UnknownStore`] when the manager does not know an attached store.
    pub async fn start(self) -> Result<RunningWorker, BuildError> {
        let mut tasks = Vec::new();
        let (name, interval, contexts, locks) = match self.threads {
            Threads::Contexts(contexts) => {
                let name = self.name.unwrap_or_else(|| DEFAULT_NAME.to_owned());
                let interval = crate::config::WorkerSection::default().ping_interval;
                (name, interval, contexts, Vec::new())
            }
            Threads::Config(config) => {
                let manager = self.manager.ok_or(BuildError::NoManager)?;
                let stores: Vec<String> = config
                    .attached_stores()
                    .into_iter()
                    .map(|s| s.name)
                    .collect();
                let unreachable = match check_stores(&*manager, &stores).await {
                    Ok(()) => None,
                    Err(StoreCheck::Unknown(store)) => {
                        return Err(BuildError::UnknownStore { store })
                    }
                    Err(StoreCheck::Unreachable(why)) => Some(why),
                };
                let name = self
                    .name
                    .or_else(|| config.worker.name.clone())
                    .unwrap_or_else(|| DEFAULT_NAME.to_owned());
                let assembled =
                    assemble::thread_contexts(&config, &name, manager.clone(), self.piece_store)?;
                if let Some(why) = unreachable {
                    tracing::warn!("{why}; starting anyway: the threads idle until it answers");
                    tasks.push(tokio::spawn(check_until_reachable(manager, stores)));
                }
                (
                    name,
                    config.worker.ping_interval,
                    assembled.contexts,
                    assembled.locks,
                )
            }
        };
        let worker = Worker::start(contexts, self.version);
        worker.hold_until_stopped(locks);
        Ok(RunningWorker {
            worker: Arc::new(worker),
            name,
            ping_interval: interval,
            tasks,
        })
    }
}

/// The name of a worker whose configuration names none.
const DEFAULT_NAME: &str = "damocles-worker";

enum StoreCheck {
    Unknown(String),
    Unreachable(String),
}

/// The original's start-up check: the manager knows every attached store.
async fn check_stores(manager: &dyn SectorManager, stores: &[String]) -> Result<(), StoreCheck> {
    for store in stores {
        match manager.store_basic_info(store.clone()).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(StoreCheck::Unknown(store.clone())),
            Err(e) => {
                let what = match e.kind {
                    ManagerErrorKind::Transport => "cannot reach the manager",
                    _ => "the manager failed to answer",
                };
                return Err(StoreCheck::Unreachable(format!("{what}: {e}")));
            }
        }
    }
    Ok(())
}

/// Checks the stores again, with backoff (1 s doubling to 1 min), until the manager
/// answers; an unknown store is then logged as an error (its sectors fail when they
/// persist, naming it).
async fn check_until_reachable(manager: Arc<dyn SectorManager>, stores: Vec<String>) {
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        match check_stores(&*manager, &stores).await {
            Ok(()) => {
                tracing::info!("the manager answers; it knows every attached store");
                return;
            }
            Err(StoreCheck::Unreachable(why)) => {
                wait = (wait * 2).min(Duration::from_secs(60));
                tracing::warn!("{why}; trying again in {}s", wait.as_secs());
            }
            Err(StoreCheck::Unknown(store)) => {
                tracing::error!("the manager does not know the attached store '{store}'");
                return;
            }
        }
    }
}

/// A started worker and its background tasks (the store check, the reports).
///
/// Dropping it stops the background tasks and (once no other handle to the [`Worker`]
/// remains) the threads, each after its current proof call; the locations stay locked
/// until they have stopped. [`RunningWorker::shutdown`] also waits for them.
pub struct RunningWorker {
    worker: Arc<Worker>,
    name: String,
    ping_interval: Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningWorker {
    /// The worker: its threads, and a local [`damocles_core::AdminTransport`].
    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    /// The name it reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reports to `reporter` now and then every `[worker] ping_interval`, saying its
    /// admin API is at `dest` (`host:port`), until it stops.
    pub fn report_to(&mut self, reporter: Arc<dyn Reporter>, dest: impl Into<String>) {
        let identity = ReportIdentity {
            name: self.name.clone(),
            dest: dest.into(),
        };
        self.tasks.push(spawn_reporting(
            self.worker.clone(),
            reporter,
            identity,
            self.ping_interval,
        ));
    }

    /// Stops the background tasks, then the threads (each after its current proof call),
    /// and waits for them: every record is saved and every location released when this
    /// returns.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.worker.shutdown().await;
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
