//! What a thread runs with and how its steps call out: [`ThreadContext`] (everything a
//! thread needs), the `Runner` a plan's steps get (proof calls on blocking threads under
//! the stage limits, processor calls, interruptible manager calls, pauses and failures
//! recorded in the thread's history) and `Stop`, why a step gave no outcome. It knows no
//! plan and no driver: `plans` and `thread` build on it.

use std::sync::Arc;
use std::time::Duration;

use damocles_core::{Failure, Happening, Plan, ProofStage, SectorManager, StateStore};

pub use crate::config::AttachedStore;
use crate::control::{Activity, Control, Interrupt};
use crate::hot_config::{HotConfig, Reload};
use crate::journal::Journal;
use crate::limits::StageLimits;
use crate::options::SealingOptions;
use crate::params::Circuit;
use crate::pieces::PieceSource;
use crate::priority::PostPriority;
use crate::processors::{ProcessorTask, Processors};
use crate::store::Location;

/// Everything a thread needs.
#[derive(Clone)]
pub struct ThreadContext {
    /// The worker's instance name, for reports.
    pub worker_name: String,
    /// The thread's location.
    pub location: Location,
    /// The plan of new sectors.
    pub plan: Plan,
    /// Its options.
    pub options: SealingOptions,
    /// The manager.
    pub manager: Arc<dyn SectorManager>,
    /// Its state store.
    pub store: Arc<dyn StateStore>,
    /// Stage limits shared with the other threads.
    pub limits: StageLimits,
    /// The external processors shared with the other threads (none: all in-process).
    pub processors: Processors,
    /// WindowPoSt's priority over sealing, shared with the other threads (off: the
    /// default).
    pub priority: PostPriority,
    /// Where sealed files are persisted.
    pub attached: Vec<AttachedStore>,
    /// Where deal pieces are read from.
    pub pieces: PieceSource,
}

/// How often a thread waiting for parameters looks again.
const PARAMS_POLL: Duration = Duration::from_secs(2);

/// The shortest wait between two idle rounds (no sector to take, or nothing to do yet).
pub(crate) const IDLE_FLOOR: Duration = Duration::from_millis(100);

/// A record field a step needs; its absence aborts the sector (the original's
/// `field_required!`).
pub(crate) fn required<T>(value: Option<T>, name: &str) -> Result<T, Failure> {
    value.ok_or_else(|| Failure::abort(format!("{name} is required")))
}

/// Runs `work` on a blocking thread; a panic is a critical failure naming `what`.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Failure::critical(format!("{what} panicked: {e}")))?
}

/// Why a step did not produce an outcome.
pub(crate) enum Stop {
    /// It failed; the runner acts on the failure's level.
    Failed(Failure),
    /// Paused or stopping: the runner looks at the control again.
    Interrupted,
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Stop::Failed(failure)
    }
}

impl From<Interrupt> for Stop {
    fn from(_: Interrupt) -> Self {
        Stop::Interrupted
    }
}

/// A thread's handle on what it runs with: its context, its control and its history. The
/// sector driver ([`crate::thread`]) and the wdpost driver (`plans::wdpost`) loop with it;
/// a plan's steps call proofs, processors and the manager through it.
pub(crate) struct Runner {
    pub(crate) ctx: ThreadContext,
    pub(crate) control: Arc<Control>,
    pub(crate) journal: Journal,
}

