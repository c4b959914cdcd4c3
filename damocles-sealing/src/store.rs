//! A thread's location on disk and its redb [`StateStore`].
//!
//! ```text
//! <location>/
//!   .holder          marker: this directory is a sealing location
//!   data/            sector working data (cache/, sealed/, unsealed/ per sector;
//!                    pieces/: deal pieces downloaded for AddPieces, removed after it)
//!   meta/state.redb  the sector record, written durably after every transition, and
//!                    the thread's event history (the last 1,000 entries)
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use damocles_core::{
    JournalEntry, SectorRecord, StateStore, StoreError, ThreadEvent, JOURNAL_LIMIT,
};
use redb::{Database, ReadableTable, TableDefinition};

/// The marker file of a location.
pub const HOLDER: &str = ".holder";

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("sector");
const CURRENT: &str = "info";
/// The event history: entry number → the event as JSON.
const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const STATE_CACHE_BYTES: usize = 256 << 10;

/// Why a location could not be prepared or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// The directory is not a sealing location.
    #[error("{path} is not a sealing location (no {HOLDER}); run `damocles-worker store sealing-init -l {path}`")]
    NotInitialised {
        /// The path.
        path: String,
    },
    /// The directory does not exist.
    #[error(
        "{path} does not exist; prepare it with `damocles-worker store sealing-init -l {path}`"
    )]
    Missing {
        /// The path.
        path: String,
    },
    /// Another process (a second worker, or one still stopping) uses the location.
    #[error("{path} is in use by another process ({holder}); stop it first, or wait until it has stopped")]
    InUse {
        /// The path.
        path: String,
        /// Who holds it, as it wrote in the lock file.
        holder: String,
    },
    /// A file-system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocationError + '_ {
    move |source| LocationError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A sealing location: a directory that holds one thread's data and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    root: PathBuf,
}

impl Location {
    /// Prepares `root` as a location (creating it and its parents); a no-op on a location
    /// that is already prepared.
    pub fn init(root: &Path) -> Result<Self, LocationError> {
        fs::create_dir_all(root.join("data")).map_err(io(root))?;
        fs::create_dir_all(root.join("meta")).map_err(io(root))?;
        let holder = root.join(HOLDER);
        if !holder.is_file() {
            fs::write(&holder, b"").map_err(io(&holder))?;
        }
        Self::open(root)
    }

    /// Opens a prepared location.
    pub fn open(root: &Path) -> Result<Self, LocationError> {
        if !root.exists() {
            return Err(LocationError::Missing {
                path: root.display().to_string(),
            });
        }
        let root = fs::canonicalize(root).map_err(io(root))?;
        if !root.join(HOLDER).is_file() {
            return Err(LocationError::NotInitialised {
                path: root.display().to_string(),
            });
        }
        Ok(Self { root })
    }

    /// The location's directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `data/`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The state database file.
    pub fn state_db(&self) -> PathBuf {
        self.root.join("meta").join("state.redb")
    }

    /// Takes the location for this process: an exclusive lock on `meta/worker.lock`, held
    /// until the returned value is dropped (or the process exits, however it exits).
    /// Fails with [`LocationError::InUse`], naming the holder's pid, when another process
    /// holds it.
    pub fn lock(&self) -> Result<LocationLock, LocationError> {
        use std::io::{Read, Seek, Write};
        let path = self.root.join("meta").join(LOCK_FILE);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LocationError::InUse {
                    path: self.root.display().to_string(),
                    holder: match holder.trim() {
                        "" => "unknown".to_owned(),
                        holder => holder.to_owned(),
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let stamp = format!(
            "damocles-worker pid {}, since {}",
            std::process::id(),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(stamp.as_bytes()))
            .map_err(io(&path))?;
        Ok(LocationLock { _file: file })
    }

    /// Wipes `data/` (a finished or dropped sector's files).
    pub fn clean_data(&self) -> Result<(), LocationError> {
        let data = self.data_dir();
        if data.exists() {
            fs::remove_dir_all(&data).map_err(io(&data))?;
        }
        fs::create_dir_all(&data).map_err(io(&data))
    }
}

/// The lock file of a location, in `meta/`.
pub const LOCK_FILE: &str = "worker.lock";

/// A location taken by this process ([`Location::lock`]); dropping it lets go.
#[derive(Debug)]
pub struct LocationLock {
    _file: fs::File,
}

/// The redb [`StateStore`] of one location. Every save is a durable commit.
///
/// The database is opened on first use and opened again on the next call after any
/// failure (an I/O error such as a full disk leaves redb unusable until re-opened), so a
/// resume after the cause is fixed goes on without a restart. A panic inside redb (a
/// damaged file) is contained and answered as an error naming the file. A database that
/// is missing or empty while the location's `data/` holds sector files is not created
/// anew: the sector's record would be silently lost and a new sector sealed over it.
#[derive(Debug, Clone)]
pub struct RedbStateStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    data_dir: PathBuf,
    db: Mutex<Option<Database>>,
}

impl RedbStateStore {
    /// Opens (or creates) the state database of a location.
    pub fn open(location: &Location) -> Result<Self, StoreError> {
        let store = Self::lazy(location);
        store.with_db(|_| Ok(()))?;
        Ok(store)
    }

