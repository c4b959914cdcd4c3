//! The worker admin API, namespace `VenusWorker`, wire-compatible with the original:
//! [`AdminService`] serves any [`AdminTransport`]; [`HttpAdminClient`] is an
//! [`AdminTransport`] that calls a worker over HTTP (ours or an original one).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use damocles_core::{
    AdminError, AdminTransport, DrainOutcome, JournalEntry, PauseOutcome, ResumeOutcome,
    ThreadInfo, ThreadState, JOURNAL_LIMIT,
};
use serde_json::{json, Value};

use crate::client::{CallError, RpcClient, Timeouts};
use crate::jsonrpc::{result, Params, RpcError, RpcResult, INVALID_PARAMS};
use crate::method::{MethodSpec, Permission};
use crate::server::{Caller, RpcService};

/// `VenusWorker.WorkerList`.
pub const WORKER_LIST: &str = "VenusWorker.WorkerList";
/// `VenusWorker.WorkerPause`.
pub const WORKER_PAUSE: &str = "VenusWorker.WorkerPause";
/// `VenusWorker.WorkerResume`.
pub const WORKER_RESUME: &str = "VenusWorker.WorkerResume";
/// `VenusWorker.WorkerVersion`.
pub const WORKER_VERSION: &str = "VenusWorker.WorkerVersion";
/// `Damocles.WorkerDrain` (additive).
pub const WORKER_DRAIN: &str = "Damocles.WorkerDrain";
/// `Damocles.WorkerEvents` (additive).
pub const WORKER_EVENTS: &str = "Damocles.WorkerEvents";
/// `VenusWorker.WorkerSetEnv`.
pub const WORKER_SET_ENV: &str = "VenusWorker.WorkerSetEnv";
/// `VenusWorker.WorkerRemoveEnv`.
pub const WORKER_REMOVE_ENV: &str = "VenusWorker.WorkerRemoveEnv";

/// The worker admin API's methods.
pub const WORKER_METHODS: &[MethodSpec] = &[
    MethodSpec {
        name: WORKER_LIST,
        params: &[],
        result: "[WorkerInfo]",
        permission: Permission::Read,
        summary: "every sealing thread, in index order",
    },
    MethodSpec {
        name: WORKER_PAUSE,
        params: &["index: u64"],
        result: "bool",
        permission: Permission::Admin,
        summary: "pauses a thread (idempotent); true: the pause is queued",
    },
    MethodSpec {
        name: WORKER_RESUME,
        params: &["index: u64", "state?: string | null"],
        result: "bool",
        permission: Permission::Admin,
        summary: "resumes a paused thread, at `state` when given; false: it was not paused",
    },
    MethodSpec {
        name: WORKER_VERSION,
        params: &[],
        result: "string",
        permission: Permission::Read,
        summary: "the worker's version",
    },
    MethodSpec {
        name: WORKER_DRAIN,
        params: &["index: u64", "on?: bool (default true)"],
        result: "\"draining\" | \"already_draining\" | \"undrained\" | \"not_draining\"",
        permission: Permission::Admin,
        summary: "drains a thread (it finishes its current sector and takes no new one) or, with false, lifts the drain; kept across restarts",
    },
    MethodSpec {
        name: WORKER_EVENTS,
        params: &["index: u64", "limit?: u64 (default 100, at most 1000)"],
        result: "[ThreadEvent]",
        permission: Permission::Read,
        summary: "a thread's event history, oldest first: transitions, pauses and resumes with who asked, drains, failures, aborts",
    },
    MethodSpec {
        name: WORKER_SET_ENV,
        params: &["name: string", "value: string"],
        result: "null",
        permission: Permission::Admin,
        summary: "records an environment variable for external processors (the original's enable-dump); this worker runs none, so it changes nothing",
    },
    MethodSpec {
        name: WORKER_REMOVE_ENV,
        params: &["name: string"],
        result: "null",
        permission: Permission::Admin,
        summary: "forgets a variable recorded by WorkerSetEnv",
    },
];

const INDEX: &str = "a thread index (a whole number from 0)";
const STATE: &str = "a state name or null";
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

