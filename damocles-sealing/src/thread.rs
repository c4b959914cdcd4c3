//! One sealing thread: an async task that drives one job at a time through the plan its
//! record names (the steps are the plan's module in `plans`), persisting the
//! record after every transition, acting on failures by level, with proof calls on
//! blocking threads.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use damocles_core::sealer_api::{ReportFailure, ReportStateReq, StateChange, WorkerIdentifier};
use damocles_core::{
    Event, Failure, FailureLevel, Happening, Plan, PlanState, SectorRecord, State,
};

use crate::control::{Activity, Control, Interrupt};
use crate::hot_config::{HotConfig, ThreadSettings};
use crate::journal::Journal;
use crate::plans::{self, Outcome, StepResult};
use crate::resume::{self, ResumeFacts};
pub use crate::runner::{AttachedStore, ThreadContext};
use crate::runner::{Runner, Stop, IDLE_FLOOR};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn critical_store(e: impl std::fmt::Display) -> Failure {
    Failure::critical(e.to_string())
}

/// The id of the record's sector, as histories name it.
fn sector_of(record: &SectorRecord) -> Option<String> {
    record.sector.map(|s| s.id.to_string())
}

/// Runs a thread until the control says stop. A wdpost thread runs its own driver (its
/// jobs are not sector records), once a sector record its location holds from another
/// plan is finished or dropped under that plan. The thread's hot config
/// (`<location>/config.toml`, [`crate::hot_config`]) may switch it between the two at
/// the start of a job.
pub(crate) async fn run(ctx: ThreadContext, control: Arc<Control>, journal: Journal) {
    let configured = ThreadSettings {
        plan: ctx.plan,
        options: ctx.options.clone(),
    };
    let mut hot = HotConfig::new(ctx.location.root(), configured);
    let mut runner = Runner {
        ctx,
        control,
        journal,
    };
    loop {
        runner.main_loop(&mut hot).await;
        if runner.control.interrupt() == Some(Interrupt::Stopping) {
            return;
        }
        // Handed over: the plan is wdpost, and no sector record is left.
        runner = plans::wdpost::run(runner, &mut hot).await;
        if runner.control.interrupt() == Some(Interrupt::Stopping) {
            return;
        }
    }
}

impl Runner {
    async fn main_loop(&mut self, hot: &mut HotConfig) {
        self.control.set_stuck_after(self.ctx.options.stuck_after);
        let Some(mut record) = self.load().await else {
            return;
        };
        if self.at_job_start(&record) && self.refresh_config(hot, true, None).await {
            record = self.new_record(record.draining);
        }
        if self.hands_over(&record) {
            return;
        }
        self.show(&record);
        self.record(
            &record,
            Happening::Started {
                state: PlanState::Sector(record.state),
                paused: record.paused,
                draining: record.draining,
            },
        )
        .await;
        if record.draining {
            self.control.restore_drain(true);
        }
        if record.paused {
            self.control.pause_with_error(record.last_error.clone());
        }
        loop {
            // First, so that a drain asked for while paused or just before a stop is kept.
            if let Some(on) = self.control.take_drain_change() {
                record.draining = on;
                if let Err(e) = self.save(&record).await {
                    tracing::error!(thread = self.control.index(), "cannot persist drain: {e}");
                }
            }
            if self.control.interrupt() == Some(Interrupt::Stopping) || self.hands_over(&record) {
                return;
            }
            self.apply_requested_pause(sector_of(&record)).await;
            if self.control.must_park() {
                // A worker stop: at a step boundary, the record saved; nothing to persist.
                let _ = self.control.park_for_stop().await;
                continue;
            }
            let at_job_start = self.at_job_start(&record);
            if self
                .refresh_config(hot, at_job_start, sector_of(&record))
                .await
            {
                record = self.new_record(record.draining);
                self.show(&record);
                if self.hands_over(&record) {
                    return;
                }
            }
            if self.control.must_wait() {
                self.persist_pause(&mut record).await;
                match self.control.wait_resume().await {
                    // Stopping, or a drain to persist: the top of the loop sees to both.
                    Err(_) => continue,
                    Ok(target) => {
                        if let Err(failure) = self.resumed(&mut record, target).await {
                            self.pause(&mut record, failure).await;
                            continue;
                        }
                    }
                }
            }
            match self.step(&mut record).await {
                Ok(()) => {}
                Err(Stop::Interrupted) => {}
                Err(Stop::Failed(failure)) => self.handle_failure(&mut record, failure).await,
            }
        }
    }

    /// Loads the thread's record. An unreadable state database pauses the thread with an
    /// error naming the file, touching nothing; each resume tries again. `None`: the
    /// worker is stopping.
    async fn load(&self) -> Option<SectorRecord> {
        // A drain asked for meanwhile, applied once there is a record to keep it in.
        let mut drain = None;
        loop {
            let mut record = match self.ctx.store.load().await {
                Ok(Some(record)) => record,
                Ok(None) => SectorRecord::new(self.ctx.plan),
                Err(e) => {
                    tracing::error!(thread = self.control.index(), "{e}");
                    self.control
                        .pause_with_error(Some(critical_store(e).to_string()));
                    match self.control.wait_resume().await {
                        Err(Interrupt::Stopping) => return None,
                        Err(Interrupt::Paused) => {
                            drain = self.control.take_drain_change().or(drain);
                        }
                        // Resumed: try the database again.
                        Ok(_) => {}
                    }
                    continue;
                }
            };
            if let Some(on) = drain {
                record.draining = on;
                if let Err(e) = self.save(&record).await {
                    tracing::error!(thread = self.control.index(), "cannot persist drain: {e}");
                }
            }
            return Some(record);
        }
    }

