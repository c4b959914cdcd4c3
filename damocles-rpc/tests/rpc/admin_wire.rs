//! The worker admin API on the wire: literal request bodies as the original clients send
//! them, answered by a real server on 127.0.0.1 over a scripted worker, checked field by
//! field; and the HTTP client against the same server.

use std::sync::Arc;
use std::time::Duration;

use damocles_core::testing::{admin_pair, AdminAnswer, AdminCall, AdminHandle};
use damocles_core::{
    AdminError, AdminTransport, PauseOutcome, Plan, PlanState, ResumeOutcome, Stage, State,
    ThreadInfo, ThreadState,
};
use damocles_rpc::admin::WORKER_METHODS;
use damocles_rpc::{AdminService, HttpAdminClient, RpcServer, ServerOptions, Timeouts};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Served {
    server: RpcServer,
    handle: AdminHandle,
}

impl Served {
    async fn start(options: ServerOptions) -> Self {
        let (admin, handle) = admin_pair();
        let service = Arc::new(AdminService::new(Arc::new(admin)));
        let server = RpcServer::bind("127.0.0.1:0", service, options)
            .await
            .expect("bind");
        Self { server, handle }
    }

    fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }
}

/// A raw HTTP/1.1 exchange, as the original CLI makes it (one connection per call).
struct Http {
    status: u16,
    content_type: String,
    body: String,
}

async fn send(addr: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> Http {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} / HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    // A refused body may be cut short by the server: ignore write errors past the head.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head[9..12].parse().expect("status");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    Http {
        status,
        content_type,
        body: body.to_owned(),
    }
}

async fn post(addr: &str, body: &str) -> Http {
    send(
        addr,
        "POST",
        &[
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ],
        body.as_bytes(),
    )
    .await
}

