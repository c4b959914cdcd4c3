//! What an operator sees of a sealing thread: [`ThreadState`] and [`ThreadInfo`].
//!
//! Both serialise in the original `WorkerInfo` wire shape (snake_case, `thread_state`
//! tagged by `state`), plus the additive `pause_requested` and `draining` flags.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::state::{PlanState, Stage};

/// What a thread is doing right now. `elapsed` is whole seconds since it entered the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state")]
pub enum ThreadState {
    /// Between steps or between jobs.
    Idle,
    /// Paused: waits for `resume`.
    Paused {
        /// Seconds paused.
        elapsed: u64,
    },
    /// Running a step; `proc` names the processor during a proof call (`builtin PC1`).
    Running {
        /// Seconds running.
        elapsed: u64,
        /// The processor, during a proof call.
        proc: Option<String>,
    },
    /// Waiting for a stage slot (concurrency limit).
    Waiting {
        /// Seconds waiting.
        elapsed: u64,
    },
}

impl ThreadState {
    /// The state's name: `Idle`, `Paused`, `Running` or `Waiting`.
    pub fn name(&self) -> &'static str {
        match self {
            ThreadState::Idle => "Idle",
            ThreadState::Paused { .. } => "Paused",
            ThreadState::Running { .. } => "Running",
            ThreadState::Waiting { .. } => "Waiting",
        }
    }

    /// Seconds in this state, where the state counts them.
    pub fn elapsed(&self) -> Option<u64> {
        match self {
            ThreadState::Idle => None,
            ThreadState::Paused { elapsed }
            | ThreadState::Running { elapsed, .. }
            | ThreadState::Waiting { elapsed } => Some(*elapsed),
        }
    }
}

/// `Idle`, `Paused(1m 40s)`, `Running(1m 40s) builtin PC1`, `Waiting(5s)` — the original
/// worker CLI's form (a trailing space after `Running(…)` when there is no processor).
impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(elapsed) = self.elapsed() else {
            return f.write_str(self.name());
        };
        let elapsed = humantime::format_duration(Duration::from_secs(elapsed));
        write!(f, "{}({elapsed})", self.name())?;
        if let ThreadState::Running { proc, .. } = self {
            write!(f, " {}", proc.as_deref().unwrap_or(""))?;
        }
        Ok(())
    }
}

/// One row of `worker list`: a thread, its job and its state.
///
/// On the wire (`VenusWorker.WorkerList`) the plan, job state and stage are strings; a
/// value this project does not know (a newer original worker's plan, state or stage) is
/// kept in [`ThreadInfo::as_sent`] and written back as it came, so that a listing of such
/// a worker never fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ThreadInfoWire", into = "ThreadInfoWire")]
pub struct ThreadInfo {
    /// The index `pause` and `resume` take.
    pub index: usize,
    /// The thread's store location, `-` when it has none.
    pub location: String,
    /// The plan of the current job (or of the next one). An original worker sends `""`
    /// before a thread's first round; that reads as the default plan (`sealer`).
    pub plan: Plan,
    /// The job: a sector id (`s-t010000-2`) or a wdpost job id.
    pub job_id: Option<String>,
    /// The job's state; `None` between jobs (shown as an empty string on the wire).
    pub job_state: Option<PlanState>,
    /// The job's stage label; `None` before the thread's first step.
    pub job_stage: Option<Stage>,
    /// What the thread is doing.
    pub thread_state: ThreadState,
    /// The failure that paused the thread, `<level>: <message>`.
    pub last_error: Option<String>,
    /// A pause was asked for during a proof call and takes effect when it returns.
    pub pause_requested: bool,
    /// The thread finishes its current sector and takes no new one (additive).
    pub draining: bool,
    /// The thread has been in its state far longer than usual for it (additive).
    pub stuck: bool,
    /// The plan the thread's hot config names for its next job, when it differs from
    /// `plan` (additive).
    pub pending_plan: Option<Plan>,
    /// Why the thread's hot config (`<location>/config.toml`) is not used; the thread
    /// keeps its previous configuration (additive).
    pub config_error: Option<String>,
    /// The worker is stopping on request: the thread takes no new step (additive).
    pub stopping: bool,
    /// Values a worker sent that this project does not know, as they came (then `plan`
    /// is the default and `job_state`/`job_stage` are `None`).
    pub as_sent: AsSent,
}

