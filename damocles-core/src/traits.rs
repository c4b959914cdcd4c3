//! The capabilities an embedder plugs together: [`SealingThread`], [`StateStore`],
//! [`Reporter`] and [`AdminTransport`] (and [`crate::SectorManager`]). All are object-safe
//! so they can be held as `Arc<dyn …>`.

use async_trait::async_trait;

use crate::journal::{JournalEntry, ThreadEvent};
use crate::record::SectorRecord;
use crate::report::WorkerReport;
use crate::state::{ParseStateError, PlanState};
use crate::thread::ThreadInfo;

/// What a pause did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseOutcome {
    /// The thread is paused now.
    Paused,
    /// The thread is in a proof call; it pauses as soon as the call returns.
    Requested,
    /// The thread was already paused (or a pause was already pending); nothing changed.
    AlreadyPaused,
    /// A worker that only answers `true` (an original damocles worker) queued the pause.
    Delivered,
}

/// What a resume did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ResumeOutcome {
    /// The thread runs again, at `state` when one was asked for, else re-running its
    /// current state.
    Resumed {
        /// The state it resumed at, when one was asked for.
        state: Option<PlanState>,
    },
    /// The thread was not paused yet: the pause asked for during its proof call is called
    /// off, and the thread goes on.
    PauseCalledOff,
    /// The thread was not paused; nothing changed.
    NotPaused,
}

/// What a drain or undrain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainOutcome {
    /// The thread now finishes its current sector and takes no new one.
    Draining,
    /// It already was; nothing changed.
    AlreadyDraining,
    /// It takes new sectors again.
    Undrained,
    /// It was not draining; nothing changed.
    NotDraining,
}

/// What a `set-plan` did: the thread's hot config (`<location>/config.toml`) names
/// `plan`, which the thread takes at its next job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanSet {
    /// The hot config file written, on the worker's machine.
    pub file: String,
    /// The plan it names now.
    pub plan: crate::plan::Plan,
    /// The plan it named before (`None`: no file, or no plan in it).
    pub before: Option<crate::plan::Plan>,
    /// The job the thread holds, which finishes under its own plan first (`None`: the
    /// thread holds none and takes the plan at its next round).
    pub current_job: Option<String>,
}

/// Which worker stop ([`AdminTransport::stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// Every thread takes no new step: each stops after its current step (a proof call
    /// runs to its end and its result is saved; waits are cut), a WindowPoSt job held is
    /// finished first; then the worker exits with its restart code.
    Graceful,
    /// Exit now: steps in flight are thrown away and re-run at the next start.
    Now,
    /// Call off a graceful stop that is pending.
    Cancel,
}

/// What a stop did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum StopOutcome {
    /// The worker is stopping; `busy` threads are still in a proof call (or finishing a
    /// WindowPoSt job) and stop after it.
    Stopping {
        /// Threads in a proof call or holding a WindowPoSt job.
        busy: usize,
    },
    /// A stop was already pending; nothing changed.
    AlreadyStopping {
        /// Threads in a proof call or holding a WindowPoSt job.
        busy: usize,
    },
    /// The worker exits now.
    Exiting,
    /// The pending stop was called off; the threads go on.
    Cancelled,
    /// No stop was pending; nothing changed.
    NotStopping,
}

/// An admin call that did not happen. Nothing changed on the worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No thread has that index.
    #[error("worker #{index} not found")]
    ThreadNotFound {
        /// The index asked for.
        index: u64,
    },
    /// The state is not one the thread's plan accepts.
    #[error(transparent)]
    InvalidState(#[from] ParseStateError),
    /// The thread cannot resume at that state: a step would not give the same outputs
    /// from what is persisted (or was never run). Nothing changed; the thread stays paused.
    #[error(
        "cannot resume thread #{index}{}: {reason}",
        state.map(|s| format!(" at {s}")).unwrap_or_default()
    )]
    ResumeRefused {
        /// The thread.
        index: u64,
        /// The state asked for, if one was.
        state: Option<PlanState>,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The worker could not be reached.
    #[error("cannot reach worker at {address}: {reason}")]
    Unreachable {
        /// The address tried.
        address: String,
        /// Why, in words a person can act on.
        reason: String,
    },
    /// The worker refused the credentials.
    #[error("worker at {address} refused the call: {reason}")]
    Unauthorized {
        /// The address tried.
        address: String,
        /// What it said.
        reason: String,
    },
    /// The worker answered with an error this client has no kind for.
    #[error("worker answered error {code}: {message}")]
    Remote {
        /// The JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The worker refused the call and said why (a file it cannot write).
    #[error("{0}")]
    Refused(String),
    /// The worker is shutting down or broke internally.
    #[error("worker internal error: {0}")]
    Internal(String),
}

impl AdminError {
    /// Whether the index was out of range.
    pub fn is_thread_not_found(&self) -> bool {
        matches!(self, AdminError::ThreadNotFound { .. })
    }

    /// Whether the state was refused (unknown to the plan, or not resumable now).
    pub fn is_invalid_state(&self) -> bool {
        matches!(
            self,
            AdminError::InvalidState(_) | AdminError::ResumeRefused { .. }
        )
    }

    /// Whether the worker could not be reached.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, AdminError::Unreachable { .. })
    }

    /// Whether credentials were refused.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, AdminError::Unauthorized { .. })
    }
}

/// One sealing thread as its owner and the admin API see it.
pub trait SealingThread: Send + Sync {
    /// The index `list` shows and `pause`/`resume` take.
    fn index(&self) -> usize;

    /// A snapshot of what `worker list` shows for this thread.
    fn info(&self) -> ThreadInfo;

    /// Pauses the thread. Idempotent.
    fn pause(&self) -> PauseOutcome;

