//! Interoperability with the original damocles, both directions, from the exchanges
//! recorded on a running original (`fixtures/reference/original-exchanges.json`):
//!
//! - the original admin requests, replayed in order against our worker, get the
//!   original's answers (locations, versions and elapsed seconds aside), except where we
//!   differ on purpose (each listed with its reason);
//! - the original's answers decode in our clients, and our ping payload is the original's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use damocles_core::{Plan, SealProof, ThreadInfo, WorkerReport};
use damocles_rpc::jsonrpc::Response;
use damocles_rpc::{AdminService, RpcServer, ServerOptions};
use damocles_sealing::mock_chain::MockChain;
use serde_json::Value;

fn exchanges() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/reference/original-exchanges.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("exchanges")).expect("json")
}

/// Blanks what differs between any two machines: locations, versions, elapsed seconds,
/// and our additive `pause_requested`, `draining`, `stuck` and error `data`.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("pause_requested");
            map.remove("draining");
            map.remove("stuck");
            map.remove("data");
            for (key, v) in map.iter_mut() {
                match key.as_str() {
                    "location" | "elapsed" => *v = Value::String("*".into()),
                    _ => normalize(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::String(s) if s.starts_with("v0.") => *s = "<version>".into(),
        _ => {}
    }
}

/// Where our answer differs from the original's on purpose, by the exchange's `what`.
fn deliberate_difference(what: &str) -> Option<&'static str> {
    Some(match what {
        "WorkerResume [0,\"Foo\"]" | "WorkerResume [2,\"Foo\"]" => {
            "we refuse an unknown state (-32602 listing the valid ones); the original answers true and ignores it"
        }
        "WorkerResume [2] (already running -> nobody waiting)" => {
            "the original answers true when no one waits; we answer false: the thread is not paused"
        }
        "WorkerPause no params" | "WorkerPause string param" => {
            "same code -32602; our message says which param and why in our words"
        }
        _ => return None,
    })
}

async fn post(addr: &str, body: &str) -> (u16, String) {
    send(addr, "POST", "/", Some("application/json"), body).await
}

async fn send(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .expect("request");
    let response = client.request(request).await.expect("answer");
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_admin_requests_replayed_against_our_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Three idle threads with no sector to seal: the state the original was recorded in.
    let worker = Arc::new(
        damocles_sealing::mock_chain::idle_worker(
            dir.path(),
            3,
            &damocles_cli::worker_cli::daemon::version(),
        )
        .await
        .expect("idle worker"),
    );
    assert!(worker
        .list()
        .iter()
        .all(|t| t.job_state.map(|s| s.as_str()) == Some("Empty")));
    let service = Arc::new(AdminService::new(worker.clone()));
    let server = RpcServer::bind("127.0.0.1:0", service.clone(), ServerOptions::default())
        .await
        .expect("bind");
    let addr = server.local_addr().to_string();

    let all = exchanges();
    let mut sessions = 0;
    let mut compared = 0;
    let mut differences = BTreeMap::new();
    let mut http_level = 0;
    for exchange in all["worker_admin_server"].as_array().expect("exchanges") {
        let what = exchange["what"].as_str().expect("what");
        let Some(request) = exchange["request"].as_str() else {
            // HTTP-level cases: the same status, and for refusals the same words.
            let version = r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerVersion","id":21}"#;
            let (status, body) = match what {
                "GET /" => send(&addr, "GET", "/", None, "").await,
                "POST without content-type" => send(&addr, "POST", "/", None, version).await,
                "POST /rpc/v0 path" => {
                    send(&addr, "POST", "/rpc/v0", Some("application/json"), version).await
                }
                other => panic!("an HTTP-level case this test does not know: {other}"),
            };
            assert_eq!(
                Some(u64::from(status)),
                exchange["status"].as_u64(),
                "{what}"
            );
            let original = exchange["response"].as_str().expect("response");
            if status == 415 {
                assert!(body.contains(original), "{what}: {body}");
            }
            http_level += 1;
            continue;
        };
        if what == "WorkerVersion" {
            sessions += 1;
            if sessions == 2 {
                // The recording restarted the original here, with thread 1 paused by an
                // earlier, unrecorded call: start ours the same way.
                for i in [0, 2] {
                    let _ = worker
                        .thread(i)
                        .map(|t| damocles_core::SealingThread::resume(t, None));
                }
                let _ = worker.thread(1).map(damocles_core::SealingThread::pause);
            }
        }
        let (status, body) = post(&addr, request).await;
        assert_eq!(status, 200, "{what}");
        let original = exchange["response"].as_str().expect("response");
        if original.is_empty() {
            assert_eq!(body, "", "{what}: a notification gets an empty body");
            continue;
        }
        assert!(body.ends_with('\n'), "{what}: bodies end with a newline");
        let mut ours: Value = serde_json::from_str(&body).expect("our JSON");
        let mut theirs: Value = serde_json::from_str(original).expect("recorded JSON");
        normalize(&mut ours);
        normalize(&mut theirs);
        match deliberate_difference(what) {
            Some(reason) => {
                // Still the same envelope and id.
                assert_eq!(ours["id"], theirs["id"], "{what}");
                if ours == theirs {
                    panic!("{what}: listed as different ({reason}) but equal");
                }
                differences.insert(what.to_owned(), reason);
            }
            None => {
                assert_eq!(ours, theirs, "{what}");
                compared += 1;
            }
        }
        // Keep the threads as the original's were between calls: the original resumed
        // the thread despite the unknown state, ours refused; resume ours the plain way.
        if let Some(index) = what
            .strip_prefix("WorkerResume [")
            .and_then(|rest| rest.strip_suffix(",\"Foo\"]"))
        {
            let index: u64 = index.parse().expect("index");
            let _ = worker
                .thread(index)
                .map(|t| damocles_core::SealingThread::resume(t, None));
        }
    }
    assert!(compared >= 20, "only {compared} exchanges compared equal");
    assert_eq!(differences.len(), 5, "{differences:#?}");
    assert_eq!(http_level, 3, "GET, no content type, another path");
    assert_eq!(
        service.recorded_env(),
        BTreeMap::new(),
        "WorkerSetEnv then WorkerRemoveEnv leave nothing"
    );
    server.shutdown().await;
    worker.shutdown().await;
}