async fn post_json(addr: &str, body: &str) -> Value {
    let answer = post(addr, body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json; charset=utf-8");
    assert!(answer.body.ends_with('\n'), "{:?}", answer.body);
    serde_json::from_str(&answer.body).expect("JSON answer")
}

fn thread(index: usize, state: ThreadState, job: Option<State>) -> ThreadInfo {
    ThreadInfo {
        index,
        location: format!("/mnt/store{index}"),
        plan: Plan::Sealer,
        job_id: job.map(|_| format!("s-t010000-{}", index + 1)),
        job_state: Some(PlanState::Sector(job.unwrap_or(State::Empty))),
        job_stage: Some(job.map_or(Stage::Nothing, |_| Stage::C2)),
        thread_state: state,
        last_error: None,
        pause_requested: false,
        draining: false,
        stuck: false,
        pending_plan: None,
        config_error: None,
        stopping: false,
        as_sent: Default::default(),
    }
}

fn error_of(answer: &Value) -> (i64, String) {
    let error = &answer["error"];
    (
        error["code"].as_i64().expect("code"),
        error["message"].as_str().expect("message").to_owned(),
    )
}

#[tokio::test]
async fn the_original_clients_requests_get_the_original_shapes() {
    let served = Served::start(ServerOptions::default()).await;
    let addr = served.addr();
    let paused = ThreadState::Paused { elapsed: 1 };
    served.handle.push(AdminAnswer::List(Ok(vec![
        thread(0, ThreadState::Idle, None),
        thread(1, paused, Some(State::C1Done)),
    ])));
    let answer = post_json(
        &addr,
        r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerList","params":null,"id":0}"#,
    )
    .await;
    assert_eq!(answer["jsonrpc"], "2.0");
    assert_eq!(answer["id"], 0);
    let threads = answer["result"].as_array().expect("array");
    let idle = &threads[0];
    let keys: Vec<&str> = idle
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "draining",
            "index",
            "job_id",
            "job_stage",
            "job_state",
            "last_error",
            "location",
            "pause_requested",
            "plan",
            "stuck",
            "thread_state"
        ],
        "the original's keys, sorted, plus draining, pause_requested and stuck"
    );
    assert_eq!(idle["job_id"], Value::Null);
    assert_eq!(idle["job_stage"], "-");
    assert_eq!(idle["job_state"], "Empty");
    assert_eq!(idle["last_error"], Value::Null);
    assert_eq!(idle["plan"], "sealer");
    assert_eq!(idle["thread_state"], json!({"state": "Idle"}));
    assert_eq!(
        threads[1]["thread_state"],
        json!({"elapsed": 1, "state": "Paused"})
    );
    assert_eq!(threads[1]["job_state"], "C1Done");
    assert_eq!(threads[1]["job_stage"], "C2");

    served
        .handle
        .push(AdminAnswer::Pause(Ok(PauseOutcome::Paused)));
    let answer = post_json(
        &addr,
        r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerPause","params":[0],"id":0}"#,
    )
    .await;
    assert_eq!(answer["result"], true);

    for (body, state) in [
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerResume","params":[0,null],"id":1}"#,
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerResume","params":[0],"id":2}"#,
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerResume","params":[0,"TreeDBuilt"],"id":3}"#,
            Some("TreeDBuilt".to_owned()),
        ),
    ] {
        served
            .handle
            .push(AdminAnswer::Resume(Ok(ResumeOutcome::Resumed {
                state: None,
            })));
        let answer = post_json(&addr, body).await;
        assert_eq!(answer["result"], true, "{body}");
        assert_eq!(
            served.handle.calls().last(),
            Some(&AdminCall::Resume(0, state))
        );
    }
    served
        .handle
        .push(AdminAnswer::Resume(Ok(ResumeOutcome::NotPaused)));
    let answer = post_json(
        &addr,
        r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerResume","params":[0,null],"id":"text-id"}"#,
    )
    .await;
    assert_eq!(answer["result"], false, "not paused");
    assert_eq!(answer["id"], "text-id", "string ids are echoed");

    served
        .handle
        .push(AdminAnswer::Version(Ok("v0.1.0-test".into())));
    let answer = post_json(
        &addr,
        r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerVersion","id":4}"#,
    )
    .await;
    assert_eq!(
        answer["result"], "v0.1.0-test",
        "absent params are accepted"
    );
    served.server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_precise_errors_and_reach_no_thread() {
    let served = Served::start(ServerOptions::default()).await;
    let addr = served.addr();
    served
        .handle
        .push(AdminAnswer::Pause(Err(AdminError::ThreadNotFound {
            index: 9,
        })));
    let answer = post_json(
        &addr,
        r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerPause","params":[9],"id":0}"#,
    )
    .await;
    assert_eq!(error_of(&answer), (-32602, "worker #9 not found".into()));

    let invalid = Plan::Sealer.parse_state("Foo").expect_err("unknown");
    served
        .handle
        .push(AdminAnswer::Resume(Err(AdminError::InvalidState(invalid))));
    let answer = post_json(
        &addr,
        r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerResume","params":[0,"Foo"],"id":0}"#,
    )
    .await;
    let (code, message) = error_of(&answer);
    assert_eq!(code, -32602);
    assert!(
        message.contains("Foo") && message.contains("TreeDBuilt"),
        "{message}"
    );
    let calls_so_far = served.handle.calls().len();

    // Refused before reaching the worker.
    let cases: &[(&str, i64, &str)] = &[
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerPause","params":[],"id":0}"#,
            -32602,
            "missing index",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerPause","params":["0"],"id":0}"#,
            -32602,
            "got string \"0\"",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerPause","params":[-1],"id":0}"#,
            -32602,
            "got number -1",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerPause","params":[1.5],"id":0}"#,
            -32602,
            "index",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerResume","params":[0,null,1],"id":0}"#,
            -32602,
            "3 given, at most 2",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerResume","params":[0,7],"id":0}"#,
            -32602,
            "state must be",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerList","params":{"a":1},"id":0}"#,
            -32602,
            "positional array",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.Nope","params":[],"id":0}"#,
            -32601,
            "Method not found",
        ),
        (
            r#"{"jsonrpc":"2.0","method":7,"id":0}"#,
            -32600,
            "method must be a string",
        ),
        (
            r#"{"jsonrpc":"1.0","method":"VenusWorker.WorkerList","id":0}"#,
            -32600,
            "2.0",
        ),
        (r#"[]"#, -32600, "empty batch"),
        (
            r#"{"jsonrpc":"2.0","method":"VenusWorker.Work"#,
            -32700,
            "Parse error",
        ),
    ];
    for (body, code, needle) in cases {
        let answer = post_json(&addr, body).await;
        let (got, message) = error_of(&answer);
        assert_eq!(got, *code, "{body}: {message}");
        assert!(message.contains(needle), "{body}: {message}");
    }
    let answer = post_json(&addr, r#"{"jsonrpc":"2.0","method":"VenusWorker.Work"#).await;
    assert_eq!(answer["id"], Value::Null, "a parse error has a null id");
    assert_eq!(
        served.handle.calls().len(),
        calls_so_far,
        "no call reached the worker"
    );

    // A notification gets an empty body; a batch an array without it.
    served.handle.push(AdminAnswer::Version(Ok("v".into())));
    let answer = post(
        &addr,
        r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerVersion"}"#,
    )
    .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, ""));
    served.handle.push(AdminAnswer::Version(Ok("v1".into())));
    served.handle.push(AdminAnswer::Version(Ok("v2".into())));
    let answer = post_json(
        &addr,
        r#"[{"jsonrpc":"2.0","method":"VenusWorker.WorkerVersion","id":1},{"jsonrpc":"2.0","method":"VenusWorker.WorkerVersion"},{"jsonrpc":"2.0","method":"Nope","id":2}]"#,
    )
    .await;
    let answers = answer.as_array().expect("batch answer");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["result"], "v1");
    assert_eq!(answers[1]["error"]["code"], -32601);

    // HTTP-level refusals.
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"VenusWorker.WorkerList","params":["{}"],"id":0}}"#,
        "x".repeat(10 << 20)
    );
    let answer = post(&addr, &big).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(
        answer.body.contains("larger than 1048576 bytes"),
        "{}",
        answer.body
    );
    let answer = send(&addr, "GET", &[], b"").await;
    assert_eq!(answer.status, 405);
    // As the original: a JSON content type is required (with or without parameters).
    let list = br#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerList","id":0}"#;
    for content_type in [None, Some("text/plain"), Some("application/jsonx")] {
        let headers: Vec<_> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        let answer = send(&addr, "POST", &headers, list).await;
        assert_eq!(answer.status, 415, "{content_type:?}");
        assert!(
            answer
                .body
                .contains("Content-Type: application/json is required"),
            "{}",
            answer.body
        );
    }
    assert!(
        !served.handle.calls().contains(&AdminCall::List),
        "none of them reached the worker"
    );
    served.handle.push(AdminAnswer::List(Ok(vec![])));
    let charset = [("content-type", "Application/JSON; charset=utf-8")];
    let answer = send(&addr, "POST", &charset, list).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    served.server.shutdown().await;
}

