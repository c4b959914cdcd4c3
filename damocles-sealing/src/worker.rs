//! The [`Worker`]: owns the sealing threads, answers list / pause / resume locally (it is
//! an [`AdminTransport`]), and computes the report it sends to the manager.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use damocles_core::{
    AdminError, AdminTransport, PauseOutcome, ResumeOutcome, SealingThread, ThreadInfo,
    WorkerReport, WorkerSummary,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control::Control;
use crate::metrics::{StageStat, WorkerMetrics};
use crate::thread::{self, ThreadContext};

/// A handle on one running thread.
#[derive(Debug, Clone)]
pub struct ThreadHandle {
    control: Arc<Control>,
}

impl SealingThread for ThreadHandle {
    fn index(&self) -> usize {
        self.control.index()
    }

    fn info(&self) -> ThreadInfo {
        self.control.info()
    }

    fn pause(&self) -> PauseOutcome {
        self.control.pause()
    }

    fn resume(&self, state: Option<&str>) -> Result<ResumeOutcome, AdminError> {
        self.control.resume(state)
    }
}

/// A worker: its sealing threads, each an async task on the current tokio runtime.
pub struct Worker {
    threads: Vec<ThreadHandle>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    version: String,
    changes: Arc<watch::Sender<u64>>,
    metrics: Arc<WorkerMetrics>,
}

impl Worker {
    /// Starts one thread per context, indexed in order.
    pub fn start(contexts: Vec<ThreadContext>, version: impl Into<String>) -> Self {
        let changes = Arc::new(watch::Sender::new(0));
        let metrics = Arc::new(WorkerMetrics::default());
        let mut threads = Vec::new();
        let mut tasks = Vec::new();
        for (index, ctx) in contexts.into_iter().enumerate() {
            let control = Arc::new(Control::new(
                index,
                ctx.location.root().display().to_string(),
                ctx.plan,
                changes.clone(),
                metrics.clone(),
            ));
            tasks.push(tokio::spawn(thread::run(ctx, control.clone())));
            threads.push(ThreadHandle { control });
        }
        Self {
            threads,
            tasks: Mutex::new(tasks),
            version: version.into(),
            changes,
            metrics,
        }
    }

    /// A receiver that sees a new value whenever what [`Worker::list`] shows changes
    /// (other than elapsed seconds): for observers that wait on thread states instead of
    /// polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// How long the proof calls of each stage took so far, summed over the threads.
    pub fn stage_stats(&self) -> std::collections::BTreeMap<String, StageStat> {
        self.metrics.stage_totals()
    }

    /// The worker's metrics (admin servers record their calls there).
    pub fn metrics(&self) -> &Arc<WorkerMetrics> {
        &self.metrics
    }

    /// The metrics in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(&self.list())
    }

    /// The threads.
    pub fn threads(&self) -> &[ThreadHandle] {
        &self.threads
    }

    /// One thread.
    pub fn thread(&self, index: u64) -> Result<&ThreadHandle, AdminError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.threads.get(i))
            .ok_or(AdminError::ThreadNotFound { index })
    }

    /// What `worker list` shows.
    pub fn list(&self) -> Vec<ThreadInfo> {
        self.threads.iter().map(SealingThread::info).collect()
    }

    /// The report to send to the manager.
    pub fn report(&self, name: &str, dest: &str) -> WorkerReport {
        WorkerReport {
            name: name.to_owned(),
            dest: dest.to_owned(),
            version: self.version.clone(),
            summary: WorkerSummary::from_threads(&self.list()),
        }
    }

    /// Stops every thread at its next wait or after its current proof call, and waits for
    /// them. Every record is persisted when this returns. Later calls return at once.
    pub async fn shutdown(&self) {
        for thread in &self.threads {
            thread.control.stop();
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// How many threads are in a proof call now (what a shutdown waits for).
    pub fn proof_calls_in_flight(&self) -> usize {
        self.list()
            .iter()
            .filter(|t| {
                matches!(
                    t.thread_state,
                    damocles_core::ThreadState::Running { proc: Some(_), .. }
                )
            })
            .count()
    }
}

#[async_trait]
impl AdminTransport for Worker {
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError> {
        Ok(Worker::list(self))
    }

    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError> {
        Ok(self.thread(index)?.pause())
    }

    async fn resume(&self, index: u64, state: Option<String>) -> Result<ResumeOutcome, AdminError> {
        self.thread(index)?.resume(state.as_deref())
    }

    async fn version(&self) -> Result<String, AdminError> {
        Ok(self.version.clone())
    }

    async fn drain(&self, index: u64, on: bool) -> Result<damocles_core::DrainOutcome, AdminError> {
        Ok(self.thread(index)?.control.drain(on))
    }
}