impl Runner {
    /// Reads the thread's hot config, at a step boundary. At the start of a job
    /// (`at_job_start`: the thread holds none) the settings it names become the thread's;
    /// otherwise they wait for the next job and `worker list` shows their plan as
    /// pending. A file that cannot be used is recorded once per change, for `job`.
    /// Returns whether the thread's settings changed.
    pub(crate) async fn refresh_config(
        &mut self,
        hot: &mut HotConfig,
        at_job_start: bool,
        job: Option<String>,
    ) -> bool {
        let _ = self.control.take_config_nudge();
        let thread = self.control.index();
        match hot.reload() {
            Reload::Unchanged => {}
            Reload::Changed { warnings, .. } => {
                for warning in warnings {
                    tracing::warn!(thread, "{warning}");
                }
            }
            Reload::Rejected(why) => {
                tracing::warn!(
                    thread,
                    "hot config rejected, previous configuration kept: {why}"
                );
                let rejected = Happening::ConfigRejected { error: why };
                self.journal.record(job.clone(), rejected).await;
            }
        }
        let wanted = hot.wanted().clone();
        let changed = wanted.plan != self.ctx.plan || wanted.options != self.ctx.options;
        let applied = at_job_start && changed;
        if applied {
            tracing::info!(thread, plan = %wanted.plan, "hot config applied to the next job");
            self.ctx.plan = wanted.plan;
            self.ctx.options = wanted.options;
            self.control.set_stuck_after(self.ctx.options.stuck_after);
            let what = Happening::ConfigApplied {
                plan: wanted.plan,
                file: hot.file_present(),
            };
            self.journal.record(job, what).await;
        }
        let pending = (!at_job_start && wanted.plan != self.control.plan()).then_some(wanted.plan);
        self.control
            .set_config_status(pending, hot.error().map(str::to_owned));
        applied
    }

    /// Waits while the parameters of `circuit` are being generated (by the manager beside
    /// this worker on a first run, or by `params generate`): the thread shows Waiting and
    /// says why as its last error. Returns at once when they are there, or when they are
    /// missing and nobody generates them (the proof call then fails naming the file).
    pub(crate) async fn wait_for_params(&self, circuit: Circuit) -> Result<(), Stop> {
        if circuit.present() || !circuit.being_generated() {
            return Ok(());
        }
        let why = format!("waiting for the {circuit} parameters, being generated");
        tracing::info!(thread = self.control.index(), "{why}");
        self.control.set_activity(Activity::Waiting);
        self.control.set_idle_reason(Some(why));
        while !circuit.present() && circuit.being_generated() {
            self.control.sleep(PARAMS_POLL).await?;
        }
        self.control.set_idle_reason(None);
        Ok(())
    }

    /// Applies a pause an operator asked for during a proof call, recording it for `job`
    /// (the sector or wdpost job the thread holds).
    pub(crate) async fn apply_requested_pause(&self, job: Option<String>) {
        let held = self.journal.hold().await;
        if let Some(by) = self.control.apply_requested_pause() {
            let paused = Happening::Paused {
                by: Some(by),
                reason: None,
            };
            held.record(job, Some(paused)).await;
        }
    }

    /// Pauses the thread on its own after `failure`, recording why for `job`.
    pub(crate) async fn pause_on(&self, job: Option<String>, failure: &Failure) {
        tracing::warn!(thread = self.control.index(), "pausing: {failure}");
        let reason = failure.to_string();
        // Held across the change, so that a resume it lets in is recorded after it.
        let held = self.journal.hold().await;
        self.control.pause_with_error(Some(reason.clone()));
        let paused = Happening::Paused {
            by: None,
            reason: Some(reason),
        };
        held.record(job, Some(paused)).await;
    }

    /// Records `failure` of `job` as the thread acts on it (`retry`: the retry about to
    /// be made, for a temporary one).
    pub(crate) async fn record_failure_of(
        &self,
        job: Option<String>,
        failure: &Failure,
        retry: Option<u32>,
    ) {
        let failed = Happening::Failed {
            level: failure.level,
            message: failure.message.clone(),
            retry,
        };
        self.journal.record(job, failed).await;
    }