#[tokio::test]
async fn tokens_separate_readers_from_admins() {
    let served = Served::start(ServerOptions {
        admin_token: Some("admin-secret".into()),
        read_token: Some("read-secret".into()),
        ..ServerOptions::default()
    })
    .await;
    let addr = served.addr();
    let list = r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerList","id":0}"#;
    let pause = r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerPause","params":[0],"id":0}"#;
    let with = |token: &'static str| {
        [
            ("content-type", "application/json"),
            ("authorization", token),
        ]
    };
    let answer = post(&addr, list).await;
    assert_eq!(answer.status, 401);
    let body: Value = serde_json::from_str(&answer.body).expect("JSON-RPC error body");
    assert_eq!(body["error"]["code"], -32001);
    let answer = send(&addr, "POST", &with("Bearer wrong"), list.as_bytes()).await;
    assert_eq!(answer.status, 401);

    served.handle.push(AdminAnswer::List(Ok(vec![])));
    let answer = send(&addr, "POST", &with("Bearer read-secret"), list.as_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = send(&addr, "POST", &with("Bearer read-secret"), pause.as_bytes()).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("admin token"), "{}", answer.body);
    assert!(
        !served.handle.calls().contains(&AdminCall::Pause(0)),
        "the pause never reached the worker"
    );
    served
        .handle
        .push(AdminAnswer::Pause(Ok(PauseOutcome::Paused)));
    let answer = send(
        &addr,
        "POST",
        &with("Bearer admin-secret"),
        pause.as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The worker is told who asked: the token's role and the caller's address.
    let callers = served.handle.callers();
    assert_eq!(callers.len(), 1, "{callers:?}");
    assert!(
        callers[0].starts_with("admin token from 127.0.0.1:"),
        "{callers:?}"
    );

    // The client carries its token; without it the error says so.
    let client = HttpAdminClient::new(&addr, None, Timeouts::default()).expect("client");
    let err = client.list().await.expect_err("no token");
    assert!(err.is_unauthorized(), "{err}");
    let client = HttpAdminClient::new(&addr, Some("read-secret".into()), Timeouts::default())
        .expect("client");
    served.handle.push(AdminAnswer::List(Ok(vec![])));
    assert_eq!(client.list().await, Ok(vec![]));
    served.server.shutdown().await;
}

