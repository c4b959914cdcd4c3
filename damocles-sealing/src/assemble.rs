//! From a [`WorkerConfig`] to the contexts of its threads: locations opened, state stores
//! opened, options merged, stage limits and attached stores shared.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use damocles_core::{SectorManager, SectorRecord, StateStore, StoreError};

use crate::config::WorkerConfig;
use crate::store::{Location, LocationError, RedbStateStore};
use crate::thread::ThreadContext;

/// Why the threads of a configuration cannot start.
#[derive(Debug, thiserror::Error)]
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
    /// No store to persist sealed sectors to.
    #[error("no attached store available: add an [[attached]] store that is not readonly")]
    NoAttachedStore,
}

/// The contexts of every configured thread, sealing for `manager`.
///
/// A thread whose state database cannot be opened still gets a context: its store
/// answers every call with the error, so that thread pauses with a critical error naming
/// the file while the others seal.
pub fn thread_contexts(
    config: &WorkerConfig,
    worker_name: &str,
    manager: Arc<dyn SectorManager>,
) -> Result<Vec<ThreadContext>, AssembleError> {
    let attached = config.attached_stores();
    if !attached.iter().any(|s| !s.readonly) {
        return Err(AssembleError::NoAttachedStore);
    }
    let limits = config.stage_limits();
    let mut seen = HashSet::new();
    let mut contexts = Vec::new();
    for (index, thread) in config.sealing_thread.iter().enumerate() {
        let location = Location::open(&thread.location)
            .map_err(|source| AssembleError::Location { index, source })?;
        if !seen.insert(location.root().to_path_buf()) {
            return Err(AssembleError::DuplicateLocation {
                index,
                path: location.root().display().to_string(),
            });
        }
        let store: Arc<dyn StateStore> = match RedbStateStore::open(&location) {
            Ok(store) => Arc::new(store),
            Err(e) => {
                tracing::error!(thread = index, "{e}");
                Arc::new(UnavailableStore(e))
            }
        };
        contexts.push(ThreadContext {
            worker_name: worker_name.to_owned(),
            location,
            plan: thread.plan,
            options: config.thread_options(index),
            manager: manager.clone(),
            store,
            limits: limits.clone(),
            attached: attached.clone(),
        });
    }
    Ok(contexts)
}

/// A state store that could not be opened: every call answers why.
#[derive(Debug, Clone)]
pub struct UnavailableStore(pub StoreError);

#[async_trait]
impl StateStore for UnavailableStore {
    async fn load(&self) -> Result<Option<SectorRecord>, StoreError> {
        Err(self.0.clone())
    }

    async fn save(&self, _: &SectorRecord) -> Result<(), StoreError> {
        Err(self.0.clone())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        Err(self.0.clone())
    }

    async fn append_events(&self, _: &[damocles_core::ThreadEvent]) -> Result<(), StoreError> {
        Err(self.0.clone())
    }

    async fn events(&self, _: usize) -> Result<Vec<damocles_core::JournalEntry>, StoreError> {
        Err(self.0.clone())
    }
}