#[tokio::test]
async fn the_originals_answers_decode_in_our_clients() {
    let all = exchanges();
    let mut lists = 0;
    for exchange in all["worker_admin_server"].as_array().expect("exchanges") {
        let what = exchange["what"].as_str().unwrap_or_default();
        let Some(body) = exchange["response"].as_str() else {
            continue;
        };
        if !what.starts_with("WorkerList") || !body.starts_with('{') {
            continue;
        }
        let response: Response = serde_json::from_str(body).expect("a JSON-RPC response");
        let threads: Vec<ThreadInfo> =
            serde_json::from_value(response.into_result().expect("result")).expect(what);
        assert_eq!(threads.len(), 3, "{what}");
        assert!(threads.iter().all(|t| !t.pause_requested));
        lists += 1;
    }
    assert!(lists >= 5);

    // A thread before its first round: plan "" reads as the default plan.
    let early: ThreadInfo = serde_json::from_str(
        r#"{"index":0,"job_id":null,"job_stage":null,"job_state":"","last_error":null,"location":"-","plan":"","thread_state":{"state":"Idle"}}"#,
    )
    .expect("an original thread before its first round");
    assert_eq!(early.plan, Plan::Sealer);
    assert_eq!(early.job_state, None);

    // Our ping is the original's payload, key for key.
    let recorded: Value = serde_json::from_str(
        all["worker_to_manager_requests"][2]
            .as_str()
            .expect("the ping"),
    )
    .expect("json");
    let payload = &recorded["params"][0];
    let report: WorkerReport = serde_json::from_value(payload.clone()).expect("decodes");
    assert_eq!(&serde_json::to_value(&report).expect("encodes"), payload);

    // The original's error answers come back as the kinds they are.
    let server_answers = all["worker_admin_server"].as_array().expect("exchanges");
    let not_found = server_answers
        .iter()
        .find(|e| e["what"] == "WorkerPause [5]")
        .and_then(|e| e["response"].as_str())
        .expect("recorded");
    let response: Response = serde_json::from_str(not_found).expect("json");
    let error = response.into_result().expect_err("an error");
    assert_eq!(
        (error.code, error.message.as_str()),
        (-32602, "worker #5 not found")
    );
}

/// A worker admin API that answers exactly as the original does (§11): `true` for every
/// pause, `false` for a resume of a thread that is not paused, unknown states accepted,
/// no `pause_requested`, `job_stage` `"-"`.
struct OriginalWorker {
    threads: std::sync::Mutex<Vec<Value>>,
}

