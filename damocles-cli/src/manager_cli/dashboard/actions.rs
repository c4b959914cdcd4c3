//! The dashboard's actions (`POST /dashboard/act`): each runs as its `util` command runs
//! and answers with that command's message, or its error as the command prints it.

use damocles_core::sealer_api::Cid;
use damocles_core::{SectorId, StopMode};
use damocles_rpc::jsonrpc::{RpcError, INVALID_PARAMS};
use damocles_rpc::pages::Page;
use serde::Deserialize;

use super::{text, Dashboard, Refusal};
use crate::render;

/// What the page asks for.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Action {
    Pause {
        worker: String,
        index: u64,
    },
    Resume {
        worker: String,
        index: u64,
        /// Empty or absent: resume at the current state.
        #[serde(default)]
        state: Option<String>,
    },
    Drain {
        worker: String,
        index: u64,
    },
    Undrain {
        worker: String,
        index: u64,
    },
    /// A graceful stop (`util worker stop`).
    Stop {
        worker: String,
    },
    Remove {
        worker: String,
    },
    Rebuild {
        sector: String,
    },
    Unseal {
        sector: String,
        piece: String,
    },
}

/// Runs the action in `body`: 200 with the message, 400 for a request or a refusal,
/// 404 for an unknown worker or sector, 502 when the worker cannot be reached.
pub(super) async fn act(dashboard: &Dashboard, body: &[u8]) -> Page {
    let action: Action = match serde_json::from_slice(body) {
        Ok(action) => action,
        Err(e) => return text(400, format!("not an action: {e}")),
    };
    match run(dashboard, action).await {
        Ok(message) => text(200, message.trim_end()),
        Err(refused) => text(refused.status, format!("error: {}", refused.message)),
    }
}

async fn run(dashboard: &Dashboard, action: Action) -> Result<String, Refusal> {
    let fleet = &dashboard.fleet;
    match action {
        Action::Pause { worker, index } => fleet
            .pause(&worker, index)
            .await
            .map(|outcome| render::pause_message(index, outcome))
            .map_err(relayed),
        Action::Resume {
            worker,
            index,
            state,
        } => {
            let state = state.filter(|s| !s.is_empty());
            fleet
                .resume(&worker, index, state.clone())
                .await
                .map(|outcome| render::resume_message(index, &outcome, state.as_deref()))
                .map_err(relayed)
        }
        Action::Drain { worker, index } => drain(dashboard, &worker, index, true).await,
        Action::Undrain { worker, index } => drain(dashboard, &worker, index, false).await,
        Action::Stop { worker } => fleet
            .stop(&worker, StopMode::Graceful)
            .await
            .map(|outcome| crate::worker_ops::stop_message(&outcome))
            .map_err(relayed),
        Action::Remove { worker } => match dashboard.registry.forget(&worker).await {
            Ok(true) => Ok(format!("'{worker}' removed")),
            Ok(false) => Err(Refusal::unknown_worker(&worker)),
            Err(e) => Err(Refusal::new(
                503,
                format!("the worker registry cannot be changed: {e}"),
            )),
        },
        Action::Rebuild { sector } => {
            let id = sector_id(&sector)?;
            dashboard
                .chain()?
                .request_rebuild(id)
                .map(|job| render::job_requested(&job))
                .map_err(|e| Refusal::new(400, format!("{id} cannot be rebuilt: {e}")))
        }
        Action::Unseal { sector, piece } => {
            let id = sector_id(&sector)?;
            let cid = Cid { text: piece };
            damocles_core::piece::comm_p(&cid)
                .map_err(|e| Refusal::new(400, format!("piece: {e}")))?;
            dashboard
                .chain()?
                .request_unseal(id, cid.clone(), Vec::new())
                .map(|job| render::job_requested(&job))
                .map_err(|e| {
                    Refusal::new(400, format!("{} of {id} cannot be unsealed: {e}", cid.text))
                })
        }
    }
}

async fn drain(
    dashboard: &Dashboard,
    worker: &str,
    index: u64,
    on: bool,
) -> Result<String, Refusal> {
    dashboard
        .fleet
        .drain(worker, index, on)
        .await
        .map(|outcome| render::drain_message(index, outcome))
        .map_err(relayed)
}

/// A worker's answer or refusal, relayed: a refusal (bad params) is 400, an unknown
/// worker 404, anything else (unreachable, its internal error) 502.
fn relayed(error: RpcError) -> Refusal {
    let status = if error.message.starts_with("no worker named") {
        404
    } else if error.code == INVALID_PARAMS {
        400
    } else {
        502
    };
    Refusal::new(status, error.message)
}

fn sector_id(text: &str) -> Result<SectorId, Refusal> {
    text.parse()
        .map_err(|e| Refusal::new(400, format!("sector {text:?}: {e}")))
}