#[tokio::test]
async fn the_http_client_says_what_happened() {
    let served = Served::start(ServerOptions::default()).await;
    let addr = served.addr();
    let client = HttpAdminClient::new(&addr, None, Timeouts::default()).expect("client");
    let running = ThreadState::Running {
        elapsed: 3,
        proc: Some("builtin C2".into()),
    };
    let h = &served.handle;

    // A thread in a proof call: the pause is requested.
    let mut requested = thread(0, running.clone(), Some(State::C1Done));
    requested.pause_requested = true;
    h.push(AdminAnswer::List(Ok(vec![thread(
        0,
        running.clone(),
        Some(State::C1Done),
    )])));
    h.push(AdminAnswer::Pause(Ok(PauseOutcome::Requested)));
    h.push(AdminAnswer::List(Ok(vec![requested.clone()])));
    assert_eq!(client.pause(0).await, Ok(PauseOutcome::Requested));
    // Asked again while it waits: still requested, not "already paused".
    h.push(AdminAnswer::List(Ok(vec![requested.clone()])));
    h.push(AdminAnswer::Pause(Ok(PauseOutcome::Requested)));
    assert_eq!(client.pause(0).await, Ok(PauseOutcome::Requested));
    // A resume before the call returned withdraws that pause.
    h.push(AdminAnswer::List(Ok(vec![requested])));
    h.push(AdminAnswer::Resume(Ok(ResumeOutcome::PauseCalledOff)));
    assert_eq!(
        client.resume(0, None).await,
        Ok(ResumeOutcome::PauseCalledOff)
    );

    // Already paused.
    let paused = thread(0, ThreadState::Paused { elapsed: 5 }, Some(State::C1Done));
    h.push(AdminAnswer::List(Ok(vec![paused.clone()])));
    h.push(AdminAnswer::Pause(Ok(PauseOutcome::AlreadyPaused)));
    assert_eq!(client.pause(0).await, Ok(PauseOutcome::AlreadyPaused));

    // An index the list does not have: nothing is sent.
    h.push(AdminAnswer::List(Ok(vec![paused.clone()])));
    let calls = h.calls().len();
    assert_eq!(
        client.pause(4).await,
        Err(AdminError::ThreadNotFound { index: 4 })
    );
    assert_eq!(h.calls().len(), calls + 1, "only the list was sent");

    // A state the plan does not have is refused before anything is sent.
    h.push(AdminAnswer::List(Ok(vec![paused.clone()])));
    let err = client
        .resume(0, Some("Foo".into()))
        .await
        .expect_err("unknown");
    assert!(err.is_invalid_state(), "{err}");
    assert_eq!(h.calls().last(), Some(&AdminCall::List));

    h.push(AdminAnswer::List(Ok(vec![paused.clone()])));
    h.push(AdminAnswer::Resume(Ok(ResumeOutcome::Resumed {
        state: None,
    })));
    assert_eq!(
        client.resume(0, Some("TreeDBuilt".into())).await,
        Ok(ResumeOutcome::Resumed {
            state: Some(PlanState::Sector(State::TreeDBuilt))
        })
    );
    h.push(AdminAnswer::List(Ok(vec![thread(0, running, None)])));
    h.push(AdminAnswer::Resume(Ok(ResumeOutcome::NotPaused)));
    assert_eq!(client.resume(0, None).await, Ok(ResumeOutcome::NotPaused));

    // The worker's error comes back as the kind it is.
    h.push(AdminAnswer::List(Ok(vec![paused])));
    h.push(AdminAnswer::Pause(Err(AdminError::ThreadNotFound {
        index: 0,
    })));
    assert_eq!(
        client.pause(0).await,
        Err(AdminError::ThreadNotFound { index: 0 })
    );
    served.server.shutdown().await;

    // Nobody listening.
    let client = HttpAdminClient::new(&addr, None, Timeouts::default()).expect("client");
    let err = client.list().await.expect_err("refused");
    assert!(err.is_unreachable());
    assert_eq!(
        err.to_string(),
        format!("cannot reach worker at {addr}: connection refused — is the daemon running?")
    );
}