impl OriginalWorker {
    fn new() -> Self {
        let mut threads: Vec<Value> = (0..3)
            .map(|i| {
                serde_json::json!({"index": i, "job_id": null, "job_stage": "-", "job_state": "Empty",
                    "last_error": null, "location": format!("/data/damocles/store{}", i + 1),
                    "plan": "sealer", "thread_state": {"state": "Idle"}})
            })
            .collect();
        // A newer original's plan, state and stage, which this project does not know.
        threads.push(serde_json::json!({"index": 3, "job_id": "s-t010000-9",
            "job_stage": "NewStage", "job_state": "NewState", "last_error": null,
            "location": "/data/damocles/store4", "plan": "newplan",
            "thread_state": {"state": "Idle"}}));
        Self {
            threads: std::sync::Mutex::new(threads),
        }
    }
}

#[async_trait::async_trait]
impl damocles_rpc::RpcService for OriginalWorker {
    fn methods(&self) -> &'static [damocles_rpc::method::MethodSpec] {
        damocles_rpc::admin::WORKER_METHODS
    }

    async fn call(
        &self,
        method: &'static damocles_rpc::method::MethodSpec,
        params: damocles_rpc::jsonrpc::Params,
        _: &damocles_rpc::Caller,
    ) -> damocles_rpc::jsonrpc::RpcResult {
        use damocles_rpc::jsonrpc::result;
        let mut threads = self.threads.lock().expect("lock");
        let thread = |threads: &mut Vec<Value>| {
            let index: usize = params.required(0, "index", "usize")?;
            if index >= threads.len() {
                return Err(damocles_rpc::jsonrpc::RpcError::invalid_params(format!(
                    "worker #{index} not found"
                )));
            }
            Ok(index)
        };
        match method.name {
            "VenusWorker.WorkerList" => result(&*threads),
            "VenusWorker.WorkerPause" => {
                let i = thread(&mut threads)?;
                threads[i]["thread_state"] = serde_json::json!({"elapsed": 0, "state": "Paused"});
                result(&true)
            }
            "VenusWorker.WorkerResume" => {
                let i = thread(&mut threads)?;
                let paused = threads[i]["thread_state"]["state"] == "Paused";
                if paused {
                    threads[i]["thread_state"] = serde_json::json!({"state": "Idle"});
                }
                result(&paused)
            }
            _ => result("v0.13.1-git.4235a895"),
        }
    }
}

async fn mock_manager(home: &std::path::Path, chain: MockChain) -> RpcServer {
    let registry = Arc::new(damocles_rpc::WorkerRegistry::open(home).expect("registry"));
    let service = damocles_rpc::ManagerService::new(
        Arc::new(chain),
        registry,
        Duration::from_secs(600),
        "v-test",
        None,
    );
    service.serve("127.0.0.1:0").await.expect("bind manager")
}

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin)
        .args(args)
        .env_remove("DAMOCLES_WORKER_CONFIG")
        .env_remove("DAMOCLES_WORKER_HOST")
        .output()
        .expect("run")
}

