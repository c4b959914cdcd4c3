//! The harness both sealing test binaries share: a mock chain and a worker whose threads
//! live in one temporary directory, a state store that "crashes" right after a chosen
//! state is persisted, and a bounded wait on what `list` shows.

// Each test binary uses a part of the harness.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use damocles_core::{Plan, SealProof, SectorRecord, State, StateStore, StoreError, ThreadInfo};
use damocles_sealing::limits::StageLimits;
use damocles_sealing::mock_chain::MockChain;
use damocles_sealing::pieces::PieceSource;
use damocles_sealing::store::{Location, RedbStateStore};
use damocles_sealing::{AttachedStore, SealingOptions, ThreadContext, Worker};

/// The miner every test seals for.
pub const MINER: u64 = 1000;

/// A worker's locations, its mock chain and its settings; `start` can be called again on
/// the same locations to restart the worker.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub chain: MockChain,
    pub threads: usize,
    pub options: SealingOptions,
    pub limits: StageLimits,
    /// WindowPoSt's priority over sealing (off unless a test sets it).
    pub priority: damocles_sealing::priority::PostPriority,
    /// The plan the threads are configured with.
    pub plan: Plan,
}

impl Harness {
    pub fn new(threads: usize) -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            chain: MockChain::new(MINER, SealProof::StackedDrg2KiBV1_1),
            threads,
            options: SealingOptions::immediate(),
            limits: StageLimits::default(),
            priority: Default::default(),
            plan: Plan::Sealer,
        }
    }

    /// Deals for `share` of the sectors (pieces kept in `<dir>/pieces`), taken by the
    /// threads.
    pub fn offer_deals(&mut self, share: f64) {
        self.chain
            .offer_deals(share, &self.piece_dir())
            .expect("piece dir");
        self.options.enable_deals = true;
    }

    /// Where the mock keeps the pieces it offers.
    pub fn piece_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("pieces")
    }

    pub fn start(&self) -> Worker {
        self.start_with(|store| Arc::new(store))
    }

    /// Starts the worker with each thread's redb store wrapped by `wrap`.
    pub fn start_with(&self, wrap: impl Fn(RedbStateStore) -> Arc<dyn StateStore>) -> Worker {
        let contexts = (0..self.threads)
            .map(|i| {
                let location =
                    Location::init(&self.dir.path().join(format!("store{i}"))).expect("location");
                let store = wrap(RedbStateStore::open(&location).expect("state store"));
                ThreadContext {
                    worker_name: "test-worker".into(),
                    location,
                    plan: self.plan,
                    options: self.options.clone(),
                    manager: Arc::new(self.chain.clone()),
                    store,
                    limits: self.limits.clone(),
                    processors: Default::default(),
                    priority: self.priority.clone(),
                    attached: vec![AttachedStore {
                        name: "remote".into(),
                        location: self.dir.path().join("remote"),
                        readonly: false,
                    }],
                    pieces: PieceSource {
                        local_dirs: Vec::new(),
                        remote: Some(Arc::new(self.chain.clone())),
                        unseal_file_dirs: vec![self.dir.path().join("retrieved")],
                    },
                }
            })
            .collect();
        Worker::start(contexts, "test")
    }
}

/// Waits, at most `limit`, until `done` holds for what `list` shows, waking on each change
/// the worker announces. Panics with the last listing when the limit passes.
pub async fn wait_for(
    worker: &Worker,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&[ThreadInfo]) -> bool,
) -> Vec<ThreadInfo> {
    let mut changes = worker.subscribe();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let threads = worker.list();
        if done(&threads) {
            return threads;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the worker stopped while waiting for {what}: {threads:#?}"),
            Err(_) => panic!("timed out after {limit:?} waiting for {what}: {threads:#?}"),
        }
    }
}

