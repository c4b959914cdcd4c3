//! The manager's worker registry: the last report of every worker, keyed by name, behind
//! the [`Registry`] trait. [`WorkerRegistry`], the embedded default, keeps it in a redb
//! database under the manager's home (`<home>/worker.redb`), so that a restart loses no
//! entry, and serves reads from memory; [`crate::pg_registry::PgRegistry`] keeps it in
//! PostgreSQL, shared by every manager that uses the same database.
//!
//! Writes are group-committed: one writer thread takes every change waiting and commits
//! them in one durable transaction, and each caller returns once its change is durable.
//! Under load many pings share one disk sync, so ingest scales with concurrency rather
//! than with the disk's sync latency.
//!
//! A name stays at the dest it was registered with: a ping that gives another dest is
//! refused ([`PingError::Moved`]) unless its caller may move it (the manager's admin
//! token) or the entry is removed first. The check and the queueing of the change are one
//! step, so that of two pings racing for a new name one wins and the other is refused.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use damocles_core::{Liveness, WorkerReport};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const WORKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("worker");

/// One worker's entry: its last report and when it came, as the original stores it, plus
/// the liveness this manager computes from its expiration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingEntry {
    /// The last report.
    #[serde(rename = "Info")]
    pub info: WorkerReport,
    /// Unix seconds of the last report.
    #[serde(rename = "LastPing")]
    pub last_ping: i64,
    /// `ok` or `expired` (additive; absent in what is stored).
    #[serde(rename = "Liveness", default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Liveness>,
}

impl PingEntry {
    /// This entry with its liveness at `now`.
    pub fn judged(mut self, now: i64, expiration: Duration) -> Self {
        self.liveness = Some(Liveness::at(self.last_ping, now, expiration));
        self
    }
}

/// Where a manager keeps its workers' reports. Liveness is computed by the caller from
/// `last_ping`, so managers sharing one registry agree on it.
#[async_trait::async_trait]
pub trait Registry: Send + Sync + std::fmt::Debug {
    /// Stores a report received at `now` (unix seconds), durably; a report that gives a
    /// registered name another dest is refused unless `may_move`.
    ///
    /// # Errors
    /// [`PingError::Moved`], or the store's failure.
    async fn ping(&self, info: WorkerReport, now: i64, may_move: bool) -> Result<(), PingError>;

    /// The entry of `name`.
    ///
    /// # Errors
    /// The store's failure.
    async fn entry(&self, name: &str) -> Result<Option<PingEntry>, RegistryError>;

    /// Every entry, by name.
    ///
    /// # Errors
    /// The store's failure.
    async fn entries(&self) -> Result<Vec<PingEntry>, RegistryError>;

    /// Removes `name`, durably; whether it was there.
    ///
    /// # Errors
    /// The store's failure.
    async fn forget(&self, name: &str) -> Result<bool, RegistryError>;
}

/// Why the registry failed.
#[derive(Debug, thiserror::Error)]
#[error("worker registry {path}: {message}")]
pub struct RegistryError {
    /// The database file, or URL (without its password).
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// Why a ping was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// The name is registered at another dest, and the caller may not move it.
    #[error(
        "worker {name:?} is registered at {registered:?}; a ping giving {given:?} cannot move it without the manager's admin token (so that nobody can redirect the commands, and the worker token, sent to that name): if the worker did move, remove its entry first with `damocles-manager util worker remove {name}`"
    )]
    Moved {
        /// The worker's name.
        name: String,
        /// The dest it is registered at.
        registered: String,
        /// The dest the ping gave.
        given: String,
    },
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The writer's queue, and the dest of every name as the queued changes leave it (ahead
/// of the entries in memory by the changes not yet durable): what a ping is checked
/// against.
struct Queue {
    sender: Option<mpsc::Sender<Change>>,
    dests: HashMap<String, String>,
}

