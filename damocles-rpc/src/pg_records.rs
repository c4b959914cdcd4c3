//! Records kept one row each in PostgreSQL, for synchronous code that several processes
//! share them with (the mock chain's sectors and jobs, migration 0004):
//! [`PgRecords::begin`] opens a transaction that locks the key's head row (`SELECT … FOR
//! UPDATE`) and returns the rows changed since the caller's [`Cursor`] (or all of them),
//! [`PgRecords::write`] writes the rows the section changed, numbered by the section,
//! and [`PgRecords::end`] commits. Sections of different processes never interleave, so
//! a read-modify-write (a sector number taken, a proof recorded) is atomic across
//! managers, and a section costs what it reads and writes, not what the key holds.
//!
//! The database work runs on a thread of its own; the calls block on it. While the
//! database is down, `begin` waits and tries again (1 s doubling to 10 s) until its
//! deadline, so a restart of PostgreSQL delays the callers instead of failing them. Each
//! write records a token of its section in `damocles_document_writes` in the same
//! transaction, so that after a commit lost with its connection the section can tell
//! whether it landed: if not, it is written again in a new transaction when nobody wrote
//! meanwhile, and otherwise [`PgRecords::end`] fails (the section's decisions must not be
//! acted on).

use std::sync::mpsc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::pg::{connect_and_migrate, without_password, DbError, DbErrorKind};

/// Why a section of [`PgRecords`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// The records could not be read by the section's deadline (the database is down, or
    /// other sections held them that long): no section is open.
    #[error("{what} ({cause})")]
    Unreadable {
        /// What was tried, naming the database and the key.
        what: String,
        /// The last database error.
        cause: String,
    },
    /// The section's write was lost with its connection and another manager wrote the
    /// records meanwhile: they are as that manager left them.
    #[error("the commit to {database} was lost and another manager wrote records {key} meanwhile")]
    WritesLost {
        /// The database, its password hidden.
        database: String,
        /// The records' key.
        key: String,
    },
    /// The thread that talks to the database has stopped.
    #[error("the records thread has stopped")]
    Stopped,
}

/// Where a reader's copy stands: the records' epoch (made anew when their head row is)
/// and the number of the last section it read or wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    /// The records' epoch.
    pub epoch: String,
    /// The last section's number.
    pub seq: u64,
}

/// One record: its kind and id, and its text (`None`: removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What kind of record (`sector`, `job`, …).
    pub kind: String,
    /// Its id within its kind.
    pub id: String,
    /// Its text (JSON); `None` for a record removed.
    pub doc: Option<String>,
}

/// What [`PgRecords::begin`] read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Read {
    /// Where the records stand.
    pub cursor: Cursor,
    /// Every record (and no removed one): the reader's copy is to be replaced.
    pub full: bool,
    /// The head's text: when `full` or when anything was written since the cursor, and
    /// once one was written.
    pub head: Option<String>,
    /// The rows written since the cursor (removed ones with no text), or all of them.
    pub rows: Vec<Row>,
}

/// What a section writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// The head's new text, when it changed.
    pub head: Option<String>,
    /// The rows added, changed (with their text) or removed (without).
    pub rows: Vec<Row>,
}

enum Request {
    Begin(
        mpsc::SyncSender<Result<Read, RecordsError>>,
        std::time::Instant,
        Option<Cursor>,
    ),
    Write(Changes),
    End(mpsc::SyncSender<Result<Cursor, RecordsError>>),
}

/// How long the tokens of landed writes are kept (seconds): far longer than any wait for
/// a lost commit's answer.
const WRITES_KEPT_SECS: i64 = 600;
/// How many sections the marks of removed rows are kept for: a reader whose cursor is
/// older reads everything.
const REMOVED_KEPT_SECTIONS: u64 = 1024;
/// Old tokens and marks are pruned by every this many sections.
const PRUNE_EVERY: u64 = 64;

/// The records of one key, in `damocles_chain_heads` and `damocles_chain_records`.
pub struct PgRecords {
    requests: std::sync::Mutex<mpsc::Sender<Request>>,
    shown: String,
    key: String,
}

impl std::fmt::Debug for PgRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRecords")
            .field("db", &self.shown)
            .field("key", &self.key)
            .finish()
    }
}

