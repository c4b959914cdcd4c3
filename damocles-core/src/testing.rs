//! In-memory implementations of the traits, for tests and embedders' harnesses
//! (feature `testing`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::journal::{JournalEntry, ThreadEvent, JOURNAL_LIMIT};
use crate::record::SectorRecord;
use crate::report::WorkerReport;
use crate::thread::ThreadInfo;
use crate::traits::{
    AdminError, AdminTransport, PauseOutcome, ReportError, Reporter, ResumeOutcome, StateStore,
    StoreError,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep going with the data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A [`StateStore`] in memory. Clones share the record and the event history, so a test
/// can keep a handle and inspect what a thread saved; `fail_saves` makes saves fail as a
/// broken disk would.
#[derive(Debug, Clone, Default)]
pub struct MemoryStateStore {
    inner: Arc<Mutex<MemoryStore>>,
}

#[derive(Debug, Default)]
struct MemoryStore {
    record: Option<SectorRecord>,
    saves: usize,
    fail_saves: bool,
    journal: VecDeque<JournalEntry>,
    next_seq: u64,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `record`.
    pub fn with_record(record: SectorRecord) -> Self {
        let store = Self::default();
        lock(&store.inner).record = Some(record);
        store
    }

    /// The saved record.
    pub fn record(&self) -> Option<SectorRecord> {
        lock(&self.inner).record.clone()
    }

    /// How many saves succeeded.
    pub fn saves(&self) -> usize {
        lock(&self.inner).saves
    }

    /// Makes every later save fail (or succeed again).
    pub fn fail_saves(&self, fail: bool) {
        lock(&self.inner).fail_saves = fail;
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn load(&self) -> Result<Option<SectorRecord>, StoreError> {
        Ok(self.record())
    }

    async fn save(&self, record: &SectorRecord) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        if inner.fail_saves {
            return Err(StoreError {
                location: "memory".into(),
                message: "saves are set to fail".into(),
            });
        }
        inner.record = Some(record.clone());
        inner.saves += 1;
        Ok(())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        lock(&self.inner).record = None;
        Ok(())
    }

    async fn append_events(&self, events: &[ThreadEvent]) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        for event in events {
            inner.next_seq += 1;
            let seq = inner.next_seq;
            inner.journal.push_back(JournalEntry {
                seq,
                event: event.clone(),
            });
            if inner.journal.len() > JOURNAL_LIMIT {
                inner.journal.pop_front();
            }
        }
        Ok(())
    }

    async fn events(&self, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let inner = lock(&self.inner);
        let skip = inner.journal.len().saturating_sub(limit);
        Ok(inner.journal.iter().skip(skip).cloned().collect())
    }
}

/// A [`Reporter`] that keeps every report it is sent. Clones share the list.
#[derive(Debug, Clone, Default)]
pub struct RecordingReporter {
    reports: Arc<Mutex<Vec<WorkerReport>>>,
}

impl RecordingReporter {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reports so far, oldest first.
    pub fn reports(&self) -> Vec<WorkerReport> {
        lock(&self.reports).clone()
    }
}

#[async_trait]
impl Reporter for RecordingReporter {
    async fn report(&self, report: &WorkerReport) -> Result<(), ReportError> {
        lock(&self.reports).push(report.clone());
        Ok(())
    }
}

/// A call made on a [`ScriptedAdmin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCall {
    /// `list`.
    List,
    /// `pause(index)`.
    Pause(u64),
    /// `resume(index, state)`.
    Resume(u64, Option<String>),
    /// `version`.
    Version,
    /// `events(index, limit)`.
    Events(u64, usize),
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub enum AdminAnswer {
    /// For `list`.
    List(Result<Vec<ThreadInfo>, AdminError>),
    /// For `pause`.
    Pause(Result<PauseOutcome, AdminError>),
    /// For `resume`.
    Resume(Result<ResumeOutcome, AdminError>),
    /// For `version`.
    Version(Result<String, AdminError>),
    /// For `events`.
    Events(Result<Vec<JournalEntry>, AdminError>),
}

#[derive(Debug, Default)]
struct AdminShared {
    answers: VecDeque<AdminAnswer>,
    calls: Vec<AdminCall>,
    callers: Vec<String>,
}

/// The transport side of [`admin_pair`]: an [`AdminTransport`] that answers from a script.
#[derive(Debug, Clone)]
pub struct ScriptedAdmin {
    shared: Arc<Mutex<AdminShared>>,
}

/// The test side of [`admin_pair`]: queues answers and observes calls.
#[derive(Debug, Clone)]
pub struct AdminHandle {
    shared: Arc<Mutex<AdminShared>>,
}

/// A fake admin transport and its handle, in the style of tower's `mock::pair()`.
pub fn admin_pair() -> (ScriptedAdmin, AdminHandle) {
    let shared = Arc::new(Mutex::new(AdminShared::default()));
    (
        ScriptedAdmin {
            shared: shared.clone(),
        },
        AdminHandle { shared },
    )
}

impl AdminHandle {
    /// Queues the next answer.
    pub fn push(&self, answer: AdminAnswer) {
        lock(&self.shared).answers.push_back(answer);
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<AdminCall> {
        lock(&self.shared).calls.clone()
    }

    /// Who each `pause_by` / `resume_by` / `drain_by` call was made for, in order.
    pub fn callers(&self) -> Vec<String> {
        lock(&self.shared).callers.clone()
    }
}

impl ScriptedAdmin {
    fn next(&self, call: AdminCall) -> Option<AdminAnswer> {
        let mut shared = lock(&self.shared);
        shared.calls.push(call);
        shared.answers.pop_front()
    }
}

fn unscripted(call: &str) -> AdminError {
    AdminError::Internal(format!("no scripted answer for {call}"))
}

#[async_trait]
impl AdminTransport for ScriptedAdmin {
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError> {
        match self.next(AdminCall::List) {
            Some(AdminAnswer::List(answer)) => answer,
            _ => Err(unscripted("list")),
        }
    }

    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError> {
        match self.next(AdminCall::Pause(index)) {
            Some(AdminAnswer::Pause(answer)) => answer,
            _ => Err(unscripted("pause")),
        }
    }

    async fn resume(&self, index: u64, state: Option<String>) -> Result<ResumeOutcome, AdminError> {
        match self.next(AdminCall::Resume(index, state)) {
            Some(AdminAnswer::Resume(answer)) => answer,
            _ => Err(unscripted("resume")),
        }
    }

    async fn version(&self) -> Result<String, AdminError> {
        match self.next(AdminCall::Version) {
            Some(AdminAnswer::Version(answer)) => answer,
            _ => Err(unscripted("version")),
        }
    }

    /// Records `by` as the caller of the next call, which the view makes.
    fn on_behalf_of<'a>(&'a self, by: &str) -> Box<dyn AdminTransport + 'a> {
        lock(&self.shared).callers.push(by.to_owned());
        Box::new(self)
    }

    async fn events(&self, index: u64, limit: usize) -> Result<Vec<JournalEntry>, AdminError> {
        match self.next(AdminCall::Events(index, limit)) {
            Some(AdminAnswer::Events(answer)) => answer,
            _ => Err(unscripted("events")),
        }
    }
}
