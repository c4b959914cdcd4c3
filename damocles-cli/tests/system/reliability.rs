//! Faults with real processes on loopback: the worker killed with SIGKILL in every sealer
//! state and in the middle of C2 (then in every state of an unseal of its deal piece), in every snap-up state and in the middle of SnapProve, in
//! every state of the rebuild of an upgraded sector, manager outages short and long, a corrupt state
//! database. Every loop is bounded. Figures in RELIABILITY.md.
//!
//! Needs the 2KiB parameters in the parameter cache.

use crate::common;

use std::time::Duration;

use common::{
    free_port, manager, require_params, text, util, util_json, wait_for_threads, wait_until,
    worker, worker_cli, worker_config, worker_list, Process,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// The sealer states one sector passes through, in order.
const SEALER_PATH: [&str; 16] = [
    "Allocated",
    "DealsAcquired",
    "PieceAdded",
    "TreeDBuilt",
    "TicketAssigned",
    "PC1Done",
    "PC2Done",
    "PCSubmitted",
    "PCLanded",
    "Persisted",
    "PersistanceSubmitted",
    "SeedAssigned",
    "C1Done",
    "C2Done",
    "ProofSubmitted",
    "Finished",
];

const FAST: Duration = Duration::from_millis(20);

fn in_c2_for(thread: &Value, seconds: u64) -> bool {
    thread["thread_state"]["proc"] == "builtin C2"
        && thread["thread_state"]["elapsed"].as_u64() >= Some(seconds)
}

fn sectors(manager: &str) -> Vec<Value> {
    util_json(manager, &["sealer", "sectors", "list"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls the worker's list until `done` holds for thread 0; panics if any thread ever
/// shows an error.
fn watch(worker: &Process, what: &str, limit: Duration, done: impl Fn(&Value) -> bool) {
    wait_until(what, limit, FAST, || {
        let threads = worker_list(&worker.address)?;
        for t in &threads {
            assert_eq!(
                t["last_error"],
                Value::Null,
                "while waiting for {what}: {t}"
            );
        }
        done(&threads[0]).then_some(())
    });
}

#[test]
fn killed_in_every_state_and_during_c2_the_sector_still_finishes_once_then_unseals() {
    require_params();
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("worker");
    // Each state stays visible for a second after it is persisted (the report is slow),
    // long enough to be seen on a busy 2-core machine.
    // A deal sector, so that kills before and after AddPieces cover its piece fetch.
    let manager_process = manager(
        home.path(),
        "127.0.0.1:0",
        &["--max-sectors", "1", "--report-delay", "1s", "--deals", "1"],
    );
    let m = manager_process.address.clone();
    let config = worker_config(
        dir.path(),
        &m,
        1,
        "seal_interval = \"1h\"\nrecover_interval = \"1s\"\nmax_retries = 50\nenable_deals = true",
    );
    let mut kills = 0;
    let mut process = worker(&config);
    let position = |t: &Value| SEALER_PATH.iter().position(|s| t["job_state"] == *s);
    for (at, state) in SEALER_PATH.into_iter().enumerate() {
        watch(&process, state, Duration::from_secs(10 * 60), |t| {
            if let Some(now) = position(t) {
                assert!(now <= at, "missed {state}: the thread is already at {t}");
            }
            t["job_state"] == state
        });
        process.kill_9();
        kills += 1;
        process = worker(&config);
        if state == "C1Done" {
            // Killed in the middle of C2; then, in the middle of the next C2, stopped on
            // request through the manager: C2 runs to its end, its proof is saved, and the
            // worker exits with the restart code.
            watch(
                &process,
                "C2 running for 3 s",
                Duration::from_secs(120),
                |t| in_c2_for(t, 3),
            );
            process.kill_9();
            kills += 1;
            process = worker(&config);
            watch(
                &process,
                "C2 running for 3 s",
                Duration::from_secs(120),
                |t| in_c2_for(t, 3),
            );
            let asked = util(&m, &["worker", "stop", &process.address]);
            let said = text(&asked);
            assert!(
                asked.status.success() && said.contains("stopping: 1 thread(s)"),
                "{said}"
            );
            let status = process.wait_exit("worker stop", Duration::from_secs(10 * 60));
            assert_eq!(status.code(), Some(75), "the restart code");
            let logs = process.logs.lock().expect("logs").join("\n");
            assert!(
                logs.contains("waiting for thread 0 (s-t010000-1 at C1Done, in builtin C2)"),
                "the log names what the stop waits for: {logs}"
            );
            process = worker(&config);
            let history = worker_cli(&process.address, &["--json", "events", "-i", "0"]);
            let history: Vec<Value> = serde_json::from_slice(&history.stdout).expect("history");
            let after_stop: Vec<&Value> =
                history.iter().skip_while(|e| e["kind"] != "stop").collect();
            assert!(
                after_stop.len() >= 2 && after_stop[1]["to"] == "C2Done",
                "C2's proof kept after the stop: {history:#?}"
            );
        }
    }
    // After the last restart the thread reports the sector finalized and idles: the
    // manager allocates no second sector.
    watch(
        &process,
        "idle without a sector",
        Duration::from_secs(60),
        |t| t["job_id"].is_null(),
    );
    let all = sectors(&m);
    assert_eq!(all.len(), 1, "one sector allocated, never twice: {all:#?}");
    assert_eq!(all[0]["state"], "Finished");
    assert_eq!(
        all[0]["proof"].as_str().map(str::len),
        Some(384),
        "verified proof kept"
    );
    common::check_unsealed_copy(home.path(), &dir.path().join("persist"), &all[0]);
    assert_eq!(kills, 17);
    drop(process);

    // A retrieval of the first deal piece, asked for on the command line, by an unseal
    // thread killed right after every unseal state: the piece reaches a local file, the
    // manager's piece store over HTTP and an attached store, byte for byte.
    let name = format!("s-t0{}-{}", all[0]["miner"], all[0]["number"]);
    let piece = all[0]["pieces"][0]["cid"]
        .as_str()
        .expect("a deal piece")
        .to_owned();
    let retrieved = dir.path().join("retrieved").join(&piece);
    let dests = [
        format!("file://{}", retrieved.display()),
        format!("http://{m}/piecestore/{piece}"),
        format!("store://persist/retrieved/{piece}"),
        // The mock stands in for venus-market's PUT /resource (and checks what arrives).
        format!("market://s1/{piece}?host={m}&scheme=http&token=market-secret"),
    ];
    let mut args = vec!["sealer", "sectors", "unseal", &name, &piece];
    for dest in &dests {
        args.extend(["--dest", dest]);
    }
    let asked = util(&m, &args);
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    assert!(
        text(&asked).contains("unseal job 1 created"),
        "{}",
        text(&asked)
    );
    let bad = util(&m, &["sealer", "sectors", "unseal", &name, "not-a-cid"]);
    assert_eq!(bad.status.code(), Some(2));
    // In an unseal processor (the worker's own `processor unseal`).
    set_plan(&config, "unseal");
    add_to(&config, "[[processors.unseal]]\n");
    let (process, logs) = kill_after_each_state(
        worker(&config),
        &config,
        "unseal",
        &["Allocated", "Unsealed", "Finished"],
    );
    assert_made_in_processor(&logs, "unseal");
    watch(
        &process,
        "idle without a job",
        Duration::from_secs(60),
        |t| t["job_id"].is_null(),
    );
    let jobs = util_json(&m, &["sealer", "jobs", "list"]);
    assert_eq!(jobs[0]["state"], "done", "{jobs:#}");
    let payload = std::fs::read(home.path().join("pieces").join(&piece)).expect("payload");
    let listed = serde_json::to_string(&jobs).expect("jobs");
    assert!(
        !listed.contains("market-secret"),
        "the market token is never listed: {listed}"
    );
    assert!(listed.contains("token=<hidden>"), "{listed}");
    for copy in [
        retrieved,
        home.path().join("pieces/unsealed").join(&piece),
        dir.path().join("persist/retrieved").join(&piece),
        home.path().join("pieces/market/s1").join(&piece),
    ] {
        let bytes = std::fs::read(&copy).expect("delivered");
        assert!(bytes.starts_with(&payload), "{} differs", copy.display());
        assert!(bytes[payload.len()..].iter().all(|b| *b == 0));
    }
    drop(process);
    drop(manager_process);
}

#[test]
fn manager_outages_short_are_ridden_out_long_ones_pause_until_resumed() {
    require_params();
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("worker");
    let listen = format!("127.0.0.1:{}", free_port());
    let max = ["--max-sectors", "2"];
    let mut manager_process = manager(home.path(), &listen, &max);
    // Ten tries one second apart: an outage under 10 s is ridden out (the manager's
    // restart takes well under that, even on a busy machine).
    let config = worker_config(
        dir.path(),
        &listen,
        1,
        "seal_interval = \"0s\"\nrecover_interval = \"1s\"\nmax_retries = 10",
    );
    let process = worker(&config);

    // Short: the manager goes away during C2 of sector 1 and is back within a second of
    // the thread needing it.
    watch(
        &process,
        "C2 of sector 1",
        Duration::from_secs(5 * 60),
        |t| in_c2_for(t, 0),
    );
    assert!(manager_process.terminate().success());
    watch(&process, "C2 done", Duration::from_secs(5 * 60), |t| {
        t["job_state"] == "C2Done"
    });
    std::thread::sleep(Duration::from_millis(500));
    manager_process = manager(home.path(), &listen, &max);
    wait_until("sector 1 finished", Duration::from_secs(60), FAST, || {
        let threads = worker_list(&process.address)?;
        assert_eq!(
            threads[0]["last_error"],
            Value::Null,
            "no pause: {}",
            threads[0]
        );
        sectors(&listen)
            .iter()
            .any(|s| s["number"] == 1 && s["state"] == "Finished")
            .then_some(())
    });

    // Long: away for longer than the retries last; the thread pauses with a clear error.
    watch(
        &process,
        "C2 of sector 2",
        Duration::from_secs(5 * 60),
        |t| in_c2_for(t, 0) && t["job_id"] == "s-t010000-2",
    );
    assert!(manager_process.terminate().success());
    let paused = wait_until("paused", Duration::from_secs(5 * 60), FAST, || {
        let threads = worker_list(&process.address)?;
        (threads[0]["thread_state"]["state"] == "Paused").then(|| threads[0].clone())
    });
    let error = paused["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("permanent: SubmitProof: rpc error: cannot reach"),
        "{error}"
    );
    assert_eq!(paused["job_state"], "C2Done", "the proof is kept");

    // The manager returns (its records intact); resume completes the sector.
    let _manager_process = manager(home.path(), &listen, &max);
    let output = worker_cli(&process.address, &["resume", "-i", "0"]);
    assert!(output.status.success());
    wait_until("sector 2 finished", Duration::from_secs(60), FAST, || {
        let all = sectors(&listen);
        all.iter()
            .any(|s| s["number"] == 2 && s["state"] == "Finished")
            .then_some(all)
    });
    let all = sectors(&listen);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().all(|s| s["state"] == "Finished"));
}

#[test]
fn a_corrupt_state_database_pauses_its_thread_alone() {
    require_params();
    let dir = tempfile::tempdir().expect("worker");
    let config = worker_config(
        dir.path(),
        "127.0.0.1:1",
        2,
        "seal_interval = \"1h\"\nrecover_interval = \"1s\"",
    );
    let db = dir.path().join("store0/meta/state.redb");
    std::fs::write(&db, b"this is not a redb database, it was overwritten").expect("corrupt");
    let mut command = std::process::Command::new(common::WORKER);
    command
        .args(["daemon", "--mock-chain", "10000", "-c"])
        .arg(&config);
    let process = Process::start(command, "admin API listening on ");
    let threads = wait_until(
        "thread 1 sealing past PC2",
        Duration::from_secs(60),
        FAST,
        || {
            let threads = worker_list(&process.address)?;
            let past_pc2 = ["PC2Done", "PCSubmitted", "PCLanded", "Persisted", "C1Done"]
                .iter()
                .any(|s| threads[1]["job_state"] == *s);
            past_pc2.then_some(threads)
        },
    );
    assert_eq!(threads[0]["thread_state"]["state"], "Paused");
    let error = threads[0]["last_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("critical: state store "), "{error}");
    assert!(
        error.contains(&db.display().to_string()),
        "names the file: {error}"
    );
    assert_eq!(threads[0]["job_id"], Value::Null, "it took no sector");
    assert_eq!(threads[1]["last_error"], Value::Null);
    // The file is left as it was, for the operator to look at.
    assert_eq!(
        std::fs::read(&db).expect("db"),
        b"this is not a redb database, it was overwritten"
    );

    // Thread 1's valid database cut to 4 KiB (redb panics reading it): the daemon still
    // starts and answers; thread 1 alone pauses, naming its file.
    process.kill_9();
    let db1 = dir.path().join("store1/meta/state.redb");
    let whole = std::fs::read(&db1).expect("db1");
    assert!(
        whole.len() > 4096,
        "state.redb is only {} bytes: nothing to cut",
        whole.len()
    );
    std::fs::write(&db1, &whole[..4096]).expect("truncate");
    let restart = |what: &'static str, expect: &'static str| {
        let mut command = std::process::Command::new(common::WORKER);
        command
            .args(["daemon", "--mock-chain", "10000", "-c"])
            .arg(&config);
        let mut process = Process::start(command, "admin API listening on ");
        let threads = wait_for_threads(what, &mut process, Duration::from_secs(60), |threads| {
            threads[1]["thread_state"]["state"] == "Paused"
        });
        let error = threads[1]["last_error"].as_str().unwrap_or_default();
        assert!(error.starts_with("critical: state store "), "{error}");
        assert!(error.contains(&db1.display().to_string()), "{error}");
        assert!(error.contains(expect), "{error}");
        assert_eq!(threads[1]["job_id"], Value::Null, "it took no new sector");
        process
    };
    let process = restart("thread 1 paused on its damaged database", "state.redb");
    process.kill_9();

    // Emptied to 0 bytes beside the sector's files in data/: reported, not replaced by a
    // new database (which would start another sector over those files).
    std::fs::write(&db1, b"").expect("empty");
    let process = restart(
        "thread 1 paused on its empty database",
        "the database is empty, but",
    );
    assert_eq!(std::fs::metadata(&db1).expect("db1").len(), 0, "untouched");
    process.kill_9();
}

/// 1,000 pause/resume calls from four clients at once over HTTP, across the threads of a
/// worker whose threads each hold a sector (waiting for a PC1 slot that never comes):
/// afterwards each thread is paused exactly when the last call it accepted was a pause,
/// no pause is left pending, and every sector is where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_pause_and_resume_calls_leave_a_consistent_worker() {
    use std::sync::Arc;

    use damocles_core::{AdminTransport, Plan, SealProof, StateStore};
    use damocles_rpc::{AdminService, HttpAdminClient, RpcServer, ServerOptions, Timeouts};
    use damocles_sealing::limits::StageLimits;
    use damocles_sealing::mock_chain::MockChain;
    use damocles_sealing::store::{Location, RedbStateStore};
    use damocles_sealing::{AttachedStore, SealingOptions, ThreadContext, Worker};
    use rand::{Rng, SeedableRng};

    const THREADS: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = MockChain::new(10000, SealProof::StackedDrg2KiBV1_1);
    let limits = StageLimits::new([(damocles_core::ProofStage::PC1, 0)]);
    let contexts = (0..THREADS)
        .map(|i| {
            let location = Location::init(&dir.path().join(format!("s{i}"))).expect("location");
            let store = Arc::new(RedbStateStore::open(&location).expect("store"));
            ThreadContext {
                worker_name: "concurrency".into(),
                location,
                plan: Plan::Sealer,
                options: SealingOptions::immediate(),
                manager: Arc::new(chain.clone()),
                store: store as Arc<dyn StateStore>,
                limits: limits.clone(),
                processors: Default::default(),
                priority: Default::default(),
                attached: vec![AttachedStore {
                    name: "remote".into(),
                    location: dir.path().join("remote"),
                    readonly: false,
                }],
                pieces: Default::default(),
            }
        })
        .collect();
    let worker = Arc::new(Worker::start(contexts, "v-test"));
    let mut changes = worker.subscribe();
    let waiting = |t: &damocles_core::ThreadInfo| {
        matches!(t.thread_state, damocles_core::ThreadState::Waiting { .. })
    };
    while !worker.list().iter().all(waiting) {
        tokio::time::timeout(Duration::from_secs(30), changes.changed())
            .await
            .expect("all threads waiting for PC1")
            .expect("alive");
    }
    let before: Vec<_> = worker.list().into_iter().map(|t| t.job_id).collect();
    let server = RpcServer::bind(
        "127.0.0.1:0",
        Arc::new(AdminService::new(worker.clone())),
        ServerOptions::default(),
    )
    .await
    .expect("bind");
    let addr = server.local_addr().to_string();

    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let clients: Vec<_> = (0..THREADS)
        .map(|client| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let http = HttpAdminClient::new(&addr, None, Timeouts::default()).expect("client");
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed + client as u64);
                let index = client as u64;
                let mut last_pause = None;
                for _ in 0..250 {
                    if rng.gen_bool(0.5) {
                        http.pause(index).await.expect("pause");
                        last_pause = Some(true);
                    } else {
                        let outcome = http.resume(index, None).await.expect("resume");
                        last_pause = Some(false);
                        let _ = outcome;
                    }
                }
                (index, last_pause)
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    for client in clients {
        let (index, last_pause) = client.await.expect("client");
        expected.insert(index, last_pause.expect("some call"));
    }
    // Every call returned; give the threads the moment a resume takes to be picked up.
    let settle = |threads: &[damocles_core::ThreadInfo]| {
        threads.iter().all(|t| {
            let paused = matches!(t.thread_state, damocles_core::ThreadState::Paused { .. });
            paused == expected[&(t.index as u64)] && (paused || waiting(t))
        })
    };
    while !settle(&worker.list()) {
        tokio::time::timeout(Duration::from_secs(30), changes.changed())
            .await
            .unwrap_or_else(|_| panic!("inconsistent: {:#?} vs {expected:?}", worker.list()))
            .expect("alive");
    }
    let threads = worker.list();
    assert!(threads.iter().all(|t| !t.pause_requested), "no stale pause");
    assert!(threads.iter().all(|t| t.last_error.is_none()));
    let after: Vec<_> = threads.iter().map(|t| t.job_id.clone()).collect();
    assert_eq!(before, after, "every thread still holds its sector");
    assert!(threads
        .iter()
        .all(|t| t.job_state.map(|s| s.as_str()) == Some("TicketAssigned")));
    assert_eq!(
        chain.counters().allocated,
        THREADS as u64,
        "no sector dropped or added"
    );

    // Everyone resumed: all wait for their slot again, none paused.
    for i in 0..THREADS as u64 {
        let _ = AdminTransport::resume(&*worker, i, None)
            .await
            .expect("resume");
    }
    while !worker.list().iter().all(waiting) {
        tokio::time::timeout(Duration::from_secs(30), changes.changed())
            .await
            .expect("all waiting again")
            .expect("alive");
    }
    server.shutdown().await;
    worker.shutdown().await;
}

/// Tokens on both sides: without one, 401 (exit 4); the read token lists but cannot pause,
/// resume or remove; the admin token can; no token ever appears in a log.
#[test]
fn tokens_guard_worker_and_manager_and_never_reach_the_logs() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("worker");
    let (manager_admin, manager_read) = ("tok-madmin-6f1e9a", "tok-mread-2b7c4d");
    let (worker_admin, worker_read) = ("tok-wadmin-91d3aa", "tok-wread-5e8f07");
    let manager_process = manager(
        home.path(),
        "127.0.0.1:0",
        &[
            "--max-sectors",
            "1",
            "--admin-token",
            manager_admin,
            "--read-token",
            manager_read,
        ],
    );
    let m = manager_process.address.clone();
    let config = worker_config(
        dir.path(),
        &m,
        1,
        "seal_interval = \"1h\"\nrecover_interval = \"1s\"",
    );
    // Tokens go in the sections the config already has.
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace(
            "rpc_server.port = 0\n",
            &format!(
                "rpc_server.port = 0\nrpc_server.admin_token = \"{worker_admin}\"\nrpc_server.read_token = \"{worker_read}\"\n"
            ),
        )
        .replace(
            &format!("rpc_client.addr = \"http://{m}\"\n"),
            &format!("rpc_client.addr = \"http://{m}\"\nrpc_client.token = \"{manager_admin}\"\n"),
        );
    std::fs::write(&config, text).expect("config");
    // No parameters: the thread pauses at C1Done, which is all this test needs.
    let no_params = dir.path().join("no-params");
    std::fs::create_dir_all(&no_params).expect("dir");
    let mut command = std::process::Command::new(common::WORKER);
    command
        .args(["daemon", "-c"])
        .arg(&config)
        .env("FIL_PROOFS_PARAMETER_CACHE", &no_params)
        .env("RUST_LOG", "debug");
    let worker_process = Process::start(command, "admin API listening on ");
    let w = worker_process.address.clone();

    // The worker authenticated to the manager: it registered and sealed up to C2.
    let with = |token: &str| vec!["--token".to_owned(), token.to_owned()];
    let worker_as = |token: Option<&str>, args: &[&str]| {
        let mut all: Vec<String> = token.map(with).unwrap_or_default();
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        worker_cli(&w, &all)
    };
    wait_until("paused at C1Done", Duration::from_secs(60), FAST, || {
        let output = worker_as(Some(worker_read), &["--json", "list"]);
        let threads: Value = serde_json::from_slice(&output.stdout).ok()?;
        (threads[0]["job_state"] == "C1Done" && threads[0]["thread_state"]["state"] == "Paused")
            .then_some(())
    });

    // Worker: no token → 4; read token lists, cannot pause or resume; admin token can.
    assert_eq!(worker_as(None, &["list"]).status.code(), Some(4));
    assert_eq!(worker_as(Some("wrong"), &["list"]).status.code(), Some(4));
    let before = common::text(&worker_as(Some(worker_read), &["--json", "list"]));
    assert_eq!(
        worker_as(Some(worker_read), &["resume", "-i", "0"])
            .status
            .code(),
        Some(4)
    );
    assert_eq!(
        worker_as(Some(worker_read), &["pause", "-i", "0"])
            .status
            .code(),
        Some(4)
    );
    let after = common::text(&worker_as(Some(worker_read), &["--json", "list"]));
    let strip = |t: &str| {
        let mut v: Value = serde_json::from_str(t).expect("json");
        v[0]["thread_state"]["elapsed"] = Value::Null;
        v
    };
    assert_eq!(strip(&before), strip(&after), "nothing changed");
    assert!(worker_as(Some(worker_admin), &["pause", "-i", "0"])
        .status
        .success());

    // Manager: no token → 4; read token lists; remove needs the admin token.
    let util_as = |token: Option<&str>, args: &[&str]| {
        let mut all: Vec<String> = token.map(with).unwrap_or_default();
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        common::util(&m, &all)
    };
    assert_eq!(util_as(None, &["worker", "list"]).status.code(), Some(4));
    let listed = util_as(Some(manager_read), &["--json", "worker", "list"]);
    assert!(listed.status.success());
    let workers: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(workers[0]["Info"]["Name"], "it-worker");
    assert_eq!(
        util_as(Some(manager_read), &["worker", "remove", "it-worker"])
            .status
            .code(),
        Some(4)
    );
    // Managing the worker through the manager needs the worker's token too.
    let output = util_as(Some(manager_read), &["worker", "info", "it-worker"]);
    assert_eq!(output.status.code(), Some(4), "no worker token");
    let mut args = vec!["--worker-token", worker_read, "worker", "info", "it-worker"];
    let output = util_as(Some(manager_read), &args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    args = vec![
        "--worker-token",
        worker_admin,
        "worker",
        "resume",
        "it-worker",
        "0",
    ];
    assert!(util_as(Some(manager_read), &args).status.success());
    assert!(
        util_as(Some(manager_admin), &["worker", "remove", "it-worker"])
            .status
            .success()
    );

    // No token in any log line, at debug level.
    let log_sources = [worker_process.logs.clone(), manager_process.logs.clone()];
    assert!(worker_process.terminate().success());
    assert!(manager_process.terminate().success());
    let logs: Vec<String> = log_sources
        .iter()
        .flat_map(|l| l.lock().expect("logs").clone())
        .collect();
    assert!(!logs.is_empty());
    for token in [manager_admin, manager_read, worker_admin, worker_read] {
        assert!(
            logs.iter().all(|line| !line.contains(token)),
            "{token} in the logs"
        );
    }
}

/// The snap-up states one upgrade passes through, in order.
const SNAPUP_PATH: [&str; 7] = [
    "Allocated",
    "PieceAdded",
    "TreeDBuilt",
    "SnapEncoded",
    "SnapProved",
    "Persisted",
    "Finished",
];

/// A CC sector sealed by a sealer thread, then upgraded by a snap-up thread (the same
/// location, its config switched to `plan = "snapup"`) that is killed with SIGKILL right
/// after every snap-up state and twice in the middle of SnapProve: the upgrade finishes
/// once, verified by the manager, and nothing is allocated twice.
#[test]
fn killed_in_every_snapup_and_rebuild_state_the_upgrade_and_its_rebuild_finish_once() {
    require_params();
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("worker");
    let manager_process = manager(
        home.path(),
        "127.0.0.1:0",
        &[
            "--max-sectors",
            "1",
            "--report-delay",
            "1s",
            "--persist-store",
            &format!("persist={}", dir.path().join("persist").display()),
        ],
    );
    let m = manager_process.address.clone();
    let sealing = "seal_interval = \"1h\"\nrecover_interval = \"1s\"\nmax_retries = 50";
    let config = worker_config(dir.path(), &m, 1, sealing);
    let process = worker(&config);
    wait_until(
        "a finished CC sector",
        Duration::from_secs(10 * 60),
        FAST,
        || (sectors(&m).first()?["state"] == "Finished").then_some(()),
    );
    // The manager marks the sector finished a moment before the thread drops the job: a
    // kill in between leaves a sealer job that the restarted thread finishes first.
    watch(
        &process,
        "the sealer thread idle",
        Duration::from_secs(60),
        |t| t["job_id"].is_null(),
    );
    drop(process);

    set_plan(&config, "snapup");
    let mut kills = 0;
    let mut process = worker(&config);
    let position = |t: &Value| SNAPUP_PATH.iter().position(|s| t["job_state"] == *s);
    for (at, state) in SNAPUP_PATH.into_iter().enumerate() {
        watch(&process, state, Duration::from_secs(5 * 60), |t| {
            assert_eq!(t["plan"], "snapup", "{t}");
            if let Some(now) = position(t) {
                assert!(now <= at, "missed {state}: the thread is already at {t}");
            }
            t["job_state"] == state
        });
        process.kill_9();
        kills += 1;
        process = worker(&config);
        if state == "SnapEncoded" {
            for _ in 0..2 {
                watch(
                    &process,
                    "SnapProve running for 3 s",
                    Duration::from_secs(120),
                    |t| {
                        t["thread_state"]["proc"] == "builtin SnapProve"
                            && t["thread_state"]["elapsed"].as_u64() >= Some(3)
                    },
                );
                process.kill_9();
                kills += 1;
                process = worker(&config);
            }
        }
    }
    watch(
        &process,
        "idle without a sector",
        Duration::from_secs(60),
        |t| t["job_id"].is_null(),
    );
    let all = sectors(&m);
    assert_eq!(all.len(), 1, "one sector, allocated once: {all:#?}");
    assert_eq!(all[0]["state"], "Upgraded", "{:#}", all[0]);
    let update = &all[0]["update"];
    assert_eq!(update["proof_type"], 0, "StackedDrg2KiBV1");
    assert!(update["proof"].as_str().is_some_and(|p| !p.is_empty()));
    assert_ne!(update["comm_r_new"], all[0]["comm_r"]);
    let persist = dir.path().join("persist");
    let name = format!("s-t0{}-{}", all[0]["miner"], all[0]["number"]);
    assert!(persist.join("update").join(&name).is_file());
    assert!(persist
        .join("update-cache")
        .join(&name)
        .join("p_aux")
        .is_file());
    assert_eq!(all[0]["pieces"], serde_json::json!([]), "sealed as CC");
    // The unsealed copy holds the pieces the upgrade put in.
    let mut upgraded = all[0].clone();
    upgraded["pieces"] = update["pieces"].clone();
    common::check_unsealed_copy(home.path(), &persist, &upgraded);
    assert_eq!(kills, 9);
    drop(process);

    // The disk is lost. The operator asks for a rebuild; a rebuild thread killed right
    // after every state re-creates the sector key and the updated replica byte for byte.
    let lost: Vec<(std::path::PathBuf, Vec<u8>)> =
        ["sealed", "cache", "update", "update-cache", "unsealed"]
            .iter()
            .flat_map(|dir| {
                let path = persist.join(dir).join(&name);
                if path.is_dir() {
                    std::fs::read_dir(&path)
                        .expect("dir")
                        .map(|e| e.expect("entry").path())
                        .collect()
                } else {
                    vec![path]
                }
            })
            .map(|file| {
                let bytes = std::fs::read(&file).expect("persisted file");
                std::fs::remove_file(&file).expect("lose it");
                (file, bytes)
            })
            .collect();
    let asked = util(&m, &["sealer", "sectors", "rebuild", &name]);
    assert!(asked.status.success(), "{}", text(&asked));
    assert!(
        text(&asked).contains("rebuild job 1 created"),
        "{}",
        text(&asked)
    );
    let again = util(&m, &["sealer", "sectors", "rebuild", &name]);
    let refusal = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{refusal}");
    assert!(
        refusal.contains(&format!(
            "{name} cannot be rebuilt: {name} already has rebuild job 1"
        )),
        "{refusal}"
    );
    // Its snap encode and snap prove in processors (the worker's own).
    set_plan(&config, "rebuild");
    add_to(
        &config,
        "[[processors.snap_encode]]\n[[processors.snap_prove]]\n",
    );
    let (process, logs) =
        kill_after_each_state(worker(&config), &config, "rebuild", &REBUILD_UPGRADED_PATH);
    assert_made_in_processor(&logs, "snap_encode");
    assert_made_in_processor(&logs, "snap_prove");
    watch(
        &process,
        "idle without a job",
        Duration::from_secs(60),
        |t| t["job_id"].is_null(),
    );
    let jobs = util_json(&m, &["sealer", "jobs", "list"]);
    assert_eq!(jobs[0]["state"], "done", "{jobs:#}");
    assert_eq!(jobs[0]["reason"], Value::Null, "{jobs:#}");
    for (file, bytes) in &lost {
        let rebuilt = std::fs::read(file).unwrap_or_default();
        assert!(
            rebuilt == *bytes,
            "{} differs after the rebuild",
            file.display()
        );
    }
    let all = sectors(&m);
    assert_eq!(all[0]["rebuilt"], 1, "{:#}", all[0]);
    assert_eq!(all[0]["state"], "Upgraded");
    drop(process);
    drop(manager_process);
}

/// Gives the config's one sealing thread `plan` (replacing the plan it had).
fn set_plan(config: &std::path::Path, plan: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    let mut out = String::new();
    let mut section = "";
    for line in text.lines().filter(|l| !l.starts_with("plan = ")) {
        out.push_str(line);
        out.push('\n');
        if line.starts_with('[') {
            section = line;
        } else if section == "[[sealing_thread]]" && line.starts_with("location = ") {
            out.push_str(&format!("plan = \"{plan}\"\n"));
        }
    }
    assert_eq!(out.matches("plan = ").count(), 1, "one thread: {out}");
    std::fs::write(config, out).expect("config");
}

/// Appends `toml` to the worker's config.
fn add_to(config: &std::path::Path, toml: &str) {
    let mut text = std::fs::read_to_string(config).expect("config");
    text.push_str(toml);
    std::fs::write(config, text).expect("config");
}

/// Asserts that a `stage` call ran in an external processor: its log line (the child's
/// stderr reaches the worker's) says it finished.
fn assert_made_in_processor(logs: &[String], stage: &str) {
    let done = format!("{stage} processor (pid ");
    assert!(
        logs.iter()
            .any(|l| l.contains(&done) && l.contains(" finished in ")),
        "no {stage} call finished in a processor: {logs:#?}"
    );
}

/// Kills `process` with SIGKILL right after its thread, under `plan`, shows each state
/// of `path` (never one past a state it did not show), restarting it each time; returns
/// the last worker and the logs of those killed.
fn kill_after_each_state(
    mut process: Process,
    config: &std::path::Path,
    plan: &str,
    path: &[&str],
) -> (Process, Vec<String>) {
    let mut logs = Vec::new();
    let position = |t: &Value| path.iter().position(|s| t["job_state"] == *s);
    for (at, state) in path.iter().enumerate() {
        watch(&process, state, Duration::from_secs(5 * 60), |t| {
            assert_eq!(t["plan"], plan, "{t}");
            if let Some(now) = position(t) {
                assert!(now <= at, "missed {state}: the thread is already at {t}");
            }
            t["job_state"] == *state
        });
        logs.extend(process.logs.lock().expect("logs").iter().cloned());
        process.kill_9();
        process = worker(config);
    }
    (process, logs)
}

/// The rebuild states of an upgraded sector, in order.
const REBUILD_UPGRADED_PATH: [&str; 12] = [
    "Allocated",
    "PieceAdded",
    "TreeDBuilt",
    "PC1Done",
    "PC2Done",
    "SealedChecked",
    "SnapPieceAdded",
    "SnapTreeDBuilt",
    "SnapEncoded",
    "SnapDone",
    "Persisted",
    "Finished",
];

/// The manager's home on a disk that fills up: while it is full every call that would
/// change the records answers an error (never a sector number or a ticket that a restart
/// would forget), pings fail, and once space is back both stores take writes again by
/// themselves; after a restart nothing is handed out twice.
#[test]
fn a_full_disk_is_never_acknowledged_and_the_manager_recovers() {
    let disk = common::SmallDisk::mount(4 << 20).expect("mounting a tmpfs needs root");
    let home = disk.path().join("home");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let call = |address: &str, method: &str, params: Value| {
        let client = damocles_rpc::RpcClient::new(
            address,
            "/rpc/v0",
            None,
            damocles_rpc::Timeouts::default(),
        )
        .expect("client");
        runtime.block_on(client.call::<Value>(method, params))
    };
    let allocate = |address: &str| {
        call(address, "Venus.AllocateSector", serde_json::json!([{}]))
            .map(|s| s["ID"]["Number"].as_u64().expect("a number"))
    };
    let ping = |address: &str, name: &str| {
        let report = serde_json::json!([{"Name": name, "Dest": "127.0.0.1:1", "Version": "v",
            "Summary": {"Threads": 1, "Empty": 1, "Paused": 0, "Running": 0, "Waiting": 0, "Errors": 0}}]);
        call(address, "Venus.WorkerPing", report)
    };
    let m = manager(&home, &format!("127.0.0.1:{}", free_port()), &[]);
    assert_eq!(allocate(&m.address).expect("allocate"), 1);
    ping(&m.address, "before").expect("ping");

    disk.fill();
    let full = allocate(&m.address).expect_err("no space to save it");
    assert!(full.to_string().contains("No space left"), "{full}");
    let id = serde_json::json!([{"Miner": 10000, "Number": 1}]);
    let ticket = call(&m.address, "Venus.AssignTicket", id.clone()).expect_err("no space");
    assert!(ticket.to_string().contains("not saved"), "{ticket}");
    let mut refused = 0;
    for i in 0..20 {
        if ping(&m.address, &format!("full-{i}")).is_err() {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "the registry cannot have taken 20 pings on a full disk"
    );

    disk.free();
    ping(&m.address, "after").expect("the registry recovers by itself");
    assert_eq!(allocate(&m.address).expect("allocate"), 2);
    let ticket = call(&m.address, "Venus.AssignTicket", id.clone()).expect("ticket");
    drop(m);

    let m = manager(&home, &format!("127.0.0.1:{}", free_port()), &[]);
    assert_eq!(
        allocate(&m.address).expect("allocate"),
        3,
        "1 and 2 are taken"
    );
    assert_eq!(
        call(&m.address, "Venus.AssignTicket", id).expect("ticket"),
        ticket,
        "the ticket answered is the one kept"
    );
    let workers = util_json(&m.address, &["worker", "list"]);
    let names: Vec<&str> = workers
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|w| w["Info"]["Name"].as_str())
        .collect();
    assert!(
        names.contains(&"before") && names.contains(&"after"),
        "{names:?}"
    );
}

/// `util … | head -1`: once the reader has gone away the command exits quietly with 141
/// (as a command killed by SIGPIPE), never a panic.
#[test]
fn a_listing_into_a_closed_pipe_exits_quietly() {
    let home = tempfile::tempdir().expect("home");
    let m = manager(home.path(), &format!("127.0.0.1:{}", free_port()), &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = damocles_rpc::RpcClient::new(
        &m.address,
        "/rpc/v0",
        None,
        damocles_rpc::Timeouts::default(),
    )
    .expect("client");
    // More than a pipe holds (64 KiB), so that the command meets the closed pipe.
    for i in 0..600 {
        let report = serde_json::json!([{"Name": format!("worker-{i:04}"), "Dest": format!("127.0.0.1:{}", 10000 + i),
            "Version": "v", "Summary": {"Threads": 1, "Empty": 1, "Paused": 0, "Running": 0, "Waiting": 0, "Errors": 0}}]);
        runtime
            .block_on(client.call::<Value>("Venus.WorkerPing", report))
            .expect("ping");
    }
    for args in [&["--json", "worker", "list"][..], &["worker", "list"][..]] {
        let mut command = std::process::Command::new(common::MANAGER);
        let mut child = command
            .args(["util", "--listen", &m.address])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait");
        assert_eq!(output.status.code(), Some(141), "{args:?}: {output:?}");
        assert!(
            output.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The mock manager stores under a piece CID only that piece (its real piece CID, from
/// the deal it made): garbage anyone sends to `PUT /piecestore/{cid}` or venus-market's
/// `PUT /resource` is refused (422) and never found by an unseal job; a CID no deal has is
/// 404; the real bytes are taken. Before the check, garbage stored first made every later
/// unseal of that piece fail with 409.
#[test]
fn the_manager_stores_under_a_piece_cid_only_that_piece() {
    use damocles_core::piece::{PieceStore, PieceUploadError};
    use damocles_core::sealer_api::{AcquireDealsSpec, AllocateSectorSpec};
    use damocles_core::SectorManager;

    let home = tempfile::tempdir().expect("home");
    let m = manager(
        home.path(),
        &format!("127.0.0.1:{}", free_port()),
        &["--deals", "1"],
    );
    let origin = format!("http://{}", m.address);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let timeouts = damocles_rpc::Timeouts::default();
    let sealer = damocles_rpc::HttpSectorManager::new(&origin, None, timeouts).expect("client");
    let pieces = damocles_rpc::HttpPieceStore::new(&origin, None, timeouts).expect("store");
    runtime.block_on(async {
        let sector = sealer
            .allocate_sector(AllocateSectorSpec::default())
            .await
            .expect("allocate")
            .expect("a sector");
        let deals = sealer
            .acquire_deals(sector.id, AcquireDealsSpec::default())
            .await
            .expect("deals")
            .expect("a deal");
        let cid = deals[0].piece.cid.clone();
        let real = home.path().join("real");
        let size = damocles_core::piece::unpadded_size(deals[0].piece.size).expect("size");
        pieces.fetch(&cid, &real, size).await.expect("fetch");
        let mut garbage_bytes = std::fs::read(&real).expect("real");
        garbage_bytes[0] ^= 1;
        let garbage = home.path().join("garbage");
        std::fs::write(&garbage, &garbage_bytes).expect("garbage");

        let refused = |result: Result<(), PieceUploadError>, status: &str| match result {
            Err(PieceUploadError::Refused { detail, .. }) => {
                assert!(detail.contains(status), "{status}: {detail}")
            }
            other => panic!("{status} expected: {other:?}"),
        };
        let piecestore = format!("{origin}/piecestore/{}", cid.text);
        let resource = format!("{origin}/resource?resource-id={}&store=s1", cid.text);
        refused(pieces.put(&piecestore, &garbage).await, "422");
        refused(pieces.put_market(&resource, &garbage, "t").await, "422");
        let unknown = damocles_core::piece::piece_cid(&[3; 32]);
        let elsewhere = format!("{origin}/piecestore/{}", unknown.text);
        refused(pieces.put(&elsewhere, &real).await, "404");
        pieces.put(&piecestore, &real).await.expect("the piece");
        pieces
            .put_market(&resource, &real, "t")
            .await
            .expect("the piece, to the market");
        // The payload padded with zeros to the piece's size gives the same CID: taken
        // (the stored piece kept), never a 409 that would block every later unseal.
        let mut padded_bytes = std::fs::read(&real).expect("real");
        padded_bytes.resize(size as usize, 0);
        let padded = home.path().join("padded");
        std::fs::write(&padded, &padded_bytes).expect("padded");
        pieces
            .put(&piecestore, &padded)
            .await
            .expect("the same piece, padded");
        let newline = format!("{origin}/resource?resource-id={}&store=x%0Ay", cid.text);
        refused(pieces.put_market(&newline, &real, "t").await, "400");
    });
    let stored = home.path().join("pieces");
    let found: Vec<_> = walk(&stored);
    assert!(
        found
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".part")),
        "no temporary file left: {found:?}"
    );
}

/// Every file under `dir`, at any depth.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
