//! The worker admin API, namespace `VenusWorker`, wire-compatible with the original:
//! [`AdminService`] serves any [`AdminTransport`]; [`HttpAdminClient`] is an
//! [`AdminTransport`] that calls a worker over HTTP (ours or an original one).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::client::{CallError, RpcClient, Timeouts};
use crate::jsonrpc::{Params, RpcError, RpcResult};
use crate::method::{handlers, rpc_methods, MethodSpec};
use crate::server::{Caller, RpcService};
use async_trait::async_trait;
use damocles_core::{
    AdminError, AdminTransport, DrainOutcome, JournalEntry, PauseOutcome, Plan, PlanSet, PlanState,
    ResumeOutcome, StopMode, StopOutcome, ThreadInfo, ThreadState, JOURNAL_LIMIT,
};
use serde::{Deserialize, Serialize};

rpc_methods! {
    /// The worker admin API's methods.
    pub const WORKER_METHODS;
    /// Runs worker method `name` on an [`AdminService`]; `None` when `name` is not one.
    pub async fn worker_call;
    /// Every sealing thread.
    WorkerList = "VenusWorker.WorkerList", Read, ()
        -> Vec<ThreadInfo> = "[WorkerInfo]", "every sealing thread, in index order";
    /// Pauses a thread.
    WorkerPause = "VenusWorker.WorkerPause", Admin, (index: u64 = "a thread index (a whole number from 0)")
        -> bool = "bool", "pauses a thread (idempotent); true: the pause is queued";
    /// Resumes a paused thread.
    WorkerResume = "VenusWorker.WorkerResume", Admin, (
        index: u64 = "a thread index (a whole number from 0)",
        state: Option<String> = "a state name or null",
    ) -> bool = "bool", "resumes a paused thread, at `state` when given; false: it was not paused";
    /// The worker's version.
    WorkerVersion = "VenusWorker.WorkerVersion", Read, ()
        -> String = "string", "the worker's version";
    /// Drains a thread, or lifts the drain (additive).
    WorkerDrain = "Damocles.WorkerDrain", Admin, (
        index: u64 = "a thread index (a whole number from 0)",
        on: Option<bool> = "a boolean, default true",
    ) -> DrainOutcome = "\"draining\" | \"already_draining\" | \"undrained\" | \"not_draining\"",
        "drains a thread (it finishes its current sector and takes no new one) or, with false, lifts the drain; kept across restarts";
    /// A thread's event history (additive).
    WorkerEvents = "Damocles.WorkerEvents", Read, (
        index: u64 = "a thread index (a whole number from 0)",
        limit: Option<usize> = "a whole number from 1 to 1000, default 100",
    ) -> Vec<JournalEntry> = "[ThreadEvent]",
        "a thread's event history, oldest first: transitions, pauses and resumes with who asked, drains, failures, aborts";
    /// Sets a thread's plan through its hot config (additive).
    WorkerSetPlan = "Damocles.WorkerSetPlan", Admin, (
        index: u64 = "a thread index (a whole number from 0)",
        plan: Plan = "a plan: sealer, snapup, rebuild, unseal or wdpost",
    ) -> PlanSet = "{file, plan, before, current_job}",
        "writes `plan` into the thread's config.toml (keeping its other keys and comments); the thread takes it at its next job";
    /// Stops the worker, or calls a pending stop off (additive).
    WorkerStop = "Damocles.WorkerStop", Admin, (
        mode: StopMode = "\"graceful\" | \"now\" | \"cancel\"",
    ) -> StopOutcome = "{outcome: \"stopping\", busy} | {outcome: \"exiting\" | \"cancelled\" | \"not_stopping\"}",
        "graceful: every thread stops after its current step, then the worker exits with code 75 (restart me); now: exits at once; cancel: calls a pending stop off";
    /// Records an environment variable for external processors.
    WorkerSetEnv = "VenusWorker.WorkerSetEnv", Admin, (name: String = "a variable name", value: String = "a string")
        -> () = "null",
        "records an environment variable for external processors (the original's enable-dump); this worker runs none, so it changes nothing";
    /// Forgets a recorded variable.
    WorkerRemoveEnv = "VenusWorker.WorkerRemoveEnv", Admin, (name: String = "a variable name")
        -> () = "null", "forgets a variable recorded by WorkerSetEnv";
}

/// How many events `Damocles.WorkerEvents` answers when no limit is given.
pub const DEFAULT_EVENT_LIMIT: usize = 100;

/// Serves `VenusWorker.*` over an [`AdminTransport`] (a local `Worker`).
///
/// `WorkerSetEnv` / `WorkerRemoveEnv` are accepted, validated as the original validates
/// them, and recorded (see [`AdminService::recorded_env`]): the original CLI's
/// `enable-dump` sends them for its external processors, which this worker does not run.
/// The process environment is never changed.
pub struct AdminService {
    worker: Arc<dyn AdminTransport>,
    env: Mutex<BTreeMap<String, String>>,
}

