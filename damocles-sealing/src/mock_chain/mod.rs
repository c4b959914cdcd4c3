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

mod jobs;
mod wdpost;

pub use jobs::{kind_name, ChainJob, JobKind, JobRefused, JobState, UNREPORTED_LEASE_SECS};
pub use wdpost::{
    WdPostJob, WdPostJobSector, WdPostJobState, HEARTBEAT_TIMEOUT as WDPOST_HEARTBEAT_TIMEOUT,
    MAX_TRIES as WDPOST_MAX_TRIES,
};

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
    sectors: BTreeMap<SectorId, ChainSector>,
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
    /// Whether the section changed the records (they are written when it ends).
    changed: bool,
    /// Since when, and why, the shared records could not be read (a database outage).
    unread_since: Option<(std::time::SystemTime, String)>,
}

/// Why a section of [`SharedRecords`] or a piece kept there failed; the text is the
/// store's own (a database error, its password hidden).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedRecordsError {
    /// The records could not be read in time (the database is down): no section is open.
    #[error("{0}")]
    Unreadable(String),
    /// What the section wrote did not land and another holder wrote meanwhile.
    #[error("{0}")]
    WritesLost(String),
    /// A piece could not be stored or read.
    #[error("{0}")]
    Pieces(String),
}

/// Records shared by several managers (a database row), read and written in sections
/// that exclude every other holder: each section of the chain's work (one lock of its
/// state) reads the records as they stand, and what it saves is written before the next
/// section anywhere begins. Blocking: an implementation waits for its database (and
/// retries while it is down) rather than fail a section; only a section whose writes
/// are known lost fails.
#[async_trait]
pub trait SharedRecords: Send + Sync + std::fmt::Debug {
    /// Begins a section: the records (JSON) once no other section holds them; `None`
    /// before anything was written.
    ///
    /// # Errors
    /// They could not be read by `deadline` (the database is down): no section is open.
    fn begin(&self, deadline: std::time::Instant) -> Result<Option<String>, SharedRecordsError>;
    /// Writes the records within the section.
    fn write(&self, json: &str);
    /// Ends the section, making what it wrote visible to every holder.
    ///
    /// # Errors
    /// What the section wrote did not land (its commit was lost and another holder wrote
    /// meanwhile): the records are as they were before the section, and the caller must
    /// not act on what the section decided.
    fn end(&self) -> Result<(), SharedRecordsError>;
    /// Keeps a deal piece's payload where every holder can read it.
    ///
    /// # Errors
    /// The payload could not be stored.
    async fn keep_piece(&self, cid: &Cid, payload: &[u8]) -> Result<(), SharedRecordsError>;
    /// A deal piece's payload kept by [`SharedRecords::keep_piece`] (by any holder);
    /// `Ok(None)` for a piece nobody kept.
    ///
    /// # Errors
    /// The store could not be read.
    async fn piece(&self, cid: &Cid) -> Result<Option<Vec<u8>>, SharedRecordsError>;
}

/// What share of sectors get deals, and where their pieces are kept.
#[derive(Debug, Clone)]
struct DealOffer {
    share: f64,
    dir: PathBuf,
}

/// What [`MockChain::open`] keeps on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    next_number: BTreeMap<ActorId, u64>,
    sectors: Vec<ChainSector>,
    counters: ChainCounters,
    #[serde(default)]
    last_deal_id: u64,
    #[serde(default)]
    jobs: Vec<ChainJob>,
    #[serde(default)]
    wdpost_jobs: Vec<WdPostJob>,
    #[serde(default)]
    wdpost_round: u64,
    #[serde(default)]
    wdpost_heartbeats: BTreeMap<String, u64>,
    /// When the last WindowPoSt round started, in Unix milliseconds.
    #[serde(default)]
    wdpost_last_round: Option<u64>,
}

