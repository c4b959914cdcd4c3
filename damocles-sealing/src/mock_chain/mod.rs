//! The mock chain: an in-process [`SectorManager`] that stands in for the manager and the
//! chain. It allocates sector numbers per miner, gives CC deals, random tickets and seeds,
//! records every submission, answers polls, and **verifies every submitted proof** with
//! `verify_seal` (an invalid proof is rejected). Tests can make calls fail to drive every
//! failure path. [`MockChain::open`] keeps the records in a file, so that a manager
//! restart loses no sector.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use damocles_core::piece::{
    self, NotThePiece, PieceCheck, PieceFetchError, PieceStore, PieceUploadError,
};
use damocles_core::sealer_api::{
    AcquireDealsSpec, AllocatePoStSpec, AllocateSectorSpec, AllocateSnapUpSpec, AllocatedSector,
    AllocatedSnapUpSector, Cid, DealInfo, ManagerError, OnChainState, PieceRef, PollStateResp,
    PreCommitOnChainInfo, ProofOnChainInfo, ReportStateReq, SectorPiece, SectorPrivateInfo,
    SectorPublicInfo, SectorRebuildInfo, SectorStateResp, SectorUnsealInfo, Seed,
    SnapUpOnChainInfo, StoreBasicInfo, SubmitResp, SubmitResult, Ticket, WaitSeedResp, WdPoStJob,
    WindowPoStOutput,
};
use damocles_core::{
    ActorId, Failure, PreCommitOutput, SealProof, SectorId, SectorManager, UpdateProof,
};
use rand::Rng;

use crate::proofs::{self, SealIdentity, SealedSector};
use crate::update::{self, UpgradedSector};

mod deals;
mod job_checks;
mod jobs;
mod manager;
mod pieces;
mod proving_check;
mod records;
mod rows;
mod sections;
mod sector_table;
mod wdpost;
mod wdpost_admin;
mod wdpost_job;

use deals::deals_comm_d;
use records::Snapshot;
pub use records::{
    ChainHead, ChainRecord, RecordChanges, RecordKey, RecordsCursor, RecordsRead, SharedRecords,
    SharedRecordsError,
};

pub use jobs::{kind_name, ChainJob, JobKind, JobRefused, JobState, UNREPORTED_LEASE_SECS};
pub use proving_check::ProvingCheckError;
pub use wdpost::{
    CHALLENGE_WINDOW as WDPOST_CHALLENGE_WINDOW, HEARTBEAT_TIMEOUT as WDPOST_HEARTBEAT_TIMEOUT,
};
pub use wdpost_admin::WdPostJobError;
pub use wdpost_job::{WdPostJob, WdPostJobSector, WdPostJobState, MAX_TRIES as WDPOST_MAX_TRIES};

/// Where a sector stands on the mock chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ChainSectorState {
    /// Allocated to a worker.
    Allocated,
    /// Pre-committed.
    PreCommitted,
    /// Proven: the proof verified.
    Proven,
    /// The worker reported it finalized.
    Finished,
    /// A finished CC sector handed to a snap-up thread, being upgraded with deals.
    Upgrading,
    /// Upgraded: its update proof verified and the snap-up thread finished.
    Upgraded,
    /// Aborted, with the reason.
    Aborted(String),
}

/// A snap-up of a finished CC sector: the deals it was given and, once verified, the
/// update the chain accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainUpgrade {
    /// The deal pieces put into the sector.
    pub deals: Vec<SectorPiece>,
    /// The accepted update.
    pub accepted: Option<AcceptedUpdate>,
}

/// An update proof the chain verified: with the sector's original comm_r, what an
/// independent verifier needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcceptedUpdate {
    /// The update proof type.
    pub proof_type: UpdateProof,
    /// The updated replica's commitment.
    pub comm_r_new: [u8; 32],
    /// The deal data's commitment.
    pub comm_d_new: [u8; 32],
    /// The proof.
    pub proof: Vec<u8>,
    /// The store holding `update/<sector>` and `update-cache/<sector>/`.
    pub store: String,
}