impl AdminService {
    /// Serves `worker`.
    pub fn new(worker: Arc<dyn AdminTransport>) -> Self {
        Self {
            worker,
            env: Mutex::default(),
        }
    }

    /// The variables recorded by `WorkerSetEnv`.
    pub fn recorded_env(&self) -> BTreeMap<String, String> {
        self.env.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// The `data` of an admin error from this worker: its kind and fields, so that a client
/// tells the kinds apart without reading messages (an original worker sends none).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum AdminErrorData {
    ThreadNotFound {
        index: u64,
    },
    ResumeRefused {
        index: u64,
        state: Option<PlanState>,
        reason: String,
    },
}

pub(crate) fn to_rpc(error: AdminError) -> RpcError {
    let data = match &error {
        AdminError::ThreadNotFound { index } => {
            Some(AdminErrorData::ThreadNotFound { index: *index })
        }
        AdminError::ResumeRefused {
            index,
            state,
            reason,
        } => Some(AdminErrorData::ResumeRefused {
            index: *index,
            state: *state,
            reason: reason.clone(),
        }),
        _ => None,
    };
    let mut rpc = match error {
        AdminError::ThreadNotFound { .. }
        | AdminError::InvalidState(_)
        | AdminError::ResumeRefused { .. }
        | AdminError::Refused(_) => RpcError::invalid_params(error.to_string()),
        other => RpcError::internal(other.to_string()),
    };
    rpc.data = data.and_then(|d| serde_json::to_value(d).ok());
    rpc
}

#[async_trait]
impl RpcService for AdminService {
    fn methods(&self) -> &'static [MethodSpec] {
        WORKER_METHODS
    }

    async fn call(
        &self,
        method: &'static MethodSpec,
        params: Params,
        caller: &Caller,
    ) -> RpcResult {
        worker_call(self, method.name, &params, caller)
            .await
            .unwrap_or_else(|| Err(RpcError::method_not_found(method.name)))
    }
}

handlers! { AdminService, |service, caller| {
    WorkerList => |()| service.worker.list().await.map_err(to_rpc);
    WorkerPause => |(index,)| {
        let by = caller.to_string();
        let outcome = service.worker.on_behalf_of(&by).pause(index).await;
        outcome.map_err(to_rpc).map(|_| true)
    };
    WorkerResume => |(index, state)| {
        let by = caller.to_string();
        let outcome = service.worker.on_behalf_of(&by).resume(index, state).await;
        Ok(!matches!(outcome.map_err(to_rpc)?, ResumeOutcome::NotPaused))
    };
    WorkerVersion => |()| service.worker.version().await.map_err(to_rpc);
    WorkerDrain => |(index, on)| {
        let by = caller.to_string();
        let outcome = service.worker.on_behalf_of(&by).drain(index, on.unwrap_or(true)).await;
        outcome.map_err(to_rpc)
    };
    WorkerSetPlan => |(index, plan)| service.worker.set_plan(index, plan).await.map_err(to_rpc);
    WorkerStop => |(mode,)| {
        let by = caller.to_string();
        service.worker.on_behalf_of(&by).stop(mode).await.map_err(to_rpc)
    };
    WorkerEvents => |(index, limit)| {
        let limit = match limit {
            None => DEFAULT_EVENT_LIMIT,
            Some(n @ 1..=JOURNAL_LIMIT) => n,
            Some(n) => {
                return Err(RpcError::invalid_params(format!(
                    "limit {n} is out of range: 1 to {JOURNAL_LIMIT}"
                )))
            }
        };
        service.worker.events(index, limit).await.map_err(to_rpc)
    };
    WorkerSetEnv => |(name, value)| {
        if !valid_env_name(&name) || value.contains('\0') {
            return Err(RpcError::invalid_params(
                "invalid environment variable name or value",
            ));
        }
        service.env.lock().unwrap_or_else(|e| e.into_inner()).insert(name, value);
        Ok(())
    };
    WorkerRemoveEnv => |(name,)| {
        if !valid_env_name(&name) {
            return Err(RpcError::invalid_params("invalid environment variable name"));
        }
        service.env.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);
        Ok(())
    };
}}

/// An [`AdminTransport`] over HTTP: the admin API of a worker at `host:port`.
///
/// Pause and resume first list the threads, so that the answer can say what happened
/// (paused at once, requested during a proof call, already paused) even from a worker
/// whose API only answers `true`, and so that a state is checked against the thread's
/// plan before anything is sent.
#[derive(Debug)]
pub struct HttpAdminClient {
    rpc: RpcClient,
}

