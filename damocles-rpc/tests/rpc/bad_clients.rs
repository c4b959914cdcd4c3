//! Issue 15: what a careless or hostile client can send to the worker admin server, the
//! manager and the metrics server, against real servers on 127.0.0.1. Each test shows
//! that the call had no effect, or that the server stayed bounded and kept serving.

use std::sync::Arc;
use std::time::Duration;

use damocles_core::testing::{admin_pair, AdminAnswer, AdminCall, AdminHandle};
use damocles_rpc::sealer::MANAGER_PATH;
use damocles_rpc::{AdminService, ManagerService, RpcServer, ServerOptions, WorkerRegistry};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::no_sectors;

/// One HTTP/1.1 POST on its own connection: the status and the body.
async fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body.as_bytes()).await.expect("body");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answered within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    (head[9..12].parse().expect("status"), body.to_owned())
}

async fn rpc(addr: &str, path: &str, body: &str) -> Value {
    let (status, text) = post(addr, path, body).await;
    assert!(status == 200 || status == 403, "{status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn worker(options: ServerOptions) -> (RpcServer, AdminHandle) {
    let (admin, handle) = admin_pair();
    let service = Arc::new(AdminService::new(Arc::new(admin)));
    let server = RpcServer::bind("127.0.0.1:0", service, options)
        .await
        .expect("bind");
    (server, handle)
}

async fn manager(registry: Arc<WorkerRegistry>, options: ServerOptions) -> RpcServer {
    let service = ManagerService::new(
        Arc::new(no_sectors::NoSectors),
        registry,
        Duration::from_secs(600),
        "v-test",
        None,
    );
    let options = ServerOptions {
        path: Some(MANAGER_PATH.into()),
        ..options
    };
    RpcServer::bind("127.0.0.1:0", Arc::new(service), options)
        .await
        .expect("bind")
}

/// Request objects that are not valid JSON-RPC 2.0 requests for `method` with
/// `params`: a bad id, a missing or wrong version (also in a notification), a method that
/// is not a string, params that are neither an array nor an object.
fn invalid_requests(method: &str, params: &Value) -> Vec<Value> {
    let m = json!(method);
    vec![
        json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": m, "params": params}),
        json!({"jsonrpc": "2.0", "id": [1], "method": m, "params": params}),
        json!({"jsonrpc": "2.0", "id": true, "method": m, "params": params}),
        json!({"id": 1, "method": m, "params": params}),
        json!({"jsonrpc": null, "id": 1, "method": m, "params": params}),
        json!({"jsonrpc": "1.0", "id": 1, "method": m, "params": params}),
        json!({"jsonrpc": 2.0, "id": 1, "method": m, "params": params}),
        json!({"jsonrpc": "1.0", "method": m, "params": params}),
        json!({"method": m, "params": params}),
        json!({"jsonrpc": "2.0", "id": 1, "method": [m], "params": params}),
        json!({"jsonrpc": "2.0", "id": 1, "method": {"name": m}, "params": params}),
        json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": 7}),
        json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": params.to_string()}),
        json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": true}),
    ]
}

fn assert_invalid(answer: &Value, body: &Value) {
    assert_eq!(answer["jsonrpc"], "2.0", "{body}: {answer}");
    assert_eq!(answer["error"]["code"], -32600, "{body}: {answer}");
    assert!(answer["result"].is_null(), "{body}: {answer}");
}

#[tokio::test]
async fn invalid_requests_run_nothing_on_the_worker() {
    let (server, handle) = worker(ServerOptions::default()).await;
    let addr = server.local_addr().to_string();
    let bodies = invalid_requests("VenusWorker.WorkerPause", &json!([1]));
    for body in &bodies {
        let answer = rpc(&addr, "/", &body.to_string()).await;
        assert_invalid(&answer, body);
    }
    let answer = rpc(&addr, "/", &bodies[0].to_string()).await;
    assert_eq!(answer["id"], Value::Null, "a bad id is answered with null");
    let answer = rpc(&addr, "/", &bodies[5].to_string()).await;
    assert_eq!(answer["id"], 1, "a valid id is kept");
    assert_eq!(handle.calls(), [], "no invalid request reached the worker");

    // In a batch, the invalid ones are answered and skipped, the valid one runs.
    handle.push(AdminAnswer::Version(Ok("v1".into())));
    let mut items = bodies.clone();
    items.push(json!({"jsonrpc":"2.0","id":9,"method":"VenusWorker.WorkerVersion"}));
    let batch = Value::Array(items).to_string();
    let answer = rpc(&addr, "/", &batch).await;
    let answers = answer.as_array().expect("a batch answer");
    assert_eq!(answers.len(), bodies.len() + 1, "{answer}");
    for (answer, body) in answers.iter().zip(&bodies) {
        assert_invalid(answer, body);
    }
    assert_eq!(answers[bodies.len()]["result"], "v1");
    assert_eq!(
        handle.calls(),
        [AdminCall::Version],
        "only the valid call ran"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_run_nothing_on_the_manager() {
    let registry = Arc::new(WorkerRegistry::in_memory().expect("registry"));
    let server = manager(registry.clone(), ServerOptions::default()).await;
    let addr = server.local_addr().to_string();
    let ping = json!([{"Dest": "127.0.0.1:17890", "Name": "w", "Version": "v", "Summary":
        {"Empty": 1, "Errors": 0, "Paused": 0, "Running": 0, "Threads": 1, "Waiting": 0}}]);
    let pings = invalid_requests("Venus.WorkerPing", &ping);
    for body in &pings {
        assert_invalid(&rpc(&addr, MANAGER_PATH, &body.to_string()).await, body);
    }
    let batch = Value::Array(pings.clone()).to_string();
    let answer = rpc(&addr, MANAGER_PATH, &batch).await;
    assert_eq!(answer.as_array().map(Vec::len), Some(pings.len()));
    assert_eq!(registry.len(), 0, "no invalid ping registered a worker");

    let valid = json!({"jsonrpc": "2.0", "id": 1, "method": "Venus.WorkerPing", "params": ping});
    let answer = rpc(&addr, MANAGER_PATH, &valid.to_string()).await;
    assert_eq!(answer, json!({"jsonrpc": "2.0", "result": null, "id": 1}));
    assert_eq!(registry.len(), 1);
    let removes = invalid_requests("Venus.WorkerPingInfoRemove", &json!(["w"]));
    for body in &removes {
        assert_invalid(&rpc(&addr, MANAGER_PATH, &body.to_string()).await, body);
    }
    rpc(&addr, MANAGER_PATH, &Value::Array(removes).to_string()).await;
    assert!(registry.get("w").is_some(), "no invalid remove removed it");
    server.shutdown().await;
}

/// The start of `answer`, for assertion messages.
fn short(answer: &Value) -> String {
    answer.to_string().chars().take(300).collect()
}

fn history(n: u64) -> Vec<damocles_core::JournalEntry> {
    use damocles_core::{Happening, JournalEntry, ThreadEvent};
    (0..n)
        .map(|seq| JournalEntry {
            seq,
            event: ThreadEvent {
                at_ms: 1_700_000_000_000 + seq,
                sector: Some("s-t01000-1".into()),
                what: Happening::Resumed {
                    by: "admin token from 127.0.0.1:40000".into(),
                    state: None,
                },
            },
        })
        .collect()
}

fn events_batch(calls: usize) -> String {
    let calls: Vec<Value> = (0..calls)
        .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "Damocles.WorkerEvents", "params": [1, 1000]}))
        .collect();
    Value::Array(calls).to_string()
}