fn out(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_command_lines_manage_an_original_worker() {
    let original = Arc::new(OriginalWorker::new());
    let worker_server = RpcServer::bind("127.0.0.1:0", original.clone(), ServerOptions::default())
        .await
        .expect("bind");
    let w = worker_server.local_addr().to_string();
    let home = tempfile::tempdir().expect("home");
    let manager = mock_manager(
        home.path(),
        MockChain::new(10000, SealProof::StackedDrg2KiBV1_1),
    )
    .await;
    let m = manager.local_addr().to_string();
    let worker_bin = env!("CARGO_BIN_EXE_damocles-worker");
    let manager_bin = env!("CARGO_BIN_EXE_damocles-manager");

    let (w2, m2) = (w.clone(), m.clone());
    let outputs = tokio::task::spawn_blocking(move || {
        let w = w2.as_str();
        let m = m2.as_str();
        vec![
            run(worker_bin, &["worker", "-H", w, "list"]),
            run(worker_bin, &["worker", "-H", w, "pause", "-i", "0"]),
            run(worker_bin, &["worker", "-H", w, "pause", "-i", "0"]),
            run(worker_bin, &["worker", "-H", w, "resume", "-i", "1"]),
            run(worker_bin, &["worker", "-H", w, "pause", "-i", "7"]),
            run(
                worker_bin,
                &[
                    "worker", "-H", w, "resume", "-i", "3", "--state", "NewState",
                ],
            ),
            run(worker_bin, &["worker", "-H", w, "--json", "list"]),
            run(manager_bin, &["util", "--listen", m, "worker", "info", w]),
            run(
                manager_bin,
                &[
                    "util",
                    "--listen",
                    m,
                    "worker",
                    "resume",
                    w,
                    "0",
                    "--state",
                    "TreeDBuilt",
                ],
            ),
            run(
                manager_bin,
                &["util", "--listen", m, "worker", "resume", w, "0"],
            ),
            run(
                manager_bin,
                &["util", "--listen", m, "worker", "pause", w, "2"],
            ),
            run(
                manager_bin,
                &["util", "--listen", m, "worker", "info", "no-such-worker"],
            ),
            run(
                manager_bin,
                &[
                    "util",
                    "--listen",
                    m,
                    "worker",
                    "pause",
                    "no-such-worker",
                    "--all",
                ],
            ),
            run(
                manager_bin,
                &[
                    "util",
                    "--listen",
                    m,
                    "worker",
                    "events",
                    "no-such-worker",
                    "0",
                ],
            ),
        ]
    })
    .await
    .expect("commands");
    let table = out(&outputs[0]);
    assert!(table.starts_with("#   location"), "{table}");
    let row = |index: &str| -> Vec<&str> {
        table
            .lines()
            .find(|l| l.starts_with(index))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default()
    };
    assert_eq!(
        row("2 "),
        [
            "2",
            "/data/damocles/store3",
            "sealer",
            "-",
            "Empty",
            "-",
            "Idle",
            "-"
        ],
        "{table}"
    );
    // Values this project does not know are listed as they came.
    assert_eq!(
        row("3 "),
        [
            "3",
            "/data/damocles/store4",
            "newplan",
            "s-t010000-9",
            "NewState",
            "NewStage",
            "Idle",
            "-"
        ],
        "{table}"
    );
    // Managed all the same: the state goes to the worker, which decides.
    assert_eq!(
        out(&outputs[5]),
        "thread #3 is not paused; nothing to resume (pause it first to resume it at NewState)\n",
        "{}",
        String::from_utf8_lossy(&outputs[5].stderr)
    );
    let listed: Value = serde_json::from_str(&out(&outputs[6])).expect("json");
    let unknown = listed
        .as_array()
        .and_then(|threads| threads.iter().find(|t| t["index"] == 3))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            &unknown["plan"],
            &unknown["job_state"],
            &unknown["job_stage"]
        ),
        (
            &Value::from("newplan"),
            &Value::from("NewState"),
            &Value::from("NewStage")
        ),
        "{listed}"
    );
    assert_eq!(out(&outputs[1]), "thread #0 paused\n");
    assert_eq!(
        out(&outputs[2]),
        "thread #0 was already paused; nothing changed\n"
    );
    assert_eq!(
        out(&outputs[3]),
        "thread #1 is not paused; nothing to resume\n"
    );
    assert_eq!(outputs[4].status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&outputs[4].stderr).trim(),
        "error: worker #7 not found"
    );
    let info = out(&outputs[7]);
    assert!(info.starts_with("Index  Loc"), "{info}");
    assert!(info.contains("Paused(0s)"), "{info}");
    assert!(info.contains("NULL"), "{info}");
    assert_eq!(
        out(&outputs[8]),
        format!("worker {w}: thread #0 resumed at TreeDBuilt\n")
    );
    assert_eq!(
        out(&outputs[9]),
        format!("worker {w}: thread #0 is not paused; nothing to resume\n")
    );
    assert_eq!(out(&outputs[10]), format!("worker {w}: thread #2 paused\n"));
    // A name the registry does not know is tried as a host; when that fails too, it is
    // bad input that says both, whatever the command (info, a bulk pause, events).
    for output in &outputs[11..] {
        assert_eq!(output.status.code(), Some(2));
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(
            error.contains("no worker named 'no-such-worker' has reported to this manager"),
            "{error}"
        );
        assert!(error.contains("no-such-worker:17890"), "{error}");
        assert!(!error.contains("last reported address"), "{error}");
    }
    worker_server.shutdown().await;
    manager.shutdown().await;
}
