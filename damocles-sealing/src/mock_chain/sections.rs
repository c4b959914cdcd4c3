//! A section of the chain's work (one lock of its state, [`ChainGuard`]): with shared
//! records it reads what changed since this manager's cursor first and writes what it
//! changed when it ends; with a file, it rewrites the file when it changed anything.

use super::*;

/// What this manager's copy of the shared records was when it last read or wrote them:
/// the cursor, and the head and jobs as they were (what a section's changes are found
/// against; sectors mark their own changes, [`super::sector_table::SectorTable`]).
#[derive(Debug)]
pub(super) struct Synced {
    cursor: RecordsCursor,
    head: ChainHead,
    jobs: Vec<ChainJob>,
    wdpost_jobs: Vec<WdPostJob>,
}

impl ChainState {
    /// Brings this manager's copy (and its synced copy) up to what `read` says the
    /// records are: the records read applied to both, or, when `read` is `full` or there
    /// is no synced copy, both replaced.
    fn apply(&mut self, read: RecordsRead) {
        let mut synced = match self.synced.take() {
            Some(synced) if !read.full => synced,
            _ => {
                self.set_head(ChainHead::default());
                self.sectors.reload(Vec::new());
                self.jobs.clear();
                self.wdpost_jobs.clear();
                Synced {
                    cursor: RecordsCursor::default(),
                    head: self.head(),
                    jobs: Vec::new(),
                    wdpost_jobs: Vec::new(),
                }
            }
        };
        if let Some(head) = read.head {
            self.set_head(head.clone());
            synced.head = head;
        }
        for record in read.records {
            match record {
                ChainRecord::Sector(sector) => self.sectors.load(*sector),
                ChainRecord::Job(job) => {
                    put_in_order(&mut synced.jobs, job.clone(), |j| j.id, |j| j.id);
                    put_in_order(&mut self.jobs, job, |j| j.id, |j| j.id);
                }
                ChainRecord::WdPostJob(job) => {
                    let id = |j: &WdPostJob| j.id.clone();
                    put_in_order(&mut synced.wdpost_jobs, job.clone(), wdpost_order, id);
                    put_in_order(&mut self.wdpost_jobs, job, wdpost_order, id);
                }
            }
        }
        for key in read.gone {
            match key {
                RecordKey::Sector(id) => self.sectors.unload(&id),
                RecordKey::Job(id) => {
                    synced.jobs.retain(|j| j.id != id);
                    self.jobs.retain(|j| j.id != id);
                }
                RecordKey::WdPostJob(id) => {
                    synced.wdpost_jobs.retain(|j| j.id != id);
                    self.wdpost_jobs.retain(|j| j.id != id);
                }
            }
        }
        synced.cursor = read.cursor;
        self.synced = Some(synced);
    }

    /// What the section changed against the copy last read or written, which then
    /// becomes what it holds; `None` without such a copy (the records were not read).
    fn changes(&mut self) -> Option<RecordChanges> {
        let mut synced = self.synced.take()?;
        let head = self.head();
        let mut changes = RecordChanges {
            head: (head != synced.head).then(|| head.clone()),
            records: self
                .sectors
                .take_changed()
                .into_iter()
                .map(|s| ChainRecord::Sector(Box::new(s)))
                .collect(),
            gone: Vec::new(),
        };
        synced.head = head;
        if synced.jobs != self.jobs {
            changed_in(
                &synced.jobs,
                &self.jobs,
                |j| j.id,
                &mut changes,
                ChainRecord::Job,
                RecordKey::Job,
            );
            synced.jobs = self.jobs.clone();
        }
        if synced.wdpost_jobs != self.wdpost_jobs {
            changed_in(
                &synced.wdpost_jobs,
                &self.wdpost_jobs,
                |j| j.id.clone(),
                &mut changes,
                ChainRecord::WdPostJob,
                RecordKey::WdPostJob,
            );
            synced.wdpost_jobs = self.wdpost_jobs.clone();
        }
        self.synced = Some(synced);
        Some(changes)
    }
}

