//! The mock chain's records in PostgreSQL, shared by every manager given `--db`: each
//! sector, rebuild or unseal job and WindowPoSt job one row ([`PgRecords`], as JSON), the
//! chain's head one more, and the deal pieces a table ([`PgPieces`]).

use damocles_core::sealer_api::Cid;
use damocles_rpc::pg::DbError;
use damocles_rpc::pg_pieces::PgPieces;
use damocles_rpc::pg_records::{self, Changes, Cursor, PgRecords, RecordsError, Row};
use damocles_sealing::mock_chain::{
    ChainHead, ChainRecord, RecordChanges, RecordKey, RecordsCursor, RecordsRead, SharedRecords,
    SharedRecordsError,
};

/// The records of one miner (key `mock-chain/t0<miner>`) and the deal pieces, in one
/// database.
#[derive(Debug)]
pub struct SharedChain {
    records: PgRecords,
    pieces: PgPieces,
}

impl SharedChain {
    /// Connects to `url` (bringing its schema up to date) for `miner`'s records.
    /// Blocking for the records' thread to start: call it from async code (it moves the
    /// blocking part off the runtime).
    ///
    /// # Errors
    /// The URL is not PostgreSQL's, the database cannot be reached, or a migration fails.
    pub async fn connect(url: &str, miner: u64) -> Result<Self, DbError> {
        let pieces = PgPieces::connect(url).await?;
        let (owned, key) = (url.to_owned(), format!("mock-chain/t0{miner}"));
        let records = tokio::task::spawn_blocking(move || PgRecords::open(&owned, &key))
            .await
            .map_err(|e| DbError {
                kind: damocles_rpc::pg::DbErrorKind::Failed,
                shown: damocles_rpc::pg::without_password(url),
                message: e.to_string(),
            })??;
        Ok(Self { records, pieces })
    }
}

const SECTOR: &str = "sector";
const JOB: &str = "job";
const WDPOST_JOB: &str = "wdpost_job";

/// A record as its row: kind, id and JSON.
fn row_of(record: &ChainRecord) -> Result<Row, serde_json::Error> {
    let doc = match record {
        ChainRecord::Sector(s) => serde_json::to_string(s)?,
        ChainRecord::Job(j) => serde_json::to_string(j)?,
        ChainRecord::WdPostJob(j) => serde_json::to_string(j)?,
    };
    let (kind, id) = key_of(&record.key());
    Ok(Row {
        kind: kind.into(),
        id,
        doc: Some(doc),
    })
}

/// A record's kind and id as its row has them (sectors by their path name,
/// `s-t0<miner>-<number>`, as migration 0004 names them).
fn key_of(key: &RecordKey) -> (&'static str, String) {
    match key {
        RecordKey::Sector(id) => (SECTOR, id.to_string()),
        RecordKey::Job(id) => (JOB, id.to_string()),
        RecordKey::WdPostJob(id) => (WDPOST_JOB, id.clone()),
    }
}

/// A row as the record it holds (`Ok(None)` for a kind this version does not know).
fn record_of(row: &Row, doc: &str) -> Result<Option<ChainRecord>, serde_json::Error> {
    Ok(Some(match row.kind.as_str() {
        SECTOR => ChainRecord::Sector(serde_json::from_str(doc)?),
        JOB => ChainRecord::Job(serde_json::from_str(doc)?),
        WDPOST_JOB => ChainRecord::WdPostJob(serde_json::from_str(doc)?),
        _ => return Ok(None),
    }))
}

/// A removed row's key (`None` for a kind or id this version does not know).
fn removed_key(row: &Row) -> Option<RecordKey> {
    match row.kind.as_str() {
        SECTOR => row.id.parse().ok().map(RecordKey::Sector),
        JOB => row.id.parse().ok().map(RecordKey::Job),
        WDPOST_JOB => Some(RecordKey::WdPostJob(row.id.clone())),
        _ => None,
    }
}

