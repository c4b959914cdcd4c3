//! One sealing thread: an async task that drives one sector at a time through the sealer
//! plan, persisting the record after every transition, with proof calls on blocking
//! threads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use damocles_core::sealer_api::{
    AcquireDealsSpec, AllocateSectorSpec, OnChainState, PreCommitOnChainInfo, ProofOnChainInfo,
    ReportFailure, ReportStateReq, StateChange, SubmitResult, WorkerIdentifier,
};
use damocles_core::{
    Event, Failure, FailureLevel, Happening, Plan, PlanState, SealProof, SectorManager,
    SectorRecord, State, StateStore,
};

use crate::control::{Activity, Control, Interrupt};
use crate::journal::Journal;
use crate::limits::StageLimits;
use crate::options::SealingOptions;
use crate::paths::SectorPaths;
use crate::proofs::{self, SealIdentity};
use crate::resume::{self, ResumeFacts};
use crate::store::Location;

/// A persistent store sealed files are copied to (`[[attached]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedStore {
    /// The instance name the manager knows it by.
    pub name: String,
    /// Its directory.
    pub location: PathBuf,
    /// Read-only stores are never written to.
    pub readonly: bool,
}

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
    /// Where sealed files are persisted.
    pub attached: Vec<AttachedStore>,
}

/// What a step produced.
enum Outcome {
    Event(Event),
    /// Nothing to do now: sleep `recover_interval` and try again.
    Idle,
    /// The sector is done.
    Finished,
}