/// Everything the mock chain knows of a sector: enough to verify its proof independently.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainSector {
    /// The sector.
    pub id: SectorId,
    /// Its proof type.
    pub proof_type: SealProof,
    /// The ticket handed out.
    pub ticket: Option<Ticket>,
    /// The accepted pre-commit.
    pub pre_commit: Option<PreCommitOnChainInfo>,
    /// The seed handed out.
    pub seed: Option<Seed>,
    /// The accepted (verified) proof.
    pub proof: Option<Vec<u8>>,
    /// The store the files were persisted to.
    pub persisted: Option<String>,
    /// The last state the worker reported.
    pub reported_state: Option<String>,
    /// Where it stands.
    pub state: ChainSectorState,
    /// The deal pieces the sector was given (empty: CC).
    #[serde(default)]
    pub deals: Vec<SectorPiece>,
    /// Its snap-up, once a snap-up thread took it.
    #[serde(default)]
    pub upgrade: Option<ChainUpgrade>,
    /// How many times its files were rebuilt (and the rebuilt files accepted).
    #[serde(default)]
    pub rebuilt: u32,
}

/// Counters of what the chain was sent, for tests that check nothing is done twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ChainCounters {
    /// Sectors allocated.
    pub allocated: u64,
    /// Pre-commits accepted as new.
    pub pre_commits_accepted: u64,
    /// Pre-commits answered as duplicates.
    pub pre_commits_duplicate: u64,
    /// Proofs accepted (verified) as new.
    pub proofs_accepted: u64,
    /// Proofs answered as duplicates.
    pub proofs_duplicate: u64,
    /// Proofs rejected as invalid.
    pub proofs_rejected: u64,
    /// Update (snap-up) proofs accepted (verified) as new.
    pub upgrades_accepted: u64,
    /// Update proofs answered as duplicates.
    pub upgrades_duplicate: u64,
    /// Update proofs rejected.
    pub upgrades_rejected: u64,
    /// Rebuilt sectors whose files were accepted.
    pub rebuilds_accepted: u64,
    /// Rebuilt sectors whose files were refused.
    pub rebuilds_rejected: u64,
    /// Unsealed pieces accepted.
    pub unseals_accepted: u64,
    /// Unsealed pieces refused.
    pub unseals_rejected: u64,
    /// WindowPoSt proofs that verified.
    pub posts_verified: u64,
    /// WindowPoSt proofs that did not.
    pub posts_rejected: u64,
    /// WindowPoSt proofs that came back after their job's deadline (counted as verified
    /// or rejected too).
    pub posts_missed: u64,
    /// Sectors reported faulty in WindowPoSt results.
    pub post_faults: u64,
}

/// A sector manager call a fault can be set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // one variant per SectorManager method
#[non_exhaustive]
pub enum ChainCall {
    AllocateSector,
    AcquireDeals,
    AssignTicket,
    SubmitPreCommit,
    PollPreCommitState,
    StoreReserveSpace,
    StoreBasicInfo,
    SubmitPersisted,
    WaitSeed,
    SubmitProof,
    PollProofState,
    ReportState,
    ReportFinalized,
    ReportAborted,
    AllocateSnapUpSector,
    SubmitSnapUpProof,
    AllocateRebuildSector,
    AllocateUnsealSector,
    AcquireUnsealDest,
    AchieveUnsealSector,
    WdPoStAllocateJobs,
    WdPoStHeartbeatJobs,
    WdPoStFinishJob,
}

