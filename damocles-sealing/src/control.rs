//! The control block shared by a sealing thread and those who manage it: what `list`
//! shows, and the pause and resume requests.
//!
//! Pause takes effect at once in any wait (slot, retry sleep, polling, idle); during a
//! proof call it is recorded as requested and applied when the call has returned and its
//! result is persisted.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use damocles_core::{
    AdminError, PauseOutcome, Plan, PlanState, ResumeOutcome, Stage, ThreadInfo, ThreadState,
};
use tokio::sync::{watch, Notify};

use crate::resume::ResumeFacts;

/// What the thread is doing (shown unless it is paused), with the instant it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Activity {
    Idle,
    Running { proc: Option<String> },
    Waiting,
}

#[derive(Debug)]
pub(crate) struct ControlState {
    pub location: String,
    pub plan: Plan,
    pub job_id: Option<String>,
    pub job_state: Option<PlanState>,
    pub job_stage: Option<Stage>,
    pub activity: Activity,
    pub since: Instant,
    pub paused_since: Instant,
    /// When the job entered its current state.
    pub state_since: Instant,
    /// The configured stuck limit.
    pub stuck_after: Option<Duration>,
    pub last_error: Option<String>,
    /// The last error a resume cleared: what a resume at `Aborted` reports as the reason.
    pub cleared_error: Option<String>,
    /// Paused, or pausing: the thread must stop at its next wait.
    pub paused: bool,
    /// A pause asked for during a proof call, with who asked for it.
    pub pause_requested: Option<String>,
    pub in_proof_call: bool,
    /// A resume waiting to be picked up by the thread, with its state.
    pub resume: Option<Option<PlanState>>,
    /// Takes no new sector.
    pub draining: bool,
    /// A drain or undrain the thread has not persisted yet.
    pub drain_changed: bool,
    pub stopping: bool,
    /// What a resume at a chosen state is checked against: the thread's record as of its
    /// last transition.
    pub resume_facts: Option<ResumeFacts>,
    /// What a wdpost thread holds (resume checks).
    pub wdpost_facts: crate::resume::WdPostFacts,
    /// Why an idle thread has no sector (the manager cannot be reached), shown as its
    /// last error while it idles.
    pub idle_reason: Option<String>,
    /// The plan the hot config names for the next job, when it differs from `plan`.
    pub pending_plan: Option<Plan>,
    /// Why the hot config is not used.
    pub config_error: Option<String>,
    /// The hot config was written: the thread reads it at its next step boundary.
    pub config_nudge: bool,
    /// A worker stop was asked for: the thread takes no new step.
    pub stop_requested: bool,
    /// The thread holds work it finishes before it stops (a WindowPoSt job).
    pub must_finish: bool,
    /// Parked for the stop, since when.
    pub parked: Option<Instant>,
}

/// The shared control block of one thread.
#[derive(Debug)]
pub struct Control {
    index: usize,
    state: Mutex<ControlState>,
    notify: Notify,
    /// Shared by all threads of a worker: bumped on every change `list` would show.
    changes: Arc<watch::Sender<u64>>,
    /// Shared by all threads of a worker.
    metrics: Arc<crate::metrics::WorkerMetrics>,
}

/// A wait that was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// The thread was paused.
    Paused,
    /// The worker is shutting down.
    Stopping,
}