    /// Whether the record holds no job yet: the thread's settings may change.
    fn at_job_start(&self, record: &SectorRecord) -> bool {
        record.sector.is_none() && PlanState::Sector(record.state) == record.plan.initial_state()
    }

    /// A record for the next job, under the thread's plan, keeping a drain.
    fn new_record(&self, draining: bool) -> SectorRecord {
        let mut record = SectorRecord::new(self.ctx.plan);
        record.draining = draining;
        record
    }

    /// Whether a wdpost thread is done with sector records: its location holds none
    /// (left from another plan) to finish.
    fn hands_over(&self, record: &SectorRecord) -> bool {
        self.ctx.plan == Plan::Wdpost && record.sector.is_none()
    }

    fn show(&self, record: &SectorRecord) {
        self.control
            .set_resume_facts(ResumeFacts::of(record, self.ctx.location.data_dir()));
        // The empty record a wdpost thread starts with before it hands over shows as
        // its plan's start.
        let state = match record.plan {
            Plan::Wdpost => record.plan.initial_state(),
            _ => PlanState::Sector(record.state),
        };
        self.control.set_job(
            record.plan,
            record.sector.map(|s| s.id.to_string()),
            Some(state),
        );
    }

    async fn save(&self, record: &SectorRecord) -> Result<(), Failure> {
        self.ctx.store.save(record).await.map_err(critical_store)
    }

    /// Adds `what` to the thread's history, for the record's sector.
    async fn record(&self, record: &SectorRecord, what: Happening) {
        self.journal.record(sector_of(record), what).await;
    }

    /// Applies `event` to the record, saves it and records the transition.
    async fn transition(&self, record: &mut SectorRecord, event: Event) -> Result<(), Failure> {
        let from = record.state;
        let kind = event.kind();
        record
            .apply(event, now())
            .map_err(|e| Failure::critical(e.to_string()))?;
        self.save(record).await?;
        self.record(
            record,
            Happening::Transition {
                from: PlanState::Sector(from),
                to: PlanState::Sector(record.state),
                event: kind,
            },
        )
        .await;
        self.show(record);
        Ok(())
    }

    /// Persists that the thread is paused (and why), so a restart keeps it paused.
    async fn persist_pause(&self, record: &mut SectorRecord) {
        let last_error = self.control.lock().last_error.clone();
        if !record.paused || record.last_error != last_error {
            record.paused = true;
            record.last_error = last_error;
            if let Err(e) = self.save(record).await {
                tracing::error!(thread = self.control.index(), "cannot persist pause: {e}");
            }
        }
    }

    async fn resumed(
        &self,
        record: &mut SectorRecord,
        target: Option<PlanState>,
    ) -> Result<(), Failure> {
        if let Some(PlanState::Sector(state)) = target {
            // Checked when the resume was asked for; again here, against the record as it
            // is now (it may have moved since, if the thread had not yet seen its pause).
            let facts = ResumeFacts::of(record, self.ctx.location.data_dir());
            resume::check(&facts, state).map_err(|reason| {
                Failure::permanent(format!("cannot resume at {state}: {reason}"))
            })?;
        }
        record.paused = false;
        // Kept through a resume at Aborted, so that the abort says what stopped the job.
        let cleared = self.control.lock().cleared_error.take();
        record.last_error = None;
        if target == Some(PlanState::Sector(State::Aborted)) {
            record.last_error = cleared;
        }
        if let Some(PlanState::Sector(state)) = target {
            if state != record.state {
                let prev = record.state;
                self.transition(record, Event::SetState(state)).await?;
                self.report(record, prev, None).await?;
                return Ok(());
            }
        }
        self.save(record).await
    }

    async fn pause(&self, record: &mut SectorRecord, failure: Failure) {
        self.pause_on(sector_of(record), &failure).await;
        self.persist_pause(record).await;
    }

    async fn record_failure(&self, record: &SectorRecord, failure: &Failure, retry: Option<u32>) {
        self.record_failure_of(sector_of(record), failure, retry)
            .await;
    }

