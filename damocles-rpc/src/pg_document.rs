//! A JSON document in one PostgreSQL row, for synchronous code that several processes
//! share it with: [`PgDocument::begin`] opens a transaction that locks the row (`SELECT
//! … FOR UPDATE`) and returns the document as it stands, [`PgDocument::write`] replaces it
//! within that transaction, [`PgDocument::end`] commits. Sections of different processes
//! never interleave, so a read-modify-write (a sector number taken, a proof recorded) is
//! atomic across managers.
//!
//! The database work runs on a thread of its own; the calls block on it. While the
//! database is down, `begin` waits and tries again (1 s doubling to 10 s), so a restart
//! of PostgreSQL delays the callers instead of failing them. A commit lost with its
//! connection is tried again in a new transaction if nobody changed the document
//! meanwhile; otherwise the section's writes are dropped, with an error in the log.

use std::sync::mpsc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::pg_registry::{connect_and_migrate, without_password};
use crate::registry::RegistryError;

enum Request {
    Begin(mpsc::SyncSender<Option<String>>),
    Write(String),
    End(mpsc::SyncSender<()>),
}

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
    /// The database cannot be reached or a migration fails.
    pub fn open(url: &str, key: &str) -> Result<Self, RegistryError> {
        let shown = without_password(url);
        let error = |e: &dyn std::fmt::Display| RegistryError {
            path: shown.clone(),
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
            let pool = connect_and_migrate(url, &shown, options).await?;
            sqlx::query("INSERT INTO damocles_documents (key, doc) VALUES ($1, NULL) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .execute(&pool)
                .await
                .map_err(|e| error(&e))?;
            Ok::<_, RegistryError>(pool)
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
    pub fn begin(&self) -> Option<String> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Request::Begin(reply));
        answer.recv().ok().flatten()
    }

    /// Replaces the document within the open section.
    pub fn write(&self, json: &str) {
        self.send(Request::Write(json.to_owned()));
    }

    /// Commits the section.
    pub fn end(&self) {
        let (reply, done) = mpsc::sync_channel(1);
        self.send(Request::End(reply));
        let _ = done.recv();
    }
}

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

async fn serve(pool: PgPool, key: String, shown: String, requests: mpsc::Receiver<Request>) {
    while let Ok(request) = requests.recv() {
        let Request::Begin(reply) = request else {
            tracing::error!("{shown}: a document write or end outside a section, ignored");
            continue;
        };
        let what = format!("{shown}: cannot read document {key}");
        let (mut transaction, read) = until_done(&what, || lock_row(&pool, &key)).await;
        let _ = reply.send(read.clone());
        let mut written: Option<String> = None;
        let done = loop {
            match requests.recv() {
                Ok(Request::Write(json)) => written = Some(json),
                Ok(Request::End(done)) => break Some(done),
                Ok(Request::Begin(_)) | Err(_) => break None,
            }
        };
        let committed = async {
            if let Some(json) = &written {
                replace(&mut transaction, &key, json).await?;
            }
            transaction.commit().await
        }
        .await;
        if let (Err(e), Some(json)) = (committed, &written) {
            tracing::warn!("{shown}: document {key} not committed ({e}); trying again");
            write_if_unchanged(&pool, &key, &shown, read.as_deref(), json).await;
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}

async fn lock_row(
    pool: &PgPool,
    key: &str,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Option<String>), sqlx::Error> {
    let mut transaction = pool.begin().await?;
    let doc: Option<String> =
        sqlx::query_scalar("SELECT doc FROM damocles_documents WHERE key = $1 FOR UPDATE")
            .bind(key)
            .fetch_one(&mut *transaction)
            .await?;
    Ok((transaction, doc))
}

/// The document of `key` replaced by `json` within `transaction`.
async fn replace(
    transaction: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    key: &str,
    json: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE damocles_documents SET doc = $2 WHERE key = $1")
        .bind(key)
        .bind(json)
        .execute(&mut **transaction)
        .await
        .map(drop)
}

/// Runs `attempt` until it succeeds, waiting 1 s doubling to 10 s between tries and
/// logging each failure after `what`.
async fn until_done<T, F: std::future::Future<Output = Result<T, sqlx::Error>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let mut wait = RETRY_FIRST;
    loop {
        match attempt().await {
            Ok(done) => return done,
            Err(e) => {
                tracing::warn!("{what} ({e}); trying again in {}s", wait.as_secs());
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// After a lost commit: writes `json` in a new transaction if the document is still what
/// the section read (nobody else wrote in between), waiting for the database meanwhile.
async fn write_if_unchanged(pool: &PgPool, key: &str, shown: &str, read: Option<&str>, json: &str) {
    let what = format!("{shown}: document {key} not rewritten");
    let landed = until_done(&what, || async {
        let (mut transaction, now) = lock_row(pool, key).await?;
        if now.as_deref() == Some(json) {
            // The lost commit had landed after all.
            transaction.rollback().await?;
            return Ok(true);
        }
        if now.as_deref() != read {
            transaction.rollback().await?;
            return Ok(false);
        }
        replace(&mut transaction, key, json).await?;
        transaction.commit().await?;
        Ok(true)
    })
    .await;
    if !landed {
        tracing::error!(
            "{shown}: document {key} changed elsewhere after a lost commit; this section's writes are dropped"
        );
    }
}
