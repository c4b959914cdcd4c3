//! The wdpost plan: WindowPoSt jobs taken from the manager and proven
//! (reference §1.8, `next-wave-facts.md` §1–2). Its states are `Empty` → `Allocated`
//! (`WdPoStAllocateJobs`) → `Generated` (the proof, with the faulty sectors) → `Finished`
//! (`WdPoStFinishJob`), or `Aborted`.
//!
//! A driver of its own, as the original's: a job lives in memory only (the manager gives
//! it to another worker once its heartbeat stops, so a restart loses nothing the chain
//! needs), and a heartbeat (`WdPoStHeartbeatJobs`, every [`HEARTBEAT_INTERVAL`]) runs while
//! the thread holds a job and is not paused: a paused thread does not hold a deadline.
//! It shares the sector plans' control, history and failure levels, where the original
//! differs: a temporary failure is retried `max_retries` times and then pauses the thread
//! (the original aborts the job); a permanent or critical one (the proof library failing,
//! missing parameters) pauses it; an abort (a sector in a store this worker has not
//! attached, a job the manager no longer knows) hands the job back with the reason.
//! A sector whose files are missing or do not prove is a fault in the result, not a
//! failure.

use std::sync::Arc;
use std::time::Duration;

use damocles_core::sealer_api::{AllocatePoStSpec, ManagerErrorKind, WdPoStJob, WindowPoStOutput};
use damocles_core::{
    EventKind, Failure, FailureLevel, Happening, ManagerError, PlanState, PoStProof, ProofStage,
    SectorId, SectorManager, WdPostState,
};

use super::shared::note_idle_reason;
use super::Stop;
use crate::control::{Activity, Interrupt};
use crate::hot_config::HotConfig;
use crate::resume::WdPostFacts;
use crate::runner::{Runner, IDLE_FLOOR};
use crate::window_post::{self, Answered, CheckLimits, PoStChallenge, Proven, ProvingSector};

/// How often a thread proving a job tells the manager it is alive (the original's 3 s;
/// the manager gives a job away after 15 s without one).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

/// The job a wdpost thread holds.
struct Held {
    job: WdPoStJob,
    state: WdPostState,
    output: Option<WindowPoStOutput>,
    /// Temporary failures in a row.
    retry: u32,
    heartbeat: Option<Heartbeat>,
}

/// The heartbeat task of a job; stopped when dropped.
struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    /// Why the manager refused a heartbeat (the job was reset, removed or given to
    /// another worker): the job is no longer this thread's. An unreachable manager is not
    /// a refusal.
    revoked: Arc<std::sync::Mutex<Option<String>>>,
}