    async fn handle_failure(&self, record: &mut SectorRecord, failure: Failure) {
        self.control.metrics().record_failure(failure.level);
        match failure.level {
            FailureLevel::Temporary => {
                if record.retry >= self.ctx.options.max_retries {
                    record.retry = 0;
                    let failure = failure.with_level(FailureLevel::Permanent);
                    self.record_failure(record, &failure, None).await;
                    // The manager last heard of it as temporary: told what paused it.
                    if let Err(e) = self.report(record, record.state, Some(&failure)).await {
                        tracing::warn!(thread = self.control.index(), "report state: {e}");
                    }
                    self.pause(record, failure).await;
                    return;
                }
                record.retry += 1;
                self.record_failure(record, &failure, Some(record.retry))
                    .await;
                tracing::warn!(
                    thread = self.control.index(),
                    retry = record.retry,
                    "{failure}; retrying"
                );
                if let Err(e) = self.save(record).await {
                    self.pause(record, e).await;
                    return;
                }
                self.control.set_activity(Activity::Idle);
                let _ = self.control.sleep(self.ctx.options.recover_interval).await;
            }
            FailureLevel::Permanent | FailureLevel::Critical => {
                self.record_failure(record, &failure, None).await;
                self.pause(record, failure).await;
            }
            // The `aborted` entry carries the reason.
            FailureLevel::Abort => self.abort(record, failure.message).await,
        }
    }

    async fn abort(&self, record: &mut SectorRecord, reason: String) {
        tracing::warn!(thread = self.control.index(), "aborting sector: {reason}");
        self.control.metrics().sector_aborted();
        self.record(
            record,
            Happening::Aborted {
                reason: reason.clone(),
            },
        )
        .await;
        if let Some(sector) = record.sector {
            if let Err(e) = self.ctx.manager.report_aborted(sector.id, reason).await {
                tracing::warn!("report aborted: {e}");
            }
        }
        if let Err(failure) = self.finish_sector(record).await {
            self.pause(record, failure).await;
        }
    }

    /// Drops the sector: wipes its files and the record, and starts an empty one.
    async fn finish_sector(&self, record: &mut SectorRecord) -> Result<(), Failure> {
        let location = self.ctx.location.clone();
        tokio::task::spawn_blocking(move || location.clean_data())
            .await
            .map_err(|e| Failure::critical(e.to_string()))?
            .map_err(|e| Failure::critical(e.to_string()))?;
        *record = self.new_record(record.draining);
        if record.draining {
            // Keep the drain: an empty record that says so.
            self.save(record).await?;
        } else {
            self.ctx.store.clear().await.map_err(critical_store)?;
        }
        self.show(record);
        Ok(())
    }

    async fn report(
        &self,
        record: &SectorRecord,
        prev: State,
        failure: Option<&Failure>,
    ) -> Result<(), Failure> {
        let Some(sector) = record.sector else {
            return Ok(());
        };
        let req = ReportStateReq {
            worker: WorkerIdentifier {
                instance: self.ctx.worker_name.clone(),
                location: self.ctx.location.root().display().to_string(),
            },
            state_change: StateChange {
                prev: prev.to_string(),
                next: record.state.to_string(),
                event: "None".into(),
            },
            failure: failure.map(ReportFailure::from),
        };
        match self.ctx.manager.report_state(sector.id, req).await {
            Ok(resp) if resp.finalized => Err(Failure::abort(
                resp.abort_reason
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "task aborted".into()),
            )),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!("report state: {e}");
                Ok(())
            }
        }
    }

    /// Runs the step of the current state and applies its outcome.
    async fn step(&self, record: &mut SectorRecord) -> Result<(), Stop> {
        if let Some(interrupt) = self.control.interrupt() {
            return Err(interrupt.into());
        }
        self.control.set_activity(Activity::Running { proc: None });
        let prev = record.state;
        let outcome = self.exec(record).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(Stop::Failed(failure)) => {
                self.report(record, prev, Some(&failure)).await?;
                return Err(failure.into());
            }
            Err(stop) => return Err(stop),
        };
        match outcome {
            Outcome::Event(event) => {
                self.transition(record, event).await?;
                self.report(record, prev, None).await?;
            }
            Outcome::Idle => {
                // Nothing to do: wait before asking again, never less than IDLE_FLOOR, so
                // that a zero recover_interval does not spin on the manager.
                self.control.set_activity(Activity::Idle);
                self.control
                    .sleep(self.ctx.options.recover_interval.max(IDLE_FLOOR))
                    .await?;
            }
            Outcome::Finished => {
                if let Some(sector) = record.sector {
                    self.ctx
                        .manager
                        .report_finalized(sector.id)
                        .await
                        .map_err(|e| e.into_failure("ReportFinalized"))?;
                }
                self.record(record, Happening::Finished).await;
                self.finish_sector(record).await?;
                self.control.metrics().sector_finished();
                self.control.set_activity(Activity::Idle);
                self.control.sleep(self.ctx.options.seal_interval).await?;
            }
        }
        Ok(())
    }

    /// Runs the step of the record's state under the record's plan (not the configured
    /// one: a job finishes under the plan it started with). A draining thread takes no
    /// new job.
    async fn exec(&self, record: &SectorRecord) -> StepResult {
        if PlanState::Sector(record.state) == record.plan.initial_state()
            && self.control.is_draining()
        {
            return Ok(Outcome::Idle);
        }
        match plans::steps_of(record.plan) {
            Some(steps) => steps.exec(self, record).await,
            None => Err(Failure::abort(format!(
                "a sector record cannot be under the {} plan",
                record.plan
            ))
            .into()),
        }
    }
}
