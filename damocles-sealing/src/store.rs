//! A thread's location on disk and its redb [`StateStore`].
//!
//! ```text
//! <location>/
//!   .holder          marker: this directory is a sealing location
//!   data/            sector working data (cache/, sealed/, unsealed/ per sector)
//!   meta/state.redb  the sector record, written durably after every transition, and
//!                    the thread's event history (the last 1,000 entries)
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

    /// Wipes `data/` (a finished or dropped sector's files).
    pub fn clean_data(&self) -> Result<(), LocationError> {
        let data = self.data_dir();
        if data.exists() {
            fs::remove_dir_all(&data).map_err(io(&data))?;
        }
        fs::create_dir_all(&data).map_err(io(&data))
    }
}

/// The redb [`StateStore`] of one location. Every save is a durable commit.
#[derive(Debug, Clone)]
pub struct RedbStateStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl RedbStateStore {
    /// Opens (or creates) the state database of a location.
    pub fn open(location: &Location) -> Result<Self, StoreError> {
        let path = location.state_db();
        // One small record per location: a small page cache (redb's default grows to
        // 1 GiB), so that a worker of many threads stays small.
        let db = Database::builder()
            .set_cache_size(STATE_CACHE_BYTES)
            .create(&path)
            .map_err(|e| store_error(&path, e))?;
        Ok(Self {
            db: Arc::new(db),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_sync(&self) -> Result<Option<SectorRecord>, StoreError> {
        let err = |e: &dyn std::fmt::Display| store_error(&self.path, e);
        let txn = self.db.begin_read().map_err(|e| err(&e))?;
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
        let err = |e: &dyn std::fmt::Display| store_error(&self.path, e);
        let txn = self.db.begin_write().map_err(|e| err(&e))?;
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
        let err = |e: &dyn std::fmt::Display| store_error(&self.path, e);
        let txn = self.db.begin_write().map_err(|e| err(&e))?;
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
        let err = |e: &dyn std::fmt::Display| store_error(&self.path, e);
        let txn = self.db.begin_read().map_err(|e| err(&e))?;
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
        .map_err(|e| store_error(&store.path, format!("store task failed: {e}")))?
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use damocles_core::sealer_api::AllocatedSector;
    use damocles_core::{Event, Plan, SealProof, SectorId};

    #[tokio::test]
    async fn records_survive_reopening_the_location() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = Location::init(&dir.path().join("store1")).expect("init");
        assert!(location.root().join(HOLDER).is_file());
        let store = RedbStateStore::open(&location).expect("open");
        assert_eq!(store.load().await.expect("load"), None);
        let mut record = SectorRecord::new(Plan::Sealer);
        record
            .apply(
                Event::Allocate(AllocatedSector {
                    id: SectorId::new(1000, 7),
                    proof_type: SealProof::StackedDrg2KiBV1_1,
                }),
                1,
            )
            .expect("apply");
        store.save(&record).await.expect("save");
        drop(store);
        let reopened = RedbStateStore::open(&Location::open(location.root()).expect("reopen"))
            .expect("open again");
        assert_eq!(reopened.load().await.expect("load"), Some(record));
        reopened.clear().await.expect("clear");
        assert_eq!(reopened.load().await.expect("load"), None);
    }

    #[tokio::test]
    async fn the_history_keeps_the_last_thousand_entries_across_reopening() {
        use damocles_core::Happening;
        let dir = tempfile::tempdir().expect("tempdir");
        let location = Location::init(dir.path()).expect("init");
        let store = RedbStateStore::open(&location).expect("open");
        assert_eq!(store.events(10).await.expect("events"), Vec::new());
        let event = |n: usize| ThreadEvent {
            at_ms: n as u64,
            sector: None,
            what: Happening::Aborted {
                reason: format!("#{n}"),
            },
        };
        // 1,005 entries, written in batches of 1 to 3.
        let mut n = 0;
        while n < JOURNAL_LIMIT + 5 {
            let batch: Vec<_> = (n..(n + 1 + n % 3).min(JOURNAL_LIMIT + 5))
                .map(event)
                .collect();
            n += batch.len();
            store.append_events(&batch).await.expect("append");
        }
        drop(store);
        let store = RedbStateStore::open(&location).expect("reopen");
        let all = store.events(usize::MAX).await.expect("events");
        assert_eq!(all.len(), JOURNAL_LIMIT);
        assert_eq!(all[0].seq, 6, "the five oldest were dropped");
        assert_eq!(all[0].event, event(5));
        assert_eq!(all.last().map(|e| e.seq), Some(1_005));
        let last_two = store.events(2).await.expect("events");
        assert_eq!(
            last_two.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1_004, 1_005]
        );
        // Clearing the record leaves the history alone.
        store.clear().await.expect("clear");
        assert_eq!(store.events(1).await.expect("events")[0].seq, 1_005);
    }

    #[test]
    fn opening_a_plain_directory_says_how_to_prepare_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Location::open(dir.path()).unwrap_err();
        assert!(matches!(err, LocationError::NotInitialised { .. }));
        assert!(err.to_string().contains("store sealing-init"));
    }

    #[tokio::test]
    async fn a_corrupt_database_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = Location::init(dir.path()).expect("init");
        fs::write(location.state_db(), b"this is not a redb file, not at all").expect("write");
        let err = RedbStateStore::open(&location).unwrap_err();
        assert!(err.location.ends_with("state.redb"), "{err}");
    }
}