/// A state store that, once it has durably saved a record in state `at`, never returns:
/// the thread is frozen right after the write, as if the process died there. `crashed`
/// is notified when that happens.
pub struct CrashAfter {
    pub inner: RedbStateStore,
    pub at: State,
    pub crashed: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl StateStore for CrashAfter {
    async fn load(&self) -> Result<Option<SectorRecord>, StoreError> {
        self.inner.load().await
    }

    async fn save(&self, record: &SectorRecord) -> Result<(), StoreError> {
        self.inner.save(record).await?;
        if record.state == self.at {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear().await
    }
}

/// A state store that watches what the thread saves: it keeps the last record saved, can
/// pause the thread right after it saves a chosen state (before that state's step runs),
/// and can call `on_save` with each record (e.g. to snapshot the sector's files).
pub struct Watching {
    pub inner: RedbStateStore,
    pub last: Arc<std::sync::Mutex<Option<SectorRecord>>>,
    /// Pause the thread once a record in this state is saved.
    pub pause_at: Option<State>,
    /// The thread to pause; set once the worker has started.
    pub thread: Arc<std::sync::OnceLock<damocles_sealing::ThreadHandle>>,
    pub on_save: Box<dyn Fn(&SectorRecord) + Send + Sync>,
    /// Pause at `pause_at` only the first time it is saved.
    pub once: bool,
    fired: std::sync::atomic::AtomicBool,
}

impl Watching {
    pub fn new(inner: RedbStateStore, pause_at: Option<State>) -> Self {
        Self {
            inner,
            last: Arc::default(),
            pause_at,
            thread: Arc::default(),
            on_save: Box::new(|_| {}),
            once: false,
            fired: Default::default(),
        }
    }
}

#[async_trait]
impl StateStore for Watching {
    async fn load(&self) -> Result<Option<SectorRecord>, StoreError> {
        self.inner.load().await
    }

    async fn save(&self, record: &SectorRecord) -> Result<(), StoreError> {
        self.inner.save(record).await?;
        (self.on_save)(record);
        *self.last.lock().expect("last") = Some(record.clone());
        if Some(record.state) == self.pause_at
            && !record.paused
            && !(self.once && self.fired.swap(true, std::sync::atomic::Ordering::SeqCst))
        {
            let thread = self.thread.get().expect("the thread is set before it runs");
            damocles_core::SealingThread::pause(thread);
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear().await
    }
}

/// Checks that the unsealed copy of every deal sector the chain knows (in the attached
/// store `remote`, once persisted) holds each deal's payload at the deal's offset; returns how many deal
/// sectors it checked.
pub fn check_unsealed_copies(harness: &Harness) -> usize {
    let mut checked = 0;
    for sector in harness.chain.sectors() {
        if sector.deals.is_empty() || sector.persisted.is_none() {
            continue;
        }
        let unsealed = harness
            .dir
            .path()
            .join("remote/unsealed")
            .join(sector.id.to_string());
        let offsets =
            damocles_core::piece::piece_offsets(sector.deals.iter().map(|d| d.piece.size));
        for (deal, offset) in sector.deals.iter().zip(offsets) {
            if deal.is_pledge() {
                let unpadded = damocles_core::piece::unpadded_size(deal.piece.size).expect("size");
                let read = damocles_sealing::proofs::read_unsealed(&unsealed, offset, unpadded)
                    .expect("read the unsealed copy");
                assert!(read.iter().all(|b| *b == 0), "pledge piece at {offset}");
                continue;
            }
            let payload =
                std::fs::read(harness.piece_dir().join(&deal.piece.cid.text)).expect("payload");
            assert_eq!(payload.len() as u64, deal.deal_info.payload_size);
            let read = damocles_sealing::proofs::read_unsealed(
                &unsealed,
                offset,
                deal.deal_info.payload_size,
            )
            .expect("read the unsealed copy");
            assert!(
                read == payload,
                "{}: deal {} differs at offset {offset}",
                sector.id,
                deal.deal_info.deal_id
            );
        }
        checked += 1;
    }
    checked
}

/// Copies a directory tree (a sector's files, for snapshots).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The sealer states one sector passes through, in order. These paths are written out
/// here rather than read from `damocles_core::plan_table`, so that the tests check the
/// tables as well as the runtime.
pub const SEALER_PATH: [State; 16] = [
    State::Allocated,
    State::DealsAcquired,
    State::PieceAdded,
    State::TreeDBuilt,
    State::TicketAssigned,
    State::PC1Done,
    State::PC2Done,
    State::PCSubmitted,
    State::PCLanded,
    State::Persisted,
    State::PersistanceSubmitted,
    State::SeedAssigned,
    State::C1Done,
    State::C2Done,
    State::ProofSubmitted,
    State::Finished,
];

/// The snap-up states one upgrade passes through, in order.
pub const SNAPUP_PATH: [State; 7] = [
    State::Allocated,
    State::PieceAdded,
    State::TreeDBuilt,
    State::SnapEncoded,
    State::SnapProved,
    State::Persisted,
    State::Finished,
];

/// The rebuild states of a sector never upgraded, in order.
pub const REBUILD_PATH: [State; 9] = [
    State::Allocated,
    State::PieceAdded,
    State::TreeDBuilt,
    State::PC1Done,
    State::PC2Done,
    State::SealedChecked,
    State::SnapDone,
    State::Persisted,
    State::Finished,
];

/// The rebuild states of an upgraded sector, in order.
pub const REBUILD_UPGRADED_PATH: [State; 12] = [
    State::Allocated,
    State::PieceAdded,
    State::TreeDBuilt,
    State::PC1Done,
    State::PC2Done,
    State::SealedChecked,
    State::SnapPieceAdded,
    State::SnapTreeDBuilt,
    State::SnapEncoded,
    State::SnapDone,
    State::Persisted,
    State::Finished,
];

/// Finishes CC sectors on the mock chain without sealing them (a pre-commit with a made-up
/// comm_r, persisted into `store`): sectors a WindowPoSt round includes, whose files are
/// nowhere.
pub async fn finished_sectors_without_files(
    chain: &damocles_sealing::mock_chain::MockChain,
    store: &str,
    count: usize,
) -> Vec<damocles_core::sealer_api::AllocatedSector> {
    use damocles_core::sealer_api::{AllocateSectorSpec, PreCommitOnChainInfo};
    use damocles_core::SectorManager;
    let mut finished = Vec::new();
    for _ in 0..count {
        let sector = chain
            .allocate_sector(AllocateSectorSpec::default())
            .await
            .expect("allocate")
            .expect("a sector");
        let ticket = chain.assign_ticket(sector.id).await.expect("ticket");
        let comm_d =
            damocles_sealing::proofs::sector_comm_d(sector.proof_type, &[]).expect("comm_d");
        let info = PreCommitOnChainInfo {
            comm_r: [7; 32],
            comm_d,
            ticket,
        };
        chain
            .submit_pre_commit(sector, info, false)
            .await
            .expect("pre-commit");
        chain
            .submit_persisted(sector.id, store.into(), false)
            .await
            .expect("persisted");
        chain.report_finalized(sector.id).await.expect("finalized");
        finished.push(sector);
    }
    finished
}
