//! The JSON-RPC request decoding of both APIs under many generated inputs: random bytes,
//! and requests built from the real method names with random params. Nothing may panic or
//! hang, and every answer must be a JSON-RPC answer. Case counts: `FUZZ_CASES` (default
//! 2,000 per property; RELIABILITY.md records a long run).

use std::sync::Arc;
use std::time::Duration;

use damocles_core::testing::admin_pair;
use damocles_rpc::admin::WORKER_METHODS;
use damocles_rpc::manager::MANAGER_METHODS;
use damocles_rpc::method::Permission;
use damocles_rpc::server::{handle_body, Answer, RpcService};
use damocles_rpc::{AdminService, ManagerService, WorkerRegistry};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::no_sectors;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn request(methods: Vec<&'static str>) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(methods),
        prop::option::of(json_value()),
        prop::option::of(prop_oneof![
            any::<u32>().prop_map(|n| json!(n)),
            Just(json!("x"))
        ]),
        prop::collection::vec(json_value(), 0..4),
    )
        .prop_map(|(method, id, _, params)| {
            let mut request = json!({"jsonrpc": "2.0", "method": method, "params": params});
            if let Some(id) = id {
                request["id"] = id;
            }
            request
        })
}

fn check(answer: &Answer) {
    if let Some(bytes) = &answer.body {
        let body: Value = serde_json::from_slice(bytes).expect("the answer is JSON");
        let shaped = |v: &Value| v.get("jsonrpc") == Some(&json!("2.0")) && v.get("id").is_some();
        match &body {
            Value::Array(items) => assert!(items.iter().all(shaped), "{body}"),
            other => assert!(shaped(other), "{other}"),
        }
    }
}

fn run(service: &dyn RpcService, body: &[u8]) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            handle_body(service, Permission::Admin, body),
        )
        .await
        .expect("answered within 10 s")
    })
}

fn admin() -> AdminService {
    let (scripted, _handle) = admin_pair();
    AdminService::new(Arc::new(scripted))
}

/// One manager for every case, its registry in memory.
fn manager() -> &'static ManagerService {
    static MANAGER: std::sync::LazyLock<ManagerService> = std::sync::LazyLock::new(|| {
        ManagerService::new(
            Arc::new(no_sectors::NoSectors),
            Arc::new(WorkerRegistry::in_memory().expect("registry")),
            Duration::from_secs(600),
            "v-fuzz",
            None,
        )
    });
    &MANAGER
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn admin_api_survives_random_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&run(&admin(), &body));
    }

    #[test]
    fn admin_api_survives_random_requests(
        request in request(WORKER_METHODS.iter().map(|m| m.name).chain(["VenusWorker.Nope"]).collect()),
        batch in any::<bool>(),
    ) {
        let body = if batch { json!([request.clone(), request]) } else { request };
        check(&run(&admin(), body.to_string().as_bytes()));
    }

    #[test]
    fn manager_api_survives_random_requests(
        request in request(MANAGER_METHODS.iter().map(|m| m.name).collect()),
    ) {
        check(&run(manager(), request.to_string().as_bytes()));
    }

    #[test]
    fn manager_api_survives_random_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&run(manager(), &body));
    }
}
