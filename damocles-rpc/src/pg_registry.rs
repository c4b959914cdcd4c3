//! The worker registry in PostgreSQL (or YugabyteDB, which runs the same SQL), shared by
//! every manager pointed at the same database: each answers for every worker that pinged
//! any of them. The schema is created by migrations embedded in the binary and recorded
//! in the database (`_sqlx_migrations`). A lost connection is replaced by the pool on the
//! next call, so a database restart needs no manager restart.
//!
//! A ping is one statement: an upsert that leaves a name's dest alone unless the caller
//! may move it, so that of two managers racing for a new name one wins and the other's
//! ping is refused, as with the embedded registry.

use damocles_core::WorkerReport;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

use crate::pg::{connect_and_migrate, without_password, DbError};
use crate::registry::{PingEntry, PingError, Registry, RegistryError};

/// The registry in a PostgreSQL database.
pub struct PgRegistry {
    pool: PgPool,
    /// The URL without its password, for messages.
    shown: String,
}

impl std::fmt::Debug for PgRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRegistry")
            .field("db", &self.shown)
            .finish_non_exhaustive()
    }
}

impl PgRegistry {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the
    /// schema up to date.
    ///
    /// # Errors
    /// The URL is not PostgreSQL's, the database cannot be reached, refuses the
    /// credentials, or a migration fails.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let pool = connect_and_migrate(url, PgPoolOptions::new().max_connections(16)).await?;
        Ok(Self {
            pool,
            shown: without_password(url),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> RegistryError {
        RegistryError {
            path: self.shown.clone(),
            message: e.to_string(),
        }
    }

    fn entry_of(&self, row: &sqlx::postgres::PgRow) -> Result<PingEntry, RegistryError> {
        let info: String = row.try_get("info").map_err(|e| self.error(e))?;
        Ok(PingEntry {
            info: serde_json::from_str::<WorkerReport>(&info).map_err(|e| self.error(e))?,
            last_ping: row.try_get("last_ping").map_err(|e| self.error(e))?,
            liveness: None,
        })
    }
}

#[async_trait::async_trait]
impl Registry for PgRegistry {
    async fn ping(&self, info: WorkerReport, now: i64, may_move: bool) -> Result<(), PingError> {
        let report = serde_json::to_string(&info).map_err(|e| self.error(e))?;
        let stored = sqlx::query(
            "INSERT INTO damocles_workers (name, dest, info, last_ping) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE \
             SET dest = EXCLUDED.dest, info = EXCLUDED.info, last_ping = EXCLUDED.last_ping \
             WHERE damocles_workers.dest = EXCLUDED.dest OR $5",
        )
        .bind(&info.name)
        .bind(&info.dest)
        .bind(&report)
        .bind(now)
        .bind(may_move)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        if stored.rows_affected() == 1 {
            return Ok(());
        }
        let registered: String =
            sqlx::query_scalar("SELECT dest FROM damocles_workers WHERE name = $1")
                .bind(&info.name)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.error(e))?;
        Err(PingError::Moved {
            name: info.name,
            registered,
            given: info.dest,
        })
    }

    async fn entry(&self, name: &str) -> Result<Option<PingEntry>, RegistryError> {
        let row = sqlx::query("SELECT info, last_ping FROM damocles_workers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        row.map(|row| self.entry_of(&row)).transpose()
    }

    async fn entries(&self) -> Result<Vec<PingEntry>, RegistryError> {
        let rows = sqlx::query("SELECT info, last_ping FROM damocles_workers ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        rows.iter().map(|row| self.entry_of(row)).collect()
    }

    async fn forget(&self, name: &str) -> Result<bool, RegistryError> {
        let removed = sqlx::query("DELETE FROM damocles_workers WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(removed.rows_affected() > 0)
    }
}