#[tokio::test]
async fn event_histories_are_read_with_a_bounded_limit_and_say_who_asked() {
    use damocles_core::{Happening, JournalEntry, ThreadEvent};
    let served = Served::start(ServerOptions::default()).await;
    let addr = served.addr();
    let h = &served.handle;
    let entry = JournalEntry {
        seq: 41,
        event: ThreadEvent {
            at_ms: 1_700_000_000_000,
            sector: Some("s-t01000-1".into()),
            what: Happening::Resumed {
                by: "127.0.0.1:1".into(),
                state: None,
            },
        },
    };
    // The default limit is 100; an explicit one is passed on.
    h.push(AdminAnswer::Events(Ok(vec![entry.clone()])));
    let answer = post_json(
        &addr,
        r#"{"jsonrpc":"2.0","method":"Damocles.WorkerEvents","params":[0],"id":1}"#,
    )
    .await;
    assert_eq!(answer["result"], json!([entry]));
    assert_eq!(h.calls().last(), Some(&AdminCall::Events(0, 100)));
    let client = HttpAdminClient::new(&addr, None, Timeouts::default()).expect("client");
    h.push(AdminAnswer::Events(Ok(vec![entry.clone()])));
    assert_eq!(client.events(0, 5).await, Ok(vec![entry]));
    assert_eq!(h.calls().last(), Some(&AdminCall::Events(0, 5)));
    // Out of range: refused before the worker sees it.
    let calls = h.calls().len();
    for limit in ["0", "1001", "-1", r#""x""#] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"Damocles.WorkerEvents","params":[0,{limit}],"id":1}}"#
        );
        let (code, message) = error_of(&post_json(&addr, &body).await);
        assert_eq!(code, -32602, "{limit}: {message}");
    }
    assert_eq!(h.calls().len(), calls);

    // A pause without tokens names the caller's address.
    h.push(AdminAnswer::Pause(Ok(PauseOutcome::Paused)));
    post_json(
        &addr,
        r#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerPause","params":[0],"id":1}"#,
    )
    .await;
    let callers = h.callers();
    assert!(
        callers.last().is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{callers:?}"
    );
    served.server.shutdown().await;
}

#[test]
fn the_method_table() {
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("worker_admin_methods", WORKER_METHODS);
    });
}
