//! A custom scheduler over the core traits alone: its own threads implement
//! [`SealingThread`], save their records in a [`StateStore`] after every step, are served
//! to operators as an [`AdminTransport`] and reported through a [`Reporter`]. The
//! in-memory fakes of the `testing` feature stand in for the disk and the manager.
//!
//! This scheduler is a dry run: it walks each sector through the sealer plan's transition
//! table (data in `damocles-core`) without a manager and without proving anything, as a
//! capacity planner would. Real threads (`damocles-sealing`'s `WorkerBuilder`, or
//! `WorkerBuilder::from_contexts` with your own `StateStore`s and `SectorManager`) add
//! what this leaves out: sectors from a manager, proofs, pauses kept in the record, and
//! resume targets checked against what the record and the disk hold.
//!
//! ```text
//! cargo run -p damocles-core --features testing --example scheduler
//! ```

use std::sync::Mutex;

use async_trait::async_trait;
use damocles_core::testing::{MemoryStateStore, RecordingReporter};
use damocles_core::{
    AdminError, AdminTransport, EventKind, PauseOutcome, Plan, PlanState, Reporter, ResumeOutcome,
    SealingThread, SectorRecord, State, StateStore, StoreError, ThreadInfo, ThreadState,
    WorkerReport, WorkerSummary,
};

/// Branches of the sealer table a dry run never takes.
const DETOURS: [EventKind; 3] = [
    EventKind::PC2NeedSyntheticProof,
    EventKind::ReSubmitPC,
    EventKind::ReSubmitProof,
];

/// One thread of the scheduler: its record lives in its store.
struct DryRunThread {
    index: usize,
    store: MemoryStateStore,
    paused: Mutex<bool>,
    /// Where a resume asked to continue, applied at the next step.
    resume_at: Mutex<Option<State>>,
}

impl DryRunThread {
    fn state(&self) -> State {
        self.store.record().map_or(State::Empty, |r| r.state)
    }

    /// Takes one step of the plan and saves the record; `false` when paused or finished.
    async fn step(&self) -> Result<bool, StoreError> {
        if *self.paused.lock().expect("lock") {
            return Ok(false);
        }
        let mut record = self
            .store
            .load()
            .await?
            .unwrap_or_else(|| SectorRecord::new(Plan::Sealer));
        let next = match self.resume_at.lock().expect("lock").take() {
            Some(state) => Some(state),
            None => Plan::Sealer
                .transitions()
                .iter()
                .find(|row| row.from == record.state && !DETOURS.contains(&row.event))
                .map(|row| row.to),
        };
        let Some(next) = next else {
            return Ok(false);
        };
        record.state = next;
        self.store.save(&record).await?;
        Ok(true)
    }
}

impl SealingThread for DryRunThread {
    fn index(&self) -> usize {
        self.index
    }

    fn info(&self) -> ThreadInfo {
        let state = self.state();
        ThreadInfo {
            index: self.index,
            location: format!("memory://{}", self.index),
            plan: Plan::Sealer,
            job_id: None,
            job_state: Some(PlanState::Sector(state)),
            job_stage: Some(state.stage(Plan::Sealer)),
            thread_state: if *self.paused.lock().expect("lock") {
                ThreadState::Paused { elapsed: 0 }
            } else {
                ThreadState::Idle
            },
            last_error: None,
            pause_requested: false,
            draining: false,
            stuck: false,
            pending_plan: None,
            config_error: None,
            stopping: false,
            as_sent: Default::default(),
        }
    }

    fn pause(&self) -> PauseOutcome {
        let mut paused = self.paused.lock().expect("lock");
        if std::mem::replace(&mut *paused, true) {
            PauseOutcome::AlreadyPaused
        } else {
            PauseOutcome::Paused
        }
    }

    fn resume(&self, state: Option<&str>) -> Result<ResumeOutcome, AdminError> {
        // Names are checked against the plan's own states.
        let target = state
            .map(|name| Plan::Sealer.parse_state(name))
            .transpose()?;
        let mut paused = self.paused.lock().expect("lock");
        if !*paused {
            return Ok(ResumeOutcome::NotPaused);
        }
        *paused = false;
        if let Some(PlanState::Sector(state)) = target {
            *self.resume_at.lock().expect("lock") = Some(state);
        }
        Ok(ResumeOutcome::Resumed { state: target })
    }
}