impl ChainState {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            next_number: self.next_number.clone(),
            sectors: self.sectors.values().cloned().collect(),
            counters: self.counters,
            last_deal_id: self.last_deal_id,
            jobs: self.jobs.clone(),
            wdpost_jobs: self.wdpost_jobs.clone(),
            wdpost_round: self.wdpost_round,
            wdpost_heartbeats: self.wdpost_heartbeats.clone(),
            wdpost_last_round: self.wdpost_schedule.last_round,
        }
    }

    fn restore(&mut self, snapshot: Snapshot) {
        self.next_number = snapshot.next_number;
        self.counters = snapshot.counters;
        self.sectors = snapshot.sectors.into_iter().map(|s| (s.id, s)).collect();
        self.last_deal_id = snapshot.last_deal_id;
        self.jobs = snapshot.jobs;
        self.wdpost_jobs = snapshot.wdpost_jobs;
        self.wdpost_round = snapshot.wdpost_round;
        self.wdpost_heartbeats = snapshot.wdpost_heartbeats;
        self.wdpost_schedule.last_round = snapshot.wdpost_last_round;
    }

    /// Marks the records changed: they are written (into the shared records, or the
    /// file) when the section ends.
    fn save(&mut self) {
        self.changed = true;
    }

    /// Writes the records if the section changed them: into the shared records, or a
    /// file (to a temporary file, synced, then renamed over the old one and the directory
    /// synced), so that nothing is answered before it is durable.
    ///
    /// # Errors
    /// The file could not be written (a full disk): the records in memory are put back as
    /// the file holds them, so that what the section decided is neither answered nor
    /// kept, and the next section (once there is space) starts from what is durable.
    fn write_changes(&mut self) -> std::io::Result<()> {
        if !std::mem::take(&mut self.changed) {
            return Ok(());
        }
        let snapshot = self.snapshot();
        if let Some(shared) = &self.shared {
            match serde_json::to_string(&snapshot) {
                Ok(json) => shared.write(&json),
                Err(e) => tracing::error!("mock chain: cannot encode the records: {e}"),
            }
            return Ok(());
        }
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        let write = || -> std::io::Result<()> {
            let tmp = file.with_extension("tmp");
            let mut out = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut out, &serde_json::to_vec(&snapshot)?)?;
            out.sync_all()?;
            std::fs::rename(&tmp, &file)?;
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        let Err(e) = write() else {
            return Ok(());
        };
        let why = std::io::Error::new(e.kind(), format!("cannot save {}: {e}", file.display()));
        tracing::error!("mock chain: {why}; the records are put back as they were saved");
        let _ = std::fs::remove_file(file.with_extension("tmp"));
        let durable = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(ChainState::default().snapshot())
            }
            Err(e) => Err(e.to_string()),
        };
        match durable {
            Ok(snapshot) => self.restore(snapshot),
            Err(e) => tracing::error!("mock chain: cannot read {} back: {e}", file.display()),
        }
        Err(why)
    }
}

/// How long a section waits for shared records that cannot be read (the database is
/// down) before its call fails: less than a worker waits for an answer, so that a call
/// its caller gave up on is never carried out later.
const SECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// The chain's state for one section of work. With shared records, the section read them
/// first and ends when the guard is committed or dropped: a call that answers a worker
/// after changing the records ends it with [`ChainGuard::commit`], so that a section
/// whose writes were lost answers an error (the worker asks again) rather than a
/// decision nobody else will see.
struct ChainGuard<'a> {
    state: MutexGuard<'a, ChainState>,
    ended: bool,
    /// Why the shared records could not be read: the section writes nothing and its
    /// commit fails with this.
    refused: Option<String>,
}

/// Why a section's changes were not saved.
#[derive(Debug, thiserror::Error)]
enum SectionError {
    /// The section could not read the records, so it may not write them.
    #[error("{0}")]
    Refused(String),
    /// The records file could not be written.
    #[error("{0}")]
    File(#[from] std::io::Error),
    /// The shared records lost the section's writes.
    #[error("{0}")]
    Shared(#[from] SharedRecordsError),
}

impl ChainGuard<'_> {
    /// Writes what the section changed and ends it.
    ///
    /// # Errors
    /// A transport error (which workers retry) when the shared records lost the section's
    /// writes.
    fn commit(mut self) -> Result<(), ManagerError> {
        self.end().map_err(|e| {
            ManagerError::transport(format!(
                "the manager's records were not saved ({e}); nothing changed, ask again"
            ))
        })
    }

    fn end(&mut self) -> Result<(), SectionError> {
        self.ended = true;
        if let Some(why) = &self.refused {
            self.state.changed = false;
            return Err(SectionError::Refused(why.clone()));
        }
        self.state.write_changes()?;
        match &self.state.shared {
            Some(shared) => Ok(shared.end()?),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for ChainGuard<'_> {
    type Target = ChainState;
    fn deref(&self) -> &ChainState {
        &self.state
    }
}

impl std::ops::DerefMut for ChainGuard<'_> {
    fn deref_mut(&mut self) -> &mut ChainState {
        &mut self.state
    }
}

impl Drop for ChainGuard<'_> {
    fn drop(&mut self) {
        if !self.ended {
            if let Err(e) = self.end() {
                tracing::error!("mock chain: a change of the records was lost: {e}");
            }
        }
    }
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
    /// The records hold sectors of another proof type (managers started for one miner
    /// with different sector sizes).
    pub fn shared(
        shared: Arc<dyn SharedRecords>,
        miner: ActorId,
        proof_type: SealProof,
    ) -> Result<Self, String> {
        let chain = Self::new(miner, proof_type);
        chain.state.lock().unwrap_or_else(|p| p.into_inner()).shared = Some(shared);
        let records = chain.lock();
        if let Some(why) = &records.refused {
            return Err(why.clone());
        }
        let other = records
            .sectors
            .values()
            .find(|s| s.proof_type != proof_type)
            .map(|s| s.proof_type.sector_size());
        drop(records);
        match other {
            Some(size) => Err(format!(
                "the shared records of miner t0{miner} hold {size} sectors, and this manager \
                 was started for {}: give each sector size a miner of its own (--miner)",
                proof_type.sector_size()
            )),
            None => Ok(chain),
        }
    }

    fn lock(&self) -> ChainGuard<'_> {
        let deadline = std::time::Instant::now() + SECTION_WAIT;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut refused = None;
        if let Some(shared) = state.shared.clone() {
            // Read whole every time: what this manager wrote in a lost section is gone.
            let begun = shared.begin(deadline);
            state.unread_since = match &begun {
                Ok(_) => None,
                Err(why) => Some(match state.unread_since.take() {
                    Some((since, _)) => (since, why.to_string()),
                    None => (std::time::SystemTime::now(), why.to_string()),
                }),
            };
            match begun {
                Err(why) => refused = Some(format!("the shared records cannot be read: {why}")),
                Ok(None) => state.restore(ChainState::default().snapshot()),
                Ok(Some(json)) => match serde_json::from_str::<Snapshot>(&json) {
                    Ok(snapshot) => state.restore(snapshot),
                    Err(e) => {
                        // Never written over: mending them is an operator's work.
                        let why = format!(
                            "the shared records are unreadable ({e}); nothing is written until \
                             they are mended or removed"
                        );
                        tracing::error!("mock chain: {why}");
                        let _ = shared.end();
                        refused = Some(why);
                    }
                },
            }
        }
        ChainGuard {
            state,
            ended: false,
            refused,
        }
    }

