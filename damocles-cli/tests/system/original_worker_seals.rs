//! An original damocles-worker (v0.13.x) sealing against our manager in mock mode: a fake
//! that speaks the original's requests (reference §7 and §11: Go JSON conventions,
//! PascalCase, `[32]byte` as arrays of numbers, byte slices as base64, enums as integers)
//! through one whole sector over HTTP, its proofs made by our proof backend. The mock
//! chain verifies what it submits exactly as it verifies ours: a forged proof is
//! rejected, the real one accepted.
//!
//! Needs the 2KiB parameters in the parameter cache (one C2).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use damocles_core::{SealProof, SectorId, SectorSize};
use damocles_rpc::sealer::MANAGER_PATH;
use damocles_rpc::{ManagerService, RpcClient, Timeouts, WorkerRegistry};
use damocles_sealing::mock_chain::{ChainSectorState, MockChain};
use damocles_sealing::params;
use damocles_sealing::paths::SectorPaths;
use damocles_sealing::proofs::{self, SealIdentity};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64_32(text: &Value) -> [u8; 32] {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("base64 string"))
        .expect("base64");
    bytes.try_into().expect("32 bytes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_worker_seals_a_sector_against_our_manager() {
    let proof = params::proof_for(SectorSize::KIB_2).expect("2KiB");
    assert!(
        params::present(proof),
        "2KiB parameters missing from {}: run `damocles-worker params generate --sector-size 2KiB`",
        params::cache_dir().display()
    );
    let home = tempfile::tempdir().expect("home");
    let chain = MockChain::new(10000, SealProof::StackedDrg2KiBV1_1);
    let service = ManagerService::new(
        Arc::new(chain.clone()),
        Arc::new(WorkerRegistry::open(home.path()).expect("registry")),
        Duration::from_secs(600),
        "v-test",
        None,
    );
    let server = service.serve("127.0.0.1:0").await.expect("bind");
    let rpc = RpcClient::new(
        &server.local_addr().to_string(),
        MANAGER_PATH,
        None,
        Timeouts::default(),
    )
    .expect("client");
    let call = |method: &'static str, params: Value| {
        let rpc = &rpc;
        async move {
            rpc.call::<Value>(method, params)
                .await
                .unwrap_or_else(|e| panic!("{method}: {e}"))
        }
    };

    // Start-up: the attached store must be known, then the first ping.
    let store = call("Venus.StoreBasicInfo", json!(["/data/damocles/remote"])).await;
    assert_eq!(store["Name"], "/data/damocles/remote");
    let ping = json!([{"Dest":"127.0.0.1:17890","Name":"127.0.0.1","Summary":{"Empty":3,"Errors":0,"Paused":0,"Running":0,"Threads":3,"Waiting":0},"Version":"v0.13.1-git.4235a895"}]);
    assert_eq!(call("Venus.WorkerPing", ping).await, Value::Null);

    // Empty: empty allowed lists mean any.
    let allocated = call(
        "Venus.AllocateSector",
        json!([{"AllowedMiners":[],"AllowedProofTypes":[]}]),
    )
    .await;
    assert_eq!(
        allocated,
        json!({"ID": {"Miner": 10000, "Number": 1}, "ProofType": 5})
    );
    let sid = allocated["ID"].clone();
    let sector = SectorId::new(10000, 1);
    let deals = call(
        "Venus.AcquireDeals",
        json!([sid, {"MaxDeals": null, "MinUsedSpace": null}]),
    )
    .await;
    assert_eq!(deals, Value::Null, "CC");

    // AddPiece, TreeD, PC1, PC2 by our backend, on the ticket the manager assigns.
    let ticket = call("Venus.AssignTicket", json!([sid])).await;
    let ticket_bytes = unb64_32(&ticket["Ticket"]);
    let dir = tempfile::tempdir().expect("sector dir");
    let paths = SectorPaths::new(dir.path(), sector);
    let id = SealIdentity { proof, sector };
    let (pieces, pc2) = {
        let paths = paths.clone();
        tokio::task::spawn_blocking(move || {
            let pieces = proofs::add_pieces(proof, &paths, &[]).expect("add piece");
            proofs::tree_d(proof, &pieces).expect("tree d");
            let pc1 = proofs::pc1(id, &paths, ticket_bytes, &pieces).expect("pc1");
            let pc2 = proofs::pc2(&pc1, &paths).expect("pc2");
            (pieces, pc2)
        })
        .await
        .expect("pc")
    };
    let submitted = call(
        "Venus.SubmitPreCommit",
        json!([allocated, {"CommR": pc2.comm_r, "CommD": pc2.comm_d, "Ticket": ticket}, false]),
    )
    .await;
    assert_eq!(submitted["Res"], 1, "Accepted: {submitted}");
    let again = call(
        "Venus.SubmitPreCommit",
        json!([allocated, {"CommR": pc2.comm_r, "CommD": pc2.comm_d, "Ticket": ticket}, false]),
    )
    .await;
    assert_eq!(again["Res"], 2, "DuplicateSubmit: {again}");
    let landed = call("Venus.PollPreCommitState", json!([sid])).await;
    assert_eq!(landed["State"], 3, "Landed: {landed}");

    // Persist, seed.
    let reserved = call(
        "Venus.StoreReserveSpace",
        json!([sid, 4096, ["/data/damocles/remote"]]),
    )
    .await;
    assert_eq!(reserved["Name"], "/data/damocles/remote");
    assert_eq!(
        call(
            "Venus.SubmitPersistedEx",
            json!([sid, "/data/damocles/remote", false])
        )
        .await,
        Value::Bool(true)
    );
    let seed = call("Venus.WaitSeed", json!([sid, 5])).await;
    assert_eq!(seed["ShouldWait"], false);
    let seed_bytes = unb64_32(&seed["Seed"]["Seed"]);

    // C1, C2 by our backend.
    let proof_bytes = {
        let paths = paths.clone();
        tokio::task::spawn_blocking(move || {
            let c1 = proofs::c1(id, &paths, ticket_bytes, seed_bytes, pc2, &pieces).expect("c1");
            proofs::c2(id, &c1).expect("c2")
        })
        .await
        .expect("c")
    };

    // A forged proof is rejected, the real one accepted.
    let mut forged = proof_bytes.clone();
    forged[0] ^= 1;
    let rejected = call(
        "Venus.SubmitProof",
        json!([sid, {"Proof": b64(&forged)}, false]),
    )
    .await;
    assert_eq!(rejected["Res"], 4, "Rejected: {rejected}");
    let accepted = call(
        "Venus.SubmitProof",
        json!([sid, {"Proof": b64(&proof_bytes)}, false]),
    )
    .await;
    assert_eq!(accepted["Res"], 1, "Accepted: {accepted}");
    let landed = call("Venus.PollProofState", json!([sid])).await;
    assert_eq!(landed["State"], 3, "Landed: {landed}");

    // Finish: report the state change and the sector finalized.
    let state = call(
        "Venus.ReportState",
        json!([sid, {"Worker":{"Instance":"127.0.0.1","Location":"/data/damocles/store1"},"StateChange":{"Prev":"ProofSubmitted","Next":"Finished","Event":"None"},"Failure":null}]),
    )
    .await;
    assert_eq!(state["Id"], sid);
    assert_eq!(state["Finalized"], false);
    assert_eq!(
        call("Venus.ReportFinalized", json!([sid])).await,
        Value::Null
    );
    let version = call("Venus.Version", Value::Null).await;
    assert_eq!(version, "v-test");

    let finished = chain.sector(sector).expect("sector");
    assert_eq!(finished.state, ChainSectorState::Finished);
    assert_eq!(finished.proof.as_deref(), Some(proof_bytes.as_slice()));
    let counters = chain.counters();
    assert_eq!(counters.proofs_accepted, 1);
    assert_eq!(counters.proofs_rejected, 1);
    assert_eq!(counters.pre_commits_duplicate, 1);

    // A sector the chain does not know: code 11001, which the original aborts on.
    let unknown = rpc
        .call::<Value>(
            "Venus.AssignTicket",
            json!([{"Miner": 10000, "Number": 99}]),
        )
        .await
        .expect_err("unknown sector");
    match unknown {
        damocles_rpc::CallError::Rpc(e) => assert_eq!(e.code, 11001),
        other => panic!("{other}"),
    }
    server.shutdown().await;
}
