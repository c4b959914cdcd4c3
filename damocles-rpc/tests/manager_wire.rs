//! The manager's API on the wire at /rpc/v0: worker pings as the original worker sends
//! them (PascalCase), registry queries, sealer errors with code 11001, and the HTTP
//! clients against a real server on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use damocles_core::sealer_api::{AllocateSectorSpec, ManagerErrorKind};
use damocles_core::{Reporter, SectorId, SectorManager, WorkerReport, WorkerSummary};
use damocles_rpc::manager::MANAGER_METHODS;
use damocles_rpc::sealer::MANAGER_PATH;
use damocles_rpc::{
    HttpSectorManager, ManagerClient, ManagerService, RpcServer, Timeouts, WorkerRegistry,
};
use serde_json::{json, Value};

mod no_sectors {
    include!("support/no_sectors.rs");
}
use no_sectors::NoSectors;

async fn serve(home: &std::path::Path) -> RpcServer {
    let registry = Arc::new(WorkerRegistry::open(home).expect("registry"));
    let service = ManagerService::new(
        Arc::new(NoSectors),
        registry,
        Duration::from_secs(600),
        "v-test",
        None,
    );
    service.serve("127.0.0.1:0").await.expect("bind")
}

async fn post(addr: &str, path: &str, body: &str) -> (u16, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = hyper::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
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
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn pings_as_the_original_worker_sends_them_fill_the_registry() {
    let home = tempfile::tempdir().expect("home");
    let server = serve(home.path()).await;
    let addr = server.local_addr().to_string();
    let ping = r#"{"jsonrpc":"2.0","method":"Venus.WorkerPing","params":[{"Dest":"127.0.0.1:17890","Name":"127.0.0.1","Summary":{"Empty":3,"Errors":0,"Paused":0,"Running":0,"Threads":3,"Waiting":0},"Version":"v0.13.1-git.4235a895"}],"id":4}"#;
    let (status, answer) = post(&addr, MANAGER_PATH, ping).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"jsonrpc": "2.0", "result": null, "id": 4}));

    let (_, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","method":"Venus.WorkerGetPingInfo","params":["127.0.0.1"],"id":5}"#,
    )
    .await;
    let entry = &answer["result"];
    assert_eq!(entry["Info"]["Name"], "127.0.0.1");
    assert_eq!(entry["Info"]["Dest"], "127.0.0.1:17890");
    assert_eq!(entry["Info"]["Version"], "v0.13.1-git.4235a895");
    assert_eq!(entry["Info"]["Summary"]["Threads"], 3);
    assert_eq!(entry["Info"]["Summary"]["Empty"], 3);
    assert!(entry["LastPing"].as_i64().expect("unix seconds") > 1_700_000_000);
    assert_eq!(entry["Liveness"], "ok");

    let (_, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","method":"Venus.WorkerGetPingInfo","params":["nobody"],"id":6}"#,
    )
    .await;
    assert_eq!(answer["result"], Value::Null, "unknown names answer null");

    for (body, message) in [
        (
            r#"{"jsonrpc":"2.0","method":"Venus.WorkerPing","params":[{"Dest":"127.0.0.1:1","Name":"","Summary":{"Empty":0,"Errors":0,"Paused":0,"Running":0,"Threads":0,"Waiting":0},"Version":"v"}],"id":7}"#,
            "worker name is required",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"Venus.WorkerPing","params":[{"Dest":"","Name":"w","Summary":{"Empty":0,"Errors":0,"Paused":0,"Running":0,"Threads":0,"Waiting":0},"Version":"v"}],"id":8}"#,
            "worker dest is required",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"Venus.WorkerPing","params":[{"Name":"w"}],"id":9}"#,
            "invalid params",
        ),
        (
            // Refused alike by every registry (PostgreSQL cannot keep a NUL).
            r#"{"jsonrpc":"2.0","method":"Venus.WorkerPing","params":[{"Dest":"127.0.0.1:1","Name":"w\u0000x","Summary":{"Empty":0,"Errors":0,"Paused":0,"Running":0,"Threads":0,"Waiting":0},"Version":"v"}],"id":10}"#,
            "holds a control character",
        ),
    ] {
        let (_, answer) = post(&addr, MANAGER_PATH, body).await;
        let got = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(got.contains(message), "{body}: {answer}");
        if message.contains("control") {
            assert_eq!(answer["error"]["code"], -32602, "{answer}");
        }
    }

    // Only /rpc/v0 is served.
    let (status, _) = post(&addr, "/", ping).await;
    assert_eq!(status, 404);

    // The client sees the same registry; removal is durable across a restart.
    let client = ManagerClient::new(&addr, None, Timeouts::default()).expect("client");
    let workers = client.workers().await.expect("list");
    assert_eq!(workers.len(), 1);
    let report = WorkerReport {
        name: "worker-b".into(),
        dest: "10.0.0.2:17890".into(),
        version: "v".into(),
        summary: WorkerSummary::default(),
    };
    client
        .report(&report)
        .await
        .expect("ping through the Reporter");
    client.remove("127.0.0.1").await.expect("remove");
    server.shutdown().await;

    let server = serve(home.path()).await;
    let client = ManagerClient::new(
        &format!("/ip4/127.0.0.1/tcp/{}", server.local_addr().port()),
        None,
        Timeouts::default(),
    )
    .expect("client from a multiaddr");
    let names: Vec<String> = client
        .workers()
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.info.name)
        .collect();
    assert_eq!(names, ["worker-b"], "the registry survived the restart");
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_sector_is_code_11001_and_the_client_aborts_on_it() {
    let home = tempfile::tempdir().expect("home");
    let server = serve(home.path()).await;
    let addr = server.local_addr().to_string();
    let (_, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","method":"Venus.AssignTicket","params":[{"Miner":10000,"Number":1}],"id":1}"#,
    )
    .await;
    assert_eq!(answer["error"]["code"], 11001);
    let (_, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","method":"Venus.AllocateSector","params":[{"AllowedMiners":[],"AllowedProofTypes":[]}],"id":2}"#,
    )
    .await;
    assert_eq!(answer["result"], Value::Null, "no sector to allocate");
    let (_, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","method":"Venus.StoreBasicInfo","params":["persist-store1"],"id":3}"#,
    )
    .await;
    assert_eq!(answer["result"]["Name"], "persist-store1");

    let sealer = HttpSectorManager::new(&format!("http://{addr}"), None, Timeouts::default())
        .expect("client");
    let err = sealer
        .assign_ticket(SectorId::new(10000, 1))
        .await
        .expect_err("unknown sector");
    assert!(err.is_sector_not_found(), "{err:?}");
    assert_eq!(
        sealer
            .allocate_sector(AllocateSectorSpec::default())
            .await
            .expect("allocate"),
        None
    );
    server.shutdown().await;

    // An outage is a transport error: retried, never an abort.
    let err = sealer
        .assign_ticket(SectorId::new(10000, 1))
        .await
        .expect_err("down");
    assert_eq!(err.kind, ManagerErrorKind::Transport, "{err:?}");
}