    /// Why the shared records could not be read by the last section, and since when:
    /// `"the shared records cannot be read since <RFC 3339 time> (<why>); …"`; `None`
    /// while they are read (and always for records in a file).
    pub fn records_unreadable(&self) -> Option<String> {
        let settings = self.settings();
        let (since, why) = settings.unread_since.as_ref()?;
        Some(format!(
            "the shared records cannot be read since {} ({why}); what this manager holds in \
             memory may be stale, so it lists nothing",
            humantime::format_rfc3339_seconds(*since)
        ))
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

    /// One or two deal pieces of random bytes (half and a quarter of the sector) kept in
    /// `dir`, within `spec`; `None` when `spec` allows none.
    async fn make_deals(
        &self,
        dir: &Path,
        spec: &AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError> {
        let proof = self.proof_type;
        let count = if rand::random::<bool>() { 2 } else { 1 };
        let count = spec.max_deals.map_or(count, |max| count.min(max));
        let sizes: Vec<u64> = (1..=count)
            .map(|i| proof.sector_size().bytes() >> i)
            .collect();
        if count == 0
            || spec
                .min_used_space
                .is_some_and(|min| sizes.iter().sum::<u64>() < min)
        {
            return Ok(None);
        }
        let made_in = dir.to_path_buf();
        let pieces = tokio::task::spawn_blocking(move || make_pieces(proof, &sizes, &made_in))
            .await
            .map_err(|e| ManagerError::remote(1, format!("piece maker panicked: {e}")))?
            .map_err(|e| ManagerError::remote(1, format!("make deal pieces: {e}")))?;
        let shared = self.settings().shared.clone();
        if let Some(shared) = shared {
            // Kept where every manager reads them before any worker hears of them.
            for (cid, _, _) in &pieces {
                let path = dir.join(&cid.text);
                let payload = tokio::fs::read(&path).await.map_err(|e| {
                    ManagerError::remote(1, format!("read {}: {e}", path.display()))
                })?;
                shared.keep_piece(cid, &payload).await.map_err(|e| {
                    ManagerError::transport(format!("keep deal piece {}: {e}", cid.text))
                })?;
            }
        }
        let sector_size = proof.sector_size().bytes();
        let mut state = self.lock();
        let deals = pieces
            .into_iter()
            .map(|(cid, padded, payload)| {
                state.last_deal_id += 1;
                SectorPiece {
                    piece: PieceRef { size: padded, cid },
                    deal_info: DealInfo {
                        deal_id: state.last_deal_id,
                        allocation_id: 0,
                        payload_size: payload,
                        is_builtin_market: true,
                    },
                }
            })
            .collect();
        let assigned = lay_out(sector_size, deals)
            .map_err(|e| ManagerError::remote(1, format!("lay out deal pieces: {e}")))?;
        state.save();
        state.commit()?;
        Ok(Some(assigned))
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
        state.sectors.insert(
            id,
            ChainSector {
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
            },
        );
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

/// The comm_d a sector with these deals must have.
fn deals_comm_d(proof: SealProof, deals: &[SectorPiece]) -> Result<[u8; 32], Failure> {
    let pieces = deals
        .iter()
        .map(|d| {
            piece::comm_p(&d.piece.cid)
                .map(|comm_p| (comm_p, d.piece.size))
                .map_err(|e| Failure::permanent(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    proofs::sector_comm_d(proof, &pieces)
}

/// The pieces a sector is assigned, laid out as the Go manager's deal assignment does
/// (venus-market `pickAndAlign`): the deals by size, smallest first, each after the zero
/// pieces that align it, then zero pieces filling the rest, smallest first. Zero pieces are
/// pledge pieces as the Go manager sends them: deal and allocation ID 0, no publish message
/// (`IsBuiltinMarket` false). Deals that no longer fit are dropped.
fn lay_out(sector_size: u64, mut deals: Vec<SectorPiece>) -> Result<Vec<SectorPiece>, Failure> {
    let pledge = |size: u64| {
        Ok::<_, Failure>(SectorPiece {
            piece: PieceRef {
                size,
                cid: proofs::pledge_piece_cid(size)?,
            },
            deal_info: DealInfo {
                deal_id: 0,
                allocation_id: 0,
                payload_size: 0,
                is_builtin_market: false,
            },
        })
    };
    // The largest piece that starts aligned where `space` bytes are left.
    let aligned = |space: u64| 1u64 << space.trailing_zeros();
    deals.sort_by_key(|d| d.piece.size);
    let mut space = sector_size;
    let mut assigned = Vec::new();
    for deal in deals {
        if deal.piece.size > space {
            break;
        }
        while deal.piece.size > aligned(space) {
            let pad = aligned(space);
            assigned.push(pledge(pad)?);
            space -= pad;
        }
        space -= deal.piece.size;
        assigned.push(deal);
    }
    while space > 0 {
        let pad = aligned(space);
        assigned.push(pledge(pad)?);
        space -= pad;
    }
    Ok(assigned)
}

/// Random deal payloads for pieces of these padded sizes, kept in `dir` by piece CID:
/// (CID, padded size, payload size) each.
fn make_pieces(
    proof: SealProof,
    sizes: &[u64],
    dir: &Path,
) -> Result<Vec<(Cid, u64, u64)>, Failure> {
    sizes
        .iter()
        .map(|&padded| {
            let unpadded = piece::unpadded_size(padded)
                .ok_or_else(|| Failure::permanent(format!("no piece of {padded} bytes")))?;
            // Payloads shorter than the piece, as real deals are: zeros fill the rest.
            let len = rand::thread_rng().gen_range(unpadded / 2..=unpadded) as usize;
            let mut payload = vec![0u8; len];
            rand::thread_rng().fill(payload.as_mut_slice());
            let cid = proofs::piece_cid_of(proof, &payload, padded)?;
            let path = dir.join(&cid.text);
            let tmp = path.with_extension("part");
            std::fs::write(&tmp, &payload)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| Failure::critical(format!("write {}: {e}", path.display())))?;
            Ok((cid, padded, len as u64))
        })
        .collect()
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

/// `Landed` once the chain holds the submission, else `NotFound`.
fn landed_if(submitted: bool) -> PollStateResp {
    PollStateResp {
        state: if submitted {
            OnChainState::Landed
        } else {
            OnChainState::NotFound
        },
        desc: None,
    }
}

fn submit_answer(res: SubmitResult, desc: Option<String>) -> SubmitResp {
    SubmitResp { res, desc }
}

#[async_trait]
impl SectorManager for MockChain {
    async fn allocate_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<AllocatedSector>, ManagerError> {
        self.check_fault(ChainCall::AllocateSector)?;
        let answer = self.allocate_now(&spec);
        let delay = self.settings().allocation_answer_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        answer
    }

    async fn acquire_deals(
        &self,
        id: SectorId,
        spec: AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError> {
        self.check_fault(ChainCall::AcquireDeals)?;
        // As the manager does: pieces assigned before are the sector's.
        let assigned = self.with_sector(id, |sector, _| sector.deals.clone())?;
        if !assigned.is_empty() {
            return Ok(Some(assigned));
        }
        let Some(offer) = self.settings().offer.clone() else {
            return Ok(None);
        };
        // Deterministic shares, by sector number: sector n gets deals when n·share crosses
        // an integer (0.5: every even-numbered sector), however often it asks.
        let n = id.number as f64;
        if (n * offer.share).floor() <= ((n - 1.0) * offer.share).floor() {
            return Ok(None);
        }
        let Some(deals) = self.make_deals(&offer.dir, &spec).await? else {
            return Ok(None);
        };
        self.with_sector(id, |sector, _| {
            if sector.deals.is_empty() {
                sector.deals = deals;
            }
            Some(sector.deals.clone())
        })
    }

    async fn assign_ticket(&self, id: SectorId) -> Result<Ticket, ManagerError> {
        self.check_fault(ChainCall::AssignTicket)?;
        self.with_sector(id, |sector, _| {
            *sector.ticket.get_or_insert(Ticket {
                ticket: randomness(),
                epoch: 100,
            })
        })
    }

    async fn submit_pre_commit(
        &self,
        sector: AllocatedSector,
        info: PreCommitOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError> {
        self.check_fault(ChainCall::SubmitPreCommit)?;
        let deals = self.with_sector(sector.id, |entry, _| entry.deals.clone())?;
        let proof = sector.proof_type;
        let expected_comm_d = tokio::task::spawn_blocking(move || deals_comm_d(proof, &deals))
            .await
            .map_err(|e| ManagerError::remote(1, format!("comm_d check panicked: {e}")))?;
        self.with_sector(sector.id, |entry, counters| match &entry.pre_commit {
            Some(existing) if !reset && *existing == info => {
                counters.pre_commits_duplicate += 1;
                submit_answer(SubmitResult::DuplicateSubmit, None)
            }
            Some(_) if !reset => submit_answer(
                SubmitResult::MismatchedSubmission,
                Some("a different pre-commit was already submitted".into()),
            ),
            _ if entry.ticket.is_some_and(|t| t != info.ticket) => submit_answer(
                SubmitResult::Rejected,
                Some("the ticket is not the one assigned".into()),
            ),
            _ if expected_comm_d.as_ref().is_ok_and(|d| *d != info.comm_d) => submit_answer(
                SubmitResult::Rejected,
                Some(format!(
                    "comm_d {} is not that of the sector's pieces",
                    hex::encode(info.comm_d)
                )),
            ),
            _ if expected_comm_d.is_err() => submit_answer(
                SubmitResult::Rejected,
                Some(format!(
                    "the comm_d of the sector's pieces cannot be computed: {}",
                    expected_comm_d
                        .as_ref()
                        .err()
                        .map_or("", |e| e.message.as_str())
                )),
            ),
            _ => {
                entry.pre_commit = Some(info);
                entry.state = ChainSectorState::PreCommitted;
                counters.pre_commits_accepted += 1;
                submit_answer(SubmitResult::Accepted, None)
            }
        })
    }

    async fn poll_pre_commit_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError> {
        self.check_fault(ChainCall::PollPreCommitState)?;
        self.with_sector(id, |sector, _| landed_if(sector.pre_commit.is_some()))
    }

    async fn store_reserve_space(
        &self,
        id: SectorId,
        _size: u64,
        candidates: Vec<String>,
    ) -> Result<Option<StoreBasicInfo>, ManagerError> {
        self.check_fault(ChainCall::StoreReserveSpace)?;
        self.with_sector(id, |_, _| {
            candidates.into_iter().next().map(StoreBasicInfo::named)
        })
    }

    async fn store_basic_info(
        &self,
        instance: String,
    ) -> Result<Option<StoreBasicInfo>, ManagerError> {
        self.check_fault(ChainCall::StoreBasicInfo)?;
        Ok(Some(StoreBasicInfo::named(instance)))
    }

    async fn submit_persisted(
        &self,
        id: SectorId,
        instance: String,
        is_upgrade: bool,
    ) -> Result<bool, ManagerError> {
        self.check_fault(ChainCall::SubmitPersisted)?;
        if self.rebuilding(id) {
            return self.check_rebuilt(id, instance, is_upgrade).await;
        }
        self.with_sector(id, |sector, _| {
            sector.persisted = Some(instance);
            true
        })
    }

    async fn wait_seed(
        &self,
        id: SectorId,
        _proof_type: SealProof,
    ) -> Result<WaitSeedResp, ManagerError> {
        self.check_fault(ChainCall::WaitSeed)?;
        self.with_sector(id, |sector, _| {
            if sector.pre_commit.is_none() {
                return WaitSeedResp {
                    should_wait: false,
                    delay: 0,
                    seed: None,
                };
            }
            let seed = *sector.seed.get_or_insert(Seed {
                seed: randomness(),
                epoch: 200,
            });
            WaitSeedResp {
                should_wait: false,
                delay: 0,
                seed: Some(seed),
            }
        })
    }

    async fn submit_proof(
        &self,
        id: SectorId,
        info: ProofOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError> {
        self.check_fault(ChainCall::SubmitProof)?;
        let entry = self.with_sector(id, |sector, _| sector.clone())?;
        let already_proven = entry.proof.is_some() && !reset;
        if already_proven && entry.proof.as_ref() == Some(&info.proof) {
            return self.with_sector(id, |_, counters| {
                counters.proofs_duplicate += 1;
                submit_answer(SubmitResult::DuplicateSubmit, None)
            });
        }
        let (Some(pre_commit), Some(seed)) = (entry.pre_commit.clone(), entry.seed) else {
            return Ok(submit_answer(
                SubmitResult::Rejected,
                Some("no pre-commit or seed for this sector".into()),
            ));
        };
        let sealed = SealedSector {
            id: SealIdentity {
                proof: entry.proof_type,
                sector: id,
            },
            ticket: pre_commit.ticket.ticket,
            seed: seed.seed,
            commitments: PreCommitOutput {
                comm_r: pre_commit.comm_r,
                comm_d: pre_commit.comm_d,
            },
            proof: info.proof.clone(),
        };
        // Verification is proof work: keep it off the async executor.
        let verdict = tokio::task::spawn_blocking(move || proofs::verify(&sealed))
            .await
            .map_err(|e| ManagerError::remote(1, format!("verifier panicked: {e}")))?;
        self.with_sector(id, |sector, counters| match verdict {
            // C2 is randomised: a sector proven again (a resume at C1Done or before) sends
            // another proof, as valid as the first, which stays on chain.
            Ok(true) if already_proven => {
                counters.proofs_duplicate += 1;
                submit_answer(SubmitResult::DuplicateSubmit, None)
            }
            Ok(_) | Err(_) if already_proven => submit_answer(
                SubmitResult::MismatchedSubmission,
                Some("a different, invalid proof of a proven sector".into()),
            ),
            Ok(true) => {
                sector.proof = Some(info.proof);
                sector.state = ChainSectorState::Proven;
                counters.proofs_accepted += 1;
                submit_answer(SubmitResult::Accepted, None)
            }
            Ok(false) => {
                counters.proofs_rejected += 1;
                submit_answer(SubmitResult::Rejected, Some("invalid proof".into()))
            }
            Err(failure) => {
                counters.proofs_rejected += 1;
                submit_answer(
                    SubmitResult::Rejected,
                    Some(format!("proof could not be verified: {failure}")),
                )
            }
        })
    }

    async fn poll_proof_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError> {
        self.check_fault(ChainCall::PollProofState)?;
        self.with_sector(id, |sector, _| landed_if(sector.proof.is_some()))
    }

    async fn report_state(
        &self,
        id: SectorId,
        req: ReportStateReq,
    ) -> Result<SectorStateResp, ManagerError> {
        self.check_fault(ChainCall::ReportState)?;
        let delay = self.settings().report_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let job_held = self.note_job_report(id, req.failure.as_ref())?;
        self.with_sector(id, |sector, _| {
            sector.reported_state = Some(req.state_change.next);
            let (finalized, abort_reason) = match &sector.state {
                // The sector is on chain; the job on its files goes on.
                _ if job_held => (false, String::new()),
                ChainSectorState::Finished | ChainSectorState::Upgraded => (true, String::new()),
                ChainSectorState::Aborted(reason) => (true, reason.clone()),
                _ => (false, String::new()),
            };
            SectorStateResp {
                id,
                finalized,
                abort_reason: Some(abort_reason),
            }
        })
    }

    async fn report_finalized(&self, id: SectorId) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::ReportFinalized)?;
        self.finish_job(id)?;
        self.with_sector(id, |sector, _| {
            sector.state = match &sector.state {
                // Its snap-up thread is done once the chain holds the update; a late report
                // of the sealer thread that sealed it changes nothing.
                ChainSectorState::Upgrading if has_accepted_update(sector) => {
                    ChainSectorState::Upgraded
                }
                state @ (ChainSectorState::Upgrading | ChainSectorState::Upgraded) => state.clone(),
                _ => ChainSectorState::Finished,
            };
        })
    }

    async fn report_aborted(&self, id: SectorId, reason: String) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::ReportAborted)?;
        if self.job_held(id) {
            self.fail_job(id, reason)?;
            return Ok(());
        }
        let dir = self.piece_dir();
        self.with_sector(id, |sector, _| match &sector.state {
            // What the chain holds stays: a finished or upgraded sector, an accepted update.
            ChainSectorState::Finished | ChainSectorState::Upgraded => {
                tracing::info!("mock chain: {id} is on chain; its abort ({reason}) is ignored");
            }
            ChainSectorState::Upgrading if has_accepted_update(sector) => {
                sector.state = ChainSectorState::Upgraded;
            }
            ChainSectorState::Upgrading => {
                // A dropped snap-up leaves the CC sector as it was, free to upgrade again;
                // the pieces made for it go.
                tracing::info!("mock chain: snap-up of {id} aborted: {reason}");
                sector.state = ChainSectorState::Finished;
                if let (Some(upgrade), Some(dir)) = (sector.upgrade.take(), &dir) {
                    for deal in upgrade.deals {
                        let _ = std::fs::remove_file(dir.join(&deal.piece.cid.text));
                    }
                }
            }
            _ => sector.state = ChainSectorState::Aborted(reason),
        })
    }

    async fn allocate_snapup_sector(
        &self,
        spec: AllocateSnapUpSpec,
    ) -> Result<Option<AllocatedSnapUpSector>, ManagerError> {
        self.check_fault(ChainCall::AllocateSnapUpSector)?;
        if !self.serves(&spec.sector) {
            return Ok(None);
        }
        let Some(dir) = self.piece_dir() else {
            return Ok(None);
        };
        // Reserved first (Upgrading), so that two threads never take one sector; a
        // reservation without its deals (the mock stopped meanwhile) is released when the
        // records are read again.
        let taken = {
            let mut state = self.lock();
            let ChainState { sectors, jobs, .. } = &mut *state;
            // A sector whose files are being rebuilt has no sector key to give.
            let rebuilding: Vec<SectorId> = jobs
                .iter()
                .filter(|j| j.state.is_open())
                .map(|j| j.sector)
                .collect();
            let candidate = sectors.values_mut().find_map(|s| {
                match (&s.state, &s.pre_commit, &s.persisted, &s.upgrade) {
                    (ChainSectorState::Finished, Some(pre_commit), Some(store), None)
                        if s.deals.is_empty() && !rebuilding.contains(&s.id) =>
                    {
                        let taken = (s.id, s.proof_type, pre_commit.comm_r, store.clone());
                        s.state = ChainSectorState::Upgrading;
                        Some(taken)
                    }
                    _ => None,
                }
            });
            if candidate.is_some() {
                state.save();
            }
            state.commit()?;
            candidate
        };
        let Some((id, proof_type, comm_r, store)) = taken else {
            return Ok(None);
        };
        let deals = match self.make_deals(&dir, &spec.deals).await {
            Ok(Some(deals)) => deals,
            outcome => {
                self.with_sector(id, |s, _| s.state = ChainSectorState::Finished)?;
                return outcome.map(|_| None);
            }
        };
        self.with_sector(id, |s, _| {
            s.upgrade = Some(ChainUpgrade {
                deals: deals.clone(),
                accepted: None,
            });
        })?;
        Ok(Some(AllocatedSnapUpSector {
            sector: AllocatedSector { id, proof_type },
            pieces: deals,
            public: SectorPublicInfo {
                comm_r,
                sealed_cid: None,
                activation: 0,
                expiration: 0,
            },
            private: SectorPrivateInfo {
                access_instance: store,
            },
        }))
    }

    async fn submit_snapup_proof(
        &self,
        id: SectorId,
        info: SnapUpOnChainInfo,
    ) -> Result<SubmitResp, ManagerError> {
        self.check_fault(ChainCall::SubmitSnapUpProof)?;
        let entry = self.with_sector(id, |sector, _| sector.clone())?;
        let (Some(upgrade), Some(pre_commit)) = (entry.upgrade, entry.pre_commit) else {
            return Ok(submit_answer(
                SubmitResult::Rejected,
                Some("the sector is not being upgraded".into()),
            ));
        };
        // Every piece it was given, pledge pieces included, in order (the Go manager's
        // check in modules/sealer/sealer.go).
        let cids: Vec<&Cid> = upgrade.deals.iter().map(|d| &d.piece.cid).collect();
        if info.pieces.iter().collect::<Vec<_>>() != cids {
            return Ok(submit_answer(
                SubmitResult::Rejected,
                Some("the pieces are not the ones the sector was given".into()),
            ));
        }
        let proof = entry.proof_type;
        let deals = upgrade.deals.clone();
        let candidate = UpgradedSector {
            proof_type: proof.update_proof(),
            comm_r_old: pre_commit.comm_r,
            comm_r_new: info.comm_r,
            comm_d_new: info.comm_d,
            proof: info.proof.clone(),
        };
        // Verification is proof work: keep it off the async executor.
        let (expected_comm_d, verdict) = tokio::task::spawn_blocking(move || {
            let comm_d = deals_comm_d(proof, &deals);
            let verdict = update::verify_update(&candidate);
            (comm_d, verdict)
        })
        .await
        .map_err(|e| ManagerError::remote(1, format!("verifier panicked: {e}")))?;
        self.with_sector(id, |sector, counters| {
            // Looked at again: the snap-up may have been dropped, or another submission
            // accepted, while this one was verified.
            if sector.upgrade.as_ref().map(|u| &u.deals) != Some(&upgrade.deals) {
                return submit_answer(
                    SubmitResult::Rejected,
                    Some("the sector is no longer being upgraded with these pieces".into()),
                );
            }
            let already = has_accepted_update(sector);
            let verdict = match expected_comm_d {
                Ok(comm_d) if comm_d != info.comm_d => Err(format!(
                    "comm_d {} is not that of the sector's new pieces",
                    hex::encode(info.comm_d)
                )),
                Ok(_) => verdict.map_err(|e| format!("the proof could not be verified: {e}")),
                Err(e) => Err(format!("the new pieces' comm_d cannot be computed: {e}")),
            };
            match verdict {
                // SNARKs are randomised: a second valid proof of an upgraded sector is a
                // duplicate; the first stays.
                Ok(true) if already => {
                    counters.upgrades_duplicate += 1;
                    submit_answer(SubmitResult::DuplicateSubmit, None)
                }
                Ok(true) => {
                    if let Some(upgrade) = &mut sector.upgrade {
                        upgrade.accepted = Some(AcceptedUpdate {
                            proof_type: proof.update_proof(),
                            comm_r_new: info.comm_r,
                            comm_d_new: info.comm_d,
                            proof: info.proof,
                            store: info.access_instance,
                        });
                    }
                    counters.upgrades_accepted += 1;
                    submit_answer(SubmitResult::Accepted, None)
                }
                Ok(false) => {
                    counters.upgrades_rejected += 1;
                    submit_answer(SubmitResult::Rejected, Some("invalid update proof".into()))
                }
                Err(why) => {
                    counters.upgrades_rejected += 1;
                    submit_answer(SubmitResult::Rejected, Some(why))
                }
            }
        })
    }

    async fn allocate_rebuild_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<SectorRebuildInfo>, ManagerError> {
        self.check_fault(ChainCall::AllocateRebuildSector)?;
        if !self.serves(&spec) {
            return Ok(None);
        }
        self.take_rebuild_job()
    }

    async fn allocate_unseal_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<SectorUnsealInfo>, ManagerError> {
        self.check_fault(ChainCall::AllocateUnsealSector)?;
        if !self.serves(&spec) {
            return Ok(None);
        }
        self.take_unseal_job()
    }

    async fn acquire_unseal_dest(
        &self,
        id: SectorId,
        piece_cid: Cid,
    ) -> Result<Vec<String>, ManagerError> {
        self.check_fault(ChainCall::AcquireUnsealDest)?;
        self.unseal_dest(id, &piece_cid)
    }

    async fn achieve_unseal_sector(
        &self,
        id: SectorId,
        piece_cid: Cid,
        error: String,
    ) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::AchieveUnsealSector)?;
        self.achieve_unseal(id, piece_cid, error).await
    }

    async fn wdpost_allocate_jobs(
        &self,
        spec: AllocatePoStSpec,
        num: u32,
        worker: String,
    ) -> Result<Vec<WdPoStJob>, ManagerError> {
        self.check_fault(ChainCall::WdPoStAllocateJobs)?;
        self.allocate_wdpost_jobs(&spec, num, &worker)
    }

    async fn wdpost_heartbeat_jobs(
        &self,
        ids: Vec<String>,
        worker: String,
    ) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::WdPoStHeartbeatJobs)?;
        self.wdpost_heartbeat(&ids, &worker)
    }

    async fn wdpost_finish_job(
        &self,
        id: String,
        output: Option<WindowPoStOutput>,
        error: String,
    ) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::WdPoStFinishJob)?;
        self.finish_wdpost_job(&id, output, error).await
    }
}

/// The pieces the mock takes back (`PUT /piecestore/{cid}`, `PUT /resource`): those of the
/// deals in its sectors, checked against their piece CIDs.
impl PieceCheck for MockChain {
    fn max_bytes(&self, cid: &Cid) -> Option<u64> {
        self.deal_piece_size(cid).and_then(piece::unpadded_size)
    }