/// The plan, job state and stage of a [`ThreadInfo`] as a worker sent them, where this
/// project does not know them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsSent {
    /// An unknown plan.
    pub plan: Option<String>,
    /// An unknown job state.
    pub job_state: Option<String>,
    /// An unknown stage label.
    pub job_stage: Option<String>,
}

impl ThreadInfo {
    /// The plan as it is shown: as the worker sent it when unknown here.
    pub fn plan_shown(&self) -> &str {
        self.as_sent.plan.as_deref().unwrap_or(self.plan.as_str())
    }

    /// The plan, when this project knows it.
    pub fn known_plan(&self) -> Option<Plan> {
        self.as_sent.plan.is_none().then_some(self.plan)
    }

    /// The job state as it is shown (`""` between jobs).
    pub fn job_state_shown(&self) -> &str {
        match (&self.as_sent.job_state, self.job_state) {
            (Some(raw), _) => raw,
            (None, Some(state)) => state.as_str(),
            (None, None) => "",
        }
    }

    /// The stage label as it is shown (`None` before the first step).
    pub fn job_stage_shown(&self) -> Option<&str> {
        match (&self.as_sent.job_stage, self.job_stage) {
            (Some(raw), _) => Some(raw),
            (None, stage) => stage.map(Stage::as_str),
        }
    }
}

/// [`ThreadInfo`] as it crosses the wire.
#[derive(Serialize, Deserialize)]
struct ThreadInfoWire {
    index: usize,
    location: String,
    plan: String,
    job_id: Option<String>,
    job_state: Option<String>,
    job_stage: Option<String>,
    thread_state: ThreadState,
    last_error: Option<String>,
    #[serde(default)]
    pause_requested: bool,
    #[serde(default)]
    draining: bool,
    #[serde(default)]
    stuck: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_plan: Option<Plan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config_error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    stopping: bool,
}

impl From<ThreadInfoWire> for ThreadInfo {
    fn from(wire: ThreadInfoWire) -> Self {
        let mut as_sent = AsSent::default();
        let plan = match wire.plan.as_str() {
            "" => Plan::default(),
            name => name.parse().unwrap_or_else(|_| {
                as_sent.plan = Some(wire.plan.clone());
                Plan::default()
            }),
        };
        let job_state = match wire.job_state.as_deref().unwrap_or_default() {
            "" => None,
            name => {
                let known = PlanState::deserialize(serde::de::value::StrDeserializer::<
                    serde::de::value::Error,
                >::new(name))
                .ok();
                if known.is_none() {
                    as_sent.job_state = Some(name.to_owned());
                }
                known
            }
        };
        let job_stage = wire.job_stage.and_then(|label| {
            let known = Stage::from_label(&label);
            if known.is_none() {
                as_sent.job_stage = Some(label);
            }
            known
        });
        Self {
            index: wire.index,
            location: wire.location,
            plan,
            job_id: wire.job_id,
            job_state,
            job_stage,
            thread_state: wire.thread_state,
            last_error: wire.last_error,
            pause_requested: wire.pause_requested,
            draining: wire.draining,
            stuck: wire.stuck,
            pending_plan: wire.pending_plan,
            config_error: wire.config_error,
            stopping: wire.stopping,
            as_sent,
        }
    }
}

impl From<ThreadInfo> for ThreadInfoWire {
    fn from(info: ThreadInfo) -> Self {
        Self {
            index: info.index,
            location: info.location.clone(),
            plan: info.plan_shown().to_owned(),
            job_id: info.job_id.clone(),
            job_state: Some(info.job_state_shown().to_owned()),
            job_stage: info.job_stage_shown().map(str::to_owned),
            thread_state: info.thread_state,
            last_error: info.last_error,
            pause_requested: info.pause_requested,
            draining: info.draining,
            stuck: info.stuck,
            pending_plan: info.pending_plan,
            config_error: info.config_error,
            stopping: info.stopping,
        }
    }
}