impl PgRecords {
    /// Connects to `url` and brings the schema up to date (moving records kept as one
    /// document into rows). Blocking: call it outside an async runtime's threads (or
    /// from `spawn_blocking`).
    ///
    /// # Errors
    /// The URL is not PostgreSQL's, the database cannot be reached, or a migration fails.
    pub fn open(url: &str, key: &str) -> Result<Self, DbError> {
        let shown = without_password(url);
        let error = |e: &dyn std::fmt::Display| DbError {
            kind: DbErrorKind::Failed,
            shown: shown.clone(),
            message: e.to_string(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| error(&e))?;
        let pool = runtime.block_on(async {
            // A holder that stops (a frozen manager) loses its lock after 10 s idle, and
            // one waiting for the lock tries again after 5 s, so that no manager holds
            // the others up for long.
            let options = PgPoolOptions::new()
                .max_connections(2)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        conn.execute(
                        "SET idle_in_transaction_session_timeout = '10s'; SET lock_timeout = '5s'",
                    )
                    .await?;
                        Ok(())
                    })
                });
            connect_and_migrate(url, options).await
        })?;
        let (requests, received) = mpsc::channel();
        let section = Section {
            pool,
            key: key.to_owned(),
            shown: shown.clone(),
        };
        std::thread::Builder::new()
            .name("pg-records".into())
            .spawn(move || runtime.block_on(section.serve(received)))
            .map_err(|e| error(&e))?;
        Ok(Self {
            requests: std::sync::Mutex::new(requests),
            shown,
            key: key.to_owned(),
        })
    }

    fn send(&self, request: Request) {
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(request);
        if sent.is_err() {
            tracing::error!("{}: the records thread has stopped", self.shown);
        }
    }

    /// Opens a section once no other section holds the records: the rows written since
    /// `since`, or all of them when `since` is `None`, of another epoch, or older than
    /// the marks of removed rows kept.
    ///
    /// # Errors
    /// The records could not be read by `deadline` (the database is down, or other
    /// sections held them that long): no section is open.
    pub fn begin(
        &self,
        deadline: std::time::Instant,
        since: Option<&Cursor>,
    ) -> Result<Read, RecordsError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Request::Begin(reply, deadline, since.cloned()));
        answer.recv().unwrap_or(Err(RecordsError::Stopped))
    }

    /// Writes `changes` within the open section.
    pub fn write(&self, changes: Changes) {
        self.send(Request::Write(changes));
    }

    /// Commits the section; the cursor after it. While the database is down this waits
    /// for it, to learn whether a commit cut off with its connection landed.
    ///
    /// # Errors
    /// The section's write did not land and the records changed meanwhile (or the
    /// records thread stopped): they are as another section left them.
    pub fn end(&self) -> Result<Cursor, RecordsError> {
        let (reply, done) = mpsc::sync_channel(1);
        self.send(Request::End(reply));
        done.recv().unwrap_or(Err(RecordsError::Stopped))
    }
}

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

type Transaction = sqlx::Transaction<'static, sqlx::Postgres>;

/// The head row as a section locked it.
struct Head {
    epoch: String,
    seq: u64,
    trimmed: u64,
    text: Option<String>,
}

/// The database side of one key's sections.
struct Section {
    pool: PgPool,
    key: String,
    shown: String,
}

impl Section {
    async fn serve(self, requests: mpsc::Receiver<Request>) {
        while let Ok(request) = requests.recv() {
            let Request::Begin(reply, deadline, since) = request else {
                tracing::error!("{}: a write or end outside a section, ignored", self.shown);
                continue;
            };
            let what = format!("{}: cannot read records {}", self.shown, self.key);
            let read = until_done(&what, Some(deadline), || self.read(since.as_ref())).await;
            let (transaction, head, read) = match read {
                Ok(read) => read,
                Err(e) => {
                    let _ = reply.send(Err(e));
                    continue;
                }
            };
            let _ = reply.send(Ok(read));
            let mut written: Option<Changes> = None;
            let done = loop {
                match requests.recv() {
                    Ok(Request::Write(changes)) => written = Some(changes),
                    Ok(Request::End(done)) => break Some(done),
                    Ok(Request::Begin(..)) | Err(_) => break None,
                }
            };
            let outcome = self.commit(transaction, &head, written).await;
            if let Some(done) = done {
                let _ = done.send(outcome);
            }
        }
    }

    /// Locks the head row and reads what changed since `since`.
    async fn read(&self, since: Option<&Cursor>) -> Result<(Transaction, Head, Read), sqlx::Error> {
        let (mut transaction, head) = self.lock_head().await?;
        let full =
            since.is_none_or(|c| c.epoch != head.epoch || c.seq < head.trimmed || c.seq > head.seq);
        let after = since.filter(|_| !full).map_or(0, |c| c.seq);
        let rows = if full {
            self.rows(None, &mut transaction).await?
        } else if after < head.seq {
            self.rows(Some(after), &mut transaction).await?
        } else {
            Vec::new()
        };
        let read = Read {
            cursor: Cursor {
                epoch: head.epoch.clone(),
                seq: head.seq,
            },
            full,
            head: (full || after < head.seq)
                .then(|| head.text.clone())
                .flatten(),
            rows,
        };
        Ok((transaction, head, read))
    }

