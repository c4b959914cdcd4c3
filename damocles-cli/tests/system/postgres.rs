//! Managers sharing one PostgreSQL registry (`damocles-manager mock --db URL`): every
//! manager lists and manages every worker that pinged any of them, a name stays at its
//! dest whichever manager is asked, and a database restart needs no manager restart.
//! Needs DAMOCLES_TEST_DATABASE_URL (scripts/start-postgres.sh prints it; scripts/test.sh
//! sets it); each test makes a database of its own and drops it.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{manager, util, util_json, wait_until, worker, worker_config, Process};
use serde_json::{json, Value};

/// A database of its own, dropped at the end.
struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

fn psql(url: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([url, "-qtAc", sql])
        .output()
        .expect("psql (PostgreSQL's client) runs")
}

impl TestDatabase {
    fn create() -> Self {
        let admin = std::env::var("DAMOCLES_TEST_DATABASE_URL").expect(
            "DAMOCLES_TEST_DATABASE_URL: start PostgreSQL with `export DAMOCLES_TEST_DATABASE_URL=$(scripts/start-postgres.sh)` (scripts/test.sh does)",
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let name = format!("damocles_test_{}_{nanos}", std::process::id());
        let created = psql(&admin, &format!("CREATE DATABASE {name}"));
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let base = admin.rsplit_once('/').expect("a URL ending in /database").0;
        let url = format!("{base}/{name}");
        Self { admin, name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Two managers on `db`, homes under `dir`, with `extra` flags.
fn two_managers(db: &TestDatabase, dir: &std::path::Path, extra: &[&str]) -> (Process, Process) {
    let flags: Vec<&str> = ["--db", db.url.as_str()]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let a = manager(&dir.join("a"), "127.0.0.1:0", &flags);
    let b = manager(&dir.join("b"), "127.0.0.1:0", &flags);
    (a, b)
}

fn ping(manager: &str, name: &str, dest: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "Venus.WorkerPing", "params": [{
        "Name": name, "Dest": dest, "Version": "v", "Summary": {
            "Threads": 1, "Empty": 1, "Paused": 0, "Running": 0, "Waiting": 0, "Errors": 0}}]});
    let output = Command::new("curl")
        .args([
            "-s",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ])
        .arg(format!("http://{manager}/rpc/v0"))
        .output()
        .expect("curl");
    serde_json::from_slice(&output.stdout).expect("a JSON-RPC answer")
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|e| e["Info"]["Name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn two_managers_on_one_database_list_and_manage_the_same_workers_through_a_database_restart() {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = two_managers(&db, dir.path(), &["--max-sectors", "0"]);

    // A real worker reports to manager A only.
    let config = worker_config(dir.path(), &a.address, 1, "");
    let w = worker(&config);
    let on_b = wait_until(
        "the worker on manager B",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let list = util_json(&b.address, &["worker", "list"]);
            (names(&list) == ["it-worker"]).then_some(list)
        },
    );
    let on_a = util_json(&a.address, &["worker", "list"]);
    assert_eq!(
        on_a[0]["Info"], on_b[0]["Info"],
        "both show the same report"
    );
    assert_eq!(on_b[0]["Info"]["Dest"], w.address);
    assert_eq!(on_b[0]["Liveness"], "ok");
    // B reaches the worker through the shared entry.
    let threads = util_json(&b.address, &["worker", "info", "it-worker"]);
    assert!(threads.to_string().contains("store0"), "{threads}");

    // A name stays at its dest, whichever manager is asked.
    let moved = ping(&b.address, "it-worker", "10.9.9.9:17890");
    let message = moved["error"]["message"].as_str().expect("refused");
    assert!(
        message.contains(&format!("is registered at \"{}\"", w.address)),
        "{message}"
    );
    // Of two pings racing for a new name at two dests, one wins.
    let (first, second) = std::thread::scope(|s| {
        let one = s.spawn(|| ping(&a.address, "raced", "10.0.0.1:1"));
        let two = s.spawn(|| ping(&b.address, "raced", "10.0.0.2:1"));
        (one.join().expect("ping"), two.join().expect("ping"))
    });
    let won = [&first, &second]
        .iter()
        .filter(|r| r["error"].is_null())
        .count();
    assert_eq!(won, 1, "{first} {second}");

    // PostgreSQL restarts: the managers reconnect by themselves.
    restart_postgres();
    for manager in [&a.address, &b.address] {
        wait_until(
            "the registry answering again",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let output = util(manager, &["--json", "worker", "list"]);
                output.status.success().then_some(())
            },
        );
    }

    // Removed through B, gone from A (until the worker pings again).
    drop(w);
    let removed = util(&b.address, &["worker", "remove", "raced"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert_eq!(
        names(&util_json(&a.address, &["worker", "list"])),
        ["it-worker"]
    );
}

/// `damocles-manager mock --db <url>` run to its end (it fails): exit code and stderr.
fn mock_failing_with_db(url: &str) -> (Option<i32>, String) {
    let home = tempfile::tempdir().expect("temp dir");
    let output = Command::new(common::MANAGER)
        .args(["mock", "--listen", "127.0.0.1:0", "--db", url, "--home"])
        .arg(home.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn a_database_that_cannot_be_reached_is_named_without_its_password() {
    let (code, stderr) = mock_failing_with_db("postgres://fleet:s3cret@127.0.0.1:1/fleet");
    assert_eq!(code, Some(3), "unreachable");
    assert!(
        stderr.contains("database postgres://fleet:***@127.0.0.1:1/fleet: cannot connect"),
        "{stderr}"
    );
    assert!(stderr.contains("is PostgreSQL running"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");

    // Not PostgreSQL's URL: bad input, nothing tried.
    let (code, stderr) = mock_failing_with_db("mysql://root@127.0.0.1/fleet");
    assert_eq!(code, Some(2), "bad input");
    assert!(stderr.contains("not a PostgreSQL URL"), "{stderr}");
}

/// Deal pieces live in the database: a manager serves the pieces of deals another one
/// made, after that one is gone; deal ids count on whichever manager made the deal.
#[test]
fn a_deal_piece_made_by_one_manager_is_served_by_the_other_after_it_dies() {
    use damocles_core::sealer_api::{AcquireDealsSpec, AllocateSectorSpec};
    use damocles_core::{PieceStore, SectorManager};
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = two_managers(&db, dir.path(), &["--deals", "1"]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // One deal sector through each manager: their deal ids never repeat.
    let deals_through = |manager: &str| {
        let client = damocles_rpc::HttpSectorManager::new(manager, None, Default::default())
            .expect("client");
        runtime.block_on(async {
            let spec = AllocateSectorSpec {
                allowed_miners: None,
                allowed_proof_types: None,
            };
            let sector = client
                .allocate_sector(spec)
                .await
                .expect("allocated")
                .expect("a sector");
            let spec = AcquireDealsSpec {
                max_deals: None,
                min_used_space: None,
            };
            let assigned = client
                .acquire_deals(sector.id, spec)
                .await
                .expect("deals")
                .expect("some deals");
            // The deals among the assigned pieces (the rest are zero pieces).
            assigned
                .into_iter()
                .filter(|p| !p.is_pledge())
                .collect::<Vec<_>>()
        })
    };
    let deals = deals_through(&a.address);
    // Assigned smallest piece first, so a sector's ids need not be in order.
    let mut ids: Vec<u64> = deals
        .iter()
        .chain(&deals_through(&b.address))
        .map(|d| d.deal_info.deal_id)
        .collect();
    ids.sort_unstable();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "deal ids count on across managers");
    let listed = format!("http://{},http://{}", a.address, b.address);
    a.kill_9();
    let pieces =
        damocles_rpc::HttpPieceStore::new(&listed, None, Default::default()).expect("piece store");
    for deal in &deals {
        let cid = &deal.piece.cid;
        let dest = dir.path().join("fetched");
        let len = runtime
            .block_on(pieces.fetch(cid, &dest, deal.piece.size))
            .expect("B serves A's piece");
        assert_eq!(len, deal.deal_info.payload_size);
        assert_eq!(
            std::fs::read(&dest).expect("fetched"),
            std::fs::read(dir.path().join("a/pieces").join(&cid.text)).expect("A's copy"),
            "{}",
            cid.text
        );
    }
}

/// `scripts/start-postgres.sh` with PostgreSQL restarted.
fn restart_postgres() {
    let restarted = Command::new("scripts/start-postgres.sh")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("DAMOCLES_PG_RESTART", "1")
        .output()
        .expect("restart");
    assert!(
        restarted.status.success(),
        "{}",
        String::from_utf8_lossy(&restarted.stderr)
    );
}

#[test]
fn a_thousand_allocations_split_over_two_managers_give_a_thousand_numbers() {
    use damocles_core::sealer_api::AllocateSectorSpec;
    use damocles_core::SectorManager;
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = two_managers(&db, dir.path(), &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let numbers: Vec<u64> = runtime.block_on(async {
        // All 1,000 at once, each manager's share over at most 128 connections (its
        // limit is 256; a fleet's workers hold one each).
        let clients: Vec<_> = [&a.address, &b.address]
            .iter()
            .map(|addr| {
                let client = damocles_rpc::HttpSectorManager::new(addr, None, Default::default())
                    .expect("client");
                let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(128));
                (std::sync::Arc::new(client), connections)
            })
            .collect();
        let calls = (0..1000).map(|i| {
            let (client, connections) = clients[i % 2].clone();
            tokio::spawn(async move {
                let _connection = connections.acquire_owned().await.expect("open");
                let spec = AllocateSectorSpec {
                    allowed_miners: None,
                    allowed_proof_types: None,
                };
                client.allocate_sector(spec).await
            })
        });
        let mut numbers = Vec::new();
        for call in futures_join(calls.collect()).await {
            let sector = call.expect("joined").expect("allocated").expect("a sector");
            numbers.push(sector.id.number);
        }
        numbers
    });
    let distinct: std::collections::BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(numbers.len(), 1000);
    assert_eq!(
        distinct.len(),
        1000,
        "two managers handed out one number twice"
    );
    assert_eq!(distinct.first().copied(), Some(1));
    assert_eq!(distinct.last().copied(), Some(1000));
    // Both managers show the same thousand sectors.
    for manager in [&a.address, &b.address] {
        let sectors = util_json(manager, &["sealer", "sectors", "list"]);
        assert_eq!(sectors.as_array().map(Vec::len), Some(1000));
    }
}

async fn futures_join<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await);
    }
    results
}

#[test]
fn a_worker_seals_through_two_managers_when_one_is_killed_and_postgres_restarts() {
    common::require_params();
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = two_managers(&db, dir.path(), &["--max-sectors", "2"]);
    let config = worker_config(dir.path(), &a.address, 2, "recover_interval = \"1s\"");
    let text = std::fs::read_to_string(&config).expect("config").replace(
        &format!("rpc_client.addr = \"http://{}\"", a.address),
        &format!(
            "rpc_client.addr = [\"http://{}\", \"http://{}\"]",
            a.address, b.address
        ),
    );
    std::fs::write(&config, text).expect("config");
    let w = worker(&config);
    // Both sectors allocated (by A), then A dies.
    wait_until(
        "two sectors under way",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let threads = common::worker_list(&w.address)?;
            threads
                .iter()
                .all(|t| t["job_id"].is_string())
                .then_some(())
        },
    );
    a.kill_9();
    // PostgreSQL restarts while the worker goes on through B.
    restart_postgres();
    let finished = common::finished_sectors(&b.address, 2, Duration::from_secs(10 * 60));
    let numbers: Vec<u64> = finished
        .iter()
        .map(|s| s["number"].as_u64().expect("number"))
        .collect();
    assert_eq!(numbers, [1, 2]);
    let logs = w.logs.lock().expect("logs").join("\n");
    assert!(
        logs.contains(&format!("using {} from now on", b.address)),
        "the worker says it moved to B"
    );
    for thread in common::worker_list(&w.address).expect("list") {
        assert_eq!(thread["last_error"], Value::Null, "{thread}");
    }
}

/// PostgreSQL down under a manager: `util sealer sectors|jobs|wdpost list` say since when
/// its records cannot be read and exit 3, instead of listing what the manager holds in
/// memory as if it were current; once the database is back they list again.
#[test]
fn listings_during_a_database_outage_say_since_when_and_exit_3() {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, _b) = two_managers(&db, dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let a_metrics = crate::metrics::metrics_addr(&a);
    let database_up = || {
        crate::metrics::sample(
            &crate::metrics::scrape(&a_metrics),
            "damocles_manager_database_up",
        )
    };
    assert_eq!(database_up(), Some(1.0));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = damocles_rpc::RpcClient::new(
        &a.address,
        "/rpc/v0",
        None,
        damocles_rpc::Timeouts::default(),
    )
    .expect("client");
    runtime
        .block_on(client.call::<Value>("Venus.AllocateSector", json!([{}])))
        .expect("allocate");
    let listings: [&[&str]; 3] = [
        &["sealer", "sectors", "list"],
        &["sealer", "jobs", "list"],
        &["sealer", "wdpost", "list"],
    ];
    let stopped = Command::new("bash")
        .args([
            "-c",
            "read -r v c _ < <(pg_lsclusters -h | head -1); pg_ctlcluster --skip-systemctl-redirect \"$v\" \"$c\" stop",
        ])
        .status()
        .expect("stop");
    assert!(stopped.success());
    for args in listings {
        let out = util(&a.address, args);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(3), "{args:?}: {said}");
        assert!(said.contains("cannot be read since 20"), "{args:?}: {said}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing listed");
    }
    // What DamoclesManagerDatabaseDown (deploy/prometheus/damocles.rules.yml) alerts on,
    // served within Prometheus' default scrape timeout (10 s).
    let asked = std::time::Instant::now();
    assert_eq!(database_up(), Some(0.0), "during the outage");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "{:?}",
        asked.elapsed()
    );
    restart_postgres();
    let sectors = util_json(&a.address, &["sealer", "sectors", "list"]);
    assert_eq!(sectors.as_array().map(Vec::len), Some(1), "{sectors}");
    assert_eq!(database_up(), Some(1.0), "once the database is back");
}
