//! From a [`WorkerConfig`] to the contexts of its threads: locations opened, state stores
//! opened, options merged, stage limits and attached stores shared.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use damocles_core::{PieceStore, SectorManager};

use crate::config::WorkerConfig;
use crate::pieces::PieceSource;
use crate::priority::PostPriority;
use crate::processors::{Processors, ProcessorsError};
use crate::store::{Location, LocationError, LocationLock, RedbStateStore};
use crate::thread::ThreadContext;

/// Why the threads of a configuration cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// A location is missing or not prepared.
    #[error("sealing_thread[{index}]: {source}")]
    Location {
        /// The thread.
        index: usize,
        /// Why.
        #[source]
        source: LocationError,
    },
    /// Two threads share a location.
    #[error("sealing_thread[{index}]: location {path} is already used by another thread")]
    DuplicateLocation {
        /// The second thread.
        index: usize,
        /// The location.
        path: String,
    },
    /// An external processor cannot be set up on this machine.
    #[error(transparent)]
    Processors(#[from] ProcessorsError),
    /// No store to persist sealed sectors to.
    #[error("no attached store available: add an [[attached]] store that is not readonly")]
    NoAttachedStore,
}

/// The threads of a configuration, ready to start, and the locks on their locations
/// (keep them until the worker has shut down).
pub struct Assembled {
    /// One context per thread, in index order.
    pub contexts: Vec<ThreadContext>,
    /// This process's locks on the threads' locations.
    pub locks: Vec<LocationLock>,
}

/// The contexts of every configured thread, sealing for `manager`, reading deal pieces
/// from the configured local piece directories and then from `piece_store`.
///
/// A location that does not exist is created and prepared when its parent directory
/// exists (as `store sealing-init` would), and logged. Each location is locked for this
/// process: a second worker on the same locations is refused, naming the holder. A thread
/// whose state database cannot be opened still gets a context: its store answers every
/// call with the error (naming the file), so that thread alone pauses while the others
/// seal, and a resume tries the database again.
pub fn thread_contexts(
    config: &WorkerConfig,
    worker_name: &str,
    manager: Arc<dyn SectorManager>,
    piece_store: Option<Arc<dyn PieceStore>>,
) -> Result<Assembled, AssembleError> {
    let pieces = PieceSource {
        local_dirs: config.worker.piece_dirs(),
        remote: piece_store,
        // Absolute, so that a destination's path is compared with what the operator meant
        // (relative entries are relative to the working directory, as locations are).
        unseal_file_dirs: config
            .worker
            .unseal_file_dirs
            .iter()
            .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.clone()))
            .collect(),
    };
    let attached = config.attached_stores();
    if !attached.iter().any(|s| !s.readonly) {
        return Err(AssembleError::NoAttachedStore);
    }
    let limits = config.stage_limits();
    let processors =
        Processors::start(&config.processors, &own_binary()).map_err(AssembleError::Processors)?;
    let priority = if config.worker.wdpost_priority {
        PostPriority::new(processors.clone())
    } else {
        PostPriority::default()
    };
    let mut seen = HashSet::new();
    let mut contexts = Vec::new();
    let mut locks = Vec::new();
    for (index, thread) in config.sealing_thread.iter().enumerate() {
        let location = open_or_create(&thread.location)
            .map_err(|source| AssembleError::Location { index, source })?;
        if !seen.insert(location.root().to_path_buf()) {
            return Err(AssembleError::DuplicateLocation {
                index,
                path: location.root().display().to_string(),
            });
        }
        locks.push(
            location
                .lock()
                .map_err(|source| AssembleError::Location { index, source })?,
        );
        let store = RedbStateStore::lazy(&location);
        if let Err(e) = store.recover_now() {
            tracing::error!(thread = index, "{e}");
        }
        contexts.push(ThreadContext {
            worker_name: worker_name.to_owned(),
            location,
            plan: thread.plan,
            options: config.thread_options(index),
            manager: manager.clone(),
            store: Arc::new(store),
            limits: limits.clone(),
            processors: processors.clone(),
            priority: priority.clone(),
            attached: attached.clone(),
            pieces: pieces.clone(),
        });
    }
    Ok(Assembled { contexts, locks })
}

/// The default `bin` of an external processor: this program when it is
/// `damocles-worker`, else a `damocles-worker` beside it (as for `damocles-manager mock
/// --with-worker`), else `damocles-worker` found on `PATH` when the child starts.
fn own_binary() -> PathBuf {
    let worker = format!("damocles-worker{}", std::env::consts::EXE_SUFFIX);
    let Ok(own) = std::env::current_exe() else {
        return PathBuf::from(worker);
    };
    if own
        .file_stem()
        .is_some_and(|stem| stem == "damocles-worker")
    {
        return own;
    }
    let sibling = own.with_file_name(&worker);
    if sibling.is_file() {
        sibling
    } else {
        PathBuf::from(worker)
    }
}

/// Opens a location; creates and prepares it first when it is missing (or an empty
/// directory) and its parent exists.
fn open_or_create(path: &Path) -> Result<Location, LocationError> {
    match Location::open(path) {
        Err(LocationError::Missing { .. })
            if path
                .parent()
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        p
                    }
                })
                .is_some_and(Path::is_dir) =>
        {
            tracing::info!("creating sealing location {}", path.display());
            Location::init(path)
        }
        Err(LocationError::NotInitialised { .. })
            if std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none()) =>
        {
            tracing::info!(
                "preparing empty directory {} as a sealing location",
                path.display()
            );
            Location::init(path)
        }
        other => other,
    }
}
