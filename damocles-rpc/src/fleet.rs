//! The fleet through the manager: a registered worker's threads and history, and pause,
//! resume, drain and stop, relayed by the manager to the worker's admin API at the dest
//! the worker last reported (additive `Damocles.Fleet*` methods, what the dashboard
//! calls; `util worker …` dials the worker itself, as the original does). The worker sees
//! the manager as the caller and records it in the thread's history.
//!
//! A worker's refusal comes back as the worker gave it (the same code and data, so a
//! refused resume still says which state and why), its message prefixed with the worker
//! as `util worker` names it: `worker '<name>' (<dest>): <message>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use damocles_core::{
    AdminError, AdminTransport, DrainOutcome, JournalEntry, PauseOutcome, Plan, ResumeOutcome,
    StopMode, StopOutcome, ThreadInfo,
};

use crate::admin::{to_rpc, DEFAULT_EVENT_LIMIT};
use crate::client::Timeouts;
use crate::jsonrpc::RpcError;
use crate::method::{handlers, rpc_methods};
use crate::registry::Registry;
use crate::HttpAdminClient;

rpc_methods! {
    /// The methods that relay to a registered worker.
    pub const FLEET_METHODS;
    /// Runs fleet method `name` on a [`Fleet`]; `None` when `name` is not one.
    pub async fn fleet_call;
    /// A worker's threads.
    FleetThreads = "Damocles.FleetThreads", Read, (name: String = "a registered worker's name")
        -> Vec<ThreadInfo> = "[WorkerInfo]",
        "a registered worker's sealing threads, asked of the worker by the manager";
    /// A thread's history.
    FleetEvents = "Damocles.FleetEvents", Read, (
        name: String = "a registered worker's name",
        index: u64 = "a thread index (a whole number from 0)",
        limit: Option<usize> = "a whole number from 1 to 1000, default 100",
    ) -> Vec<JournalEntry> = "[ThreadEvent]", "a thread's event history, oldest first, asked of its worker";
    /// Pauses a thread.
    FleetPause = "Damocles.FleetPause", Admin, (
        name: String = "a registered worker's name",
        index: u64 = "a thread index (a whole number from 0)",
    ) -> PauseOutcome = "\"paused\" | \"requested\" | \"already_paused\" | \"delivered\"",
        "pauses a thread of a registered worker";
    /// Resumes a thread.
    FleetResume = "Damocles.FleetResume", Admin, (
        name: String = "a registered worker's name",
        index: u64 = "a thread index (a whole number from 0)",
        state: Option<String> = "a state of the thread's plan, or null",
    ) -> ResumeOutcome = "ResumeOutcome",
        "resumes a paused thread of a registered worker, at `state` when given; a refusal says why";
    /// Drains a thread, or lifts the drain.
    FleetDrain = "Damocles.FleetDrain", Admin, (
        name: String = "a registered worker's name",
        index: u64 = "a thread index (a whole number from 0)",
        on: bool = "true: drain; false: lift the drain",
    ) -> DrainOutcome = "\"draining\" | \"already_draining\" | \"undrained\" | \"not_draining\"",
        "drains a thread of a registered worker (it finishes its sector and takes no new one), or lifts the drain";
    /// Stops a worker, or calls its pending stop off.
    FleetStop = "Damocles.FleetStop", Admin, (
        name: String = "a registered worker's name",
        mode: StopMode = "\"graceful\" | \"now\" | \"cancel\"",
    ) -> StopOutcome = "StopOutcome", "stops a registered worker (exit 75: restart me), or calls its pending stop off";
    /// The states `resume` accepts, by plan.
    ResumeStates = "Damocles.ResumeStates", Read, ()
        -> BTreeMap<String, Vec<String>> = "{\"<plan>\": [state]}",
        "the states a resume accepts for a thread of each plan";
}

/// Relays to registered workers: their dests from `registry`, the workers' admin token
/// when they require one.
pub struct Fleet {
    registry: Arc<dyn Registry>,
    worker_token: Option<String>,
    timeouts: Timeouts,
}