    /// Waits for a slot of `stage` where it is limited, then, for a stage that yields to
    /// WindowPoSt, until no job is being proven (showing Waiting; a pause interrupts
    /// either wait).
    async fn stage_slot(
        &self,
        stage: ProofStage,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, Stop> {
        let slot = if self.ctx.limits.is_limited(stage) {
            self.control.set_activity(Activity::Waiting);
            let waiting = std::time::Instant::now();
            let slot = self
                .control
                .interruptible(self.ctx.limits.acquire(stage))
                .await?;
            self.control
                .metrics()
                .record_slot_wait(stage, waiting.elapsed());
            slot
        } else {
            None
        };
        let priority = &self.ctx.priority;
        if priority.yields(stage) && priority.proving_now() > 0 {
            self.control.set_activity(Activity::Waiting);
            tracing::info!(
                thread = self.control.index(),
                "{stage} waits: a WindowPoSt job is being proven"
            );
            self.control.interruptible(priority.clear()).await?;
        }
        if let Some(interval) = self.ctx.limits.staggered(stage) {
            self.control.set_activity(Activity::Waiting);
            let waiting = std::time::Instant::now();
            self.control
                .interruptible(self.ctx.limits.staggered_start(stage))
                .await?;
            let started = Happening::StaggeredStart {
                stage,
                interval_ms: interval.as_millis() as u64,
                waited_ms: waiting.elapsed().as_millis() as u64,
            };
            self.journal.record(self.control.sector(), started).await;
        }
        self.control.set_activity(Activity::Running { proc: None });
        Ok(slot)
    }

    /// Runs blocking proof work of `stage` on a blocking thread, holding a slot of it.
    pub(crate) async fn proof_call<T: Send + 'static>(
        &self,
        stage: ProofStage,
        work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Stop> {
        let _slot = self.stage_slot(stage).await?;
        if let Some(interrupt) = self.control.interrupt() {
            return Err(interrupt.into());
        }
        let proc = stage.builtin_proc();
        self.control.enter_proof_call(proc);
        let started = std::time::Instant::now();
        let result = blocking(proc, work).await;
        self.control
            .metrics()
            .record_stage(self.control.plan(), stage, started.elapsed());
        // The result is applied and persisted by `step`; a pause asked for meanwhile
        // takes effect at the top of the thread loop, after that.
        self.control.leave_proof_call();
        Ok(result?)
    }

    /// A processor call of `P`'s stage: `prepare` (here, blocking) gives the task, which
    /// runs in-process or in an external processor (`[[processors.<stage>]]`), and
    /// `finish` (here, blocking) turns its output into the step's result. An external
    /// call waits, interruptibly, for a ready child with a free slot and its locks; once
    /// sent it runs to completion as an in-process call does.
    pub(crate) async fn processor_call<P: ProcessorTask, T: Send + 'static>(
        &self,
        prepare: impl FnOnce() -> Result<P, Failure> + Send + 'static,
        finish: impl FnOnce(P::Output) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Stop> {
        let stage = P::STAGE;
        if !self.ctx.processors.is_external(stage) {
            return self
                .proof_call(stage, move || finish(prepare()?.execute()?))
                .await;
        }
        let _slot = self.stage_slot(stage).await?;
        let task = blocking(stage.builtin_proc(), prepare).await?;
        self.control.set_activity(Activity::Waiting);
        let lease = self
            .control
            .interruptible(self.ctx.processors.lease(stage))
            .await??;
        if let Some(interrupt) = self.control.interrupt() {
            return Err(interrupt.into());
        }
        self.control.enter_proof_call(&lease.proc_name());
        let started = std::time::Instant::now();
        let output = lease.run(&task).await;
        drop(lease);
        self.control
            .metrics()
            .record_stage(self.control.plan(), stage, started.elapsed());
        self.control.leave_proof_call();
        Ok(blocking(stage.builtin_proc(), move || finish(output?)).await?)
    }

    pub(crate) async fn manager_call<T>(
        &self,
        name: &str,
        call: impl std::future::Future<Output = Result<T, damocles_core::ManagerError>>,
    ) -> Result<T, Stop> {
        let result = self.control.interruptible(call).await?;
        result.map_err(|e| Stop::Failed(e.into_failure(name)))
    }
}
