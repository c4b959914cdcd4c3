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

use crate::no_sectors;
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
    let (status, bytes) = post_typed(addr, path, "application/json", body).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// POSTs `body` with `content_type`: the status and the body's bytes.
async fn post_typed(addr: &str, path: &str, content_type: &str, body: &str) -> (u16, bytes::Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = hyper::Request::post(format!("http://{addr}{path}"))
        .header("content-type", content_type)
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
    (status, bytes)
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
    // A proof type that is not one is refused as params that do not decode, before the
    // manager sees it (go-jsonrpc's -32700, "unmarshaling params").
    let (_, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","method":"Venus.WdPoStAllocateJobs","params":[{"AllowedMiners":null,"AllowedProofTypes":["StackedDrgWindow2KiBV1_1"]},1,"w1"],"id":2}"#,
    )
    .await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");

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

/// Protocol errors as go-jsonrpc v0.1.x answers them (`server.go` `rpcError`,
/// `handler.go`): HTTP 500; no body when the request's id cannot be read; params that
/// do not decode -32700, a wrong count -32602, an unknown method -32601; the error
/// object only `code` and `message`. A method's own error stays HTTP 200 (code 1).
#[tokio::test]
async fn protocol_errors_are_answered_as_go_jsonrpc_answers_them() {
    let home = tempfile::tempdir().expect("home");
    let server = serve(home.path()).await;
    let addr = server.local_addr().to_string();
    let raw = |body: &'static str| post_typed(&addr, MANAGER_PATH, "application/json", body);
    for unreadable in [
        "{not json",
        r#"{"jsonrpc":"2.0","id":{"x":1},"method":"Venus.Version"}"#,
    ] {
        let (status, body) = raw(unreadable).await;
        assert_eq!((status, body.len()), (500, 0), "{unreadable}: {body:?}");
    }
    for (body, code) in [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"Venus.NoSuchMethod","params":[]}"#,
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"Venus.AllocateSector","params":["not a spec"]}"#,
            -32700,
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"Venus.AllocateSector","params":[{},1,2]}"#,
            -32602,
        ),
    ] {
        let (status, bytes) = raw(body).await;
        let answer: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(status, 500, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        let keys: Vec<&String> = answer["error"].as_object().expect("error").keys().collect();
        assert_eq!(keys, ["code", "message"], "{answer}");
    }
    // go-jsonrpc reads a body whatever its Content-Type (curl's default included).
    let (untyped, _) = post_typed(
        &addr,
        MANAGER_PATH,
        "application/x-www-form-urlencoded",
        r#"{"jsonrpc":"2.0","id":5,"method":"Venus.Version","params":[]}"#,
    )
    .await;
    assert_eq!(untyped, 200);
    let (status, answer) = post(
        &addr,
        MANAGER_PATH,
        r#"{"jsonrpc":"2.0","id":4,"method":"Venus.WorkerPing","params":[{"Name":"","Dest":"x","Version":"v","Summary":{"Threads":1,"Empty":1,"Paused":0,"Running":0,"Waiting":0,"Errors":0}}]}"#,
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (200, &json!(1)),
        "{answer}"
    );
    server.shutdown().await;
}

#[test]
fn the_manager_method_table() {
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("manager_methods", *MANAGER_METHODS);
    });
}

