//! A JSON document in one PostgreSQL row, for synchronous code that several processes
//! share it with: [`PgDocument::begin`] opens a transaction that locks the row (`SELECT
//! … FOR UPDATE`) and returns the document as it stands, [`PgDocument::write`] replaces it
//! within that transaction, [`PgDocument::end`] commits. Sections of different processes
//! never interleave, so a read-modify-write (a sector number taken, a proof recorded) is
//! atomic across managers.
//!
//! The database work runs on a thread of its own; the calls block on it. While the
//! database is down, `begin` waits and tries again (1 s doubling to 10 s), so a restart
//! of PostgreSQL delays the callers instead of failing them. Each write records a token
//! of its section in `damocles_document_writes` in the same transaction, so that after a
//! commit lost with its connection the section can tell whether it landed: if not, it is
//! written again in a new transaction when nobody changed the document meanwhile, and
//! otherwise [`PgDocument::end`] fails (the section's decisions must not be acted on).

use std::sync::mpsc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::pg::{connect_and_migrate, without_password, DbError, DbErrorKind};

/// Why a section of a [`PgDocument`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The document could not be read by the section's deadline (the database is down,
    /// or other sections held it that long): no section is open.
    #[error("{what} ({cause})")]
    Unreadable {
        /// What was tried, naming the database and the document.
        what: String,
        /// The last database error.
        cause: String,
    },
    /// The section's write was lost with its connection and another manager wrote the
    /// document meanwhile: the document is as that manager left it.
    #[error(
        "the commit to {database} was lost and another manager wrote document {key} meanwhile"
    )]
    WritesLost {
        /// The database, its password hidden.
        database: String,
        /// The document's key.
        key: String,
    },
    /// The thread that talks to the database has stopped.
    #[error("the document thread has stopped")]
    Stopped,
}

enum Request {
    Begin(
        mpsc::SyncSender<Result<Option<String>, DocumentError>>,
        std::time::Instant,
    ),
    Write(String),
    End(mpsc::SyncSender<Result<(), DocumentError>>),
}

/// How long the tokens of landed writes are kept (seconds): far longer than any wait for
/// a lost commit's answer.
const WRITES_KEPT_SECS: i64 = 600;

/// One document, by key, in the `damocles_documents` table.
pub struct PgDocument {
    requests: std::sync::Mutex<mpsc::Sender<Request>>,
    shown: String,
    key: String,
}

impl std::fmt::Debug for PgDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDocument")
            .field("db", &self.shown)
            .field("key", &self.key)
            .finish()
    }
}

impl PgDocument {
    /// Connects to `url`, brings the schema up to date and makes sure the row of `key`
    /// exists. Blocking: call it outside an async runtime's threads (or from
    /// `spawn_blocking`).
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
            // A holder that stops (a frozen manager) loses its lock after IDLE_HELD, and
            // one waiting for the lock tries again after LOCK_WAIT, so that no manager
            // holds the others up for long.
            let options = PgPoolOptions::new().max_connections(2).after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute(
                        "SET idle_in_transaction_session_timeout = '10s'; SET lock_timeout = '5s'",
                    )
                    .await?;
                    Ok(())
                })
            });
            let pool = connect_and_migrate(url, options).await?;
            sqlx::query("INSERT INTO damocles_documents (key, doc) VALUES ($1, NULL) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .execute(&pool)
                .await
                .map_err(|e| error(&e))?;
            Ok::<_, DbError>(pool)
        })?;
        let (requests, received) = mpsc::channel();
        let owned_key = key.to_owned();
        let name = shown.clone();
        std::thread::Builder::new()
            .name("pg-document".into())
            .spawn(move || runtime.block_on(serve(pool, owned_key, name, received)))
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
            tracing::error!("{}: the document thread has stopped", self.shown);
        }
    }

    /// Opens a section: the document (`None` before the first write) once no other
    /// section holds it.
    ///
    /// # Errors
    /// The document could not be read by `deadline` (the database is down, or other
    /// sections held it that long): no section is open.
    pub fn begin(&self, deadline: std::time::Instant) -> Result<Option<String>, DocumentError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Request::Begin(reply, deadline));
        answer.recv().unwrap_or(Err(DocumentError::Stopped))
    }

    /// Replaces the document within the open section.
    pub fn write(&self, json: &str) {
        self.send(Request::Write(json.to_owned()));
    }

    /// Commits the section. While the database is down this waits for it, to learn
    /// whether a commit cut off with its connection landed.
    ///
    /// # Errors
    /// The section's write did not land and the document changed meanwhile (or the
    /// document thread stopped): the document is as another section left it.
    pub fn end(&self) -> Result<(), DocumentError> {
        let (reply, done) = mpsc::sync_channel(1);
        self.send(Request::End(reply));
        done.recv().unwrap_or(Err(DocumentError::Stopped))
    }
}

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