    /// Resumes a paused thread, optionally at `state` (validated for the thread's plan).
    fn resume(&self, state: Option<&str>) -> Result<ResumeOutcome, AdminError>;
}

/// A store failure, naming where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store {location}: {message}")]
pub struct StoreError {
    /// The store (a database file path for on-disk stores).
    pub location: String,
    /// What went wrong.
    pub message: String,
}

/// Where a thread keeps its sector record. A save is durable when it returns.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The saved record, if any.
    async fn load(&self) -> Result<Option<SectorRecord>, StoreError>;

    /// Replaces the saved record.
    async fn save(&self, record: &SectorRecord) -> Result<(), StoreError>;

    /// Removes the saved record (the sector is finished or dropped).
    async fn clear(&self) -> Result<(), StoreError>;

    /// Appends to the thread's event history, durably, numbering the entries in order
    /// and keeping the last [`crate::JOURNAL_LIMIT`]. Stores that keep no history (the
    /// default) drop them.
    async fn append_events(&self, events: &[ThreadEvent]) -> Result<(), StoreError> {
        let _ = events;
        Ok(())
    }

    /// The last `limit` entries of the history, oldest first.
    async fn events(&self, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let _ = limit;
        Ok(Vec::new())
    }

    /// Makes the store usable again after a failure (an on-disk store re-opens its
    /// database); `Err` says why it still cannot be used. Called before a paused thread
    /// is resumed. Stores that cannot fail this way (the default) answer `Ok`.
    async fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A report that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("report not delivered: {0}")]
pub struct ReportError(pub String);

/// Where a worker sends its periodic report (the manager, over `Venus.WorkerPing`).
#[async_trait]
pub trait Reporter: Send + Sync {
    /// Sends one report.
    async fn report(&self, report: &WorkerReport) -> Result<(), ReportError>;
}

/// A reference to a transport is one (what [`AdminTransport::on_behalf_of`] returns by
/// default).
#[async_trait]
impl<T: AdminTransport + ?Sized> AdminTransport for &T {
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError> {
        (**self).list().await
    }

    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError> {
        (**self).pause(index).await
    }

    async fn resume(&self, index: u64, state: Option<String>) -> Result<ResumeOutcome, AdminError> {
        (**self).resume(index, state).await
    }

    async fn version(&self) -> Result<String, AdminError> {
        (**self).version().await
    }

    async fn drain(&self, index: u64, on: bool) -> Result<DrainOutcome, AdminError> {
        (**self).drain(index, on).await
    }

    fn on_behalf_of<'a>(&'a self, by: &str) -> Box<dyn AdminTransport + 'a> {
        (**self).on_behalf_of(by)
    }

    async fn set_plan(&self, index: u64, plan: crate::plan::Plan) -> Result<PlanSet, AdminError> {
        (**self).set_plan(index, plan).await
    }

    async fn stop(&self, mode: StopMode) -> Result<StopOutcome, AdminError> {
        (**self).stop(mode).await
    }

    async fn events(&self, index: u64, limit: usize) -> Result<Vec<JournalEntry>, AdminError> {
        (**self).events(index, limit).await
    }
}

/// The admin API of one worker, local or remote.
#[async_trait]
pub trait AdminTransport: Send + Sync {
    /// Every thread, in index order.
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError>;

    /// Pauses thread `index`.
    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError>;

    /// Resumes thread `index`, optionally at the state named `state`.
    async fn resume(&self, index: u64, state: Option<String>) -> Result<ResumeOutcome, AdminError>;

    /// The worker's version string.
    async fn version(&self) -> Result<String, AdminError>;

    /// Drains thread `index` (`on`) or lifts its drain. Workers that cannot drain (an
    /// original damocles worker) answer an error.
    async fn drain(&self, index: u64, on: bool) -> Result<DrainOutcome, AdminError> {
        let _ = (index, on);
        Err(AdminError::Internal(
            "this worker cannot drain threads".into(),
        ))
    }

    /// This transport acting on behalf of `by` (who asked, as a thread's event history
    /// records it, e.g. `admin token from 10.0.0.9:51234`): every call made through the
    /// returned view is `by`'s. The caller's identity travels as this context, so no method
    /// needs a twin that takes it. Transports whose other side decides who asked (HTTP
    /// clients: the server knows the token and the address) return themselves, which is
    /// the default.
    fn on_behalf_of<'a>(&'a self, by: &str) -> Box<dyn AdminTransport + 'a> {
        let _ = by;
        Box::new(self)
    }

    /// Writes `plan` into thread `index`'s hot config: the thread finishes its current
    /// job, then runs `plan`. Workers without hot config (an original damocles worker)
    /// answer an error.
    async fn set_plan(&self, index: u64, plan: crate::plan::Plan) -> Result<PlanSet, AdminError> {
        let _ = (index, plan);
        Err(AdminError::Internal(
            "this worker cannot set a thread's plan".into(),
        ))
    }

    /// Stops the worker ([`StopMode`]), or calls a pending stop off. Workers that cannot
    /// be stopped remotely (an original damocles worker) answer an error.
    async fn stop(&self, mode: StopMode) -> Result<StopOutcome, AdminError> {
        let _ = mode;
        Err(AdminError::Internal(
            "this worker cannot be stopped remotely".into(),
        ))
    }

    /// The last `limit` entries of thread `index`'s event history, oldest first. Workers
    /// that keep none (an original damocles worker) answer an error.
    async fn events(&self, index: u64, limit: usize) -> Result<Vec<JournalEntry>, AdminError> {
        let _ = (index, limit);
        Err(AdminError::Internal(
            "this worker keeps no event history".into(),
        ))
    }
}
