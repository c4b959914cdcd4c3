//! The manager's worker registry: the last report of every worker, keyed by name, in a
//! redb database under the manager's home (`<home>/worker.redb`), so that a restart loses
//! no entry. Reads are served from memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
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

/// Why the registry failed.
#[derive(Debug, thiserror::Error)]
#[error("worker registry {path}: {message}")]
pub struct RegistryError {
    /// The database file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// The registry.
#[derive(Debug)]
pub struct WorkerRegistry {
    db: Database,
    path: PathBuf,
    entries: RwLock<BTreeMap<String, PingEntry>>,
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
        Ok(Self {
            db,
            path,
            entries: RwLock::new(entries),
        })
    }

    /// A registry kept in memory only (for tests and benchmarks).
    pub fn in_memory() -> Result<Self, RegistryError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| RegistryError {
                path: "(memory)".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            db,
            path: PathBuf::from("(memory)"),
            entries: RwLock::default(),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> RegistryError {
        RegistryError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Stores a report received at `now` (unix seconds), durably. Blocking.
    pub fn upsert(&self, info: WorkerReport, now: i64) -> Result<(), RegistryError> {
        let entry = PingEntry {
            info,
            last_ping: now,
            liveness: None,
        };
        let bytes = serde_json::to_vec(&entry).map_err(|e| self.error(e))?;
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut table = txn.open_table(WORKERS).map_err(|e| self.error(e))?;
            table
                .insert(entry.info.name.as_str(), bytes.as_slice())
                .map_err(|e| self.error(e))?;
        }
        txn.commit().map_err(|e| self.error(e))?;
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.info.name.clone(), entry);
        Ok(())
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

    /// Removes `name`; whether it was there. Blocking.
    pub fn remove(&self, name: &str) -> Result<bool, RegistryError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        let existed = {
            let mut table = txn.open_table(WORKERS).map_err(|e| self.error(e))?;
            let removed = table.remove(name).map_err(|e| self.error(e))?;
            removed.is_some()
        };
        txn.commit().map_err(|e| self.error(e))?;
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damocles_core::WorkerSummary;

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
}