/// The scheduler: its threads, served as an [`AdminTransport`].
struct Scheduler {
    threads: Vec<DryRunThread>,
}

impl Scheduler {
    fn over(stores: &[MemoryStateStore]) -> Self {
        let threads = stores
            .iter()
            .enumerate()
            .map(|(index, store)| DryRunThread {
                index,
                store: store.clone(),
                paused: Mutex::new(false),
                resume_at: Mutex::new(None),
            })
            .collect();
        Self { threads }
    }

    /// One step of every thread; `false` when none moved.
    async fn tick(&self) -> Result<bool, StoreError> {
        let mut moved = false;
        for thread in &self.threads {
            moved |= thread.step().await?;
        }
        Ok(moved)
    }

    fn thread(&self, index: u64) -> Result<&DryRunThread, AdminError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.threads.get(i))
            .ok_or(AdminError::ThreadNotFound { index })
    }

    fn report(&self) -> WorkerReport {
        let threads: Vec<ThreadInfo> = self.threads.iter().map(SealingThread::info).collect();
        WorkerReport {
            name: "dry-run".into(),
            dest: "127.0.0.1:0".into(),
            version: "example".into(),
            summary: WorkerSummary::from_threads(&threads),
        }
    }

    /// Ticks until no thread moves, reporting after every tick; the number of ticks.
    async fn run(&self, reporter: &dyn Reporter) -> Result<usize, Box<dyn std::error::Error>> {
        let mut ticks = 0;
        while self.tick().await? {
            ticks += 1;
            reporter.report(&self.report()).await?;
        }
        Ok(ticks)
    }
}

#[async_trait]
impl AdminTransport for Scheduler {
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError> {
        Ok(self.threads.iter().map(SealingThread::info).collect())
    }

    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError> {
        Ok(self.thread(index)?.pause())
    }

    async fn resume(&self, index: u64, state: Option<String>) -> Result<ResumeOutcome, AdminError> {
        self.thread(index)?.resume(state.as_deref())
    }

    async fn version(&self) -> Result<String, AdminError> {
        Ok("dry-run scheduler".into())
    }
}

fn show(threads: &[ThreadInfo]) {
    for t in threads {
        let state = t.job_state.map_or("-", |s| s.as_str());
        println!("  #{} {state:<22} {}", t.index, t.thread_state);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    futures_executor::block_on(async {
        let stores = [MemoryStateStore::new(), MemoryStateStore::new()];
        let reporter = RecordingReporter::new();
        let scheduler = Scheduler::over(&stores);

        // An operator pauses thread 1 before it starts, through the admin trait.
        assert_eq!(scheduler.pause(1).await?, PauseOutcome::Paused);
        let ticks = scheduler.run(&reporter).await?;
        println!("after {ticks} ticks:");
        show(&scheduler.list().await?);
        assert_eq!(stores[0].record().map(|r| r.state), Some(State::Finished));
        assert_eq!(stores[1].record(), None, "the paused thread never started");

        // A state of another plan is refused, naming the valid ones; nothing changes.
        let refused = scheduler.resume(1, Some("SnapEncoded".into())).await;
        println!("resume at SnapEncoded: {}", refused.expect_err("refused"));

        // The scheduler stops (a crash loses nothing: every step was saved) and a new one
        // over the same stores picks each thread up where its record is: thread 0 stays
        // finished; thread 1, paused and resumed, starts its sector.
        drop(scheduler);
        let scheduler = Scheduler::over(&stores);
        scheduler.pause(1).await?;
        let resumed = scheduler.resume(1, None).await?;
        assert_eq!(resumed, ResumeOutcome::Resumed { state: None });
        let ticks = scheduler.run(&reporter).await?;
        println!("after a restart and a resume, {ticks} more ticks:");
        show(&scheduler.list().await?);
        assert_eq!(stores[1].record().map(|r| r.state), Some(State::Finished));
        println!(
            "{} reports sent, {} saves by thread 1",
            reporter.reports().len(),
            stores[1].saves()
        );
        Ok(())
    })
}