    /// Opens the database now if it is not open (again, after a failure) and proves it
    /// can be written (the record is written back as it is); `Err` says why it cannot
    /// be used, e.g. while the disk is still full.
    pub fn recover_now(&self) -> Result<(), StoreError> {
        self.with_db(|db| {
            let record = self.load_from(db)?;
            self.write_to(db, record.as_ref())
        })
    }

    /// The store of a location, opening its database on first use: a location whose
    /// database cannot be opened now still gets a store, whose calls answer why.
    pub fn lazy(location: &Location) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: location.state_db(),
                data_dir: location.data_dir(),
                db: Mutex::new(None),
            }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the open database (opening it first if need be). After a failure or a
    /// panic the handle is dropped, so the next call opens the file again.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut db = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        if db.is_none() {
            *db = Some(open_database(&self.inner.path, &self.inner.data_dir)?);
        }
        let Some(open) = db.as_ref() else {
            unreachable!("opened above");
        };
        let result = contained(&self.inner.path, || f(open)).and_then(|r| r);
        if result.is_err() {
            let dropped = db.take();
            // Dropping a damaged database may panic too.
            let _ = contained(&self.inner.path, move || drop(dropped));
        }
        result
    }

    fn load_sync(&self) -> Result<Option<SectorRecord>, StoreError> {
        self.with_db(|db| self.load_from(db))
    }

    fn load_from(&self, db: &Database) -> Result<Option<SectorRecord>, StoreError> {
        let err = |e: &dyn std::fmt::Display| store_error(self.path(), e);
        let txn = db.begin_read().map_err(|e| err(&e))?;
        let table = match txn.open_table(RECORDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(&e)),
        };
        let Some(value) = table.get(CURRENT).map_err(|e| err(&e))? else {
            return Ok(None);
        };
        serde_json::from_slice(value.value())
            .map(Some)
            .map_err(|e| err(&format!("the sector record is unreadable: {e}")))
    }

    fn write_sync(&self, record: Option<&SectorRecord>) -> Result<(), StoreError> {
        self.with_db(|db| self.write_to(db, record))
    }

    fn write_to(&self, db: &Database, record: Option<&SectorRecord>) -> Result<(), StoreError> {
        let err = |e: &dyn std::fmt::Display| store_error(self.path(), e);
        let txn = db.begin_write().map_err(|e| err(&e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| err(&e))?;
            match record {
                Some(record) => {
                    let bytes = serde_json::to_vec(record).map_err(|e| err(&e))?;
                    table
                        .insert(CURRENT, bytes.as_slice())
                        .map_err(|e| err(&e))?;
                }
                None => {
                    table.remove(CURRENT).map_err(|e| err(&e))?;
                }
            }
        }
        txn.commit().map_err(|e| err(&e))
    }

    fn append_sync(&self, events: &[ThreadEvent]) -> Result<(), StoreError> {
        self.with_db(|db| self.append_to(db, events))
    }

    fn append_to(&self, db: &Database, events: &[ThreadEvent]) -> Result<(), StoreError> {
        let err = |e: &dyn std::fmt::Display| store_error(self.path(), e);
        let txn = db.begin_write().map_err(|e| err(&e))?;
        {
            let mut table = txn.open_table(JOURNAL).map_err(|e| err(&e))?;
            let mut seq = table
                .last()
                .map_err(|e| err(&e))?
                .map_or(0, |(key, _)| key.value());
            for event in events {
                seq += 1;
                let bytes = serde_json::to_vec(event).map_err(|e| err(&e))?;
                table.insert(seq, bytes.as_slice()).map_err(|e| err(&e))?;
            }
            let keep_from = seq.saturating_sub(JOURNAL_LIMIT as u64);
            loop {
                let first = table
                    .first()
                    .map_err(|e| err(&e))?
                    .map(|(key, _)| key.value());
                match first {
                    Some(key) if key <= keep_from => {
                        table.remove(key).map_err(|e| err(&e))?;
                    }
                    _ => break,
                }
            }
        }
        txn.commit().map_err(|e| err(&e))
    }

    fn events_sync(&self, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        self.with_db(|db| self.events_from(db, limit))
    }

    fn events_from(&self, db: &Database, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let err = |e: &dyn std::fmt::Display| store_error(self.path(), e);
        let txn = db.begin_read().map_err(|e| err(&e))?;
        let table = match txn.open_table(JOURNAL) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err(&e)),
        };
        let mut entries = Vec::new();
        for item in table.iter().map_err(|e| err(&e))?.rev().take(limit) {
            let (key, value) = item.map_err(|e| err(&e))?;
            let event: ThreadEvent = serde_json::from_slice(value.value())
                .map_err(|e| err(&format!("event {} is unreadable: {e}", key.value())))?;
            entries.push(JournalEntry {
                seq: key.value(),
                event,
            });
        }
        entries.reverse();
        Ok(entries)
    }
}