/// A manager without WindowPoSt jobs (the trait's defaults) answers the original's
/// request shape with "method not found" (-32601), as the original does without
/// `--worker-prover`, and the client keeps that code.
#[tokio::test]
async fn without_window_post_jobs_the_wdpost_calls_answer_method_not_found() {
    let home = tempfile::tempdir().expect("home");
    let server = serve(home.path()).await;
    let addr = server.local_addr().to_string();
    let (_, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","method":"Venus.WdPoStAllocateJobs","params":[{"AllowedMiners":null,"AllowedProofTypes":["StackedDrgWindow2KiBV1_2"]},1,"w1"],"id":1}"#,
    )
    .await;
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    // A proof type that is not one is refused as bad params, before the manager sees it.
    let (_, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","method":"Venus.WdPoStAllocateJobs","params":[{"AllowedMiners":null,"AllowedProofTypes":["StackedDrgWindow2KiBV1_1"]},1,"w1"],"id":2}"#,
    )
    .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");

    let sealer = HttpSectorManager::new(&format!("http://{addr}"), None, Timeouts::default())
        .expect("client");
    let err = sealer
        .wdpost_allocate_jobs(Default::default(), 1, "w1".into())
        .await
        .expect_err("no WindowPoSt jobs");
    assert_eq!(
        err.kind,
        ManagerErrorKind::Remote { code: -32601 },
        "{err:?}"
    );
    let err = sealer
        .wdpost_finish_job("1-0".into(), None, "gave up".into())
        .await
        .expect_err("no WindowPoSt jobs");
    assert_eq!(
        err.kind,
        ManagerErrorKind::Remote { code: -32601 },
        "{err:?}"
    );
    server.shutdown().await;
}

#[test]
fn the_manager_method_table() {
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("manager_methods", *MANAGER_METHODS);
    });
}