impl Heartbeat {
    fn start(manager: Arc<dyn SectorManager>, id: String, worker: String) -> Self {
        let revoked = Arc::new(std::sync::Mutex::new(None));
        let refusal = revoked.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
            loop {
                ticks.tick().await;
                let Err(e) = manager
                    .wdpost_heartbeat_jobs(vec![id.clone()], worker.clone())
                    .await
                else {
                    continue;
                };
                tracing::warn!(job = %id, "WdPoStHeartbeatJobs: {e}");
                if e.kind != ManagerErrorKind::Transport {
                    *refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.message);
                    return;
                }
            }
        });
        Self { task, revoked }
    }

    /// Why the manager refused the job's heartbeat, if it did.
    fn revoked(&self) -> Option<String> {
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a step did.
enum Outcome {
    /// The job moved to this state.
    Moved(WdPostState, EventKind),
    /// No job to take: wait and ask again.
    Idle,
    /// The job's proof was submitted: it is done.
    Finished,
}

/// Runs a wdpost thread until the worker stops, or until its hot config names another
/// plan at a job boundary; hands the runner back.
pub(crate) async fn run(runner: Runner, hot: &mut HotConfig) -> Runner {
    let mut driver = Driver { runner, held: None };
    driver.main_loop(hot).await;
    driver.runner
}

struct Driver {
    runner: Runner,
    held: Option<Held>,
}

impl Driver {
    fn job_id(&self) -> Option<String> {
        self.held.as_ref().map(|h| h.job.id.clone())
    }

    fn show(&self) {
        let control = &self.runner.control;
        let state = self.held.as_ref().map_or(WdPostState::Empty, |h| h.state);
        control.set_must_finish(self.held.is_some());
        control.set_wdpost_facts(WdPostFacts {
            job: self.held.is_some(),
            proof: self.held.as_ref().is_some_and(|h| h.output.is_some()),
        });
        control.set_job(
            damocles_core::Plan::Wdpost,
            self.job_id(),
            Some(PlanState::WdPost(state)),
        );
    }

    async fn record(&self, what: Happening) {
        self.runner.journal.record(self.job_id(), what).await;
    }

    async fn main_loop(&mut self, hot: &mut HotConfig) {
        let control = self.runner.control.clone();
        control.set_stuck_after(self.runner.ctx.options.stuck_after);
        self.show();
        self.record(Happening::Started {
            state: PlanState::WdPost(WdPostState::Empty),
            paused: false,
            draining: false,
        })
        .await;
        loop {
            // A drain is not persisted: the thread holds nothing a restart would resume.
            let _ = control.take_drain_change();
            if control.interrupt() == Some(Interrupt::Stopping) {
                return;
            }
            self.runner.apply_requested_pause(self.job_id()).await;
            if control.must_park() {
                // A worker stop, and no job held (a held one is finished first).
                let _ = control.park_for_stop().await;
                continue;
            }
            if self.held.is_none() {
                self.runner.refresh_config(hot, true, None).await;
                if self.runner.ctx.plan != damocles_core::Plan::Wdpost {
                    return;
                }
            }
            if control.must_wait() {
                // A paused thread holds no deadline: without its heartbeat the manager
                // gives the job to another worker.
                if let Some(held) = &mut self.held {
                    held.heartbeat = None;
                }
                match control.wait_resume().await {
                    Err(_) => continue,
                    Ok(target) => {
                        if let Some(PlanState::WdPost(state)) = target {
                            self.resume_at(state).await;
                        }
                    }
                }
            }
            self.keep_heartbeat();
            match self.step().await {
                Ok(outcome) => self.apply(outcome).await,
                Err(Stop::Interrupted) => {}
                Err(Stop::Failed(failure)) => self.handle_failure(failure).await,
            }
        }
    }

    fn keep_heartbeat(&mut self) {
        let ctx = &self.runner.ctx;
        if let Some(held) = &mut self.held {
            if held.heartbeat.is_none() {
                held.heartbeat = Some(Heartbeat::start(
                    ctx.manager.clone(),
                    held.job.id.clone(),
                    ctx.worker_name.clone(),
                ));
            }
        }
    }

    async fn resume_at(&mut self, state: WdPostState) {
        let Some(held) = &mut self.held else {
            return;
        };
        if state == WdPostState::Aborted {
            self.abort("dropped by an operator (resume at Aborted)".into())
                .await;
            return;
        }
        let from = held.state;
        held.state = state;
        held.retry = 0;
        if state == WdPostState::Allocated {
            held.output = None;
        }
        self.show();
        self.record(Happening::Transition {
            from: PlanState::WdPost(from),
            to: PlanState::WdPost(state),
            event: EventKind::SetState,
        })
        .await;
    }

    async fn step(&mut self) -> Result<Outcome, Stop> {
        let runner = &self.runner;
        if let Some(interrupt) = runner.control.interrupt() {
            return Err(interrupt.into());
        }
        runner
            .control
            .set_activity(Activity::Running { proc: None });
        let Some(held) = &self.held else {
            return self.take_job().await;
        };
        // Reset, removed or given to another worker meanwhile: the job is dropped, its
        // proof (if made) not sent.
        if let Some(why) = held.heartbeat.as_ref().and_then(Heartbeat::revoked) {
            return Err(Failure::abort(format!("the manager took the job back: {why}")).into());
        }
        match held.state {
            WdPostState::Empty | WdPostState::Allocated => {
                let challenge = PoStChallenge {
                    proof: held.job.input.proof_type,
                    miner: held.job.input.miner_id,
                    seed: held.job.input.seed,
                };
                let sectors = self.proving_sectors(&held.job)?;
                let circuit = crate::params::Circuit::WindowPoSt(challenge.proof);
                runner.wait_for_params(circuit).await?;
                let (limits, job) = (runner.ctx.options.wdpost_checks, held.job.id.clone());
                // Sealing yields its cores until the proof is made (`priority`).
                let _proving = runner.ctx.priority.proving();
                let proven = if runner.ctx.processors.is_external(ProofStage::WindowPost) {
                    prove_in_processor(runner, challenge, sectors, limits).await?
                } else {
                    runner
                        .proof_call(ProofStage::WindowPost, move || {
                            window_post::prove(challenge, &sectors, &limits)
                        })
                        .await?
                };
                for fault in &proven.faults {
                    tracing::warn!(
                        job = %job,
                        "sector {} is faulty: {}",
                        fault.number,
                        fault.reason
                    );
                    self.record(Happening::Faulty {
                        number: fault.number,
                        reason: fault.reason.clone(),
                    })
                    .await;
                }
                let held = self.held.as_mut().expect("held");
                held.output = Some(proven.output);
                Ok(Outcome::Moved(WdPostState::Generated, EventKind::Generate))
            }
            WdPostState::Generated => {
                let output = held.output.clone();
                let id = held.job.id.clone();
                runner
                    .manager_call(
                        "WdPoStFinishJob",
                        runner
                            .ctx
                            .manager
                            .wdpost_finish_job(id, output, String::new()),
                    )
                    .await?;
                Ok(Outcome::Finished)
            }
            WdPostState::Finished => Ok(Outcome::Finished),
            WdPostState::Aborted => Err(Failure::abort("task aborted").into()),
        }
    }

    /// Asks for a job of the proof types of the thread's allowed sizes (any when none is
    /// configured); a failed call or no job idles, saying why.
    async fn take_job(&mut self) -> Result<Outcome, Stop> {
        let runner = &self.runner;
        if runner.control.is_draining() {
            return Ok(Outcome::Idle);
        }
        let options = &runner.ctx.options;
        let spec = AllocatePoStSpec {
            allowed_miners: options.allowed_miners.clone(),
            allowed_proof_types: options.allowed_sizes.as_ref().map(|sizes| {
                sizes
                    .iter()
                    .filter_map(|size| PoStProof::window_for(*size))
                    .collect()
            }),
        };
        let call = "WdPoStAllocateJobs";
        let ask = runner
            .ctx
            .manager
            .wdpost_allocate_jobs(spec, 1, runner.ctx.worker_name.clone());
        let holds_job = |answer: &Result<Vec<_>, _>| answer.as_ref().is_ok_and(|j| !j.is_empty());
        let answer = runner.control.job_call(ask, holds_job).await?;
        let error = answer.as_ref().err().map(explain_allocation_error);
        note_idle_reason(runner, call, error.as_ref().map(|e| e as _));
        let Some(job) = answer.ok().and_then(|jobs| jobs.into_iter().next()) else {
            return Ok(Outcome::Idle);
        };
        tracing::info!(
            thread = runner.control.index(),
            job = %job.id,
            sectors = job.input.sectors.len(),
            "WindowPoSt job taken"
        );
        self.held = Some(Held {
            job,
            state: WdPostState::Empty,
            output: None,
            retry: 0,
            heartbeat: None,
        });
        Ok(Outcome::Moved(
            WdPostState::Allocated,
            EventKind::JobAllocated,
        ))
    }

    /// Where each sector's files are: in the attached store the job names
    /// (`sealed/`, `cache/`, or `update/`, `update-cache/` for an upgraded sector).
    fn proving_sectors(&self, job: &WdPoStJob) -> Result<Vec<ProvingSector>, Failure> {
        let attached = &self.runner.ctx.attached;
        let store = |name: &str, number| {
            attached
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.location.clone())
                .ok_or_else(|| {
                    Failure::abort(format!(
                        "sector {number}: store {name:?} is not attached to this worker"
                    ))
                })
        };
        job.input
            .sectors
            .iter()
            .map(|sector| {
                let name = SectorId::new(job.input.miner_id, sector.sector_id).to_string();
                let (file_dir, cache_dir) = if sector.upgrade {
                    ("update", "update-cache")
                } else {
                    ("sealed", "cache")
                };
                Ok(ProvingSector {
                    number: sector.sector_id,
                    comm_r: sector.comm_r,
                    replica: store(&sector.accesses.sealed_file, sector.sector_id)?
                        .join(file_dir)
                        .join(&name),
                    cache: store(&sector.accesses.cache_dir, sector.sector_id)?
                        .join(cache_dir)
                        .join(&name),
                })
            })
            .collect()
    }

    async fn apply(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Moved(to, event) => {
                let Some(held) = &mut self.held else {
                    return;
                };
                let from = held.state;
                held.state = to;
                held.retry = 0;
                self.show();
                self.record(Happening::Transition {
                    from: PlanState::WdPost(from),
                    to: PlanState::WdPost(to),
                    event,
                })
                .await;
            }
            Outcome::Idle => {
                let control = &self.runner.control;
                control.set_activity(Activity::Idle);
                let wait = self.runner.ctx.options.recover_interval.max(IDLE_FLOOR);
                let _ = control.sleep(wait).await;
            }
            Outcome::Finished => {
                if let Some(held) = &mut self.held {
                    if held.state != WdPostState::Finished {
                        let from = held.state;
                        held.state = WdPostState::Finished;
                        self.show();
                        self.record(Happening::Transition {
                            from: PlanState::WdPost(from),
                            to: PlanState::WdPost(WdPostState::Finished),
                            event: EventKind::Finish,
                        })
                        .await;
                    }
                }
                self.record(Happening::Finished).await;
                self.held = None;
                self.show();
            }
        }
    }

    async fn handle_failure(&mut self, failure: Failure) {
        let control = self.runner.control.clone();
        control.metrics().record_failure(failure.level);
        let max_retries = self.runner.ctx.options.max_retries;
        match failure.level {
            FailureLevel::Temporary => {
                let retry = self.held.as_mut().map_or(1, |h| {
                    h.retry += 1;
                    h.retry
                });
                if retry > max_retries {
                    let failure = failure.with_level(FailureLevel::Permanent);
                    self.record_failure(&failure, None).await;
                    if let Some(held) = &mut self.held {
                        held.retry = 0;
                    }
                    self.pause(failure).await;
                    return;
                }
                self.record_failure(&failure, Some(retry)).await;
                tracing::warn!(thread = control.index(), retry, "{failure}; retrying");
                control.set_activity(Activity::Idle);
                let _ = control
                    .sleep(self.runner.ctx.options.recover_interval)
                    .await;
            }
            FailureLevel::Permanent | FailureLevel::Critical => {
                self.record_failure(&failure, None).await;
                self.pause(failure).await;
            }
            FailureLevel::Abort => self.abort(failure.message).await,
        }
    }

    async fn record_failure(&self, failure: &Failure, retry: Option<u32>) {
        self.runner
            .record_failure_of(self.job_id(), failure, retry)
            .await;
    }

    async fn pause(&self, failure: Failure) {
        self.runner.pause_on(self.job_id(), &failure).await;
    }

    /// Drops the job, telling the manager why (it may give the job to another worker).
    async fn abort(&mut self, reason: String) {
        tracing::warn!(
            thread = self.runner.control.index(),
            "aborting WindowPoSt job: {reason}"
        );
        if let Some(held) = &self.held {
            let manager = &self.runner.ctx.manager;
            if let Err(e) = manager
                .wdpost_finish_job(held.job.id.clone(), None, reason.clone())
                .await
            {
                tracing::warn!(job = %held.job.id, "WdPoStFinishJob (aborted): {e}");
            }
        }
        self.record(Happening::Aborted { reason }).await;
        self.held = None;
        self.show();
    }
}

