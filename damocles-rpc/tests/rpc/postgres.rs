//! A document shared through PostgreSQL when a section's connection is cut before its
//! commit (`pg_terminate_backend`, what a network cut or a database failover does): the
//! section's write lands if nobody wrote meanwhile, and is reported lost otherwise, never
//! silently dropped. Needs DAMOCLES_TEST_DATABASE_URL (scripts/start-postgres.sh prints
//! it; scripts/test.sh sets it); the test makes a database of its own and drops it.

use std::process::Command;

use damocles_rpc::pg_document::PgDocument;

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-qtAc", sql])
        .output()
        .expect("psql (PostgreSQL's client) runs");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A database of its own, dropped at the end.
struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    fn create() -> Self {
        let admin = std::env::var("DAMOCLES_TEST_DATABASE_URL").expect(
            "DAMOCLES_TEST_DATABASE_URL: start PostgreSQL with `export DAMOCLES_TEST_DATABASE_URL=$(scripts/start-postgres.sh)` (scripts/test.sh does)",
        );
        let name = format!("damocles_rpc_test_{}", std::process::id());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').expect("a URL ending in /database").0;
        let url = format!("{base}/{name}");
        Self { admin, name, url }
    }

    /// Cuts the connection of every section holding the document open.
    fn cut_open_sections(&self) {
        let cut = psql(
            &self.admin,
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{}' AND state = 'idle in transaction'",
                self.name
            ),
        );
        assert_eq!(cut, "1", "one section was open");
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin.as_str(),
                "-qtAc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn soon() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(20)
}

#[test]
fn a_commit_cut_off_lands_unless_another_manager_wrote_meanwhile() {
    let db = TestDatabase::create();
    let a = PgDocument::open(&db.url, "chain").expect("a");
    let b = PgDocument::open(&db.url, "chain").expect("b");

    // A's connection is cut mid-section, B writes, then A ends: lost, and said so.
    assert_eq!(a.begin(soon()), Ok(None));
    a.write("a1");
    db.cut_open_sections();
    assert_eq!(
        b.begin(soon()),
        Ok(None),
        "A's lock went with its connection"
    );
    b.write("b1");
    b.end().expect("b commits");
    let lost = a.end().expect_err("A's write must not be taken for landed");
    assert!(lost.to_string().contains("another manager wrote"), "{lost}");
    assert_eq!(
        a.begin(soon()).expect("read").as_deref(),
        Some("b1"),
        "B's write stands"
    );
    a.end().expect("a section that wrote nothing");

    // Cut again, nobody else writes: A's write is made again and lands.
    assert_eq!(a.begin(soon()).expect("read").as_deref(), Some("b1"));
    a.write("a2");
    db.cut_open_sections();
    a.end().expect("written again in a new transaction");
    assert_eq!(b.begin(soon()).expect("read").as_deref(), Some("a2"));
    b.end().expect("b");
    assert_eq!(
        psql(&db.url, "SELECT count(*) FROM damocles_document_writes"),
        "2",
        "one token per landed write (b1, a2)"
    );
}

/// A section that cannot read the document by its deadline (another holds it, or the
/// database is down) fails instead of waiting on, so that a call its caller gave up on is
/// never carried out later.
#[test]
fn a_section_that_cannot_read_the_document_in_time_fails() {
    let db = TestDatabase::create();
    let a = PgDocument::open(&db.url, "chain").expect("a");
    let b = PgDocument::open(&db.url, "chain").expect("b");
    assert_eq!(a.begin(soon()), Ok(None));
    let started = std::time::Instant::now();
    let late = b.begin(started + std::time::Duration::from_secs(2));
    assert!(late.is_err(), "{late:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "gave up near its deadline, not after {:?}",
        started.elapsed()
    );
    a.write("a1");
    a.end().expect("a commits");
    assert_eq!(b.begin(soon()).expect("read").as_deref(), Some("a1"));
    b.end().expect("b");

    // The row deleted (the records removed by hand): read as empty, made again on write.
    psql(&db.url, "DELETE FROM damocles_documents");
    assert_eq!(a.begin(soon()), Ok(None));
    a.write("a2");
    a.end().expect("a commits");
    assert_eq!(b.begin(soon()).expect("read").as_deref(), Some("a2"));
    b.end().expect("b");
}