    fn check(&self, cid: &Cid, file: &Path) -> Result<(), NotThePiece> {
        let size = self.deal_piece_size(cid).ok_or_else(|| {
            NotThePiece::new(format!("no deal of this manager has piece {}", cid.text))
        })?;
        let bytes = std::fs::read(file)
            .map_err(|e| NotThePiece::new(format!("{}: {e}", file.display())))?;
        let found = proofs::piece_cid_of(self.proof_type, &bytes, size)
            .map_err(|e| NotThePiece::new(e.to_string()))?;
        if &found == cid {
            Ok(())
        } else {
            Err(NotThePiece::new(format!(
                "the bytes give piece CID {}, not {}",
                found.text, cid.text
            )))
        }
    }
}

/// The mock's piece store in process: copies a piece it offered out of its piece
/// directory, and takes unsealed pieces into `<piece dir>/unsealed/` (what the manager's
/// `PUT /piecestore/{cid}` does).
#[async_trait]
impl PieceStore for MockChain {
    async fn upload(&self, cid: &Cid, src: &Path) -> Result<(), PieceUploadError> {
        let target = format!("store:///{}", cid.text);
        let dir = self
            .piece_dir()
            .ok_or_else(|| PieceUploadError::Unsupported {
                target: target.clone(),
                detail: "the mock chain offers no deals, so it keeps no pieces".into(),
            })?
            .join("unsealed");
        let local = |e: std::io::Error| PieceUploadError::Local {
            target: target.clone(),
            reason: e.to_string(),
        };
        tokio::fs::create_dir_all(&dir).await.map_err(local)?;
        let tmp = dir.join(format!("{}.part", cid.text));
        tokio::fs::copy(src, &tmp).await.map_err(local)?;
        tokio::fs::rename(&tmp, dir.join(&cid.text))
            .await
            .map_err(local)
    }

