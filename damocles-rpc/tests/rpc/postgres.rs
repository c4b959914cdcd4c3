//! Records shared through PostgreSQL, a row each: a section reads what changed since its
//! cursor; when its connection is cut before its commit (`pg_terminate_backend`, what a
//! network cut or a database failover does) its write lands if nobody wrote meanwhile,
//! and is reported lost otherwise, never silently dropped; records kept as one document
//! (schema 3) are moved into rows. Needs DAMOCLES_TEST_DATABASE_URL
//! (scripts/start-postgres.sh prints it; scripts/test.sh sets it); each test makes a
//! database of its own and drops it.

use std::process::Command;

use damocles_rpc::pg_records::{Changes, Cursor, PgRecords, Read, Row};

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

fn row(kind: &str, id: &str, doc: Option<&str>) -> Row {
    Row {
        kind: kind.into(),
        id: id.into(),
        doc: doc.map(str::to_owned),
    }
}

fn changes(head: &str, rows: Vec<Row>) -> Changes {
    Changes {
        head: Some(head.into()),
        rows,
    }
}

/// A section that reads, writes `changes` and ends; the cursor after it.
fn section(records: &PgRecords, since: Option<&Cursor>, changes: Changes) -> (Read, Cursor) {
    let read = records.begin(soon(), since).expect("read");
    records.write(changes);
    (read, records.end().expect("commit"))
}

#[test]
fn a_section_reads_what_changed_since_its_cursor() {
    let db = TestDatabase::create();
    let a = PgRecords::open(&db.url, "chain").expect("a");
    let b = PgRecords::open(&db.url, "chain").expect("b");
    let (read, at_a) = section(
        &a,
        None,
        changes(
            "h1",
            vec![
                row("sector", "1", Some("s1")),
                row("sector", "2", Some("s2")),
            ],
        ),
    );
    assert!(
        read.full && read.rows.is_empty() && read.head.is_none(),
        "{read:?}"
    );
    assert_eq!(at_a.seq, 1);

    let (read, at_b) = section(&b, None, changes("h2", vec![row("sector", "2", None)]));
    assert!(read.full);
    assert_eq!(read.head.as_deref(), Some("h1"));
    assert_eq!(read.rows.len(), 2, "{read:?}");
    assert_eq!(at_b.seq, 2);

    // A reads only B's section: the removal and the head.
    let read = a.begin(soon(), Some(&at_a)).expect("read");
    a.end().expect("end");
    assert!(!read.full);
    assert_eq!(read.head.as_deref(), Some("h2"));
    assert_eq!(read.rows, vec![row("sector", "2", None)]);
    // Nothing since: nothing read.
    let read = b.begin(soon(), Some(&at_b)).expect("read");
    let unchanged = b.end().expect("end");
    assert_eq!(
        (read.rows.len(), read.head, unchanged),
        (0, None, at_b.clone())
    );
    // A cursor of another epoch reads everything, without the removed.
    let stale = Cursor {
        epoch: "another".into(),
        seq: 2,
    };
    let read = a.begin(soon(), Some(&stale)).expect("read");
    a.end().expect("end");
    assert!(read.full);
    assert_eq!(read.rows, vec![row("sector", "1", Some("s1"))]);
}

#[test]
fn a_commit_cut_off_lands_unless_another_manager_wrote_meanwhile() {
    let db = TestDatabase::create();
    let a = PgRecords::open(&db.url, "chain").expect("a");
    let b = PgRecords::open(&db.url, "chain").expect("b");

    // A's connection is cut mid-section, B writes, then A ends: lost, and said so.
    let (_, start) = section(&a, None, changes("h0", vec![]));
    a.begin(soon(), Some(&start)).expect("read");
    a.write(changes("a1", vec![row("sector", "1", Some("a1"))]));
    db.cut_open_sections();
    let (read, _) = section(
        &b,
        None,
        changes("b1", vec![row("sector", "1", Some("b1"))]),
    );
    assert_eq!(
        read.head.as_deref(),
        Some("h0"),
        "A's lock went with its connection"
    );
    let lost = a.end().expect_err("A's write must not be taken for landed");
    assert!(lost.to_string().contains("another manager wrote"), "{lost}");
    let read = a.begin(soon(), Some(&start)).expect("read");
    assert_eq!(
        read.rows,
        vec![row("sector", "1", Some("b1"))],
        "B's write stands"
    );
    let at = a.end().expect("a section that wrote nothing");

    // Cut again, nobody else writes: A's write is made again and lands.
    a.begin(soon(), Some(&at)).expect("read");
    a.write(changes("a2", vec![row("sector", "1", Some("a2"))]));
    db.cut_open_sections();
    let landed = a.end().expect("written again in a new transaction");
    assert_eq!(landed.seq, at.seq + 1);
    let read = b.begin(soon(), None).expect("read");
    b.end().expect("b");
    assert_eq!(read.head.as_deref(), Some("a2"));
    assert_eq!(read.rows, vec![row("sector", "1", Some("a2"))]);
    assert_eq!(
        psql(&db.url, "SELECT count(*) FROM damocles_document_writes"),
        "3",
        "one token per landed write (h0, b1, a2)"
    );
}

