//! The [`Worker`]: owns the sealing threads, answers list / pause / resume / drain and
//! their event histories locally (it is an [`AdminTransport`]), and computes the report it
//! sends to the manager.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use damocles_core::{
    AdminError, AdminTransport, DrainOutcome, Happening, JournalEntry, PauseOutcome, Plan, PlanSet,
    ResumeOutcome, SealingThread, StopMode, StopOutcome, ThreadInfo, ThreadState, WorkerReport,
    WorkerSummary,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control::Control;
use crate::journal::Journal;
use crate::metrics::{StageStat, ThreadSample, WorkerMetrics};
use crate::store::LocationLock;
use crate::thread::{self, ThreadContext};

/// Who the event history names for calls made in the process (not over the admin API).
pub const IN_PROCESS: &str = "in-process";

/// A handle on one running thread.
#[derive(Clone)]
pub struct ThreadHandle {
    control: Arc<Control>,
    journal: Journal,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadHandle")
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl ThreadHandle {
    /// Pauses the thread on behalf of `by`, recording it in the thread's history.
    pub async fn pause_by(&self, by: &str) -> PauseOutcome {
        let held = self.journal.hold().await;
        let outcome = self.control.pause(by);
        held.record(self.control.sector(), paused(outcome, by))
            .await;
        outcome
    }

    /// Resumes the thread on behalf of `by`, recording it in the thread's history.
    pub async fn resume_by(
        &self,
        state: Option<&str>,
        by: &str,
    ) -> Result<ResumeOutcome, AdminError> {
        let held = self.journal.hold().await;
        if self.control.is_paused() {
            // A thread paused on a store failure (a full disk) goes on only once its
            // database can be used again: re-opened now, or refused saying why.
            held.recover_store()
                .await
                .map_err(|e| AdminError::ResumeRefused {
                    index: self.control.index() as u64,
                    state: None,
                    reason: e.to_string(),
                })?;
        }
        let outcome = self.control.resume(state)?;
        held.record(self.control.sector(), resumed(&outcome, by))
            .await;
        Ok(outcome)
    }

    /// Drains the thread (`on`) or lifts its drain on behalf of `by`, recording it.
    pub async fn drain_by(&self, on: bool, by: &str) -> DrainOutcome {
        let held = self.journal.hold().await;
        let outcome = self.control.drain(on);
        let changed = matches!(outcome, DrainOutcome::Draining | DrainOutcome::Undrained);
        let what = changed.then(|| Happening::Drain {
            by: by.to_owned(),
            on,
        });
        held.record(self.control.sector(), what).await;
        outcome
    }

    /// Writes `plan` into the thread's hot config (`<location>/config.toml`, keeping its
    /// other keys and comments) and has the thread read it at its next step boundary: an
    /// idle thread takes the plan at once, a busy one after its current job.
    pub async fn set_plan(&self, plan: Plan) -> Result<PlanSet, AdminError> {
        let location = std::path::PathBuf::from(self.control.info().location);
        let (file, before) =
            tokio::task::spawn_blocking(move || crate::hot_config::write_plan(&location, plan))
                .await
                .map_err(|e| AdminError::Internal(e.to_string()))?
                .map_err(|e| AdminError::Refused(e.to_string()))?;
        self.control.nudge_config();
        Ok(PlanSet {
            file: file.display().to_string(),
            plan,
            before,
            current_job: self.control.info().job_id,
        })
    }

    /// Asks the thread to take no new step, for a worker stop (`on`), or calls that off,
    /// recording it for `by`.
    async fn stop_by(&self, on: bool, by: &str) {
        let held = self.journal.hold().await;
        if self.control.set_stop(on) {
            let what = Happening::Stop {
                by: by.to_owned(),
                on,
            };
            held.record(self.control.sector(), Some(what)).await;
        }
    }

    /// The last `limit` entries of the thread's history, oldest first.
    pub async fn events(&self, limit: usize) -> Result<Vec<JournalEntry>, AdminError> {
        self.journal
            .read(limit)
            .await
            .map_err(|e| AdminError::Internal(e.to_string()))
    }

    /// Records on the runtime, for the synchronous calls.
    fn record_in_background(&self, what: Option<Happening>) {
        if let Some(what) = what {
            let journal = self.journal.clone();
            let sector = self.control.sector();
            self.runtime
                .spawn(async move { journal.record(sector, what).await });
        }
    }
}

/// The history entry of a pause, when it changed something.
fn paused(outcome: PauseOutcome, by: &str) -> Option<Happening> {
    match outcome {
        PauseOutcome::Paused => Some(Happening::Paused {
            by: Some(by.to_owned()),
            reason: None,
        }),
        PauseOutcome::Requested => Some(Happening::PauseRequested { by: by.to_owned() }),
        PauseOutcome::AlreadyPaused | PauseOutcome::Delivered => None,
    }
}

/// The history entry of a resume, when it changed something.
fn resumed(outcome: &ResumeOutcome, by: &str) -> Option<Happening> {
    match outcome {
        ResumeOutcome::Resumed { state } => Some(Happening::Resumed {
            by: by.to_owned(),
            state: *state,
        }),
        ResumeOutcome::PauseCalledOff => Some(Happening::PauseCalledOff { by: by.to_owned() }),
        ResumeOutcome::NotPaused => None,
    }
}

/// The synchronous calls write their history entry in the background, naming
/// [`IN_PROCESS`] as who asked; callers that can await use [`ThreadHandle::pause_by`] and
/// its siblings, which return once the entry is written.
impl SealingThread for ThreadHandle {
    fn index(&self) -> usize {
        self.control.index()
    }

