//! Deal pieces' payloads in PostgreSQL (`damocles_pieces`), so that every manager sharing
//! the database serves a piece whichever of them made it: the mock's deal pieces are at
//! most half a test sector, which a `BYTEA` holds.

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::pg::{connect_and_migrate, without_password, DbError, DbErrorKind};

/// The piece payloads of one database.
pub struct PgPieces {
    pool: PgPool,
    shown: String,
}

impl std::fmt::Debug for PgPieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPieces")
            .field("db", &self.shown)
            .finish_non_exhaustive()
    }
}

impl PgPieces {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// # Errors
    /// As [`crate::PgRegistry::connect`].
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let pool = connect_and_migrate(url, PgPoolOptions::new().max_connections(4)).await?;
        Ok(Self {
            pool,
            shown: without_password(url),
        })
    }

    fn error(&self, e: sqlx::Error) -> DbError {
        DbError {
            kind: DbErrorKind::Failed,
            shown: self.shown.clone(),
            message: e.to_string(),
        }
    }

    /// Keeps `payload` as piece `cid` (a piece already kept stays as it is: a CID names
    /// one payload's commitment).
    ///
    /// # Errors
    /// The database failed.
    pub async fn keep(&self, cid: &str, payload: &[u8]) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO damocles_pieces (cid, payload) VALUES ($1, $2) ON CONFLICT (cid) DO NOTHING",
        )
        .bind(cid)
        .bind(payload)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| self.error(e))
    }

    /// The payload of piece `cid`, if any manager kept it.
    ///
    /// # Errors
    /// The database failed.
    pub async fn get(&self, cid: &str) -> Result<Option<Vec<u8>>, DbError> {
        sqlx::query_scalar("SELECT payload FROM damocles_pieces WHERE cid = $1")
            .bind(cid)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))
    }
}
