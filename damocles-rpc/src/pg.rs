//! Connecting to the manager's PostgreSQL (or YugabyteDB) database: the URL checked and
//! shown without its password, the first connection made once so that its error says
//! what is wrong (refused, no such database, login refused), then a pool whose schema
//! the embedded migrations (`damocles-rpc/migrations/`, recorded in `_sqlx_migrations`)
//! bring up to date.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a call waits for a connection before failing (the database is down).
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of database error: what an operator does about it differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// The URL is not a PostgreSQL URL.
    BadUrl,
    /// No server answers there (refused, unknown host, timed out).
    Unreachable,
    /// The server refused the login or has no such database.
    Refused,
    /// Anything else (a migration, a query).
    Failed,
}

/// A database error, naming the database by its URL without the password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("database {shown}: {message}")]
pub struct DbError {
    /// What kind of error.
    pub kind: DbErrorKind,
    /// The URL, password hidden.
    pub shown: String,
    /// What went wrong.
    pub message: String,
}

/// `url` with its password (the user's, and a `password=` parameter) replaced by `***`;
/// in text that does not parse as a URL (a bad port, a missing `:`), whatever stands
/// between a `:` and the last `@` and after `password=` is replaced the same way.
pub fn without_password(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return without_password_unparsed(url);
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { "***".into() } else { v };
                (k.into_owned(), v.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// [`without_password`] for text that is not a URL.
fn without_password_unparsed(text: &str) -> String {
    let mut shown = text.to_owned();
    if let Some(at) = shown.rfind('@') {
        let start = shown[..at].rfind('/').map_or(0, |slash| slash + 1);
        if let Some(colon) = shown[start..at].find(':') {
            shown.replace_range(start + colon + 1..at, "***");
        }
    }
    if let Some(found) = shown.find("password=") {
        let value = found + "password=".len();
        let end = shown[value..].find('&').map_or(shown.len(), |e| value + e);
        shown.replace_range(value..end, "***");
    }
    shown
}

/// The options of `url`, which must be `postgres://` or `postgresql://`.
fn options_of(url: &str, shown: &str) -> Result<PgConnectOptions, DbError> {
    let bad = |message: String| DbError {
        kind: DbErrorKind::BadUrl,
        shown: shown.to_owned(),
        message,
    };
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("postgres" | "postgresql")) {
        return Err(bad(
            "not a PostgreSQL URL: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
        ));
    }
    url.parse::<PgConnectOptions>()
        .map_err(|e| bad(format!("not a PostgreSQL URL: {e}")))
}

/// The first connection's error, in words an operator acts on.
fn connect_error(e: &sqlx::Error, shown: &str) -> DbError {
    let (kind, message) = match e {
        sqlx::Error::Io(io) => (
            DbErrorKind::Unreachable,
            format!("cannot connect ({io}): is PostgreSQL running there?"),
        ),
        sqlx::Error::Tls(tls) => (
            DbErrorKind::Unreachable,
            format!("cannot connect (TLS: {tls})"),
        ),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_password, invalid_authorization_specification
            Some("28P01" | "28000") => (
                DbErrorKind::Refused,
                format!("login refused ({db}): check the user and password in the URL"),
            ),
            // invalid_catalog_name
            Some("3D000") => (
                DbErrorKind::Refused,
                format!("{db}: create it first (CREATE DATABASE …)"),
            ),
            _ => (DbErrorKind::Failed, db.to_string()),
        },
        other => (DbErrorKind::Failed, other.to_string()),
    };
    DbError {
        kind,
        shown: shown.to_owned(),
        message,
    }
}

/// A pool of connections to `url` made with `options`, once one connection has been made
/// (so that a wrong URL fails with its own error, not a pool timeout), the schema brought
/// up to date by the embedded migrations.
///
/// # Errors
/// The URL is not PostgreSQL's, the server cannot be reached or refuses the login, or a
/// migration fails.
pub(crate) async fn connect_and_migrate(
    url: &str,
    options: PgPoolOptions,
) -> Result<PgPool, DbError> {
    let shown = without_password(url);
    let connect = options_of(url, &shown)?;
    let first = tokio::time::timeout(ACQUIRE_TIMEOUT, connect.connect())
        .await
        .map_err(|_| DbError {
            kind: DbErrorKind::Unreachable,
            shown: shown.clone(),
            message: format!(
                "no answer within {}s: is PostgreSQL running there?",
                ACQUIRE_TIMEOUT.as_secs()
            ),
        })?
        .map_err(|e| connect_error(&e, &shown))?;
    drop(first);
    let failed = |e: &dyn std::fmt::Display| DbError {
        kind: DbErrorKind::Failed,
        shown: shown.clone(),
        message: e.to_string(),
    };
    let pool = options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(connect)
        .await
        .map_err(|e| failed(&e))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| failed(&format!("schema migration: {e}")))?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        assert_eq!(
            without_password("postgres://damocles:s3cret@db.example:5432/fleet"),
            "postgres://damocles:***@db.example:5432/fleet"
        );
        assert_eq!(
            without_password("postgres://damocles@localhost/fleet?sslmode=disable&password=s3cret"),
            "postgres://damocles@localhost/fleet?sslmode=disable&password=***"
        );
        assert_eq!(
            without_password("postgres://damocles@localhost/fleet"),
            "postgres://damocles@localhost/fleet"
        );
        assert_eq!(without_password("not a url"), "not a url");
        // Not URLs (a port out of range, a missing colon): still hidden.
        assert_eq!(
            without_password("postgres://damocles:s3cret@127.0.0.1:99999/trial"),
            "postgres://damocles:***@127.0.0.1:99999/trial"
        );
        assert_eq!(
            without_password("postgres//damocles:s3cret@host/db?password=x&a=b"),
            "postgres//damocles:***@host/db?password=***&a=b"
        );
    }

    #[test]
    fn only_postgres_urls_are_taken() {
        for url in [
            "mysql://root@localhost/fleet",
            "localhost:5432",
            "sqlite://x.db",
        ] {
            let e = options_of(url, url).unwrap_err();
            assert_eq!(e.kind, DbErrorKind::BadUrl, "{url}");
            assert!(e.message.contains("postgres://"), "{e}");
        }
        assert!(options_of("postgresql://a@localhost/b", "").is_ok());
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_says_so() {
        // Bound, then closed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let url = format!("postgres://damocles:s3cret@127.0.0.1:{port}/fleet");
        let e = connect_and_migrate(&url, PgPoolOptions::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, DbErrorKind::Unreachable, "{e}");
        let text = e.to_string();
        assert!(text.contains("is PostgreSQL running"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