async fn serve(pool: PgPool, key: String, shown: String, requests: mpsc::Receiver<Request>) {
    while let Ok(request) = requests.recv() {
        let Request::Begin(reply, deadline) = request else {
            tracing::error!("{shown}: a document write or end outside a section, ignored");
            continue;
        };
        let what = format!("{shown}: cannot read document {key}");
        let locked = until_done(&what, Some(deadline), || lock_row(&pool, &key)).await;
        let (mut transaction, read) = match locked {
            Ok(locked) => locked,
            Err(e) => {
                let _ = reply.send(Err(e));
                continue;
            }
        };
        let _ = reply.send(Ok(read.clone()));
        let mut written: Option<String> = None;
        let done = loop {
            match requests.recv() {
                Ok(Request::Write(json)) => written = Some(json),
                Ok(Request::End(done)) => break Some(done),
                Ok(Request::Begin(..)) | Err(_) => break None,
            }
        };
        let token = format!("{:032x}", rand::random::<u128>());
        let committed = async {
            if let Some(json) = &written {
                replace(&mut transaction, &key, json, &token).await?;
            }
            transaction.commit().await
        }
        .await;
        let outcome = match (committed, &written) {
            (Ok(()), _) | (Err(_), None) => Ok(()),
            (Err(e), Some(json)) => {
                tracing::warn!("{shown}: document {key} not committed ({e}); checking");
                settle_lost_commit(&pool, &key, &shown, read.as_deref(), json, &token).await
            }
        };
        if let Some(done) = done {
            let _ = done.send(outcome);
        }
    }
}

async fn lock_row(
    pool: &PgPool,
    key: &str,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Option<String>), sqlx::Error> {
    const SELECT: &str = "SELECT doc FROM damocles_documents WHERE key = $1 FOR UPDATE";
    let mut transaction = pool.begin().await?;
    let found: Option<Option<String>> = sqlx::query_scalar(SELECT)
        .bind(key)
        .fetch_optional(&mut *transaction)
        .await?;
    if let Some(doc) = found {
        return Ok((transaction, doc));
    }
    // The row was deleted (the records removed): made again, empty, and locked.
    sqlx::query(
        "INSERT INTO damocles_documents (key, doc) VALUES ($1, NULL) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .execute(&mut *transaction)
    .await?;
    let doc: Option<String> = sqlx::query_scalar(SELECT)
        .bind(key)
        .fetch_one(&mut *transaction)
        .await?;
    Ok((transaction, doc))
}

/// The document of `key` replaced by `json` within `transaction`, the write recorded by
/// `token` (and tokens past [`WRITES_KEPT_SECS`] pruned).
async fn replace(
    transaction: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    key: &str,
    json: &str,
    token: &str,
) -> Result<(), sqlx::Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    sqlx::query("UPDATE damocles_documents SET doc = $2 WHERE key = $1")
        .bind(key)
        .bind(json)
        .execute(&mut **transaction)
        .await?;
    sqlx::query("DELETE FROM damocles_document_writes WHERE key = $1 AND written < $2")
        .bind(key)
        .bind(now - WRITES_KEPT_SECS)
        .execute(&mut **transaction)
        .await?;
    sqlx::query("INSERT INTO damocles_document_writes (key, token, written) VALUES ($1, $2, $3)")
        .bind(key)
        .bind(token)
        .bind(now)
        .execute(&mut **transaction)
        .await
        .map(drop)
}

/// Runs `attempt` until it succeeds, waiting 1 s doubling to 10 s between tries and
/// logging each failure after `what`; with a `deadline`, gives up (with the last error)
/// when the next try would pass it.
async fn until_done<T, F: std::future::Future<Output = Result<T, sqlx::Error>>>(
    what: &str,
    deadline: Option<std::time::Instant>,
    mut attempt: impl FnMut() -> F,
) -> Result<T, DocumentError> {
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
                    return Err(DocumentError::Unreadable {
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

/// After a lost commit: `Ok` if the write of `token` landed, or if it could be written
/// now because the document is still what the section read (nobody wrote in between);
/// waits for the database meanwhile.
async fn settle_lost_commit(
    pool: &PgPool,
    key: &str,
    shown: &str,
    read: Option<&str>,
    json: &str,
    token: &str,
) -> Result<(), DocumentError> {
    let what = format!("{shown}: document {key} not checked");
    let landed = until_done(&what, None, || async {
        let (mut transaction, now) = lock_row(pool, key).await?;
        let landed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM damocles_document_writes WHERE key = $1 AND token = $2)",
        )
        .bind(key)
        .bind(token)
        .fetch_one(&mut *transaction)
        .await?;
        if landed {
            transaction.rollback().await?;
            return Ok(true);
        }
        if now.as_deref() != read {
            transaction.rollback().await?;
            return Ok(false);
        }
        replace(&mut transaction, key, json, token).await?;
        transaction.commit().await?;
        Ok(true)
    })
    .await?;
    if landed {
        return Ok(());
    }
    tracing::error!(
        "{shown}: document {key} changed elsewhere after a lost commit; this section's writes are dropped"
    );
    Err(DocumentError::WritesLost {
        database: shown.to_owned(),
        key: key.to_owned(),
    })
}
