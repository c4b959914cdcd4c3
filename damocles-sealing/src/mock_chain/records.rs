//! Where the chain's records are kept: a section per lock of its state (`ChainGuard`)
//! that reads them first when they are shared and writes what it changed when it ends
//! (into the file, or the [`SharedRecords`] of several managers).

use super::*;

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

/// What [`MockChain::open`] keeps on disk.
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
    pub(super) fn snapshot(&self) -> Snapshot {
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

    pub(super) fn restore(&mut self, snapshot: Snapshot) {
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
    pub(super) fn save(&mut self) {
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
    pub(super) fn write_changes(&mut self) -> std::io::Result<()> {
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
pub(super) struct ChainGuard<'a> {
    pub(super) state: MutexGuard<'a, ChainState>,
    pub(super) ended: bool,
    /// Why the shared records could not be read: the section writes nothing and its
    /// commit fails with this.
    pub(super) refused: Option<String>,
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
    pub(super) fn commit(mut self) -> Result<(), ManagerError> {
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

impl MockChain {
    pub(super) fn lock(&self) -> ChainGuard<'_> {
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
}