    /// The rows written after section `after`, removal marks included; with no `after`,
    /// every record (no mark).
    async fn rows(
        &self,
        after: Option<u64>,
        transaction: &mut Transaction,
    ) -> Result<Vec<Row>, sqlx::Error> {
        const ALL: &str = "SELECT kind, id, doc FROM damocles_chain_records \
                           WHERE key = $1 AND doc IS NOT NULL";
        const SINCE: &str = "SELECT kind, id, doc FROM damocles_chain_records \
                             WHERE key = $1 AND seq > $2";
        let query = sqlx::query_as::<_, (String, String, Option<String>)>(match after {
            None => ALL,
            Some(_) => SINCE,
        })
        .bind(&self.key);
        let query = match after {
            Some(seq) => query.bind(seq as i64),
            None => query,
        };
        let rows = query.fetch_all(&mut **transaction).await?;
        Ok(rows
            .into_iter()
            .map(|(kind, id, doc)| Row { kind, id, doc })
            .collect())
    }

    /// Opens a transaction holding the key's head row, made (with a new epoch, and no
    /// rows left of an older one) when there is none.
    async fn lock_head(&self) -> Result<(Transaction, Head), sqlx::Error> {
        const SELECT: &str = "SELECT epoch, seq, trimmed, head FROM damocles_chain_heads \
                              WHERE key = $1 FOR UPDATE";
        let mut transaction = self.pool.begin().await?;
        let found: Option<(String, i64, i64, Option<String>)> = sqlx::query_as(SELECT)
            .bind(&self.key)
            .fetch_optional(&mut *transaction)
            .await?;
        let (epoch, seq, trimmed, text) = match found {
            Some(found) => found,
            None => {
                // No records yet, or removed by hand: rows of the old ones go with them.
                sqlx::query("DELETE FROM damocles_chain_records WHERE key = $1")
                    .bind(&self.key)
                    .execute(&mut *transaction)
                    .await?;
                sqlx::query(
                    "INSERT INTO damocles_chain_heads (key, epoch, seq, trimmed, head) \
                     VALUES ($1, $2, 0, 0, NULL) ON CONFLICT (key) DO NOTHING",
                )
                .bind(&self.key)
                .bind(format!("{:032x}", rand::random::<u128>()))
                .execute(&mut *transaction)
                .await?;
                sqlx::query_as(SELECT)
                    .bind(&self.key)
                    .fetch_one(&mut *transaction)
                    .await?
            }
        };
        let head = Head {
            epoch,
            seq: seq.max(0) as u64,
            trimmed: trimmed.max(0) as u64,
            text,
        };
        Ok((transaction, head))
    }

    /// Ends the section: writes and commits, and after a lost commit settles whether it
    /// landed.
    async fn commit(
        &self,
        mut transaction: Transaction,
        head: &Head,
        written: Option<Changes>,
    ) -> Result<Cursor, RecordsError> {
        let unchanged = Cursor {
            epoch: head.epoch.clone(),
            seq: head.seq,
        };
        let Some(changes) = written else {
            let _ = transaction.commit().await;
            return Ok(unchanged);
        };
        let token = format!("{:032x}", rand::random::<u128>());
        let committed = async {
            self.write(&mut transaction, head.seq + 1, &changes, &token)
                .await?;
            transaction.commit().await
        }
        .await;
        let after = Cursor {
            epoch: head.epoch.clone(),
            seq: head.seq + 1,
        };
        match committed {
            Ok(()) => Ok(after),
            Err(e) => {
                tracing::warn!(
                    "{}: records {} not committed ({e}); checking",
                    self.shown,
                    self.key
                );
                self.settle_lost_commit(head, &changes, &token).await?;
                Ok(after)
            }
        }
    }