/// A section that cannot read the records by its deadline (another holds them, or the
/// database is down) fails instead of waiting on, so that a call its caller gave up on is
/// never carried out later.
#[test]
fn a_section_that_cannot_read_the_records_in_time_fails() {
    let db = TestDatabase::create();
    let a = PgRecords::open(&db.url, "chain").expect("a");
    let b = PgRecords::open(&db.url, "chain").expect("b");
    a.begin(soon(), None).expect("read");
    let started = std::time::Instant::now();
    let late = b.begin(started + std::time::Duration::from_secs(2), None);
    assert!(late.is_err(), "{late:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "gave up near its deadline, not after {:?}",
        started.elapsed()
    );
    a.write(changes("a1", vec![row("job", "1", Some("j1"))]));
    let at = a.end().expect("a commits");
    let (read, _) = section(&b, None, Changes::default());
    assert_eq!(read.head.as_deref(), Some("a1"));

    // The head row deleted (the records removed by hand): read whole and empty, in a new
    // epoch, and made again on write.
    psql(&db.url, "DELETE FROM damocles_chain_heads");
    let read = a.begin(soon(), Some(&at)).expect("read");
    a.write(changes("a2", vec![]));
    let again = a.end().expect("a commits");
    assert!(
        read.full && read.rows.is_empty() && read.head.is_none(),
        "{read:?}"
    );
    assert_ne!(again.epoch, at.epoch);
}

/// A database of schema 3 whose mock chain records are one document
/// (`fixtures/mock-chain-document-v3.json`, written by a mock manager of that version)
/// is migrated: each sector, job and WindowPoSt job a row whose text is the document's,
/// the rest the head, and the document left as a marker an older manager cannot read.
#[test]
fn records_kept_as_one_document_move_into_rows() {
    let db = TestDatabase::create();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/mock-chain-document-v3.json"
    );
    let document = std::fs::read_to_string(fixture).expect("fixture");
    let schema3 = tempfile::tempdir().expect("tempdir");
    let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    for entry in std::fs::read_dir(migrations).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.as_str() < "0004" {
            std::fs::copy(&path, schema3.path().join(&name)).expect("copy");
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        let migrator = sqlx::migrate::Migrator::new(schema3.path())
            .await
            .expect("schema 3");
        migrator.run(&pool).await.expect("migrations 1-3");
        sqlx::query("INSERT INTO damocles_documents (key, doc) VALUES ('mock-chain/t010000', $1)")
            .bind(&document)
            .execute(&pool)
            .await
            .expect("the document");
        pool.close().await;
    });

    let records = PgRecords::open(&db.url, "mock-chain/t010000").expect("migrated");
    let (read, _) = section(&records, None, Changes::default());
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).expect("json");
    let mut whole = json(&document);
    let mut expected: Vec<(String, String, serde_json::Value)> = Vec::new();
    for (array, kind) in [
        ("sectors", "sector"),
        ("jobs", "job"),
        ("wdpost_jobs", "wdpost_job"),
    ] {
        for item in whole[array].as_array().expect(array) {
            let id = match kind {
                "sector" => format!("s-t0{}-{}", item["id"]["Miner"], item["id"]["Number"]),
                "job" => item["id"].to_string(),
                _ => item["id"].as_str().expect("id").to_owned(),
            };
            expected.push((kind.into(), id, item.clone()));
        }
        whole.as_object_mut().expect("object").remove(array);
    }
    let mut got: Vec<(String, String, serde_json::Value)> = read
        .rows
        .iter()
        .map(|r| {
            (
                r.kind.clone(),
                r.id.clone(),
                json(r.doc.as_deref().expect("doc")),
            )
        })
        .collect();
    got.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    expected.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    assert_eq!(got.len(), 6, "3 sectors, 1 job, 2 WindowPoSt jobs");
    assert_eq!(got, expected);
    assert_eq!(
        json(read.head.as_deref().expect("head")),
        whole,
        "the rest is the head"
    );
    let marker = psql(
        &db.url,
        "SELECT doc FROM damocles_documents WHERE key = 'mock-chain/t010000'",
    );
    assert!(
        marker.contains("moved to damocles_chain_records"),
        "{marker}"
    );
}