    fn info(&self) -> ThreadInfo {
        self.control.info()
    }

    fn pause(&self) -> PauseOutcome {
        let outcome = self.control.pause(IN_PROCESS);
        self.record_in_background(paused(outcome, IN_PROCESS));
        outcome
    }

    fn resume(&self, state: Option<&str>) -> Result<ResumeOutcome, AdminError> {
        let outcome = self.control.resume(state)?;
        self.record_in_background(resumed(&outcome, IN_PROCESS));
        Ok(outcome)
    }
}

/// A worker: its sealing threads, each an async task on the current tokio runtime. The
/// threads run until [`Worker::shutdown`] or until the worker is dropped.
///
/// [`Worker::start`] takes one [`ThreadContext`] per thread (location, plan, options,
/// manager, state store, stage limits, attached stores, piece source). Here two threads
/// over a mock chain with nothing to seal, paused and resumed in process:
///
/// ```
/// use damocles_core::{PauseOutcome, ResumeOutcome, SealingThread, ThreadState};
/// use damocles_sealing::mock_chain::idle_worker;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let dir = tempfile::tempdir()?;
/// let worker = idle_worker(dir.path(), 2, "v-doc").await?;
/// assert!(worker.list().iter().all(|t| t.thread_state == ThreadState::Idle));
///
/// let thread = worker.thread(1)?;
/// assert_eq!(thread.pause(), PauseOutcome::Paused);
/// assert!(matches!(worker.list()[1].thread_state, ThreadState::Paused { .. }));
/// assert!(matches!(thread.resume(None), Ok(ResumeOutcome::Resumed { state: None })));
///
/// // Every record saved and every state database let go when this returns.
/// worker.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Worker {
    threads: Vec<ThreadHandle>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    version: String,
    changes: Arc<watch::Sender<u64>>,
    metrics: Arc<WorkerMetrics>,
    /// Locks on the threads' locations, let go once the threads have stopped.
    locks: Mutex<Vec<LocationLock>>,
    /// A stop asked for over the admin API (`Graceful` or `Now`).
    stop: Mutex<Option<StopMode>>,
}