/// Why a step did not produce an outcome.
enum Stop {
    Failed(Failure),
    /// Paused or stopping: the main loop looks at the control again.
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

type StepResult = Result<Outcome, Stop>;

/// The shortest wait between two idle rounds (no sector to take, or nothing to do yet).
const IDLE_FLOOR: Duration = Duration::from_millis(100);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A record field a step needs; its absence aborts the sector (the original's
/// `field_required!`).
fn required<T>(value: Option<T>, name: &str) -> Result<T, Failure> {
    value.ok_or_else(|| Failure::abort(format!("{name} is required")))
}

fn critical_store(e: impl std::fmt::Display) -> Failure {
    Failure::critical(e.to_string())
}

/// The id of the record's sector, as histories name it.
fn sector_of(record: &SectorRecord) -> Option<String> {
    record.sector.map(|s| s.id.to_string())
}

/// Runs a thread until the control says stop.
pub(crate) async fn run(ctx: ThreadContext, control: Arc<Control>, journal: Journal) {
    Runner {
        ctx,
        control,
        journal,
    }
    .main_loop()
    .await;
}

struct Runner {
    ctx: ThreadContext,
    control: Arc<Control>,
    journal: Journal,
}

impl Runner {
    async fn main_loop(&self) {
        self.control.set_stuck_after(self.ctx.options.stuck_after);
        let Some(mut record) = self.load().await else {
            return;
        };
        self.show(&record);
        self.record(
            &record,
            Happening::Started {
                state: record.state,
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
            if self.control.interrupt() == Some(Interrupt::Stopping) {
                return;
            }
            {
                let held = self.journal.hold().await;
                if let Some(by) = self.control.apply_requested_pause() {
                    let paused = Happening::Paused {
                        by: Some(by),
                        reason: None,
                    };
                    held.record(sector_of(&record), Some(paused)).await;
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

    fn show(&self, record: &SectorRecord) {
        self.control
            .set_resume_facts(ResumeFacts::of(record, self.ctx.location.data_dir()));
        self.control.set_job(
            record.plan,
            record.sector.map(|s| s.id.to_string()),
            Some(PlanState::Sector(record.state)),
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
                from,
                to: record.state,
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
        record.last_error = None;
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
        tracing::warn!(thread = self.control.index(), "pausing: {failure}");
        let reason = failure.to_string();
        {
            // Held across the change, so that a resume it lets in is recorded after it.
            let held = self.journal.hold().await;
            self.control.pause_with_error(Some(reason.clone()));
            let paused = Happening::Paused {
                by: None,
                reason: Some(reason),
            };
            held.record(sector_of(record), Some(paused)).await;
        }
        self.persist_pause(record).await;
    }

    /// Records the failure as the thread acts on it.
    async fn record_failure(&self, record: &SectorRecord, failure: &Failure, retry: Option<u32>) {
        let failed = Happening::Failed {
            level: failure.level,
            message: failure.message.clone(),
            retry,
        };
        self.record(record, failed).await;
    }

    async fn handle_failure(&self, record: &mut SectorRecord, failure: Failure) {
        self.control.metrics().record_failure(failure.level);
        match failure.level {
            FailureLevel::Temporary => {
                if record.retry >= self.ctx.options.max_retries {
                    record.retry = 0;
                    let failure = failure.with_level(FailureLevel::Permanent);
                    self.record_failure(record, &failure, None).await;
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
        let draining = record.draining;
        *record = SectorRecord::new(self.ctx.plan);
        if draining {
            // Keep the drain: an empty record that says so.
            record.draining = true;
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

    fn identity(&self, record: &SectorRecord) -> Result<(SealIdentity, SectorPaths), Failure> {
        let sector = required(record.sector, "sector")?;
        let id = SealIdentity {
            proof: sector.proof_type,
            sector: sector.id,
        };
        Ok((
            id,
            SectorPaths::new(&self.ctx.location.data_dir(), sector.id),
        ))
    }

    /// Runs blocking proof work on a blocking thread, holding a slot of `stage`.
    async fn proof_call<T: Send + 'static>(
        &self,
        stage: &str,
        proc: &str,
        work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Stop> {
        let _slot = if self.ctx.limits.is_limited(stage) {
            self.control.set_activity(Activity::Waiting);
            let waiting = std::time::Instant::now();
            let slot = self
                .control
                .interruptible(self.ctx.limits.acquire(stage))
                .await?;
            self.control
                .metrics()
                .record_slot_wait(stage, waiting.elapsed());
            self.control.set_activity(Activity::Running { proc: None });
            slot
        } else {
            None
        };
        if let Some(interrupt) = self.control.interrupt() {
            return Err(interrupt.into());
        }
        self.control.enter_proof_call(proc);
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Failure::critical(format!("{proc} panicked: {e}")));
        self.control
            .metrics()
            .record_stage(self.ctx.plan.as_str(), stage, started.elapsed());
        // The result is applied and persisted by `step`; a pause asked for meanwhile
        // takes effect at the top of the thread loop, after that.
        self.control.leave_proof_call();
        Ok(result??)
    }

    async fn manager_call<T>(
        &self,
        name: &str,
        call: impl std::future::Future<Output = Result<T, damocles_core::ManagerError>>,
    ) -> Result<T, Stop> {
        let result = self.control.interruptible(call).await?;
        result.map_err(|e| Stop::Failed(e.into_failure(name)))
    }

    async fn exec(&self, record: &SectorRecord) -> StepResult {
        let opts = &self.ctx.options;
        let manager = &self.ctx.manager;
        match record.state {
            State::Empty if self.control.is_draining() => Ok(Outcome::Idle),
            State::Empty => {
                let spec = AllocateSectorSpec {
                    allowed_miners: opts.allowed_miners.clone(),
                    allowed_proof_types: opts.allowed_sizes.as_ref().map(|sizes| {
                        sizes
                            .iter()
                            .flat_map(|size| SealProof::allowed_for_size(*size))
                            .collect()
                    }),
                };
                let allocated = self
                    .control
                    .interruptible(manager.allocate_sector(spec))
                    .await?;
                // Why the thread idles, in `list` and (once per change) in the log.
                let reason = allocated
                    .as_ref()
                    .err()
                    .map(|e| format!("AllocateSector: {e}"));
                if self.control.set_idle_reason(reason.clone()) {
                    match reason {
                        Some(reason) => tracing::warn!(
                            thread = self.control.index(),
                            "no sector: {reason}; asking again every {}",
                            humantime::format_duration(
                                self.ctx.options.recover_interval.max(IDLE_FLOOR)
                            )
                        ),
                        None => tracing::info!(
                            thread = self.control.index(),
                            "the manager answers again"
                        ),
                    }
                }
                match allocated {
                    Ok(Some(sector)) => Ok(Outcome::Event(Event::Allocate(sector))),
                    Ok(None) | Err(_) => Ok(Outcome::Idle),
                }
            }
            State::Allocated => {
                // Deals acquired before (a resume at Allocated) are kept: the pieces, and so
                // comm_d, stay those of the sector's first run.
                if let Some(deals) = &record.deals {
                    return Ok(Outcome::Event(Event::AcquireDeals(Some(deals.clone()))));
                }
                if !opts.enable_deals {
                    return Ok(if opts.disable_cc {
                        Outcome::Idle
                    } else {
                        Outcome::Event(Event::AcquireDeals(None))
                    });
                }
                let (id, _) = self.identity(record)?;
                let spec = AcquireDealsSpec {
                    max_deals: opts.max_deals,
                    min_used_space: opts.min_deal_space,
                };
                let deals = self
                    .manager_call("AcquireDeals", manager.acquire_deals(id.sector, spec))
                    .await?;
                let count = deals.as_ref().map_or(0, Vec::len);
                if opts.disable_cc && count == 0 {
                    return Ok(Outcome::Idle);
                }
                Ok(Outcome::Event(Event::AcquireDeals(deals)))
            }
            State::DealsAcquired => {
                let (id, paths) = self.identity(record)?;
                if record
                    .deals
                    .as_ref()
                    .is_some_and(|deals| deals.iter().any(|d| !d.is_pledge()))
                {
                    return Err(Failure::permanent(
                        "deal pieces are not supported yet: only CC sectors can be sealed",
                    )
                    .into());
                }
                let pieces = self
                    .proof_call("add_pieces", "builtin AddPieces", move || {
                        proofs::add_cc_piece(id.proof, &paths)
                    })
                    .await?;
                Ok(Outcome::Event(Event::AddPiece(pieces)))
            }
            State::PieceAdded => {
                let (id, _) = self.identity(record)?;
                let pieces = record.pieces.clone().unwrap_or_default();
                self.proof_call("tree_d", "builtin TreeD", move || {
                    proofs::tree_d(id.proof, &pieces)
                })
                .await?;
                Ok(Outcome::Event(Event::BuildTreeD))
            }
            // A ticket assigned before (a resume at an earlier state) is kept, so that PC1
            // gives the same labels and the pre-committed comm_r stays right.
            State::TreeDBuilt => Ok(Outcome::Event(Event::AssignTicket(record.ticket))),
            State::TicketAssigned => {
                let (id, paths) = self.identity(record)?;
                let ticket = match record.ticket {
                    Some(ticket) => ticket,
                    None => {
                        self.manager_call("AssignTicket", manager.assign_ticket(id.sector))
                            .await?
                    }
                };
                let pieces = record.pieces.clone().unwrap_or_default();
                let out = self
                    .proof_call("pc1", "builtin PC1", move || {
                        proofs::pc1(id, &paths, ticket.ticket, &pieces)
                    })
                    .await?;
                Ok(Outcome::Event(Event::PC1(ticket, out)))
            }
            State::PC1Done => {
                let (id, paths) = self.identity(record)?;
                if id.proof.needs_synthetic_porep() {
                    return Err(Failure::permanent(format!(
                        "{} needs synthetic PoRep, which this worker does not support yet",
                        id.proof
                    ))
                    .into());
                }
                let pc1 = required(record.pc1_output.clone(), "pc1out")?;
                let out = self
                    .proof_call("pc2", "builtin PC2", move || proofs::pc2(&pc1, &paths))
                    .await?;
                if let Some(before) = record.pc2_output.filter(|before| *before != out) {
                    // Never expected (PC2 restores its input), but a comm_r that changed
                    // under a pre-commit must stop the sector, not reach the chain.
                    return Err(Failure::permanent(format!(
                        "PC2 run again gave comm_r {} where the first run gave {}",
                        hex::encode(out.comm_r),
                        hex::encode(before.comm_r)
                    ))
                    .into());
                }
                Ok(Outcome::Event(Event::PC2(out)))
            }
            State::PC2Done => {
                let sector = required(record.sector, "sector")?;
                let pc2 = required(record.pc2_output, "pc2out")?;
                let ticket = required(record.ticket, "ticket")?;
                let info = PreCommitOnChainInfo {
                    comm_r: pc2.comm_r,
                    comm_d: pc2.comm_d,
                    ticket,
                };
                let resp = self
                    .manager_call(
                        "SubmitPreCommit",
                        manager.submit_pre_commit(sector, info, record.pc_resubmit),
                    )
                    .await?;
                submit_outcome("pre-commit", resp.res, resp.desc, Event::SubmitPC)
            }
            State::PCSubmitted => {
                let (id, _) = self.identity(record)?;
                self.poll_landed(
                    "PollPreCommitState",
                    id,
                    Event::CheckPC,
                    Event::ReSubmitPC,
                    true,
                )
                .await
            }
            State::PCLanded => self.persist(record).await,
            State::Persisted => {
                let (id, _) = self.identity(record)?;
                let instance = required(record.persist_instance.clone(), "persist_instance")?;
                let ok = self
                    .manager_call(
                        "SubmitPersistedEx",
                        manager.submit_persisted(id.sector, instance, false),
                    )
                    .await?;
                if !ok {
                    return Err(Failure::permanent(
                        "sector files are persisted but unavailable for sealer",
                    )
                    .into());
                }
                Ok(Outcome::Event(Event::SubmitPersistance))
            }
            State::PersistanceSubmitted => {
                let (id, _) = self.identity(record)?;
                loop {
                    let resp = self
                        .manager_call("WaitSeed", manager.wait_seed(id.sector, id.proof))
                        .await?;
                    if let Some(seed) = resp.seed {
                        return Ok(Outcome::Event(Event::AssignSeed(seed)));
                    }
                    if !resp.should_wait || resp.delay <= 0 {
                        return Err(Failure::temporary(
                            "WaitSeed: no seed and nothing to wait for",
                        )
                        .into());
                    }
                    self.control.set_activity(Activity::Idle);
                    self.control
                        .sleep(Duration::from_secs(resp.delay.unsigned_abs()))
                        .await?;
                }
            }
            State::SeedAssigned => {
                let (id, paths) = self.identity(record)?;
                let ticket = required(record.ticket, "ticket")?;
                let seed = required(record.seed, "seed")?;
                let pc2 = required(record.pc2_output, "pc2out")?;
                let pieces = record.pieces.clone().unwrap_or_default();
                let out = self
                    .proof_call("c1", "builtin C1", move || {
                        proofs::c1(id, &paths, ticket.ticket, seed.seed, pc2, &pieces)
                    })
                    .await?;
                Ok(Outcome::Event(Event::C1(out)))
            }
            State::C1Done => {
                let (id, _) = self.identity(record)?;
                let c1 = required(record.c1_output.clone(), "c1out")?;
                let proof = self
                    .proof_call("c2", "builtin C2", move || proofs::c2(id, &c1))
                    .await?;
                Ok(Outcome::Event(Event::C2(proof)))
            }
            State::C2Done => {
                let (id, _) = self.identity(record)?;
                let proof = required(record.proof.clone(), "c2out")?;
                let resp = self
                    .manager_call(
                        "SubmitProof",
                        manager.submit_proof(
                            id.sector,
                            ProofOnChainInfo { proof },
                            record.proof_resubmit,
                        ),
                    )
                    .await?;
                submit_outcome("proof", resp.res, resp.desc, Event::SubmitProof)
            }
            State::ProofSubmitted => {
                let (id, paths) = self.identity(record)?;
                if !opts.ignore_proof_check {
                    let outcome = self
                        .poll_landed(
                            "PollProofState",
                            id,
                            Event::Finish,
                            Event::ReSubmitProof,
                            false,
                        )
                        .await?;
                    if !matches!(outcome, Outcome::Event(Event::Finish)) {
                        return Ok(outcome);
                    }
                }
                tokio::task::spawn_blocking(move || proofs::clear_cache(&paths))
                    .await
                    .map_err(|e| Failure::critical(e.to_string()))??;
                Ok(Outcome::Event(Event::Finish))
            }
            State::Finished => Ok(Outcome::Finished),
            State::Aborted => Err(Failure::abort("task aborted").into()),
            other => {
                Err(Failure::abort(format!("unexpected state {other} in sealer planner")).into())
            }
        }
    }

    async fn poll_landed(
        &self,
        call: &str,
        id: SealIdentity,
        landed: Event,
        resubmit: Event,
        pre_commit: bool,
    ) -> StepResult {
        let manager = &self.ctx.manager;
        loop {
            let resp = if pre_commit {
                self.manager_call(call, manager.poll_pre_commit_state(id.sector))
                    .await?
            } else {
                self.manager_call(call, manager.poll_proof_state(id.sector))
                    .await?
            };
            let desc = resp.desc.unwrap_or_default();
            match resp.state {
                OnChainState::Landed => return Ok(Outcome::Event(landed)),
                OnChainState::NotFound => {
                    return Err(
                        Failure::permanent(format!("{call}: not found on chain {desc}")).into(),
                    )
                }
                OnChainState::Failed => {
                    self.control.sleep(Duration::from_secs(30)).await?;
                    return Ok(Outcome::Event(resubmit));
                }
                OnChainState::PermFailed => {
                    return Err(
                        Failure::permanent(format!("{call}: permanently failed {desc}")).into(),
                    )
                }
                OnChainState::ShouldAbort => {
                    return Err(Failure::abort(format!("{call}: should abort {desc}")).into())
                }
                OnChainState::Pending | OnChainState::Packed | OnChainState::Unknown => {
                    self.control.set_activity(Activity::Idle);
                    self.control
                        .sleep(self.ctx.options.rpc_polling_interval)
                        .await?;
                }
            }
        }
    }

    async fn persist(&self, record: &SectorRecord) -> StepResult {
        let (id, paths) = self.identity(record)?;
        let candidates: Vec<String> = self
            .ctx
            .attached
            .iter()
            .filter(|s| !s.readonly)
            .map(|s| s.name.clone())
            .collect();
        if candidates.is_empty() {
            return Err(Failure::permanent("no available persist store candidate").into());
        }
        let size = id.proof.sector_size().bytes();
        let required = if size < (32 << 30) {
            size * 2
        } else {
            size + size / 50
        };
        let store = loop {
            let reserved = self
                .manager_call(
                    "StoreReserveSpace",
                    self.ctx
                        .manager
                        .store_reserve_space(id.sector, required, candidates.clone()),
                )
                .await?;
            if let Some(store) = reserved {
                break store;
            }
            self.control.set_activity(Activity::Idle);
            self.control
                .sleep(
                    self.ctx
                        .options
                        .rpc_polling_interval
                        .max(Duration::from_millis(100)),
                )
                .await?;
        };
        let target = self
            .ctx
            .attached
            .iter()
            .find(|s| s.name == store.name)
            .cloned()
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "the manager chose store {}, which is not attached",
                    store.name
                ))
            })?;
        let name = id.sector.to_string();
        self.proof_call("transfer", "builtin Transfer", move || {
            copy_sector_files(&paths, &target.location, &name)
        })
        .await?;
        Ok(Outcome::Event(Event::Persist(store.name)))
    }
}

fn copy_sector_files(
    paths: &SectorPaths,
    store: &std::path::Path,
    name: &str,
) -> Result<(), Failure> {
    let io = |what: &str, e: std::io::Error| Failure::critical(format!("persist {what}: {e}"));
    let sealed_dir = store.join("sealed");
    let cache_dir = store.join("cache").join(name);
    std::fs::create_dir_all(&sealed_dir).map_err(|e| io("create sealed dir", e))?;
    std::fs::create_dir_all(&cache_dir).map_err(|e| io("create cache dir", e))?;
    std::fs::copy(&paths.sealed, sealed_dir.join(name)).map_err(|e| io("sealed file", e))?;
    for entry in std::fs::read_dir(&paths.cache_dir).map_err(|e| io("read cache", e))? {
        let entry = entry.map_err(|e| io("read cache", e))?;
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file == "p_aux" || file == "t_aux" || file.contains("tree-r-last") {
            std::fs::copy(entry.path(), cache_dir.join(&*file)).map_err(|e| io("cache file", e))?;
        }
    }
    Ok(())
}

fn submit_outcome(
    what: &str,
    res: SubmitResult,
    desc: Option<String>,
    accepted: Event,
) -> StepResult {
    let desc = desc.unwrap_or_default();
    match res {
        SubmitResult::Accepted | SubmitResult::DuplicateSubmit => Ok(Outcome::Event(accepted)),
        SubmitResult::MismatchedSubmission => {
            Err(Failure::permanent(format!("{what} submission mismatched: {desc}")).into())
        }
        SubmitResult::Rejected => Err(Failure::abort(format!("{what} rejected: {desc}")).into()),
        SubmitResult::FilesMissed => {
            Err(Failure::permanent(format!("{what}: files missed: {desc}")).into())
        }
        SubmitResult::Unknown => {
            Err(Failure::temporary(format!("{what}: unknown submit result: {desc}")).into())
        }
    }
}