impl Control {
    pub(crate) fn new(
        index: usize,
        location: String,
        plan: Plan,
        changes: Arc<watch::Sender<u64>>,
        metrics: Arc<crate::metrics::WorkerMetrics>,
    ) -> Self {
        Self {
            index,
            state: Mutex::new(ControlState {
                location,
                plan,
                job_id: None,
                job_state: None,
                job_stage: None,
                activity: Activity::Idle,
                since: Instant::now(),
                paused_since: Instant::now(),
                state_since: Instant::now(),
                stuck_after: None,
                last_error: None,
                cleared_error: None,
                paused: false,
                pause_requested: None,
                in_proof_call: false,
                resume: None,
                draining: false,
                drain_changed: false,
                stopping: false,
                resume_facts: None,
                wdpost_facts: Default::default(),
                idle_reason: None,
                pending_plan: None,
                config_error: None,
                config_nudge: false,
                stop_requested: false,
                must_finish: false,
                parked: None,
            }),
            notify: Notify::new(),
            changes,
            metrics,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the thread's own waits and tells observers that what `list` shows changed.
    fn changed(&self) {
        self.notify.notify_waiters();
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The worker's metrics.
    pub(crate) fn metrics(&self) -> &crate::metrics::WorkerMetrics {
        &self.metrics
    }

    /// The thread's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// What `worker list` shows for the thread.
    pub fn info(&self) -> ThreadInfo {
        let s = self.lock();
        let elapsed = s.since.elapsed().as_secs();
        let thread_state = match &s.activity {
            _ if s.paused => ThreadState::Paused {
                elapsed: s.paused_since.elapsed().as_secs(),
            },
            _ if s.parked.is_some() => ThreadState::Paused {
                elapsed: s.parked.map_or(0, |at| at.elapsed().as_secs()),
            },
            Activity::Idle => ThreadState::Idle,
            Activity::Waiting => ThreadState::Waiting { elapsed },
            Activity::Running { proc } => ThreadState::Running {
                elapsed,
                proc: proc.clone(),
            },
        };
        ThreadInfo {
            index: self.index,
            location: s.location.clone(),
            plan: s.plan,
            job_id: s.job_id.clone(),
            job_state: s.job_state,
            job_stage: s.job_stage,
            thread_state,
            last_error: s.last_error.clone().or_else(|| {
                (!s.paused && matches!(s.activity, Activity::Idle | Activity::Waiting))
                    .then(|| s.idle_reason.clone())
                    .flatten()
            }),
            pause_requested: s.pause_requested.is_some(),
            draining: s.draining,
            stuck: !s.paused && self.is_stuck(&s),
            pending_plan: s.pending_plan,
            config_error: s.config_error.clone(),
            stopping: s.stop_requested,
            as_sent: Default::default(),
        }
    }

    /// Pauses the thread (idempotent) on behalf of `by`.
    pub fn pause(&self, by: &str) -> PauseOutcome {
        let outcome = {
            let mut s = self.lock();
            if s.paused {
                PauseOutcome::AlreadyPaused
            } else if s.pause_requested.is_some() {
                // Still requested (not paused yet): said again, so that nobody reads it
                // as paused.
                PauseOutcome::Requested
            } else if s.in_proof_call {
                s.pause_requested = Some(by.to_owned());
                PauseOutcome::Requested
            } else {
                // A resume the thread has not picked up yet is superseded by this pause.
                s.resume = None;
                s.paused = true;
                s.paused_since = Instant::now();
                PauseOutcome::Paused
            }
        };
        self.changed();
        outcome
    }

    /// Resumes a paused thread, optionally at `state` (checked against its plan).
    pub fn resume(&self, state: Option<&str>) -> Result<ResumeOutcome, AdminError> {
        let outcome = {
            let mut s = self.lock();
            let target = state.map(|name| s.plan.parse_state(name)).transpose()?;
            if let (true, Some(PlanState::Sector(wanted)), Some(facts)) =
                (s.paused, target, &s.resume_facts)
            {
                crate::resume::check(facts, wanted).map_err(|reason| {
                    AdminError::ResumeRefused {
                        index: self.index as u64,
                        state: Some(PlanState::Sector(wanted)),
                        reason: reason.to_string(),
                    }
                })?;
            }
            if let (true, Some(PlanState::WdPost(wanted))) = (s.paused, target) {
                crate::resume::check_wdpost(s.wdpost_facts, wanted).map_err(|reason| {
                    AdminError::ResumeRefused {
                        index: self.index as u64,
                        state: target,
                        reason: reason.to_string(),
                    }
                })?;
            }
            if !s.paused {
                if s.pause_requested.is_some() && target.is_some() {
                    // Its proof call's result is not saved yet: a state now would be
                    // checked against a record about to change.
                    return Err(AdminError::ResumeRefused {
                        index: self.index as u64,
                        state: target,
                        reason: "its pause is still pending (it is in a proof call); resume \
                                 at a state once it shows Paused, or resume without a state \
                                 to call the pause off"
                            .into(),
                    });
                }
                if s.pause_requested.is_some() && target.is_none() {
                    // The pause asked for during a proof call is called off.
                    s.pause_requested = None;
                    drop(s);
                    self.changed();
                    return Ok(ResumeOutcome::PauseCalledOff);
                }
                return Ok(ResumeOutcome::NotPaused);
            }
            // Shown as resumed at once (with what the thread is doing); a pending resume
            // interrupts the thread's current wait, so it is picked up at once even by a
            // thread that had not yet seen the pause.
            s.resume = Some(target);
            s.paused = false;
            s.cleared_error = s.last_error.take();
            ResumeOutcome::Resumed { state: target }
        };
        self.changed();
        Ok(outcome)
    }

    /// Drains the thread (`on`) or lifts the drain; the thread persists the change at once.
    pub fn drain(&self, on: bool) -> damocles_core::DrainOutcome {
        use damocles_core::DrainOutcome;
        let outcome = {
            let mut s = self.lock();
            let outcome = match (s.draining, on) {
                (false, true) => DrainOutcome::Draining,
                (true, true) => DrainOutcome::AlreadyDraining,
                (true, false) => DrainOutcome::Undrained,
                (false, false) => DrainOutcome::NotDraining,
            };
            if s.draining != on {
                s.draining = on;
                s.drain_changed = true;
            }
            outcome
        };
        self.changed();
        outcome
    }

    /// Whether the job has been in its state longer than the configured limit, or than
    /// ten times the median of its stage's recent proof calls (three calls measured at
    /// least, and never under ten minutes).
    fn is_stuck(&self, s: &ControlState) -> bool {
        if s.job_id.is_none() {
            return false;
        }
        let elapsed = s.state_since.elapsed();
        if s.stuck_after.is_some_and(|limit| elapsed > limit) {
            return true;
        }
        let Some(stage) = s.job_stage.and_then(|stage| stage.proof_stage()) else {
            return false;
        };
        self.metrics
            .recent_median(stage, 3)
            .is_some_and(|median| elapsed > (median * 10).max(Duration::from_secs(600)))
    }

    /// How long the thread's job has been in its current state (`None` between jobs, and
    /// in `Empty` before a sector is allocated).
    pub(crate) fn job_state_elapsed(&self) -> Option<Duration> {
        let s = self.lock();
        (s.job_id.is_some() && s.job_state.is_some()).then(|| s.state_since.elapsed())
    }

    /// The id of the thread's sector, if it has one.
    pub(crate) fn sector(&self) -> Option<String> {
        self.lock().job_id.clone()
    }

    /// Sets the configured stuck limit.
    pub(crate) fn set_stuck_after(&self, limit: Option<Duration>) {
        self.lock().stuck_after = limit;
    }

    /// Whether the thread takes no new sector.
    pub(crate) fn is_draining(&self) -> bool {
        self.lock().draining
    }

    /// Sets the drain read from the record at start.
    pub(crate) fn restore_drain(&self, on: bool) {
        self.lock().draining = on;
        self.changed();
    }

    /// A drain change to persist, once.
    pub(crate) fn take_drain_change(&self) -> Option<bool> {
        let mut s = self.lock();
        std::mem::take(&mut s.drain_changed).then_some(s.draining)
    }

    pub(crate) fn set_activity(&self, activity: Activity) {
        {
            let mut s = self.lock();
            if s.activity == activity {
                return;
            }
            s.activity = activity;
            s.since = Instant::now();
        }
        self.changed();
    }

    /// Whether the thread must stop and wait for (or pick up) a resume.
    /// Whether the thread is paused (or pausing at its next wait).
    pub(crate) fn is_paused(&self) -> bool {
        self.lock().paused
    }

    pub(crate) fn must_wait(&self) -> bool {
        let s = self.lock();
        s.paused || s.resume.is_some()
    }

    pub(crate) fn stop(&self) {
        self.lock().stopping = true;
        self.changed();
    }

    pub(crate) fn interrupt(&self) -> Option<Interrupt> {
        let s = self.lock();
        if s.stopping {
            Some(Interrupt::Stopping)
        } else if s.paused
            || s.resume.is_some()
            || s.drain_changed
            || s.config_nudge
            || (s.stop_requested && !s.must_finish)
        {
            Some(Interrupt::Paused)
        } else {
            None
        }
    }

    /// Waits until the thread is paused or stopping.
    pub(crate) async fn interrupted(&self) -> Interrupt {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(interrupt) = self.interrupt() {
                return interrupt;
            }
            notified.await;
        }
    }

    /// Runs `future` unless the thread is paused or stopped first.
    pub(crate) async fn interruptible<T>(
        &self,
        future: impl Future<Output = T>,
    ) -> Result<T, Interrupt> {
        tokio::select! {
            biased;
            interrupt = self.interrupted() => Err(interrupt),
            value = future => Ok(value),
        }
    }

    /// Runs a call that hands this thread a job (`Allocate*`), which is never interrupted:
    /// dropped midway, the job the manager handed out would be held by nobody. A pause or
    /// stop asked meanwhile waits for the call (at most the RPC client's request timeout,
    /// 30 s by default); when `holds_job` says no job came it applies now (`Err`), else
    /// once the job is recorded, at the next step.
    pub(crate) async fn job_call<T>(
        &self,
        call: impl Future<Output = T>,
        holds_job: impl FnOnce(&T) -> bool,
    ) -> Result<T, Interrupt> {
        let answer = call.await;
        match self.interrupt() {
            Some(interrupt) if !holds_job(&answer) => Err(interrupt),
            _ => Ok(answer),
        }
    }

    /// Sleeps unless interrupted.
    pub(crate) async fn sleep(&self, duration: Duration) -> Result<(), Interrupt> {
        if let Some(interrupt) = self.interrupt() {
            return Err(interrupt);
        }
        if duration.is_zero() {
            return Ok(());
        }
        self.interruptible(tokio::time::sleep(duration)).await
    }

    /// Marks the start of a proof call: a pause now is only requested.
    pub(crate) fn enter_proof_call(&self, proc: &str) {
        {
            let mut s = self.lock();
            s.in_proof_call = true;
            s.activity = Activity::Running {
                proc: Some(proc.to_owned()),
            };
            s.since = Instant::now();
        }
        self.changed();
    }

    /// Marks the end of a proof call. A pause requested meanwhile stays requested until
    /// [`Control::apply_requested_pause`], which the thread calls once the call's result is
    /// persisted.
    pub(crate) fn leave_proof_call(&self) {
        {
            let mut s = self.lock();
            s.in_proof_call = false;
            s.activity = Activity::Running { proc: None };
        }
        self.changed();
    }

    /// Turns a pause requested during a proof call into a pause; returns who asked for
    /// it when it did.
    pub(crate) fn apply_requested_pause(&self) -> Option<String> {
        let by = {
            let mut s = self.lock();
            if s.in_proof_call {
                return None;
            }
            let by = s.pause_requested.take()?;
            s.paused = true;
            s.paused_since = Instant::now();
            by
        };
        self.changed();
        Some(by)
    }

    /// Pauses the thread because of a failure.
    pub(crate) fn pause_with_error(&self, error: Option<String>) {
        {
            let mut s = self.lock();
            if !s.paused {
                s.paused = true;
                s.paused_since = Instant::now();
            }
            s.pause_requested = None;
            if error.is_some() {
                s.last_error = error;
            }
        }
        self.changed();
    }

    /// Waits while paused; returns the resume's state (`None`: re-run the current one), or
    /// `Err` when stopping or when a drain changed (for the thread to persist it).
    pub(crate) async fn wait_resume(&self) -> Result<Option<PlanState>, Interrupt> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.stopping {
                    return Err(Interrupt::Stopping);
                }
                if let Some(target) = s.resume.take() {
                    return Ok(target);
                }
                if s.drain_changed {
                    return Err(Interrupt::Paused);
                }
                if s.activity != Activity::Idle {
                    s.activity = Activity::Idle;
                    s.since = Instant::now();
                }
            }
            notified.await;
        }
    }

    /// Says why the idle thread has no sector (`None`: it has one, or the manager simply
    /// had none to give); returns whether that changed.
    pub(crate) fn set_idle_reason(&self, reason: Option<String>) -> bool {
        let changed = {
            let mut s = self.lock();
            let changed = s.idle_reason != reason;
            s.idle_reason = reason;
            changed
        };
        if changed {
            self.changed();
        }
        changed
    }

    /// The plan of the thread's current job.
    pub(crate) fn plan(&self) -> Plan {
        self.lock().plan
    }

    /// Keeps what a resume of a wdpost thread at a chosen state is checked against.
    pub(crate) fn set_wdpost_facts(&self, facts: crate::resume::WdPostFacts) {
        self.lock().wdpost_facts = facts;
    }

    /// Keeps what a resume at a chosen state is checked against.
    pub(crate) fn set_resume_facts(&self, facts: ResumeFacts) {
        self.lock().resume_facts = Some(facts);
    }

    pub(crate) fn set_job(&self, plan: Plan, job_id: Option<String>, job_state: Option<PlanState>) {
        {
            let mut s = self.lock();
            if s.job_state != job_state || s.job_id != job_id {
                s.state_since = Instant::now();
            }
            s.plan = plan;
            s.job_id = job_id;
            s.job_state = job_state;
            s.job_stage = job_state.map(|state| state.stage(plan));
        }
        self.changed();
    }
}

mod operator;
#[cfg(test)]
mod tests;
