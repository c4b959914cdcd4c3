//! What the chain's records are, and the store several managers share them through
//! ([`SharedRecords`]): one record per sector, rebuild or unseal job and WindowPoSt job,
//! plus the [`ChainHead`] of small values (next numbers, counters, the WindowPoSt round),
//! each read and written on its own so that a change costs the same at 100 sectors and at
//! 10,000. The file of a single manager keeps them as one [`Snapshot`].

use super::*;

/// Why a section of [`SharedRecords`] or a piece kept there failed; the text is the
/// store's own (a database error, its password hidden).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedRecordsError {
    /// The records could not be read in time (the database is down): no section is open.
    #[error("{0}")]
    Unreadable(String),
    /// A record does not parse: no section is open, and nothing may be written until an
    /// operator mends or removes it.
    #[error("{0}")]
    Corrupt(String),
    /// What the section wrote did not land and another holder wrote meanwhile.
    #[error("{0}")]
    WritesLost(String),
    /// A piece could not be stored or read.
    #[error("{0}")]
    Pieces(String),
}

/// The chain's small records, kept as one: what every section may change.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainHead {
    /// The next sector number of each miner.
    pub next_number: BTreeMap<ActorId, u64>,
    /// What the chain was sent so far.
    pub counters: ChainCounters,
    /// The last deal id handed out.
    #[serde(default)]
    pub last_deal_id: u64,
    /// The last WindowPoSt round started.
    #[serde(default)]
    pub wdpost_round: u64,
    /// The last heartbeat of each WindowPoSt job being proven, in Unix milliseconds.
    #[serde(default)]
    pub wdpost_heartbeats: BTreeMap<String, u64>,
    /// When the last WindowPoSt round started, in Unix milliseconds.
    #[serde(default)]
    pub wdpost_last_round: Option<u64>,
}

/// One record of the chain besides its [`ChainHead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainRecord {
    /// A sector (boxed: the biggest record, with its proof).
    Sector(Box<ChainSector>),
    /// A rebuild or unseal job.
    Job(ChainJob),
    /// A WindowPoSt job.
    WdPostJob(WdPostJob),
}

/// Which record: a [`ChainRecord`]'s identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKey {
    /// A sector, by id.
    Sector(SectorId),
    /// A rebuild or unseal job, by id.
    Job(u64),
    /// A WindowPoSt job, by id (`<round>-<index>`).
    WdPostJob(String),
}

impl ChainRecord {
    /// Which record it is.
    pub fn key(&self) -> RecordKey {
        match self {
            Self::Sector(s) => RecordKey::Sector(s.id),
            Self::Job(j) => RecordKey::Job(j.id),
            Self::WdPostJob(j) => RecordKey::WdPostJob(j.id.clone()),
        }
    }
}

/// Where a holder's copy of the records stands: the store's version (`epoch`, made anew
/// when the records are made anew) and the number of the last section it read or wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordsCursor {
    /// The records' version.
    pub epoch: String,
    /// The last section's number in that version.
    pub seq: u64,
}

/// What a section read: every record (`full`), or those changed since the cursor it was
/// given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordsRead {
    /// Where the records stand now.
    pub cursor: RecordsCursor,
    /// The records are all there is (the holder's copy is to be replaced), not changes.
    pub full: bool,
    /// The head, when it changed (or, `full`, when there is one).
    pub head: Option<ChainHead>,
    /// The records changed (or, `full`, all of them).
    pub records: Vec<ChainRecord>,
    /// The records removed since the cursor (never with `full`).
    pub gone: Vec<RecordKey>,
}

/// What a section changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordChanges {
    /// The head, when it changed.
    pub head: Option<ChainHead>,
    /// The records added or changed.
    pub records: Vec<ChainRecord>,
    /// The records removed.
    pub gone: Vec<RecordKey>,
}

impl RecordChanges {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.head.is_none() && self.records.is_empty() && self.gone.is_empty()
    }
}

/// Records shared by several managers (database rows), read and written in sections
/// that exclude every other holder: each section of the chain's work (one lock of its
/// state) reads what changed since the holder's cursor, and what it writes lands before
/// the next section anywhere begins. Blocking: an implementation waits for its database
/// (and retries while it is down) rather than fail a section; only a section whose
/// writes are known lost fails.
#[async_trait]
pub trait SharedRecords: Send + Sync + std::fmt::Debug {
    /// Begins a section once no other section holds the records: those changed since
    /// `since` (this holder's cursor), or all of them (`full`) when `since` is `None`, of
    /// another epoch, or too old to tell what was removed since.
    ///
    /// # Errors
    /// [`SharedRecordsError::Unreadable`]: they could not be read by `deadline` (the
    /// database is down); [`SharedRecordsError::Corrupt`]: a record does not parse. No
    /// section is open either way.
    fn begin(
        &self,
        deadline: std::time::Instant,
        since: Option<&RecordsCursor>,
    ) -> Result<RecordsRead, SharedRecordsError>;
    /// Writes what the section changed (once per section at most).
    fn write(&self, changes: RecordChanges);
    /// Ends the section, making what it wrote visible to every holder; the cursor after
    /// it.
    ///
    /// # Errors
    /// What the section wrote did not land (its commit was lost and another holder wrote
    /// meanwhile): the records are as they were before the section, and the caller must
    /// not act on what the section decided (and must read them whole again).
    fn end(&self) -> Result<RecordsCursor, SharedRecordsError>;
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

/// What [`MockChain::open`] keeps on disk: the head's fields and every record.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Snapshot {
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
    pub(super) fn head(&self) -> ChainHead {
        ChainHead {
            next_number: self.next_number.clone(),
            counters: self.counters,
            last_deal_id: self.last_deal_id,
            wdpost_round: self.wdpost_round,
            wdpost_heartbeats: self.wdpost_heartbeats.clone(),
            wdpost_last_round: self.wdpost_schedule.last_round,
        }
    }

    pub(super) fn set_head(&mut self, head: ChainHead) {
        self.next_number = head.next_number;
        self.counters = head.counters;
        self.last_deal_id = head.last_deal_id;
        self.wdpost_round = head.wdpost_round;
        self.wdpost_heartbeats = head.wdpost_heartbeats;
        self.wdpost_schedule.last_round = head.wdpost_last_round;
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        let head = self.head();
        Snapshot {
            next_number: head.next_number,
            sectors: self.sectors.values().cloned().collect(),
            counters: head.counters,
            last_deal_id: head.last_deal_id,
            jobs: self.jobs.clone(),
            wdpost_jobs: self.wdpost_jobs.clone(),
            wdpost_round: head.wdpost_round,
            wdpost_heartbeats: head.wdpost_heartbeats,
            wdpost_last_round: head.wdpost_last_round,
        }
    }

    pub(super) fn restore(&mut self, snapshot: Snapshot) {
        self.set_head(ChainHead {
            next_number: snapshot.next_number,
            counters: snapshot.counters,
            last_deal_id: snapshot.last_deal_id,
            wdpost_round: snapshot.wdpost_round,
            wdpost_heartbeats: snapshot.wdpost_heartbeats,
            wdpost_last_round: snapshot.wdpost_last_round,
        });
        self.sectors.reload(snapshot.sectors);
        self.jobs = snapshot.jobs;
        self.wdpost_jobs = snapshot.wdpost_jobs;
    }
}
