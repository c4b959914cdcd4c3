//! `set-plan` and `stop`, the same whether asked of a worker directly (`damocles-worker
//! worker …`) or through the manager (`damocles-manager util worker …`): the call, its
//! one-line message and its `--json` shape (the outcome as the worker answered it).

use damocles_core::{AdminTransport, Plan, PlanSet, StopMode, StopOutcome};

use crate::exit::{self, CliError};
use crate::render;

/// The exit code of a worker that stopped on request (`worker stop`): "restart me", for
/// systemd's `RestartForceExitStatus=75` (EX_TEMPFAIL in sysexits.h).
pub const STOPPED_ON_REQUEST: u8 = 75;

/// What `set-plan` did, in one sentence.
pub fn plan_set_message(index: u64, set: &PlanSet) -> String {
    let when = match &set.current_job {
        Some(job) => format!(
            "it takes {} once its current job {job} has finished",
            set.plan
        ),
        None => format!("it holds no job and takes {} now", set.plan),
    };
    let before = match set.before {
        Some(before) if before == set.plan => format!(" (it already named {before})"),
        Some(before) => format!(" (it named {before})"),
        None => String::new(),
    };
    format!(
        "thread #{index}: plan {} written to {}{before}; {when}",
        set.plan, set.file
    )
}

/// What a stop did, in one sentence.
pub fn stop_message(outcome: &StopOutcome) -> String {
    match outcome {
        StopOutcome::Stopping { busy: 0 } => format!(
            "stopping: every thread is at rest; the worker exits with code {STOPPED_ON_REQUEST} (restart me)"
        ),
        StopOutcome::Stopping { busy } => format!(
            "stopping: {busy} thread(s) finish their current proof call first (no proof call is thrown away), then the worker exits with code {STOPPED_ON_REQUEST}; `stop --cancel` calls it off"
        ),
        StopOutcome::Exiting => format!(
            "exiting now with code {STOPPED_ON_REQUEST}; the steps in flight re-run at the next start"
        ),
        StopOutcome::AlreadyStopping { busy } => format!(
            "a stop is already pending ({busy} thread(s) still finishing a step); nothing changed"
        ),
        StopOutcome::Cancelled => "stop called off: the threads go on".into(),
        StopOutcome::NotStopping => "no stop was pending; nothing changed".into(),
    }
}

/// Runs `set-plan` on `client`: the text to print (`prefix`ed) and the exit code.
pub async fn set_plan(
    client: &dyn AdminTransport,
    index: u64,
    plan: Plan,
    json: bool,
    prefix: &dyn Fn(&str) -> String,
) -> (String, u8) {
    match client.set_plan(index, plan).await {
        Ok(set) if json => (render::json(&set), exit::OK),
        Ok(set) => (line(prefix(&plan_set_message(index, &set))), exit::OK),
        Err(e) => failed(json, CliError::from(e)),
    }
}

/// Runs `stop` on `client`.
pub async fn stop(
    client: &dyn AdminTransport,
    mode: StopMode,
    json: bool,
    prefix: &dyn Fn(&str) -> String,
) -> (String, u8) {
    match client.stop(mode).await {
        Ok(outcome) if json => (render::json(&outcome), exit::OK),
        Ok(outcome) => (line(prefix(&stop_message(&outcome))), exit::OK),
        Err(e) => failed(json, CliError::from(e)),
    }
}

fn line(message: String) -> String {
    format!("{}\n", render::cell(&message))
}

fn failed(json: bool, error: CliError) -> (String, u8) {
    (String::new(), render::failure(json, &error))
}

/// `--now` / `--cancel` of `stop`.
#[derive(Debug, clap::Args)]
pub struct StopFlags {
    /// Exit at once: steps in flight are thrown away and re-run at the next start.
    #[arg(long, conflicts_with = "cancel")]
    pub now: bool,
    /// Call off a stop that is pending.
    #[arg(long)]
    pub cancel: bool,
}

impl StopFlags {
    /// The mode the flags ask for.
    pub fn mode(&self) -> StopMode {
        match (self.now, self.cancel) {
            (true, _) => StopMode::Now,
            (_, true) => StopMode::Cancel,
            _ => StopMode::Graceful,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_systemd_unit_restarts_on_the_stop_code() {
        let unit = include_str!("../../deploy/damocles-worker.service");
        let line = format!("RestartForceExitStatus={}", super::STOPPED_ON_REQUEST);
        assert!(
            unit.lines().any(|l| l == line),
            "deploy/damocles-worker.service lacks {line}"
        );
    }
}