#[derive(Debug, Default)]
struct ChainState {
    next_number: BTreeMap<ActorId, u64>,
    sectors: sector_table::SectorTable,
    counters: ChainCounters,
    faults: HashMap<ChainCall, (usize, ManagerError)>,
    sector_limit: Option<u64>,
    report_delay: std::time::Duration,
    /// How long `AllocateSector` answers after allocating.
    allocation_answer_delay: std::time::Duration,
    /// Where the records are kept, when they are.
    file: Option<PathBuf>,
    offer: Option<DealOffer>,
    /// The last deal id handed out.
    last_deal_id: u64,
    /// Rebuild jobs, oldest first.
    jobs: Vec<ChainJob>,
    /// Where the stores the worker persists to are, by name (what the manager of a real
    /// cluster mounts): the rebuild check reads the files there.
    stores: BTreeMap<String, PathBuf>,
    /// WindowPoSt jobs, oldest first.
    wdpost_jobs: Vec<WdPostJob>,
    /// The last WindowPoSt round started.
    wdpost_round: u64,
    /// When rounds start, how big their jobs are.
    wdpost_schedule: wdpost::WdPostSchedule,
    /// The last heartbeat of each job being proven, in Unix milliseconds (kept with the
    /// records, so that every manager sharing them sees the heartbeats any was sent).
    wdpost_heartbeats: BTreeMap<String, u64>,
    /// Where the records are kept when several managers share them.
    shared: Option<Arc<dyn SharedRecords>>,
    /// This manager's copy of the shared records as last read or written (`None`: to be
    /// read whole).
    synced: Option<sections::Synced>,
    /// Whether the section changed the records (they are written when it ends).
    changed: bool,
    /// Since when, and why, the shared records could not be read (a database outage).
    unread_since: Option<(std::time::SystemTime, String)>,
}

/// What share of sectors get deals, and where their pieces are kept.
#[derive(Debug, Clone)]
struct DealOffer {
    share: f64,
    dir: PathBuf,
}

/// Why a chain over shared records cannot start ([`MockChain::shared`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedChainError {
    /// The shared records cannot be read (the database is down), saying why.
    #[error("{0}")]
    Unreadable(String),
    /// They hold sectors of another size.
    #[error(
        "the shared records of miner t0{miner} hold {held} sectors, and this manager was started for {wanted}: give each sector size a miner of its own (--miner)"
    )]
    OtherSectorSize {
        /// The miner.
        miner: ActorId,
        /// The size of the sectors they hold.
        held: damocles_core::SectorSize,
        /// The size this manager was started for.
        wanted: damocles_core::SectorSize,
    },
}

/// The mock chain. Clones share state.
#[derive(Debug, Clone)]
pub struct MockChain {
    miner: ActorId,
    proof_type: SealProof,
    state: Arc<Mutex<ChainState>>,
}

impl MockChain {
    /// A chain that allocates sectors of `proof_type` for `miner`, numbered from 1.
    pub fn new(miner: ActorId, proof_type: SealProof) -> Self {
        Self {
            miner,
            proof_type,
            state: Arc::default(),
        }
    }

