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

mod no_sectors {
    include!("support/no_sectors.rs");
}

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
