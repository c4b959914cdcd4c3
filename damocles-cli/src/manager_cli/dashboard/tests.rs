//! The HTML of the dashboard's fragments, rendered here from fixed rows: snapshots in the
//! top-level `snapshots/` (ages redacted), and what the read token may not see.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use damocles_core::listing::{ChainJobRow, SectorRow, WdPostJobRow};
use damocles_core::sealer_api::{Cid, ExtendedSectorInfo};
use damocles_core::{ActorId, PoStProof, SectorId, SectorNumber, WorkerReport, WorkerSummary};
use damocles_rpc::manager::{unix_now, ChainView, JobRequestError};
use damocles_rpc::method::Permission;
use damocles_rpc::pages::{PageRequest, Pages};
use damocles_rpc::{Registry, WorkerRegistry};
use serde_json::json;

use super::Dashboard;

/// A chain of fixed rows.
struct Rows;

#[async_trait::async_trait]
impl ChainView for Rows {
    fn sectors(&self) -> Vec<SectorRow> {
        let deal = json!({"cid": "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy", "deal_id": 7, "size": 1024});
        serde_json::from_value(json!([
            {"comm_d": null, "comm_r": "cc".repeat(32), "miner": 10000, "number": 1, "pieces": [deal],
             "proof": "ab".repeat(192), "proof_type": 5, "rebuilt": 0, "seed": null, "state": "Finished", "ticket": null},
            {"abort_reason": "task aborted <script>", "miner": 10000, "number": 2, "pieces": [],
             "proof_type": 5, "rebuilt": 0, "state": "Aborted"},
        ]))
        .expect("sector rows")
    }

    fn jobs(&self) -> Vec<ChainJobRow> {
        let created = u64::try_from(unix_now()).expect("now") - 90;
        serde_json::from_value(json!([
            {"created_at": created, "dest": [], "id": 1, "kind": "rebuild", "miner": 10000,
             "number": 1, "sector": "s-t010000-1", "state": "pending"},
        ]))
        .expect("job rows")
    }

    fn wdpost_jobs(&self) -> Vec<WdPostJobRow> {
        Vec::new()
    }

    fn request_rebuild(&self, _: SectorId) -> Result<ChainJobRow, JobRequestError> {
        Err("not in these tests".into())
    }

    fn request_unseal(
        &self,
        _: SectorId,
        _: Cid,
        _: Vec<String>,
    ) -> Result<ChainJobRow, JobRequestError> {
        Err("not in these tests".into())
    }

    fn reset_wdpost_job(&self, _: &str) -> Result<(), JobRequestError> {
        Err("not in these tests".into())
    }

    fn remove_wdpost_job(&self, _: &str) -> Result<bool, JobRequestError> {
        Err("not in these tests".into())
    }

    async fn check_provable(
        &self,
        _: ActorId,
        _: PoStProof,
        _: Vec<ExtendedSectorInfo>,
        _: bool,
    ) -> Result<BTreeMap<SectorNumber, String>, JobRequestError> {
        Err("not in these tests".into())
    }
}

async fn dashboard(home: &std::path::Path) -> Dashboard {
    let registry: Arc<dyn Registry> = Arc::new(WorkerRegistry::open(home).expect("registry"));
    let report = WorkerReport {
        name: "sealer-<b>".into(),
        dest: "10.0.0.7:17890".into(),
        version: "v0.1.0-damocles-rs".into(),
        summary: WorkerSummary {
            threads: 4,
            empty: 1,
            paused: 1,
            running: 2,
            waiting: 0,
            errors: 1,
        },
    };
    registry
        .ping(report, unix_now() - 3, true)
        .await
        .map_err(|e| e.to_string())
        .expect("ping");
    Dashboard::new(
        registry,
        Some(Arc::new(Rows)),
        None,
        Duration::from_secs(600),
    )
}

async fn fragment(dashboard: &Dashboard, name: &str, permission: Option<Permission>) -> String {
    let page = dashboard
        .answer(PageRequest {
            path: format!("/f/{name}"),
            query: String::new(),
            post: false,
            permission,
            body: bytes::Bytes::new(),
        })
        .await;
    let body = String::from_utf8(page.body.to_vec()).expect("utf-8");
    format!(
        "{} {}\n{}",
        page.status,
        page.content_type,
        body.replace("><", ">\n<")
    )
}

#[tokio::test]
async fn fragments_show_the_util_lines_escaped_with_actions_for_the_admin_token_only() {
    let home = tempfile::tempdir().expect("home");
    let dashboard = dashboard(home.path()).await;
    let mut shown = String::new();
    for name in ["workers", "sectors", "jobs", "wdpost"] {
        let admin = fragment(&dashboard, name, Some(Permission::Admin)).await;
        let read = fragment(&dashboard, name, Some(Permission::Read)).await;
        assert!(
            !read.contains("data-action"),
            "{name} for the read token: {read}"
        );
        assert!(
            !admin.contains("<script>") && !admin.contains("<b>"),
            "{admin}"
        );
        shown.push_str(&format!("== {name} (admin token)\n{admin}\n"));
    }
    let refused = fragment(&dashboard, "sectors", None).await;
    assert!(refused.starts_with("401 "), "{refused}");
    shown.push_str(&format!("== sectors without a token\n{refused}\n"));
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
        prepend_module_to_snapshot => false,
        filters => vec![(r"<td>\d+[smh]( \d+[smh])?</td>", "<td>[age]</td>")],
    }, {
        insta::assert_snapshot!("dashboard_fragments", shown);
    });
}