impl Fleet {
    /// Relays to the workers `registry` knows, sending `worker_token`.
    pub fn new(registry: Arc<dyn Registry>, worker_token: Option<String>) -> Self {
        Self {
            registry,
            worker_token,
            timeouts: Timeouts::default(),
        }
    }

    /// The registered worker `name`, and a client of its admin API.
    async fn worker(&self, name: &str) -> Result<Relay, RpcError> {
        let entry = self
            .registry
            .entry(name)
            .await
            .map_err(|e| RpcError::internal(e.to_string()))?
            .ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "no worker named '{name}' has reported to this manager"
                ))
            })?;
        let dest = entry.info.dest;
        let client = HttpAdminClient::new(&dest, self.worker_token.clone(), self.timeouts)
            .map_err(|e| RpcError::internal(format!("worker '{name}' ({dest}): {e}")))?;
        Ok(Relay {
            name: name.to_owned(),
            dest,
            client,
        })
    }
}

/// One registered worker's admin API.
struct Relay {
    name: String,
    dest: String,
    client: HttpAdminClient,
}

impl Relay {
    /// The worker's error as the worker gave it, naming the worker.
    fn failed(&self, error: AdminError) -> RpcError {
        let mut rpc = to_rpc(error);
        rpc.message = format!("worker '{}' ({}): {}", self.name, self.dest, rpc.message);
        rpc
    }
}

impl Fleet {
    /// Worker `name`'s threads.
    pub async fn threads(&self, name: &str) -> Result<Vec<ThreadInfo>, RpcError> {
        let relay = self.worker(name).await?;
        relay.client.list().await.map_err(|e| relay.failed(e))
    }

    /// The last `limit` entries of the history of thread `index` of worker `name`.
    pub async fn events(
        &self,
        name: &str,
        index: u64,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, RpcError> {
        let relay = self.worker(name).await?;
        relay
            .client
            .events(index, limit)
            .await
            .map_err(|e| relay.failed(e))
    }

    /// Pauses thread `index` of worker `name`.
    pub async fn pause(&self, name: &str, index: u64) -> Result<PauseOutcome, RpcError> {
        let relay = self.worker(name).await?;
        relay.client.pause(index).await.map_err(|e| relay.failed(e))
    }

    /// Resumes thread `index` of worker `name`, at `state` when given.
    pub async fn resume(
        &self,
        name: &str,
        index: u64,
        state: Option<String>,
    ) -> Result<ResumeOutcome, RpcError> {
        let relay = self.worker(name).await?;
        relay
            .client
            .resume(index, state)
            .await
            .map_err(|e| relay.failed(e))
    }

    /// Drains thread `index` of worker `name` (`on`), or lifts its drain.
    pub async fn drain(&self, name: &str, index: u64, on: bool) -> Result<DrainOutcome, RpcError> {
        let relay = self.worker(name).await?;
        relay
            .client
            .drain(index, on)
            .await
            .map_err(|e| relay.failed(e))
    }

    /// Stops worker `name`, or calls its pending stop off.
    pub async fn stop(&self, name: &str, mode: StopMode) -> Result<StopOutcome, RpcError> {
        let relay = self.worker(name).await?;
        relay.client.stop(mode).await.map_err(|e| relay.failed(e))
    }
}

/// The states a resume accepts for a thread of each plan, by plan name.
pub fn resume_states() -> BTreeMap<String, Vec<String>> {
    Plan::ALL
        .iter()
        .map(|plan| {
            let states = plan
                .resumable_states()
                .iter()
                .map(ToString::to_string)
                .collect();
            (plan.as_str().to_owned(), states)
        })
        .collect()
}

handlers! { Fleet, |fleet, caller| {
    FleetThreads => |(name,)| fleet.threads(&name).await;
    FleetEvents => |(name, index, limit)| fleet
        .events(&name, index, limit.unwrap_or(DEFAULT_EVENT_LIMIT))
        .await;
    FleetPause => |(name, index)| fleet.pause(&name, index).await;
    FleetResume => |(name, index, state)| fleet.resume(&name, index, state).await;
    FleetDrain => |(name, index, on)| fleet.drain(&name, index, on).await;
    FleetStop => |(name, mode)| fleet.stop(&name, mode).await;
    ResumeStates => |()| Ok(resume_states());
}}