/// What was read, as records.
///
/// # Errors
/// [`SharedRecordsError::Corrupt`] naming the first row that does not parse.
fn records_read(read: pg_records::Read) -> Result<RecordsRead, SharedRecordsError> {
    let corrupt =
        |what: &str, e: serde_json::Error| SharedRecordsError::Corrupt(format!("{what}: {e}"));
    let head = match &read.head {
        Some(text) => {
            Some(serde_json::from_str::<ChainHead>(text).map_err(|e| corrupt("the head", e))?)
        }
        None => None,
    };
    let mut records = Vec::with_capacity(read.rows.len());
    let mut gone = Vec::new();
    for row in &read.rows {
        match &row.doc {
            Some(doc) => {
                let record = record_of(row, doc)
                    .map_err(|e| corrupt(&format!("{} {}", row.kind, row.id), e))?;
                records.extend(record);
            }
            None => gone.extend(removed_key(row)),
        }
    }
    Ok(RecordsRead {
        cursor: RecordsCursor {
            epoch: read.cursor.epoch,
            seq: read.cursor.seq,
        },
        full: read.full,
        head,
        records,
        gone,
    })
}

#[async_trait::async_trait]
impl SharedRecords for SharedChain {
    fn begin(
        &self,
        deadline: std::time::Instant,
        since: Option<&RecordsCursor>,
    ) -> Result<RecordsRead, SharedRecordsError> {
        let since = since.map(|c| Cursor {
            epoch: c.epoch.clone(),
            seq: c.seq,
        });
        let read = off_the_executor(|| self.records.begin(deadline, since.as_ref()))
            .map_err(|e| SharedRecordsError::Unreadable(e.to_string()))?;
        records_read(read).inspect_err(|_| {
            // No section is open on an error: this one wrote nothing.
            let _ = off_the_executor(|| self.records.end());
        })
    }

    fn write(&self, changes: RecordChanges) {
        let mut rows = Vec::with_capacity(changes.records.len() + changes.gone.len());
        for record in &changes.records {
            match row_of(record) {
                Ok(row) => rows.push(row),
                Err(e) => tracing::error!("mock chain: cannot encode {:?}: {e}", record.key()),
            }
        }
        rows.extend(changes.gone.iter().map(|key| {
            let (kind, id) = key_of(key);
            Row {
                kind: kind.into(),
                id,
                doc: None,
            }
        }));
        let head = changes
            .head
            .and_then(|head| match serde_json::to_string(&head) {
                Ok(text) => Some(text),
                Err(e) => {
                    tracing::error!("mock chain: cannot encode the head: {e}");
                    None
                }
            });
        self.records.write(Changes { head, rows });
    }

    fn end(&self) -> Result<RecordsCursor, SharedRecordsError> {
        let cursor = off_the_executor(|| self.records.end()).map_err(|e| match e {
            RecordsError::Unreadable { .. } => SharedRecordsError::Unreadable(e.to_string()),
            RecordsError::WritesLost { .. } | RecordsError::Stopped => {
                SharedRecordsError::WritesLost(e.to_string())
            }
        })?;
        Ok(RecordsCursor {
            epoch: cursor.epoch,
            seq: cursor.seq,
        })
    }

    async fn keep_piece(&self, cid: &Cid, payload: &[u8]) -> Result<(), SharedRecordsError> {
        self.pieces
            .keep(&cid.text, payload)
            .await
            .map_err(|e| SharedRecordsError::Pieces(e.to_string()))
    }

    async fn piece(&self, cid: &Cid) -> Result<Option<Vec<u8>>, SharedRecordsError> {
        self.pieces
            .get(&cid.text)
            .await
            .map_err(|e| SharedRecordsError::Pieces(e.to_string()))
    }
}

/// Runs `wait` (a wait for the database) telling a multi-threaded runtime to move its
/// other tasks to other threads meanwhile, so that pings and listings are answered
/// while a chain call waits for the records' lock.
fn off_the_executor<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damocles_core::SectorId;

    /// A record's row names it as migration 0004 does, and a removed row's key reads
    /// back as the record's.
    #[test]
    fn rows_name_records_as_the_migration_does() {
        let key = RecordKey::Sector(SectorId::new(1000, 7));
        assert_eq!(key_of(&key), (SECTOR, "s-t01000-7".to_owned()));
        for key in [key, RecordKey::Job(3), RecordKey::WdPostJob("2-1".into())] {
            let (kind, id) = key_of(&key);
            let row = Row {
                kind: kind.into(),
                id,
                doc: None,
            };
            assert_eq!(removed_key(&row), Some(key));
        }
    }
}