/// The conformance fixtures of the Go manager (`fixtures/go-manager/`).
fn go_fixture(name: &str) -> Value {
    let path = format!(
        "{}/../fixtures/go-manager/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

/// Reads `answer` as our client reads method `M`'s result, written back in our form.
fn decode<M: damocles_rpc::method::RpcMethod>(answer: Value) -> Result<Value, String>
where
    M::Result: serde::Serialize,
{
    let parsed: M::Result = serde_json::from_value(answer).map_err(|e| e.to_string())?;
    serde_json::to_value(parsed).map_err(|e| e.to_string())
}

/// Every answer shape the Go manager's code can produce (`fixtures/go-manager/answers.json`,
/// each citing its Go file and type) parses in our client, to the values snapshotted in
/// `go_manager_answers.snap`; the facts that matter are asserted on their own.
#[test]
fn go_manager_answers_parse_to_the_right_values() {
    use damocles_core::sealer_api::{SectorRebuildInfo, SectorUnsealInfo, StoreBasicInfo};
    use damocles_rpc::sealer as m;

    let fixtures = go_fixture("answers.json");
    let mut parsed = serde_json::Map::new();
    let mut methods = std::collections::BTreeSet::new();
    for case in fixtures["answers"].as_array().expect("answers") {
        let (name, method) = (
            case["case"].as_str().expect("case"),
            case["method"].as_str().expect("method"),
        );
        assert!(
            case["go"].as_str().is_some_and(|g| !g.is_empty()),
            "{name} cites its Go type"
        );
        let answer = case["answer"].clone();
        let value = match method {
            "Venus.AllocateSector" => decode::<m::AllocateSector>(answer),
            "Venus.AcquireDeals" => decode::<m::AcquireDeals>(answer),
            "Venus.AssignTicket" => decode::<m::AssignTicket>(answer),
            "Venus.SubmitPreCommit" => decode::<m::SubmitPreCommit>(answer),
            "Venus.PollPreCommitState" => decode::<m::PollPreCommitState>(answer),
            "Venus.PollProofState" => decode::<m::PollProofState>(answer),
            "Venus.WaitSeed" => decode::<m::WaitSeed>(answer),
            "Venus.SubmitProof" => decode::<m::SubmitProof>(answer),
            "Venus.ReportState" => decode::<m::ReportState>(answer),
            "Venus.ReportFinalized" => decode::<m::ReportFinalized>(answer),
            "Venus.ReportAborted" => decode::<m::ReportAborted>(answer),
            "Venus.StoreReserveSpace" => decode::<m::StoreReserveSpace>(answer),
            "Venus.StoreBasicInfo" => decode::<m::StoreBasicInfo>(answer),
            "Venus.SubmitPersistedEx" => decode::<m::SubmitPersistedEx>(answer),
            "Venus.AllocateSanpUpSector" => decode::<m::AllocateSnapUpSector>(answer),
            "Venus.SubmitSnapUpProof" => decode::<m::SubmitSnapUpProof>(answer),
            "Venus.AllocateRebuildSector" => decode::<m::AllocateRebuildSector>(answer),
            "Venus.AllocateUnsealSector" => decode::<m::AllocateUnsealSector>(answer),
            "Venus.AcquireUnsealDest" => decode::<m::AcquireUnsealDest>(answer),
            "Venus.AchieveUnsealSector" => decode::<m::AchieveUnsealSector>(answer),
            "Venus.WdPoStAllocateJobs" => decode::<m::WdPoStAllocateJobs>(answer),
            "Venus.WdPoStHeartbeatJobs" => decode::<m::WdPoStHeartbeatJobs>(answer),
            "Venus.WdPoStFinishJob" => decode::<m::WdPoStFinishJob>(answer),
            "Venus.WorkerPing" => decode::<damocles_rpc::manager::WorkerPing>(answer),
            other => panic!("{name}: no reader for {other}"),
        };
        methods.insert(method);
        parsed.insert(
            name.to_owned(),
            value.unwrap_or_else(|e| panic!("{name}: {e}")),
        );
    }
    // Every method the original worker calls on the manager has at least one case.
    assert_eq!(methods.len(), 24, "{methods:?}");

    let answer = |name: &str| {
        fixtures["answers"]
            .as_array()
            .expect("answers")
            .iter()
            .find(|c| c["case"] == name)
            .map(|c| c["answer"].clone())
            .expect(name)
    };
    let unseal: SectorUnsealInfo =
        serde_json::from_value(answer("AllocateUnsealSector")).expect("unseal");
    assert_eq!(unseal.state.0, "unsealing");
    let store: StoreBasicInfo =
        serde_json::from_value(answer("StoreReserveSpace Meta null")).expect("store");
    assert!(store.meta.is_empty());
    let legacy: SectorRebuildInfo =
        serde_json::from_value(answer("AllocateRebuildSector legacy deals")).expect("rebuild");
    let pieces = legacy.deal_pieces().expect("the legacy pieces are read");
    assert_eq!((pieces.len(), pieces[0].deal_info.deal_id), (1, 11));
    assert!(!pieces[0].is_pledge());
    let upgraded: SectorRebuildInfo =
        serde_json::from_value(answer("AllocateRebuildSector upgraded")).expect("rebuild");
    assert_eq!(upgraded.deal_pieces().map(Vec::len), Some(1));
    assert_eq!(upgraded.upgrade_public.map(|p| p.comm_r), Some([9; 32]));
    let no_deal_info: Vec<damocles_core::sealer_api::SectorPiece> =
        serde_json::from_value(answer("AcquireDeals pledge piece without DealInfo"))
            .expect("pledge");
    assert!(no_deal_info[0].is_pledge());

    // Go's 11001 answer is read as the sector-not-found the worker aborts on.
    let error = &fixtures["errors"][0]["error"];
    let rpc = damocles_rpc::jsonrpc::RpcError::new(
        error["code"].as_i64().expect("code"),
        error["message"].as_str().expect("message"),
    );
    let classified = damocles_rpc::sealer::manager_error(damocles_rpc::CallError::Rpc(rpc));
    assert!(classified.is_sector_not_found());

    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("go_manager_answers", Value::Object(parsed));
    });
}

