//! Writes a thread's event history to its state store. A history that cannot be written
//! is logged and never stops sealing.
//!
//! Entries are numbered in the order they are written. An operator's action is recorded
//! while holding the journal ([`Journal::hold`]) across the change and its write, so the
//! thread, which records through the same journal, cannot write what the change caused
//! (a resume's transition) before the change itself.

use std::sync::Arc;

use damocles_core::{Happening, JournalEntry, StateStore, StoreError, ThreadEvent};
use tokio::sync::{Mutex, MutexGuard};

/// One thread's history, in its state store. Clones share the store and the order.
#[derive(Clone)]
pub(crate) struct Journal {
    index: usize,
    /// The store; `None` once the worker has shut down (so that the database is released
    /// and can be opened again).
    store: Arc<Mutex<Option<Arc<dyn StateStore>>>>,
}

/// The journal held: nothing else is written until it is dropped.
pub(crate) struct Held<'a> {
    index: usize,
    store: MutexGuard<'a, Option<Arc<dyn StateStore>>>,
}

impl Journal {
    pub(crate) fn new(index: usize, store: Arc<dyn StateStore>) -> Self {
        Self {
            index,
            store: Arc::new(Mutex::new(Some(store))),
        }
    }

    /// Holds the journal, for a change and the entry that says so.
    pub(crate) async fn hold(&self) -> Held<'_> {
        Held {
            index: self.index,
            store: self.store.lock().await,
        }
    }

    /// Records `what` happening now to the thread, which has `sector`.
    pub(crate) async fn record(&self, sector: Option<String>, what: Happening) {
        self.hold().await.record(sector, Some(what)).await;
    }

    /// The last `limit` entries, oldest first.
    pub(crate) async fn read(&self, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let store = self.store.lock().await.clone();
        match store {
            Some(store) => store.events(limit).await,
            None => Err(StoreError {
                location: format!("thread {}", self.index),
                message: "the worker has shut down".into(),
            }),
        }
    }

    /// Lets go of the store: later entries are dropped, reads fail.
    pub(crate) async fn close(&self) {
        *self.store.lock().await = None;
    }
}

impl Held<'_> {
    /// Makes the thread's state store usable again after a failure (see
    /// [`StateStore::recover`]).
    pub(crate) async fn recover_store(&self) -> Result<(), StoreError> {
        match self.store.as_ref() {
            Some(store) => store.recover().await,
            None => Ok(()),
        }
    }

    /// Records `what` (when there is something to record) happening now.
    pub(crate) async fn record(&self, sector: Option<String>, what: Option<Happening>) {
        let (Some(what), Some(store)) = (what, self.store.as_ref()) else {
            return;
        };
        let event = ThreadEvent::now(sector, what);
        if let Err(e) = store.append_events(std::slice::from_ref(&event)).await {
            tracing::warn!(
                thread = self.index,
                kind = event.what.kind(),
                "event not recorded: {e}"
            );
        }
    }
}