fn to_rpc(error: AdminError) -> RpcError {
    match error {
        AdminError::ThreadNotFound { .. }
        | AdminError::InvalidState(_)
        | AdminError::ResumeRefused { .. } => RpcError::invalid_params(error.to_string()),
        other => RpcError::internal(other.to_string()),
    }
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
        let by = caller.to_string();
        match method.name {
            WORKER_LIST => result(&self.worker.list().await.map_err(to_rpc)?),
            WORKER_PAUSE => {
                let index = params.required(0, "index", INDEX)?;
                self.worker.pause_by(index, &by).await.map_err(to_rpc)?;
                result(&true)
            }
            WORKER_RESUME => {
                let index = params.required(0, "index", INDEX)?;
                let state = params.optional(1, "state", STATE)?;
                let outcome = self
                    .worker
                    .resume_by(index, state, &by)
                    .await
                    .map_err(to_rpc)?;
                result(&!matches!(outcome, ResumeOutcome::NotPaused))
            }
            WORKER_VERSION => result(&self.worker.version().await.map_err(to_rpc)?),
            WORKER_DRAIN => {
                let index = params.required(0, "index", INDEX)?;
                let on = params.optional(1, "on", "a boolean")?.unwrap_or(true);
                result(&self.worker.drain_by(index, on, &by).await.map_err(to_rpc)?)
            }
            WORKER_EVENTS => {
                let index = params.required(0, "index", INDEX)?;
                let limit: Option<usize> =
                    params.optional(1, "limit", "a whole number from 1 to 1000")?;
                let limit = match limit {
                    None => DEFAULT_EVENT_LIMIT,
                    Some(n @ 1..=JOURNAL_LIMIT) => n,
                    Some(n) => {
                        return Err(RpcError::invalid_params(format!(
                            "limit {n} is out of range: 1 to {JOURNAL_LIMIT}"
                        )))
                    }
                };
                result(&self.worker.events(index, limit).await.map_err(to_rpc)?)
            }
            WORKER_SET_ENV => {
                let name: String = params.required(0, "name", "a variable name")?;
                let value: String = params.required(1, "value", "a string")?;
                if !valid_env_name(&name) || value.contains('\0') {
                    return Err(RpcError::invalid_params(
                        "invalid environment variable name or value",
                    ));
                }
                self.env
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name, value);
                result(&())
            }
            WORKER_REMOVE_ENV => {
                let name: String = params.required(0, "name", "a variable name")?;
                if !valid_env_name(&name) {
                    return Err(RpcError::invalid_params(
                        "invalid environment variable name",
                    ));
                }
                self.env
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&name);
                result(&())
            }
            other => Err(RpcError::method_not_found(other)),
        }
    }
}

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
        CallError::Unreachable { address, reason } => {
            let reason = if reason == "connection refused" {
                "connection refused — is the daemon running?".to_owned()
            } else {
                reason
            };
            AdminError::Unreachable { address, reason }
        }
        CallError::Unauthorized { address, message } => AdminError::Unauthorized {
            address,
            reason: message,
        },
        CallError::Rpc(e) => {
            let not_found = (e.code == INVALID_PARAMS)
                .then(|| e.message.strip_prefix("worker #"))
                .flatten()
                .and_then(|rest| rest.strip_suffix(" not found"))
                .and_then(|n| n.parse().ok());
            match not_found {
                Some(index) => AdminError::ThreadNotFound { index },
                None => (e.code == INVALID_PARAMS)
                    .then(|| resume_refused(&e.message))
                    .flatten()
                    .unwrap_or(AdminError::Remote {
                        code: e.code,
                        message: e.message,
                    }),
            }
        }
        CallError::Protocol { address, reason } => {
            AdminError::Internal(format!("{address}: {reason}"))
        }
    }
}

/// A refused resume, from its message (`cannot resume thread #N[ at S]: reason`).
fn resume_refused(message: &str) -> Option<AdminError> {
    let rest = message.strip_prefix("cannot resume thread #")?;
    let (head, reason) = rest.split_once(": ")?;
    let (index, state) = match head.split_once(" at ") {
        Some((index, state)) => {
            let state = damocles_core::State::from_name(state)
                .map(damocles_core::PlanState::Sector)
                .or_else(|| {
                    damocles_core::WdPostState::from_name(state)
                        .map(damocles_core::PlanState::WdPost)
                })?;
            (index, Some(state))
        }
        None => (head, None),
    };
    Some(AdminError::ResumeRefused {
        index: index.parse().ok()?,
        state,
        reason: reason.to_owned(),
    })
}

fn is_paused(info: &ThreadInfo) -> bool {
    matches!(info.thread_state, ThreadState::Paused { .. })
}

#[async_trait]
impl AdminTransport for HttpAdminClient {
    async fn list(&self) -> Result<Vec<ThreadInfo>, AdminError> {
        self.rpc
            .call(WORKER_LIST, Value::Null)
            .await
            .map_err(admin_error)
    }

    async fn pause(&self, index: u64) -> Result<PauseOutcome, AdminError> {
        let before = self.thread(index).await?;
        let queued: bool = self
            .rpc
            .call(WORKER_PAUSE, json!([index]))
            .await
            .map_err(admin_error)?;
        if !queued {
            return Err(AdminError::Internal(format!(
                "the worker did not queue the pause of thread #{index}"
            )));
        }
        if is_paused(&before) || before.pause_requested {
            return Ok(PauseOutcome::AlreadyPaused);
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
        let target = match &state {
            Some(name) => Some(thread.plan.parse_state(name)?),
            None => None,
        };
        let resumed: bool = self
            .rpc
            .call(WORKER_RESUME, json!([index, state]))
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
            .call(WORKER_VERSION, Value::Null)
            .await
            .map_err(admin_error)
    }

    async fn drain(&self, index: u64, on: bool) -> Result<DrainOutcome, AdminError> {
        self.rpc
            .call(WORKER_DRAIN, json!([index, on]))
            .await
            .map_err(|e| self.additive_error(e, "cannot drain threads"))
    }

    async fn events(&self, index: u64, limit: usize) -> Result<Vec<JournalEntry>, AdminError> {
        self.rpc
            .call(WORKER_EVENTS, json!([index, limit]))
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