/// Opens the database file, refusing to create one where a sector's files show that a
/// record existed.
fn open_database(path: &Path, data_dir: &Path) -> Result<Database, StoreError> {
    let size = fs::metadata(path).map(|m| m.len());
    if !matches!(size, Ok(n) if n > 0) {
        if let Some(file) = first_file(data_dir) {
            let what = if size.is_ok() { "empty" } else { "missing" };
            return Err(store_error(
                path,
                format!(
                    "the database is {what}, but {} holds sector files ({}): the sector's \
                     record is lost, and a new database would seal another sector over them. \
                     Restore the database file, or move the sector's files away (the sector \
                     may still be on chain), then resume the thread",
                    data_dir.display(),
                    file.display()
                ),
            ));
        }
    }
    // One small record per location: a small page cache (redb's default grows to 1 GiB),
    // so that a worker of many threads stays small.
    contained(path, || {
        Database::builder()
            .set_cache_size(STATE_CACHE_BYTES)
            .create(path)
            .map_err(|e| store_error(path, e))
    })?
}

/// The first file under `dir` (depth first), if any.
fn first_file(dir: &Path) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                if let Some(file) = first_file(&path) {
                    return Some(file);
                }
            }
            Ok(_) => return Some(path),
            Err(_) => {}
        }
    }
    None
}

/// Runs `f`, turning a panic into an error naming the database file.
fn contained<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T, StoreError> {
    crate::panics::contain(f).map_err(|panic| {
        store_error(
            path,
            format!("the database is damaged (redb panicked: {panic})"),
        )
    })
}

fn store_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        location: path.display().to_string(),
        message: e.to_string(),
    }
}

async fn blocking<T: Send + 'static>(
    store: &RedbStateStore,
    f: impl FnOnce(RedbStateStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let owned = store.clone();
    tokio::task::spawn_blocking(move || f(owned))
        .await
        .map_err(|e| store_error(store.path(), format!("store task failed: {e}")))?
}

#[async_trait]
impl StateStore for RedbStateStore {
    async fn load(&self) -> Result<Option<SectorRecord>, StoreError> {
        blocking(self, |s| s.load_sync()).await
    }

    async fn save(&self, record: &SectorRecord) -> Result<(), StoreError> {
        let record = record.clone();
        blocking(self, move |s| s.write_sync(Some(&record))).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        blocking(self, |s| s.write_sync(None)).await
    }

    async fn append_events(&self, events: &[ThreadEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        blocking(self, move |s| s.append_sync(&events)).await
    }

    async fn events(&self, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        blocking(self, move |s| s.events_sync(limit)).await
    }

    async fn recover(&self) -> Result<(), StoreError> {
        blocking(self, |s| s.recover_now()).await
    }
}

#[cfg(test)]
mod tests;