/// Jobs in `now` that `before` did not hold as they are (as records), and those it held
/// that `now` does not (as keys), added to `changes`.
fn changed_in<J: PartialEq + Clone, K: Eq + std::hash::Hash>(
    before: &[J],
    now: &[J],
    key: impl Fn(&J) -> K,
    changes: &mut RecordChanges,
    record: impl Fn(J) -> ChainRecord,
    gone: impl Fn(K) -> RecordKey,
) {
    let held: HashMap<K, &J> = before.iter().map(|j| (key(j), j)).collect();
    for job in now {
        if held.get(&key(job)) != Some(&job) {
            changes.records.push(record(job.clone()));
        }
    }
    let kept: std::collections::HashSet<K> = now.iter().map(&key).collect();
    for job in before {
        if !kept.contains(&key(job)) {
            changes.gone.push(gone(key(job)));
        }
    }
}

/// Puts `job` in `jobs` (oldest first, by `order`) in place of the one of its id.
fn put_in_order<J, O: Ord, K: PartialEq>(
    jobs: &mut Vec<J>,
    job: J,
    order: impl Fn(&J) -> O,
    id: impl Fn(&J) -> K,
) {
    match jobs.iter_mut().find(|j| id(j) == id(&job)) {
        Some(held) => *held = job,
        None => {
            let at = jobs.partition_point(|j| order(j) <= order(&job));
            jobs.insert(at, job);
        }
    }
}

/// Where a WindowPoSt job stands among the others: by round, then by its index in the
/// round (its id is `<round>-<index>`).
fn wdpost_order(job: &WdPostJob) -> (u64, u64) {
    let index = job.id.rsplit_once('-').and_then(|(_, i)| i.parse().ok());
    (job.round, index.unwrap_or(u64::MAX))
}

impl ChainState {
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
        if let Some(shared) = self.shared.clone() {
            match self.changes() {
                Some(changes) if !changes.is_empty() => shared.write(changes),
                Some(_) => {}
                None => tracing::error!("mock chain: changes of records never read, dropped"),
            }
            return Ok(());
        }
        self.sectors.forget_changes();
        let snapshot = self.snapshot();
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
            // What the section changed in memory is not what the records hold.
            self.state.changed = false;
            self.state.synced = None;
            return Err(SectionError::Refused(why.clone()));
        }
        self.state.write_changes()?;
        let Some(shared) = self.state.shared.clone() else {
            return Ok(());
        };
        match shared.end() {
            Ok(cursor) => {
                if let Some(synced) = &mut self.state.synced {
                    synced.cursor = cursor;
                }
                Ok(())
            }
            Err(e) => {
                // The copy holds writes that did not land: read whole next time.
                self.state.synced = None;
                Err(e.into())
            }
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
            let changed = self.state.changed;
            match self.end() {
                // Refused before it changed anything: nothing was lost.
                Err(SectionError::Refused(_)) if !changed => {}
                Err(e) => tracing::error!("mock chain: a change of the records was lost: {e}"),
                Ok(()) => {}
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
            let begun = shared.begin(deadline, state.synced.as_ref().map(|s| &s.cursor));
            // Unreadable or corrupt: what this manager holds may be stale, so listings
            // say so instead of showing it.
            state.unread_since = match &begun {
                Err(SharedRecordsError::Unreadable(why) | SharedRecordsError::Corrupt(why)) => {
                    Some(match state.unread_since.take() {
                        Some((since, _)) => (since, why.clone()),
                        None => (std::time::SystemTime::now(), why.clone()),
                    })
                }
                _ => None,
            };
            match begun {
                Ok(read) => state.apply(read),
                Err(why) => {
                    state.synced = None;
                    refused = Some(match why {
                        // Never written over: mending them is an operator's work.
                        SharedRecordsError::Corrupt(why) => {
                            let why = format!(
                                "the shared records are unreadable ({why}); nothing is written \
                                 until they are mended or removed"
                            );
                            tracing::error!("mock chain: {why}");
                            why
                        }
                        why => format!("the shared records cannot be read: {why}"),
                    });
                }
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