impl Worker {
    /// Starts one thread per context, indexed in order.
    pub fn start(contexts: Vec<ThreadContext>, version: impl Into<String>) -> Self {
        let changes = Arc::new(watch::Sender::new(0));
        let mut metrics = WorkerMetrics::default();
        // Threads assembled from one configuration share one set of processors.
        if let Some(ctx) = contexts.first() {
            metrics.register_processors(&ctx.processors);
        }
        let metrics = Arc::new(metrics);
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
            let journal = Journal::new(index, ctx.store.clone());
            tasks.push(tokio::spawn(thread::run(
                ctx,
                control.clone(),
                journal.clone(),
            )));
            threads.push(ThreadHandle {
                control,
                journal,
                runtime: tokio::runtime::Handle::current(),
            });
        }
        Self {
            threads,
            tasks: Mutex::new(tasks),
            version: version.into(),
            changes,
            metrics,
            locks: Mutex::default(),
            stop: Mutex::default(),
        }
    }

    /// Stops the worker (see [`StopMode`]) or calls a pending stop off, for `by`; the
    /// process that runs the worker waits for [`Worker::stop_asked`] and exits.
    pub async fn request_stop(&self, mode: StopMode, by: &str) -> StopOutcome {
        let pending = *lock(&self.stop);
        let outcome = match (mode, pending) {
            // Too late to call off or change: the process is exiting.
            (_, Some(StopMode::Now)) => return StopOutcome::Exiting,
            (StopMode::Cancel, None | Some(StopMode::Cancel)) => return StopOutcome::NotStopping,
            (StopMode::Cancel, Some(_)) => StopOutcome::Cancelled,
            (StopMode::Now, _) => StopOutcome::Exiting,
            (StopMode::Graceful, Some(_)) => {
                return StopOutcome::AlreadyStopping {
                    busy: self.finishing(),
                }
            }
            (StopMode::Graceful, None) => StopOutcome::Stopping { busy: 0 },
        };
        *lock(&self.stop) = (mode != StopMode::Cancel).then_some(mode);
        for thread in &self.threads {
            thread.stop_by(mode != StopMode::Cancel, by).await;
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        match outcome {
            StopOutcome::Stopping { .. } => {
                self.log_waited_for(by);
                StopOutcome::Stopping {
                    busy: self.finishing(),
                }
            }
            other => other,
        }
    }

    /// Logs what a graceful stop waits for: each thread in a proof call or holding a
    /// WindowPoSt job, with its job, state and processor.
    fn log_waited_for(&self, by: &str) {
        let waited: Vec<String> = self
            .threads
            .iter()
            .filter(|t| t.control.finishing_before_stop())
            .map(|t| {
                let info = t.info();
                let job = info.job_id.as_deref().unwrap_or("no job");
                let state = info.job_state.map(|s| s.to_string()).unwrap_or_default();
                match (&info.thread_state, info.job_stage) {
                    // `builtin C2` names its stage; `ext(pid: N)` does not.
                    (
                        ThreadState::Running {
                            proc: Some(proc), ..
                        },
                        Some(stage),
                    ) if proc.starts_with("ext(") => {
                        format!(
                            "thread {} ({job} at {state}, {stage} in {proc})",
                            info.index
                        )
                    }
                    (
                        ThreadState::Running {
                            proc: Some(proc), ..
                        },
                        _,
                    ) => format!("thread {} ({job} at {state}, in {proc})", info.index),
                    _ => format!("thread {} ({job} at {state})", info.index),
                }
            })
            .collect();
        if waited.is_empty() {
            tracing::info!("stop requested by {by}: every thread is at rest");
        } else {
            tracing::info!(
                "stop requested by {by}: waiting for {} to finish its step",
                waited.join(", ")
            );
        }
    }

    /// Threads a stop waits for: in a proof call, or holding a WindowPoSt job (the
    /// others park at once).
    fn finishing(&self) -> usize {
        self.threads
            .iter()
            .filter(|t| t.control.finishing_before_stop())
            .count()
    }

    /// Threads not at rest: in a step, not parked for a stop nor paused.
    fn busy(&self) -> usize {
        self.threads.iter().filter(|t| !t.control.at_rest()).count()
    }

    /// Resolves when a stop asked for should end the process: `Now` at once, `Graceful`
    /// once every thread is at rest (its record saved, no proof call in flight).
    pub async fn stop_asked(&self) -> StopMode {
        let mut changes = self.subscribe();
        loop {
            match *lock(&self.stop) {
                Some(StopMode::Now) => return StopMode::Now,
                Some(StopMode::Graceful) if self.busy() == 0 => return StopMode::Graceful,
                _ => {}
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Keeps `locks` (on the threads' locations) until the threads have stopped: at the
    /// end of [`Worker::shutdown`], or once they stop after the worker is dropped.
    pub fn hold_until_stopped(&self, locks: Vec<LocationLock>) {
        lock(&self.locks).extend(locks);
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
        let threads: Vec<ThreadSample> = self
            .threads
            .iter()
            .map(|t| ThreadSample {
                info: t.control.info(),
                in_state: t.control.job_state_elapsed(),
            })
            .collect();
        self.metrics.render(&threads)
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
    /// them. Every record is persisted and every state database released when this
    /// returns (so the same locations can be opened again). Later calls return at once.
    pub async fn shutdown(&self) {
        for thread in &self.threads {
            thread.control.stop();
        }
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            let _ = task.await;
        }
        for thread in &self.threads {
            thread.journal.close().await;
        }
        lock(&self.locks).clear();
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

/// Dropping a worker stops its threads, each at its next wait or after its current proof
/// call (whose result is persisted first), without waiting for them: a worker cannot be
/// forgotten running. Its locations stay locked until the threads have stopped.
/// [`Worker::shutdown`] also waits, and releases the state databases before it returns.
impl Drop for Worker {
    fn drop(&mut self) {
        for thread in &self.threads {
            thread.control.stop();
        }
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        let locks = std::mem::take(&mut *lock(&self.locks));
        if let (false, Ok(runtime)) = (locks.is_empty(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                for task in tasks {
                    let _ = task.await;
                }
                drop(locks);
            });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl AdminTransport for Worker {
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError> {
        Ok(Worker::list(self))
    }

    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError> {
        self.on_behalf_of(IN_PROCESS).pause(index).await
    }

    async fn resume(&self, index: u64, state: Option<String>) -> Result<ResumeOutcome, AdminError> {
        self.on_behalf_of(IN_PROCESS).resume(index, state).await
    }

    async fn version(&self) -> Result<String, AdminError> {
        Ok(self.version.clone())
    }

    async fn drain(&self, index: u64, on: bool) -> Result<DrainOutcome, AdminError> {
        self.on_behalf_of(IN_PROCESS).drain(index, on).await
    }

    async fn set_plan(&self, index: u64, plan: Plan) -> Result<PlanSet, AdminError> {
        self.thread(index)?.set_plan(plan).await
    }

    async fn stop(&self, mode: StopMode) -> Result<StopOutcome, AdminError> {
        Ok(self.request_stop(mode, IN_PROCESS).await)
    }

    fn on_behalf_of<'a>(&'a self, by: &str) -> Box<dyn AdminTransport + 'a> {
        Box::new(OnBehalf {
            worker: self,
            by: by.to_owned(),
        })
    }

    async fn events(&self, index: u64, limit: usize) -> Result<Vec<JournalEntry>, AdminError> {
        self.thread(index)?.events(limit).await
    }
}

/// A worker acting for one caller ([`AdminTransport::on_behalf_of`]): its pauses,
/// resumes and drains are recorded in the threads' histories as the caller's.
struct OnBehalf<'a> {
    worker: &'a Worker,
    by: String,
}

#[async_trait]
impl AdminTransport for OnBehalf<'_> {
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError> {
        Ok(self.worker.list())
    }

    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError> {
        Ok(self.worker.thread(index)?.pause_by(&self.by).await)
    }

    async fn resume(&self, index: u64, state: Option<String>) -> Result<ResumeOutcome, AdminError> {
        let thread = self.worker.thread(index)?;
        thread.resume_by(state.as_deref(), &self.by).await
    }

    async fn version(&self) -> Result<String, AdminError> {
        Ok(self.worker.version.clone())
    }

    async fn drain(&self, index: u64, on: bool) -> Result<DrainOutcome, AdminError> {
        Ok(self.worker.thread(index)?.drain_by(on, &self.by).await)
    }

    async fn set_plan(&self, index: u64, plan: Plan) -> Result<PlanSet, AdminError> {
        self.worker.thread(index)?.set_plan(plan).await
    }

    async fn stop(&self, mode: StopMode) -> Result<StopOutcome, AdminError> {
        Ok(self.worker.request_stop(mode, &self.by).await)
    }

    fn on_behalf_of<'b>(&'b self, by: &str) -> Box<dyn AdminTransport + 'b> {
        self.worker.on_behalf_of(by)
    }

    async fn events(&self, index: u64, limit: usize) -> Result<Vec<JournalEntry>, AdminError> {
        self.worker.thread(index)?.events(limit).await
    }
}