    async fn fetch(&self, cid: &Cid, dest: &Path, limit: u64) -> Result<u64, PieceFetchError> {
        let not_found = |detail: String| PieceFetchError::NotFound {
            cid: cid.text.clone(),
            detail,
        };
        piece::comm_p(cid).map_err(|e| not_found(e.reason))?;
        let dir = self
            .piece_dir()
            .ok_or_else(|| not_found("the mock chain offers no deals".into()))?;
        let source = dir.join(&cid.text);
        let local = |reason: String| PieceFetchError::Local {
            cid: cid.text.clone(),
            reason,
        };
        let too_large = || PieceFetchError::TooLarge {
            cid: cid.text.clone(),
            limit,
        };
        // Through a temporary file, as a download: `dest` is whole or absent.
        let tmp = dest.with_extension("part");
        let len = match tokio::fs::metadata(&source).await {
            Ok(meta) if meta.len() > limit => return Err(too_large()),
            Ok(meta) => {
                tokio::fs::copy(&source, &tmp)
                    .await
                    .map_err(|e| local(format!("copy to {}: {e}", tmp.display())))?;
                meta.len()
            }
            Err(e) => {
                // Made by another manager sharing the records: from there.
                let shared = self.settings().shared.clone();
                let Some(shared) = shared else {
                    return Err(not_found(format!("{}: {e}", source.display())));
                };
                let payload = shared
                    .piece(cid)
                    .await
                    .map_err(|e| PieceFetchError::Unavailable {
                        cid: cid.text.clone(),
                        reason: e.to_string(),
                    })?
                    .ok_or_else(|| {
                        not_found(format!("{} and the shared records: {e}", source.display()))
                    })?;
                if payload.len() as u64 > limit {
                    return Err(too_large());
                }
                tokio::fs::write(&tmp, &payload)
                    .await
                    .map_err(|e| local(format!("write {}: {e}", tmp.display())))?;
                payload.len() as u64
            }
        };
        tokio::fs::rename(&tmp, dest)
            .await
            .map(|()| len)
            .map_err(|e| local(format!("rename to {}: {e}", dest.display())))
    }
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