    /// A chain whose records live in `file` (read now if it exists, rewritten after every
    /// change), so that they survive a restart.
    pub fn open(file: &Path, miner: ActorId, proof_type: SealProof) -> std::io::Result<Self> {
        let chain = Self::new(miner, proof_type);
        {
            let mut state = chain.lock();
            if file.exists() {
                let snapshot: Snapshot =
                    serde_json::from_slice(&std::fs::read(file)?).map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: {e}", file.display()),
                        )
                    })?;
                state.restore(snapshot);
                for sector in state.sectors.values_mut() {
                    if sector.state == ChainSectorState::Upgrading && sector.upgrade.is_none() {
                        sector.state = ChainSectorState::Finished;
                    }
                }
            }
            state.file = Some(file.to_path_buf());
        }
        Ok(chain)
    }

    /// A chain whose records are `shared` with other managers (a database): every
    /// section of its work reads them first and writes what it changes, so that sector
    /// numbers, pre-commits, proofs and jobs are one set whichever manager a worker asks.
    ///
    /// # Errors
    /// [`SharedChainError`]: the records cannot be read, or hold sectors of another proof
    /// type (managers started for one miner with different sector sizes).
    pub fn shared(
        shared: Arc<dyn SharedRecords>,
        miner: ActorId,
        proof_type: SealProof,
    ) -> Result<Self, SharedChainError> {
        let chain = Self::new(miner, proof_type);
        chain.state.lock().unwrap_or_else(|p| p.into_inner()).shared = Some(shared);
        let records = chain.lock();
        if let Some(why) = &records.refused {
            return Err(SharedChainError::Unreadable(why.clone()));
        }
        let other = records
            .sectors
            .values()
            .find(|s| s.proof_type != proof_type)
            .map(|s| s.proof_type.sector_size());
        drop(records);
        match other {
            Some(held) => Err(SharedChainError::OtherSectorSize {
                miner,
                held,
                wanted: proof_type.sector_size(),
            }),
            None => Ok(chain),
        }
    }

    /// The chain's own settings (deals offered, report delay, stores, where the records
    /// are), which the shared records do not hold: read without a section.
    fn settings(&self) -> MutexGuard<'_, ChainState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allocates at most `limit` sectors in all; later allocations answer "none".
    pub fn limit_sectors(&self, limit: u64) {
        self.lock().sector_limit = Some(limit);
    }

    /// Answers `AllocateSector` `delay` after the sector is allocated: the window in which
    /// a worker waits for a sector the manager already handed it.
    pub fn delay_allocation_answers(&self, delay: std::time::Duration) {
        self.settings().allocation_answer_delay = delay;
    }

    /// Answers every `ReportState` only after `delay`: each state a worker reaches stays
    /// visible that long (the worker reports right after persisting it), so that tests can
    /// observe, and crash a worker in, every state.
    pub fn delay_reports(&self, delay: std::time::Duration) {
        self.settings().report_delay = delay;
    }

    /// Offers deals: `share` of the sectors, by number (0.5: the even-numbered ones), get one or
    /// two deal pieces of random bytes, half and a quarter of the sector, whose payloads
    /// are kept in `dir` as `<dir>/<piece cid>` (what [`PieceStore::fetch`] and the
    /// manager's `/piecestore/{cid}` serve). The pre-commit of a deal sector must then
    /// carry the comm_d of those pieces.
    pub fn offer_deals(&self, share: f64, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        self.settings().offer = Some(DealOffer {
            share: share.clamp(0.0, 1.0),
            dir: dir.to_path_buf(),
        });
        Ok(())
    }

    /// Where the offered pieces are kept, when deals are offered.
    pub fn piece_dir(&self) -> Option<PathBuf> {
        self.settings().offer.as_ref().map(|o| o.dir.clone())
    }

    /// Makes the next `times` calls of `call` fail with `error`.
    pub fn fail_next(&self, call: ChainCall, times: usize, error: ManagerError) {
        self.lock().faults.insert(call, (times, error));
    }

    /// Every sector the chain knows, by id.
    pub fn sectors(&self) -> Vec<ChainSector> {
        self.lock().sectors.values().cloned().collect()
    }

    /// One sector.
    pub fn sector(&self, id: SectorId) -> Option<ChainSector> {
        self.lock().sectors.get(&id).cloned()
    }

    /// The padded size of deal piece `cid` in any sector the chain knows (given at
    /// sealing or at a snap-up), or `None` when no sector holds such a piece.
    pub fn deal_piece_size(&self, cid: &Cid) -> Option<u64> {
        let state = self.lock();
        state
            .sectors
            .values()
            .flat_map(|s| {
                let upgraded = s.upgrade.iter().flat_map(|u| u.deals.iter());
                s.deals.iter().chain(upgraded)
            })
            .find(|d| &d.piece.cid == cid)
            .map(|d| d.piece.size)
    }

    /// What the chain was sent so far.
    pub fn counters(&self) -> ChainCounters {
        self.lock().counters
    }

    /// `AllocateSector`'s work: a new sector number, unless the spec or the limit rules it
    /// out.
    fn allocate_now(
        &self,
        spec: &AllocateSectorSpec,
    ) -> Result<Option<AllocatedSector>, ManagerError> {
        if !self.serves(spec) {
            return Ok(None);
        }
        let mut state = self.lock();
        if state
            .sector_limit
            .is_some_and(|limit| state.counters.allocated >= limit)
        {
            // Only once the records were read: unreadable ones are an error, not "none".
            state.commit()?;
            return Ok(None);
        }
        let next = state.next_number.entry(self.miner).or_insert(1);
        let id = SectorId::new(self.miner, *next);
        *next += 1;
        state.counters.allocated += 1;
        state.sectors.insert(ChainSector {
            id,
            proof_type: self.proof_type,
            ticket: None,
            pre_commit: None,
            seed: None,
            proof: None,
            persisted: None,
            reported_state: None,
            state: ChainSectorState::Allocated,
            deals: Vec::new(),
            upgrade: None,
            rebuilt: 0,
        });
        state.save();
        state.commit()?;
        Ok(Some(AllocatedSector {
            id,
            proof_type: self.proof_type,
        }))
    }

    /// Whether a thread asking with `spec` takes this chain's sectors (its miner and
    /// proof type allowed, or any).
    fn serves(&self, spec: &AllocateSectorSpec) -> bool {
        allowed(&spec.allowed_miners, &self.miner)
            && allowed(&spec.allowed_proof_types, &self.proof_type)
    }

    fn check_fault(&self, call: ChainCall) -> Result<(), ManagerError> {
        // Faults are this process's test settings, not shared records.
        let mut state = self.settings();
        if let Some((remaining, error)) = state.faults.get_mut(&call) {
            if *remaining > 0 {
                *remaining -= 1;
                return Err(error.clone());
            }
        }
        Ok(())
    }

    fn with_sector<T>(
        &self,
        id: SectorId,
        f: impl FnOnce(&mut ChainSector, &mut ChainCounters) -> T,
    ) -> Result<T, ManagerError> {
        let mut state = self.lock();
        let ChainState {
            sectors, counters, ..
        } = &mut *state;
        let sector = sectors.get_mut(&id).ok_or_else(|| {
            // The Go manager's text (modules/sealer/sealer.go sectorStateErr), which the
            // wire prefixes with its code: "error code 11001: sector state not found".
            let _ = id;
            ManagerError::sector_not_found("sector state not found")
        })?;
        let (before, counted) = (sector.clone(), *counters);
        let result = f(sector, counters);
        if *sector != before || *counters != counted {
            state.save();
        }
        state.commit()?;
        Ok(result)
    }
}