/// A Go manager that records every call's params and answers what it is given.
struct RecordingManager {
    calls: std::sync::Mutex<Vec<(String, Value)>>,
}

#[async_trait::async_trait]
impl damocles_rpc::RpcService for RecordingManager {
    fn methods(&self) -> &'static [damocles_rpc::method::MethodSpec] {
        &MANAGER_METHODS
    }

    async fn call(
        &self,
        method: &'static damocles_rpc::method::MethodSpec,
        params: damocles_rpc::jsonrpc::Params,
        _: &damocles_rpc::Caller,
    ) -> damocles_rpc::jsonrpc::RpcResult {
        let mut values = Vec::new();
        while let Ok(Some(value)) = params.optional::<Value>(values.len(), "p", "any") {
            values.push(value);
        }
        self.calls
            .lock()
            .expect("calls")
            .push((method.name.to_owned(), Value::Array(values)));
        // A Go manager answers null to every call whose result may be null.
        damocles_rpc::jsonrpc::result(&Value::Null)
    }
}

/// Our requests, field by field, are what the original worker sends
/// (`fixtures/go-manager/requests.json`, each citing the original worker's code).
#[tokio::test]
async fn our_requests_are_the_original_workers() {
    use damocles_core::sealer_api::*;
    use damocles_core::{PoStProof, SealProof};

    let recorder = Arc::new(RecordingManager {
        calls: std::sync::Mutex::new(Vec::new()),
    });
    let server = RpcServer::bind(
        "127.0.0.1:0",
        recorder.clone(),
        damocles_rpc::ServerOptions {
            path: Some(MANAGER_PATH.to_owned()),
            ..damocles_rpc::ServerOptions::default()
        },
    )
    .await
    .expect("bind");
    let addr = format!("http://{}", server.local_addr());
    let client = HttpSectorManager::new(&addr, None, Timeouts::default()).expect("client");
    let id = SectorId::new(10000, 7);
    let sector = AllocatedSector {
        id,
        proof_type: SealProof::StackedDrg2KiBV1_1,
    };
    let ticket = Ticket {
        ticket: std::array::from_fn(|i| i as u8 + 1),
        epoch: 1234,
    };
    let cid = |text: &str| Cid { text: text.into() };
    let _ = client
        .allocate_sector(AllocateSectorSpec {
            allowed_miners: Some(vec![10000]),
            allowed_proof_types: Some(vec![SealProof::StackedDrg2KiBV1_1]),
        })
        .await;
    let _ = client
        .acquire_deals(
            id,
            AcquireDealsSpec {
                max_deals: Some(2),
                min_used_space: None,
            },
        )
        .await;
    let _ = client
        .submit_pre_commit(
            sector,
            PreCommitOnChainInfo {
                comm_r: [1; 32],
                comm_d: [2; 32],
                ticket,
            },
            false,
        )
        .await;
    let _ = client
        .submit_proof(id, ProofOnChainInfo { proof: vec![3; 8] }, false)
        .await;
    let _ = client
        .report_state(
            id,
            ReportStateReq {
                worker: WorkerIdentifier {
                    instance: "w1".into(),
                    location: "/data/store1".into(),
                },
                state_change: StateChange {
                    prev: "C1Done".into(),
                    next: "C2Done".into(),
                    event: "C2".into(),
                },
                failure: Some(ReportFailure {
                    level: "Temporary".into(),
                    desc: "rpc error".into(),
                }),
            },
        )
        .await;
    let _ = client
        .submit_snapup_proof(
            SectorId::new(10000, 3),
            SnapUpOnChainInfo {
                comm_r: [4; 32],
                comm_d: [5; 32],
                access_instance: "persist".into(),
                pieces: vec![
                    cid("baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq"),
                    cid("baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy"),
                ],
                proof: vec![6; 3],
            },
        )
        .await;
    let _ = client
        .wdpost_allocate_jobs(
            AllocatePoStSpec {
                allowed_miners: Some(vec![10000]),
                allowed_proof_types: Some(vec![PoStProof::StackedDrgWindow2KiBV1_2]),
            },
            1,
            "w1".into(),
        )
        .await;
    let _ = client
        .wdpost_finish_job(
            "job-1".into(),
            Some(WindowPoStOutput {
                proofs: vec![damocles_core::record::Opaque(vec![7; 3])],
                faults: vec![9],
            }),
            String::new(),
        )
        .await;
    let spec = AllocateSectorSpec {
        allowed_miners: Some(vec![10000]),
        allowed_proof_types: Some(vec![SealProof::StackedDrg2KiBV1_1]),
    };
    let piece = cid("baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq");
    let _ = client.assign_ticket(id).await;
    let _ = client.poll_pre_commit_state(id).await;
    let _ = client
        .store_reserve_space(id, 2048, vec!["persist-1".into(), "persist-2".into()])
        .await;
    let _ = client.store_basic_info("persist-1".into()).await;
    let _ = client.submit_persisted(id, "persist-1".into(), false).await;
    let _ = client.wait_seed(id, SealProof::StackedDrg2KiBV1_1).await;
    let _ = client.poll_proof_state(id).await;
    let _ = client.report_finalized(id).await;
    let _ = client.report_aborted(id, "gave up".into()).await;
    let _ = client
        .allocate_snapup_sector(AllocateSnapUpSpec {
            sector: spec.clone(),
            deals: AcquireDealsSpec::default(),
        })
        .await;
    let _ = client.allocate_rebuild_sector(spec.clone()).await;
    let _ = client.allocate_unseal_sector(spec).await;
    let _ = client.acquire_unseal_dest(id, piece.clone()).await;
    let _ = client.achieve_unseal_sector(id, piece, String::new()).await;
    let _ = client
        .wdpost_heartbeat_jobs(vec!["job-1".into()], "w1".into())
        .await;
    let reporter = ManagerClient::new(&addr, None, Timeouts::default()).expect("reporter");
    let _ = reporter
        .report(&WorkerReport {
            name: "w1".into(),
            dest: "127.0.0.1:17890".into(),
            version: "v".into(),
            summary: WorkerSummary {
                threads: 2,
                empty: 1,
                paused: 0,
                running: 1,
                waiting: 0,
                errors: 0,
            },
        })
        .await;
    server.shutdown().await;

    let calls = recorder.calls.lock().expect("calls").clone();
    let fixtures = go_fixture("requests.json");
    let expected = fixtures["requests"].as_array().expect("requests");
    assert_eq!(calls.len(), expected.len(), "{calls:#?}");
    for (case, (method, params)) in expected.iter().zip(&calls) {
        assert_eq!(case["method"], method.as_str(), "{}", case["case"]);
        assert_eq!(
            &case["params"], params,
            "{}: ours differs from the original's",
            case["case"]
        );
    }
}