impl HttpAdminClient {
    /// A client of the worker at `address` (`host:port`).
    pub fn new(
        address: &str,
        token: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self, AdminError> {
        let rpc = RpcClient::new(address, "/", token, timeouts).map_err(admin_error)?;
        Ok(Self { rpc })
    }

    /// The worker's address.
    pub fn address(&self) -> &str {
        self.rpc.address()
    }

    async fn thread(&self, index: u64) -> Result<ThreadInfo, AdminError> {
        AdminTransport::list(self)
            .await?
            .into_iter()
            .find(|t| t.index as u64 == index)
            .ok_or(AdminError::ThreadNotFound { index })
    }
}

fn admin_error(error: CallError) -> AdminError {
    match error {
        CallError::Unreachable {
            address,
            reason,
            refused,
        } => AdminError::Unreachable {
            address,
            reason: if refused {
                format!("{reason} — is the daemon running?")
            } else {
                reason
            },
        },
        CallError::Unauthorized { address, message } => AdminError::Unauthorized {
            address,
            reason: message,
        },
        CallError::Rpc(e) => {
            let data = e.data.clone().and_then(|d| serde_json::from_value(d).ok());
            match data {
                Some(AdminErrorData::ThreadNotFound { index }) => {
                    AdminError::ThreadNotFound { index }
                }
                Some(AdminErrorData::ResumeRefused {
                    index,
                    state,
                    reason,
                }) => AdminError::ResumeRefused {
                    index,
                    state,
                    reason,
                },
                None => AdminError::Remote {
                    code: e.code,
                    message: e.message,
                },
            }
        }
        CallError::Protocol { address, reason } => {
            AdminError::Internal(format!("{address}: {reason}"))
        }
    }
}

fn is_paused(info: &ThreadInfo) -> bool {
    matches!(info.thread_state, ThreadState::Paused { .. })
}

#[async_trait]
impl AdminTransport for HttpAdminClient {
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError> {
        self.rpc
            .request::<WorkerList>(())
            .await
            .map_err(admin_error)
    }

    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError> {
        let before = self.thread(index).await?;
        let queued = self
            .rpc
            .request::<WorkerPause>((index,))
            .await
            .map_err(admin_error)?;
        if !queued {
            return Err(AdminError::Internal(format!(
                "the worker did not queue the pause of thread #{index}"
            )));
        }
        if is_paused(&before) {
            return Ok(PauseOutcome::AlreadyPaused);
        }
        // Asked again while the first request waits for a proof call: still requested,
        // so that nobody reads the thread as paused (as our worker answers in-process).
        if before.pause_requested {
            return Ok(PauseOutcome::Requested);
        }
        let after = self.thread(index).await?;
        Ok(if is_paused(&after) {
            PauseOutcome::Paused
        } else if after.pause_requested {
            PauseOutcome::Requested
        } else {
            PauseOutcome::Delivered
        })
    }

    async fn resume(&self, index: u64, state: Option<String>) -> Result<ResumeOutcome, AdminError> {
        let thread = self.thread(index).await?;
        // A plan this project does not know (a newer original's): the worker checks.
        let target = match (&state, thread.known_plan()) {
            (Some(name), Some(plan)) => Some(plan.parse_state(name)?),
            _ => None,
        };
        let resumed = self
            .rpc
            .request::<WorkerResume>((index, state))
            .await
            .map_err(admin_error)?;
        Ok(if !resumed {
            ResumeOutcome::NotPaused
        } else if thread.pause_requested && !is_paused(&thread) && target.is_none() {
            // Our worker calls off a pause it had not applied yet.
            ResumeOutcome::PauseCalledOff
        } else {
            ResumeOutcome::Resumed { state: target }
        })
    }

    async fn version(&self) -> Result<String, AdminError> {
        self.rpc
            .request::<WorkerVersion>(())
            .await
            .map_err(admin_error)
    }

    async fn drain(&self, index: u64, on: bool) -> Result<DrainOutcome, AdminError> {
        self.rpc
            .request::<WorkerDrain>((index, Some(on)))
            .await
            .map_err(|e| self.additive_error(e, "cannot drain threads"))
    }

    async fn set_plan(&self, index: u64, plan: Plan) -> Result<PlanSet, AdminError> {
        self.rpc
            .request::<WorkerSetPlan>((index, plan))
            .await
            .map_err(|e| self.additive_error(e, "cannot set a thread's plan"))
    }

    async fn stop(&self, mode: StopMode) -> Result<StopOutcome, AdminError> {
        self.rpc
            .request::<WorkerStop>((mode,))
            .await
            .map_err(|e| self.additive_error(e, "cannot be stopped remotely"))
    }

    async fn events(&self, index: u64, limit: usize) -> Result<Vec<JournalEntry>, AdminError> {
        self.rpc
            .request::<WorkerEvents>((index, Some(limit)))
            .await
            .map_err(|e| self.additive_error(e, "keeps no event history"))
    }
}

impl HttpAdminClient {
    /// The error of a `Damocles.*` call: a worker without the method (an original one)
    /// is told apart from other failures.
    fn additive_error(&self, error: CallError, cannot: &str) -> AdminError {
        match admin_error(error) {
            AdminError::Remote { code, .. } if code == crate::jsonrpc::METHOD_NOT_FOUND => {
                AdminError::Internal(format!(
                    "the worker at {} {cannot} (an original damocles worker?)",
                    self.address()
                ))
            }
            other => other,
        }
    }
}