fn has_accepted_update(sector: &ChainSector) -> bool {
    sector
        .upgrade
        .as_ref()
        .is_some_and(|u| u.accepted.is_some())
}

fn randomness() -> [u8; 32] {
    let mut bytes: [u8; 32] = rand::random();
    bytes[31] &= 0x3f;
    bytes
}

fn allowed<T: PartialEq>(list: &Option<Vec<T>>, value: &T) -> bool {
    list.as_ref()
        .is_none_or(|l| l.is_empty() || l.contains(value))
}

/// Why [`idle_worker`] could not start.
pub type IdleWorkerError = Box<dyn std::error::Error + Send + Sync>;

/// A worker of `threads` sealing threads (locations `<dir>/store<i>`, attached store
/// `<dir>/remote`) over a mock chain that allocates nothing: every thread holds an empty
/// record and idles (asking again hourly). Returns once every thread shows so. The fixture
/// of the admin-latency benchmark and of the interop tests, which need a worker to talk to
/// but nothing sealed.
pub async fn idle_worker(
    dir: &Path,
    threads: usize,
    version: &str,
) -> Result<crate::Worker, IdleWorkerError> {
    use damocles_core::{Plan, StateStore, ThreadState};

    let chain = MockChain::new(10000, SealProof::StackedDrg2KiBV1_1);
    chain.limit_sectors(0);
    let mut contexts = Vec::with_capacity(threads);
    for i in 0..threads {
        let location = crate::store::Location::init(&dir.join(format!("store{i}")))?;
        let store = Arc::new(crate::store::RedbStateStore::open(&location)?);
        contexts.push(crate::ThreadContext {
            worker_name: "idle".into(),
            location,
            plan: Plan::Sealer,
            options: crate::SealingOptions {
                recover_interval: std::time::Duration::from_secs(3600),
                ..crate::SealingOptions::immediate()
            },
            manager: Arc::new(chain.clone()),
            store: store as Arc<dyn StateStore>,
            limits: crate::limits::StageLimits::default(),
            processors: crate::processors::Processors::default(),
            priority: crate::priority::PostPriority::default(),
            attached: vec![crate::AttachedStore {
                name: "remote".into(),
                location: dir.join("remote"),
                readonly: false,
            }],
            pieces: Default::default(),
        });
    }
    let worker = crate::Worker::start(contexts, version);
    let mut changes = worker.subscribe();
    while !worker
        .list()
        .iter()
        .all(|t| t.thread_state == ThreadState::Idle && t.job_state.is_some())
    {
        tokio::time::timeout(std::time::Duration::from_secs(60), changes.changed()).await??;
    }
    Ok(worker)
}

#[cfg(test)]
mod tests;