    /// `changes` written as section `seq` within `transaction`, the write recorded by
    /// `token` (and, every [`PRUNE_EVERY`] sections, old tokens and marks pruned).
    async fn write(
        &self,
        transaction: &mut Transaction,
        seq: u64,
        changes: &Changes,
        token: &str,
    ) -> Result<(), sqlx::Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if !changes.rows.is_empty() {
            let kinds: Vec<&str> = changes.rows.iter().map(|r| r.kind.as_str()).collect();
            let ids: Vec<&str> = changes.rows.iter().map(|r| r.id.as_str()).collect();
            let docs: Vec<Option<&str>> = changes.rows.iter().map(|r| r.doc.as_deref()).collect();
            sqlx::query(
                "INSERT INTO damocles_chain_records (key, kind, id, seq, doc) \
                 SELECT $1, kind, id, $2, doc FROM UNNEST($3::text[], $4::text[], $5::text[]) \
                 AS t(kind, id, doc) \
                 ON CONFLICT (key, kind, id) DO UPDATE SET seq = EXCLUDED.seq, doc = EXCLUDED.doc",
            )
            .bind(&self.key)
            .bind(seq as i64)
            .bind(kinds)
            .bind(ids)
            .bind(docs)
            .execute(&mut **transaction)
            .await?;
        }
        sqlx::query(
            "UPDATE damocles_chain_heads SET seq = $2, head = COALESCE($3, head) WHERE key = $1",
        )
        .bind(&self.key)
        .bind(seq as i64)
        .bind(changes.head.as_deref())
        .execute(&mut **transaction)
        .await?;
        if seq.is_multiple_of(PRUNE_EVERY) {
            self.prune(transaction, seq, now).await?;
        }
        sqlx::query(
            "INSERT INTO damocles_document_writes (key, token, written) VALUES ($1, $2, $3)",
        )
        .bind(&self.key)
        .bind(token)
        .bind(now)
        .execute(&mut **transaction)
        .await
        .map(drop)
    }

    /// Tokens past [`WRITES_KEPT_SECS`] and marks of rows removed over
    /// [`REMOVED_KEPT_SECTIONS`] sections ago pruned.
    async fn prune(
        &self,
        transaction: &mut Transaction,
        seq: u64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM damocles_document_writes WHERE key = $1 AND written < $2")
            .bind(&self.key)
            .bind(now - WRITES_KEPT_SECS)
            .execute(&mut **transaction)
            .await?;
        let Some(trimmed) = seq.checked_sub(REMOVED_KEPT_SECTIONS) else {
            return Ok(());
        };
        sqlx::query(
            "DELETE FROM damocles_chain_records WHERE key = $1 AND doc IS NULL AND seq <= $2",
        )
        .bind(&self.key)
        .bind(trimmed as i64)
        .execute(&mut **transaction)
        .await?;
        sqlx::query("UPDATE damocles_chain_heads SET trimmed = $2 WHERE key = $1")
            .bind(&self.key)
            .bind(trimmed as i64)
            .execute(&mut **transaction)
            .await
            .map(drop)
    }

    /// After a lost commit: `Ok` if the write of `token` landed, or if it could be
    /// written now because nobody wrote since the section read (same epoch and section
    /// number); waits for the database meanwhile.
    async fn settle_lost_commit(
        &self,
        read: &Head,
        changes: &Changes,
        token: &str,
    ) -> Result<(), RecordsError> {
        let what = format!("{}: records {} not checked", self.shown, self.key);
        let landed = until_done(&what, None, || async {
            let (mut transaction, now) = self.lock_head().await?;
            let landed: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM damocles_document_writes WHERE key = $1 AND token = $2)",
            )
            .bind(&self.key)
            .bind(token)
            .fetch_one(&mut *transaction)
            .await?;
            if landed {
                transaction.rollback().await?;
                return Ok(true);
            }
            if now.epoch != read.epoch || now.seq != read.seq {
                transaction.rollback().await?;
                return Ok(false);
            }
            self.write(&mut transaction, read.seq + 1, changes, token).await?;
            transaction.commit().await?;
            Ok(true)
        })
        .await?;
        if landed {
            return Ok(());
        }
        tracing::error!(
            "{}: records {} changed elsewhere after a lost commit; this section's writes are dropped",
            self.shown,
            self.key
        );
        Err(RecordsError::WritesLost {
            database: self.shown.clone(),
            key: self.key.clone(),
        })
    }
}

/// Runs `attempt` until it succeeds, waiting 1 s doubling to 10 s between tries and
/// logging each failure after `what`; with a `deadline`, gives up (with the last error)
/// when the next try would pass it.
async fn until_done<T, F: std::future::Future<Output = Result<T, sqlx::Error>>>(
    what: &str,
    deadline: Option<std::time::Instant>,
    mut attempt: impl FnMut() -> F,
) -> Result<T, RecordsError> {
    let mut wait = RETRY_FIRST;
    loop {
        let tried = match deadline {
            Some(at) => tokio::time::timeout_at(at.into(), attempt())
                .await
                .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut)),
            None => attempt().await,
        };
        match tried {
            Ok(done) => return Ok(done),
            Err(e) => {
                if deadline.is_some_and(|at| std::time::Instant::now() + wait >= at) {
                    return Err(RecordsError::Unreadable {
                        what: what.to_owned(),
                        cause: e.to_string(),
                    });
                }
                tracing::warn!("{what} ({e}); trying again in {}s", wait.as_secs());
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}