#[tokio::test]
async fn a_batch_longer_than_the_limit_is_refused_whole() {
    let (server, handle) = worker(ServerOptions::default()).await;
    let addr = server.local_addr().to_string();
    // The issue's body: 10,000 calls for a thousand events each (789 KB).
    let body = events_batch(10_000);
    assert!(body.len() < 1 << 20, "{} bytes", body.len());
    let answer = rpc(&addr, "/", &body).await;
    assert_eq!(answer["error"]["code"], -32600, "{}", short(&answer));
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("at most 100 calls; this one holds 10000"),
        "{message}"
    );
    assert_eq!(handle.calls(), [], "none of them ran");

    // 100 calls is the limit, and runs.
    let body: Vec<Value> = (0..100)
        .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "VenusWorker.WorkerVersion"}))
        .collect();
    for _ in 0..100 {
        handle.push(AdminAnswer::Version(Ok("v".into())));
    }
    let answer = rpc(&addr, "/", &Value::Array(body).to_string()).await;
    assert_eq!(answer.as_array().map(Vec::len), Some(100));
    assert_eq!(handle.calls().len(), 100);
    server.shutdown().await;
}

#[tokio::test]
async fn an_answer_over_the_limit_is_replaced_by_an_error_that_says_so() {
    let (server, handle) = worker(ServerOptions::default()).await;
    let addr = server.local_addr().to_string();
    let events = history(1000);
    let one = serde_json::to_string(&events).expect("JSON").len();
    for _ in 0..100 {
        handle.push(AdminAnswer::Events(Ok(events.clone())));
    }
    let (status, text) = post(&addr, "/", &events_batch(100)).await;
    assert_eq!(status, 200);
    eprintln!(
        "one answer of 1,000 events: {one} bytes; the batch of 100: {} bytes",
        text.len()
    );
    assert!(text.len() <= (4 << 20) + 100 * 300, "{} bytes", text.len());
    let answers: Vec<Value> = serde_json::from_str(&text).expect("JSON");
    assert_eq!(answers.len(), 100, "every call is answered");
    let fitted = answers
        .iter()
        .take_while(|a| a["result"].is_array())
        .count();
    assert!(
        fitted * one <= 4 << 20 && (fitted + 1) * (one + 40) > 4 << 20,
        "as many as fit in 4 MiB: {fitted}"
    );
    eprintln!(
        "{fitted} results fit, {} replaced by an error",
        100 - fitted
    );
    for (id, answer) in answers.iter().enumerate().skip(fitted) {
        assert_eq!(answer["id"], id, "{answer}");
        assert_eq!(answer["error"]["code"], -32002, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("exceeded 4194304 bytes"), "{message}");
        assert!(message.contains("ask for less"), "{message}");
    }
    server.shutdown().await;

    // A single answer over a server's limit.
    let (server, handle) = worker(ServerOptions {
        answer_limit: 64 << 10,
        ..ServerOptions::default()
    })
    .await;
    let addr = server.local_addr().to_string();
    handle.push(AdminAnswer::Events(Ok(events)));
    let answer = rpc(
        &addr,
        "/",
        r#"{"jsonrpc":"2.0","id":"big","method":"Damocles.WorkerEvents","params":[1,1000]}"#,
    )
    .await;
    assert_eq!(answer["id"], "big");
    assert_eq!(answer["error"]["code"], -32002, "{answer}");
    handle.push(AdminAnswer::Events(Ok(history(10))));
    let answer = rpc(
        &addr,
        "/",
        r#"{"jsonrpc":"2.0","id":1,"method":"Damocles.WorkerEvents","params":[1,10]}"#,
    )
    .await;
    assert_eq!(answer["result"].as_array().map(Vec::len), Some(10));
    server.shutdown().await;
}