/// A change for the writer: upsert (`Some`) or remove (`None`) a name.
struct Change {
    name: String,
    value: Option<Vec<u8>>,
    done: tokio::sync::oneshot::Sender<Durable>,
}

/// What became of a change: durable (whether the name was there before), or why not.
type Durable = Result<bool, CommitFailed>;

/// Why a batch of changes did not become durable: the database's error, in words (one
/// error answers every change of the batch, and redb's errors cannot be cloned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct CommitFailed(String);

impl CommitFailed {
    fn of(error: &dyn std::fmt::Display) -> Self {
        CommitFailed(error.to_string())
    }
}

/// The registry.
pub struct WorkerRegistry {
    path: PathBuf,
    entries: RwLock<BTreeMap<String, PingEntry>>,
    queue: Mutex<Queue>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for WorkerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerRegistry")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WorkerRegistry {
    /// Opens (or creates) the registry in `home`.
    pub fn open(home: &Path) -> Result<Self, RegistryError> {
        let path = home.join("worker.redb");
        let err = |e: &dyn std::fmt::Display| RegistryError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(home).map_err(|e| err(&e))?;
        let db = Database::create(&path).map_err(|e| err(&e))?;
        Self::start(db, path, true)
    }

    /// A registry kept in memory only (for tests and benchmarks).
    pub fn in_memory() -> Result<Self, RegistryError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| RegistryError {
                path: "(memory)".into(),
                message: e.to_string(),
            })?;
        Self::start(db, PathBuf::from("(memory)"), false)
    }

    /// Starts the writer over `db`; `reopen`: it is the file at `path`, opened again after
    /// a failed write.
    fn start(db: Database, path: PathBuf, reopen: bool) -> Result<Self, RegistryError> {
        let err = |e: &dyn std::fmt::Display| RegistryError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut entries = BTreeMap::new();
        {
            let txn = db.begin_read().map_err(|e| err(&e))?;
            match txn.open_table(WORKERS) {
                Ok(table) => {
                    for row in table.iter().map_err(|e| err(&e))? {
                        let (name, value) = row.map_err(|e| err(&e))?;
                        let entry: PingEntry =
                            serde_json::from_slice(value.value()).map_err(|e| err(&e))?;
                        entries.insert(name.value().to_owned(), entry);
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(err(&e)),
            }
        }
        let (sender, changes) = mpsc::channel();
        let file = reopen.then(|| path.clone());
        let writer = std::thread::Builder::new()
            .name("registry-writer".into())
            .spawn(move || write_loop(db, file.as_deref(), &changes))
            .map_err(|e| err(&e))?;
        let dests = entries
            .iter()
            .map(|(name, entry)| (name.clone(), entry.info.dest.clone()))
            .collect();
        Ok(Self {
            path,
            entries: RwLock::new(entries),
            queue: Mutex::new(Queue {
                sender: Some(sender),
                dests,
            }),
            writer: Mutex::new(Some(writer)),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> RegistryError {
        RegistryError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Hands a change to the writer (an upsert of `name` at `dest`, or its removal) once
    /// it is allowed: an upsert that moves `name` to another dest only when `may_move`.
    /// The receiver answers once the change is durable.
    fn submit(
        &self,
        name: &str,
        value: Option<(Vec<u8>, &str)>,
        may_move: bool,
    ) -> Result<tokio::sync::oneshot::Receiver<Durable>, PingError> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some((_, dest)), Some(registered)) = (&value, queue.dests.get(name)) {
            if registered != dest && !may_move {
                return Err(PingError::Moved {
                    name: name.to_owned(),
                    registered: registered.clone(),
                    given: (*dest).to_owned(),
                });
            }
        }
        let (done, outcome) = tokio::sync::oneshot::channel();
        let dest = value.as_ref().map(|(_, dest)| (*dest).to_owned());
        let change = Change {
            name: name.to_owned(),
            value: value.map(|(bytes, _)| bytes),
            done,
        };
        queue
            .sender
            .as_ref()
            .ok_or_else(|| self.error("the registry is closed"))?
            .send(change)
            .map_err(|_| self.error("the registry writer stopped"))?;
        match dest {
            Some(dest) => queue.dests.insert(name.to_owned(), dest),
            None => queue.dests.remove(name),
        };
        Ok(outcome)
    }

    /// Hands a change to the writer and waits until it is durable. Blocking.
    fn write(
        &self,
        name: &str,
        value: Option<(Vec<u8>, &str)>,
        may_move: bool,
    ) -> Result<bool, PingError> {
        Ok(self
            .submit(name, value, may_move)?
            .blocking_recv()
            .map_err(|_| self.error("the registry writer stopped"))?
            .map_err(|e| self.error(e))?)
    }

    fn entry(&self, info: WorkerReport, now: i64) -> Result<(PingEntry, Vec<u8>), RegistryError> {
        let entry = PingEntry {
            info,
            last_ping: now,
            liveness: None,
        };
        let bytes = serde_json::to_vec(&entry).map_err(|e| self.error(e))?;
        Ok((entry, bytes))
    }

    fn remember(&self, entry: PingEntry) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.info.name.clone(), entry);
    }

    /// Stores a report received at `now` (unix seconds), durably, without holding a
    /// thread while the commit is on its way; a report that gives a registered name
    /// another dest is refused unless `may_move`.
    pub async fn ping_async(
        &self,
        info: WorkerReport,
        now: i64,
        may_move: bool,
    ) -> Result<(), PingError> {
        let (entry, bytes) = self.entry(info, now)?;
        let pending = self.submit(&entry.info.name, Some((bytes, &entry.info.dest)), may_move)?;
        pending
            .await
            .map_err(|_| self.error("the registry writer stopped"))?
            .map_err(|e| self.error(e))?;
        self.remember(entry);
        Ok(())
    }

    /// Stores a report received at `now` (unix seconds), durably, at whatever dest it
    /// gives, without holding a thread while the commit is on its way.
    pub async fn upsert_async(&self, info: WorkerReport, now: i64) -> Result<(), RegistryError> {
        self.ping_async(info, now, true)
            .await
            .map_err(|e| self.registry_error(e))
    }

    /// Stores a report received at `now` (unix seconds), durably, at whatever dest it
    /// gives. Blocking.
    pub fn upsert(&self, info: WorkerReport, now: i64) -> Result<(), RegistryError> {
        let (entry, bytes) = self.entry(info, now)?;
        self.write(&entry.info.name, Some((bytes, &entry.info.dest)), true)
            .map_err(|e| self.registry_error(e))?;
        self.remember(entry);
        Ok(())
    }

    fn registry_error(&self, error: PingError) -> RegistryError {
        match error {
            PingError::Registry(e) => e,
            moved @ PingError::Moved { .. } => self.error(moved),
        }
    }

    /// The entry of `name`.
    pub fn get(&self, name: &str) -> Option<PingEntry> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every entry, by name.
    pub fn list(&self) -> Vec<PingEntry> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes `name`; whether it was there. Blocking.
    pub fn remove(&self, name: &str) -> Result<bool, RegistryError> {
        let existed = self
            .write(name, None, true)
            .map_err(|e| self.registry_error(e))?;
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(existed)
    }
}

#[async_trait::async_trait]
impl Registry for WorkerRegistry {
    async fn ping(&self, info: WorkerReport, now: i64, may_move: bool) -> Result<(), PingError> {
        self.ping_async(info, now, may_move).await
    }

    async fn entry(&self, name: &str) -> Result<Option<PingEntry>, RegistryError> {
        Ok(self.get(name))
    }

    async fn entries(&self) -> Result<Vec<PingEntry>, RegistryError> {
        Ok(self.list())
    }

    async fn forget(&self, name: &str) -> Result<bool, RegistryError> {
        let existed = self
            .submit(name, None, true)
            .map_err(|e| self.registry_error(e))?
            .await
            .map_err(|_| self.error("the registry writer stopped"))?
            .map_err(|e| self.error(e))?;
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(existed)
    }
}

impl Drop for WorkerRegistry {
    /// Lets the writer finish what it was given and close the database, so that the
    /// registry can be opened again at once.
    fn drop(&mut self) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sender
            .take();
        if let Some(writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

/// The writer: every change waiting goes into one durable transaction. After a failed
/// write (a full disk), redb refuses every later one until the database is opened again:
/// the writer lets it go and opens `file` again before the next batch, so that the
/// registry recovers by itself once the disk has room.
fn write_loop(db: Database, file: Option<&Path>, queue: &mpsc::Receiver<Change>) {
    let mut db = Some(db);
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        if let (None, Some(file)) = (&db, file) {
            match Database::create(file) {
                Ok(opened) => db = Some(opened),
                Err(e) => tracing::error!("worker registry {}: {e}", file.display()),
            }
        }
        let outcome = match &db {
            Some(db) => commit(db, &batch),
            None => vec![Err(CommitFailed::of(&"the registry cannot be opened")); batch.len()],
        };
        if file.is_some() && outcome.iter().any(Result::is_err) {
            // Closed now, opened again for the next batch.
            db = None;
        }
        for (change, result) in batch.into_iter().zip(outcome) {
            let _ = change.done.send(result);
        }
    }
}

fn commit(db: &Database, batch: &[Change]) -> Vec<Durable> {
    let all = |e: &dyn std::fmt::Display| vec![Err(CommitFailed::of(e)); batch.len()];
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => return all(&e),
    };
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut table = match txn.open_table(WORKERS) {
            Ok(table) => table,
            Err(e) => return all(&e),
        };
        for change in batch {
            let result = match &change.value {
                Some(bytes) => table
                    .insert(change.name.as_str(), bytes.as_slice())
                    .map(|old| old.is_some()),
                None => table.remove(change.name.as_str()).map(|old| old.is_some()),
            };
            results.push(result.map_err(|e| CommitFailed::of(&e)));
        }
    }
    match txn.commit() {
        Ok(()) => results,
        Err(e) => all(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damocles_core::WorkerSummary;
    use std::sync::Arc;

    fn report(name: &str) -> WorkerReport {
        WorkerReport {
            name: name.into(),
            dest: "127.0.0.1:17890".into(),
            version: "v".into(),
            summary: WorkerSummary::default(),
        }
    }

    #[test]
    fn entries_survive_reopening_and_removal_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = WorkerRegistry::open(dir.path()).expect("open");
        registry.upsert(report("b"), 10).expect("upsert");
        registry.upsert(report("a"), 11).expect("upsert");
        registry.upsert(report("b"), 12).expect("upsert");
        drop(registry);
        let registry = WorkerRegistry::open(dir.path()).expect("reopen");
        let names: Vec<_> = registry.list().into_iter().map(|e| e.info.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(registry.get("b").map(|e| e.last_ping), Some(12));
        assert_eq!(registry.remove("a").ok(), Some(true));
        assert_eq!(registry.remove("a").ok(), Some(false));
        drop(registry);
        let registry = WorkerRegistry::open(dir.path()).expect("reopen");
        assert_eq!(registry.get("a"), None);
    }

    #[test]
    fn concurrent_writers_share_commits_and_lose_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Arc::new(WorkerRegistry::open(dir.path()).expect("open"));
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let registry = registry.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        registry
                            .upsert(report(&format!("w{w}-{i}")), i)
                            .expect("upsert");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer");
        }
        assert_eq!(registry.len(), 800);
        drop(registry);
        let registry = WorkerRegistry::open(dir.path()).expect("reopen");
        assert_eq!(registry.len(), 800, "every upsert was durable");
    }
}