/// The allocation error as an operator reads it: a manager without the WindowPoSt
/// methods says what to enable (the original's hint).
fn explain_allocation_error(error: &ManagerError) -> String {
    match error.kind {
        damocles_core::sealer_api::ManagerErrorKind::Remote { code: -32601 } => {
            format!("{error} (damocles-manager may not have enabled the worker-prover module)")
        }
        _ => error.to_string(),
    }
}

/// A round proven by a `window_post` processor (`[[processors.window_post]]`): the
/// sectors checked here, the SNARK made there, and verified here. A processor that names
/// faults the checks passed is sent the rest once more.
async fn prove_in_processor(
    runner: &Runner,
    challenge: PoStChallenge,
    sectors: Vec<ProvingSector>,
    limits: CheckLimits,
) -> Result<Proven, Stop> {
    let (task, mut faults) = runner
        .proof_call(ProofStage::WindowPost, move || {
            window_post::round_task(challenge, &sectors, &limits)
        })
        .await?;
    let Some(mut task) = task else {
        return Ok(window_post::all_faulty(faults));
    };
    for _ in 0..2 {
        let sent = task.clone();
        let output = runner.processor_call(move || Ok(sent), Ok).await?;
        match window_post::processor_answer(challenge, task, &mut faults, output)? {
            Answered::Proven(proven) => return Ok(proven),
            Answered::Again(rest) => task = rest,
        }
    }
    Err(Failure::permanent(
        "window PoSt: the window_post processor named sectors it could not prove twice",
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manager_without_window_post_gets_the_original_hint_and_others_their_error() {
        let missing = ManagerError::remote(-32601, "method not found");
        assert_eq!(
            explain_allocation_error(&missing),
            "method not found (damocles-manager may not have enabled the worker-prover module)"
        );
        let down = ManagerError::transport("connection refused");
        assert_eq!(explain_allocation_error(&down), "connection refused");
    }
}