mod connections {
    use super::*;
    use damocles_rpc::metrics::MetricsServer;
    use damocles_rpc::ConnectionLimits;
    use std::time::Instant;

    fn limits(header: u64, max_connections: usize, queue_wait: u64) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_millis(header),
            body_timeout: Duration::from_millis(header),
            write_timeout: Duration::from_millis(header),
            max_connections,
            queue_wait: Duration::from_millis(queue_wait),
        }
    }

    /// Reads until the server closes the connection; how long that took. Fails past 5 s.
    async fn closed(stream: &mut TcpStream, since: Instant) -> (Duration, Vec<u8>) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return (since.elapsed(), seen),
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
                Err(_) => panic!("still open after 5 s"),
            }
        }
    }

    /// The kinds of server, each with `limits`: the worker admin API, the manager, and
    /// `/metrics`; their addresses and what a valid request to each looks like.
    struct Servers {
        worker: (RpcServer, AdminHandle),
        manager: RpcServer,
        metrics: MetricsServer,
    }

    impl Servers {
        async fn start(limits: ConnectionLimits) -> Self {
            let options = ServerOptions {
                connections: limits,
                ..ServerOptions::default()
            };
            let registry = Arc::new(WorkerRegistry::in_memory().expect("registry"));
            let render = damocles_rpc::metrics::renderer(|| "up 1\n".to_owned());
            Self {
                worker: worker(options.clone()).await,
                manager: manager(registry, options).await,
                metrics: MetricsServer::bind_with("127.0.0.1:0", render, limits)
                    .await
                    .expect("bind"),
            }
        }

        /// `(address, a complete keep-alive request, whether it is an RPC server)`.
        fn each(&self) -> Vec<(String, String, bool)> {
            let rpc = |addr: String, path: &str, method: &str| {
                let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
                let request = format!(
                    "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                (addr, request, true)
            };
            vec![
                rpc(
                    self.worker.0.local_addr().to_string(),
                    "/",
                    "VenusWorker.WorkerList",
                ),
                rpc(
                    self.manager.local_addr().to_string(),
                    MANAGER_PATH,
                    "Venus.WorkerPingInfoList",
                ),
                (
                    self.metrics.local_addr().to_string(),
                    "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
                    false,
                ),
            ]
        }

        async fn stop(self) {
            self.worker.0.shutdown().await;
            self.manager.shutdown().await;
            self.metrics.shutdown();
        }
    }

    #[tokio::test]
    async fn silent_slow_and_idle_connections_are_closed_on_every_server() {
        let servers = Servers::start(limits(400, 256, 2000)).await;
        for (addr, request, rpc_server) in servers.each() {
            // Connects and sends nothing.
            let started = Instant::now();
            let mut silent = TcpStream::connect(&addr).await.expect("connect");
            let (took, _) = closed(&mut silent, started).await;
            eprintln!("{addr}: a silent connection closed after {took:?}");
            assert!(took >= Duration::from_millis(300), "{took:?}");

            // Sends its head a byte every 50 ms: closed though bytes keep coming.
            let started = Instant::now();
            let slow = TcpStream::connect(&addr).await.expect("connect");
            let (mut reader, mut writer) = slow.into_split();
            let head = request.clone().into_bytes();
            let dripping = tokio::spawn(async move {
                for byte in head.iter().cycle().take(400) {
                    if writer.write_all(&[*byte]).await.is_err() {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                false
            });
            let mut seen = Vec::new();
            let outcome =
                tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut seen)).await;
            let took = started.elapsed();
            assert!(outcome.is_ok(), "{addr}: a slow head kept its connection");
            eprintln!("{addr}: a head sent a byte every 50 ms: closed after {took:?}");
            assert!(took < Duration::from_secs(3), "{took:?}");
            assert!(
                seen.is_empty() || seen.starts_with(b"HTTP/1.1 408"),
                "{seen:?}"
            );
            dripping.abort();

            // Kept alive after an answer, then idle.
            if rpc_server {
                servers.worker.1.push(AdminAnswer::List(Ok(vec![])));
            }
            let mut idle = TcpStream::connect(&addr).await.expect("connect");
            idle.write_all(request.as_bytes()).await.expect("request");
            let mut buf = [0u8; 4096];
            let n = idle.read(&mut buf).await.expect("answer");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
            let (took, rest) = closed(&mut idle, Instant::now()).await;
            eprintln!("{addr}: idle after an answer: closed after {took:?}");
            assert!(rest.len() < 4096, "nothing but the rest of the answer");

            // A body a byte every 50 ms: 408 once the body timeout has passed.
            if rpc_server {
                let mut slow = TcpStream::connect(&addr).await.expect("connect");
                let started = Instant::now();
                let head = request.split_once("\r\n\r\n").map_or("", |(h, _)| h);
                slow.write_all(format!("{head}\r\n\r\n{{").as_bytes())
                    .await
                    .expect("head");
                let (mut reader, mut writer) = slow.into_split();
                let dripping = tokio::spawn(async move {
                    for _ in 0..100 {
                        if writer.write_all(b" ").await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
                let mut seen = Vec::new();
                let outcome =
                    tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut seen))
                        .await;
                assert!(outcome.is_ok(), "{addr}: a slow body kept its connection");
                let text = String::from_utf8_lossy(&seen);
                assert!(text.starts_with("HTTP/1.1 408"), "{text}");
                assert!(text.contains("did not arrive within 400ms"), "{text}");
                eprintln!(
                    "{addr}: a body sent a byte every 50 ms: 408 after {:?}",
                    started.elapsed()
                );
                dripping.abort();
            }
        }
        servers.stop().await;
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_its_answer_loses_its_connection() {
        let options = ServerOptions {
            connections: limits(400, 1, 10_000),
            answer_limit: 64 << 20,
            ..ServerOptions::default()
        };
        let (server, handle) = worker(options).await;
        let addr = server.local_addr().to_string();
        // A 16 MB answer, far more than the sockets' buffers hold.
        let mut events = history(1000);
        for entry in &mut events {
            entry.event.what = damocles_core::Happening::Resumed {
                by: "x".repeat(16 << 10),
                state: None,
            };
        }
        handle.push(AdminAnswer::Events(Ok(events)));
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("small buffer");
        let mut stalled = socket
            .connect(addr.parse().expect("address"))
            .await
            .expect("connect");
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"Damocles.WorkerEvents","params":[0,1000]}"#;
        stalled
            .write_all(
                format!(
                    "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .expect("request");
        // The only connection slot is taken by a client that reads nothing (the server
        // has made its call): the next client is served once the server gives up on it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while handle.calls().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the stalled request never arrived"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        handle.push(AdminAnswer::Version(Ok("v".into())));
        let answer = rpc(
            &addr,
            "/",
            r#"{"jsonrpc":"2.0","id":2,"method":"VenusWorker.WorkerVersion"}"#,
        )
        .await;
        assert_eq!(answer["result"], "v");
        let took = started.elapsed();
        eprintln!("served after the stalled reader was dropped: {took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
        let (_, received) = closed(&mut stalled, Instant::now()).await;
        assert!(
            received.len() < 16 << 20,
            "the answer was cut: {}",
            received.len()
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_client_over_the_cap_waits_for_a_slot_or_is_refused_and_never_starves() {
        // Two slots, both taken by silent clients: a third waits until they are closed.
        let servers = Servers::start(limits(500, 2, 10_000)).await;
        for (addr, request, rpc_server) in servers.each() {
            let mut silent = Vec::new();
            for _ in 0..2 {
                silent.push(TcpStream::connect(&addr).await.expect("connect"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if rpc_server {
                servers.worker.1.push(AdminAnswer::List(Ok(vec![])));
            }
            let started = Instant::now();
            let mut client = TcpStream::connect(&addr).await.expect("connect");
            client.write_all(request.as_bytes()).await.expect("request");
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("answered within 5 s")
                .expect("read");
            let took = started.elapsed();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
            eprintln!("{addr}: over the cap, served after {took:?}");
            assert!(took >= Duration::from_millis(300), "{took:?}");
        }
        servers.stop().await;

        // One slot held; past a 200 ms wait the next client is told why, at once.
        let servers = Servers::start(limits(10_000, 1, 200)).await;
        for (addr, request, rpc_server) in servers.each() {
            let holder = TcpStream::connect(&addr).await.expect("connect");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let started = Instant::now();
            let mut client = TcpStream::connect(&addr).await.expect("connect");
            client.write_all(request.as_bytes()).await.expect("request");
            let (took, answer) = closed(&mut client, started).await;
            let text = String::from_utf8_lossy(&answer);
            eprintln!("{addr}: refused after {took:?}");
            assert!(text.starts_with("HTTP/1.1 503"), "{text}");
            assert!(text.contains("at most 1 at once"), "{text}");
            if rpc_server {
                assert!(text.contains(r#""code":-32003"#), "{text}");
            }
            assert!(took < Duration::from_secs(2), "{took:?}");
            // Once the holder leaves, the next client is served (as soon as the server
            // has seen the holder go: until then a client may still be told 503).
            drop(holder);
            if rpc_server {
                servers.worker.1.push(AdminAnswer::List(Ok(vec![])));
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let mut client = TcpStream::connect(&addr).await.expect("connect");
                client.write_all(request.as_bytes()).await.expect("request");
                let mut buf = [0u8; 1024];
                let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                    .await
                    .expect("answered within 5 s")
                    .expect("read");
                if buf[..n].starts_with(b"HTTP/1.1 200") {
                    break;
                }
                assert!(
                    buf[..n].starts_with(b"HTTP/1.1 503") && Instant::now() < deadline,
                    "{:?}",
                    &buf[..n]
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        servers.stop().await;
    }
}

#[tokio::test]
async fn counts_at_u64_max_do_not_break_the_managers_metrics() {
    use damocles_rpc::metrics::{ManagerMetrics, RecordFacts};
    let registry = Arc::new(WorkerRegistry::in_memory().expect("registry"));
    let server = manager(registry.clone(), ServerOptions::default()).await;
    let addr = server.local_addr().to_string();
    let max = u64::MAX;
    for name in ["a", "b"] {
        let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "Venus.WorkerPing", "params": [{
            "Name": name, "Dest": "127.0.0.1:17890", "Version": "v", "Summary": {
                "Threads": max, "Empty": max, "Paused": max, "Running": max, "Waiting": max,
                "Errors": max}}]});
        let answer = rpc(&addr, MANAGER_PATH, &ping.to_string()).await;
        assert_eq!(answer["result"], Value::Null, "{answer}");
    }
    let metrics = ManagerMetrics::default();
    let now = damocles_rpc::manager::unix_now();
    for _ in 0..2 {
        let text = metrics.render(
            Some(&registry.list()),
            Duration::from_secs(600),
            now,
            &RecordFacts::default(),
        );
        for state in ["empty", "paused", "running", "waiting", "errors"] {
            let line = format!(
                "damocles_manager_worker_threads{{state=\"{state}\"}} {}",
                i64::MAX
            );
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(
            text.contains("damocles_manager_workers{liveness=\"ok\"} 2"),
            "{text}"
        );
    }
    server.shutdown().await;
}

mod redirection {
    use super::*;
    use damocles_rpc::manager::MANAGER_EXPOSURE;

    fn ping(name: &str, dest: &str) -> String {
        json!({"jsonrpc": "2.0", "id": 1, "method": "Venus.WorkerPing", "params": [{
            "Name": name, "Dest": dest, "Version": "v", "Summary": {"Threads": 1, "Empty": 1,
            "Paused": 0, "Running": 0, "Waiting": 0, "Errors": 0}}]})
        .to_string()
    }

    fn dest_of(registry: &WorkerRegistry, name: &str) -> Option<String> {
        registry.get(name).map(|e| e.info.dest)
    }

    #[tokio::test]
    async fn a_ping_cannot_move_a_registered_name_without_the_admin_token() {
        let registry = Arc::new(WorkerRegistry::in_memory().expect("registry"));
        let server = manager(registry.clone(), ServerOptions::default()).await;
        let addr = server.local_addr().to_string();
        let answer = rpc(&addr, MANAGER_PATH, &ping("w", "10.0.0.1:17890")).await;
        assert_eq!(answer["result"], Value::Null, "{answer}");

        // Anyone's ping that gives another dest is refused, and says why.
        let answer = rpc(&addr, MANAGER_PATH, &ping("w", "6.6.6.6:17890")).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(r#"registered at "10.0.0.1:17890""#),
            "{message}"
        );
        assert!(message.contains("admin token"), "{message}");
        assert!(message.contains("util worker remove w"), "{message}");
        assert_eq!(dest_of(&registry, "w").as_deref(), Some("10.0.0.1:17890"));
        // The worker itself keeps reporting.
        let answer = rpc(&addr, MANAGER_PATH, &ping("w", "10.0.0.1:17890")).await;
        assert_eq!(answer["result"], Value::Null, "{answer}");
        // Once an operator removed the entry, the name registers anew.
        let remove =
            r#"{"jsonrpc":"2.0","id":2,"method":"Venus.WorkerPingInfoRemove","params":["w"]}"#;
        assert_eq!(
            rpc(&addr, MANAGER_PATH, remove).await["result"],
            Value::Null
        );
        let answer = rpc(&addr, MANAGER_PATH, &ping("w", "10.0.0.2:17890")).await;
        assert_eq!(answer["result"], Value::Null, "{answer}");
        assert_eq!(dest_of(&registry, "w").as_deref(), Some("10.0.0.2:17890"));

        // Of pings racing for a new name from 20 dests, one registers it.
        let pings = (0..20).map(|i| {
            let addr = addr.clone();
            async move {
                let dest = format!("10.0.1.{i}:17890");
                let answer = rpc(&addr, MANAGER_PATH, &ping("race", &dest)).await;
                answer.get("error").is_none().then_some(dest)
            }
        });
        let winners: Vec<String> = futures_join(pings).await.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert_eq!(dest_of(&registry, "race"), winners.first().cloned());
        server.shutdown().await;

        // The same after a restart: the registered dest is kept with the entry.
        let home = tempfile::tempdir().expect("home");
        let registry = Arc::new(WorkerRegistry::open(home.path()).expect("registry"));
        registry
            .upsert_async(
                serde_json::from_value(json!({"Name": "w", "Dest": "10.0.0.1:17890",
                    "Version": "v", "Summary": {"Threads": 0, "Empty": 0, "Paused": 0,
                    "Running": 0, "Waiting": 0, "Errors": 0}}))
                .expect("report"),
                1,
            )
            .await
            .expect("upsert");
        drop(registry);
        let registry = Arc::new(WorkerRegistry::open(home.path()).expect("reopen"));
        let server = manager(registry.clone(), ServerOptions::default()).await;
        let addr = server.local_addr().to_string();
        let answer = rpc(&addr, MANAGER_PATH, &ping("w", "6.6.6.6:17890")).await;
        assert!(answer["error"]["message"].is_string(), "{answer}");
        assert_eq!(dest_of(&registry, "w").as_deref(), Some("10.0.0.1:17890"));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn with_the_admin_token_a_worker_may_move() {
        let registry = Arc::new(WorkerRegistry::in_memory().expect("registry"));
        let options = ServerOptions {
            admin_token: Some("secret".into()),
            ..ServerOptions::default()
        };
        let server = manager(registry.clone(), options).await;
        let addr = server.local_addr().to_string();
        let client = damocles_rpc::ManagerClient::new(
            &addr,
            Some("secret".into()),
            damocles_rpc::Timeouts::default(),
        )
        .expect("client");
        for dest in ["10.0.0.1:17890", "10.0.0.2:17890"] {
            let report = serde_json::from_value(json!({"Name": "w", "Dest": dest,
                "Version": "v", "Summary": {"Threads": 0, "Empty": 0, "Paused": 0,
                "Running": 0, "Waiting": 0, "Errors": 0}}))
            .expect("report");
            client
                .ping(&report)
                .await
                .expect("ping with the admin token");
            assert_eq!(dest_of(&registry, "w").as_deref(), Some(dest));
        }
        server.shutdown().await;
    }

    #[test]
    fn a_manager_without_tokens_beyond_loopback_is_warned_about() {
        let manager = ServerOptions {
            exposure: MANAGER_EXPOSURE,
            ..ServerOptions::default()
        };
        let outside = "0.0.0.0:1789".parse().expect("address");
        let warning = manager.exposure_warning(outside).expect("a warning");
        assert!(warning.contains("without a token"), "{warning}");
        assert!(
            warning.contains("register any name at any address"),
            "{warning}"
        );
        assert_eq!(
            manager.exposure_warning("127.0.0.1:1789".parse().expect("address")),
            None
        );
        let with_token = ServerOptions {
            admin_token: Some("t".into()),
            ..manager
        };
        assert_eq!(with_token.exposure_warning(outside), None);
    }

    /// Runs every future at once on this runtime and collects their outputs in order.
    async fn futures_join<F: std::future::Future + Send + 'static>(
        futures: impl Iterator<Item = F>,
    ) -> Vec<F::Output>
    where
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut outputs = Vec::new();
        for handle in handles {
            outputs.push(handle.await.expect("task"));
        }
        outputs
    }
}
