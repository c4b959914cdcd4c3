//! What an operator sees of a sealing thread: [`ThreadState`] and [`ThreadInfo`].
//!
//! Both serialise in the original `WorkerInfo` wire shape (snake_case, `thread_state`
//! tagged by `state`), plus the additive `pause_requested` and `draining` flags.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadInfo {
    /// The index `pause` and `resume` take.
    pub index: usize,
    /// The thread's store location, `-` when it has none.
    pub location: String,
    /// The plan of the current job (or of the next one). An original worker sends `""`
    /// before a thread's first round; that reads as the default plan (`sealer`).
    #[serde(deserialize_with = "plan_wire::deserialize")]
    pub plan: Plan,
    /// The job: a sector id (`s-t010000-2`) or a wdpost job id.
    pub job_id: Option<String>,
    /// The job's state; `None` between jobs (shown as an empty string on the wire).
    #[serde(with = "job_state_wire")]
    pub job_state: Option<PlanState>,
    /// The job's stage label; `None` before the thread's first step.
    #[serde(with = "stage_wire")]
    pub job_stage: Option<Stage>,
    /// What the thread is doing.
    pub thread_state: ThreadState,
    /// The failure that paused the thread, `<level>: <message>`.
    pub last_error: Option<String>,
    /// A pause was asked for during a proof call and takes effect when it returns.
    #[serde(default)]
    pub pause_requested: bool,
    /// The thread finishes its current sector and takes no new one (additive).
    #[serde(default)]
    pub draining: bool,
    /// The thread has been in its state far longer than usual for it (additive).
    #[serde(default)]
    pub stuck: bool,
}

mod plan_wire {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Plan, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty() {
            return Ok(Plan::default());
        }
        name.parse().map_err(serde::de::Error::custom)
    }
}

mod job_state_wire {
    use super::*;

    pub fn serialize<S: Serializer>(state: &Option<PlanState>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(state.map(PlanState::as_str).unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PlanState>, D::Error> {
        let name = Option::<String>::deserialize(d)?.unwrap_or_default();
        if name.is_empty() {
            return Ok(None);
        }
        PlanState::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&name)).map(Some)
    }
}

mod stage_wire {
    use super::*;

    pub fn serialize<S: Serializer>(stage: &Option<Stage>, s: S) -> Result<S::Ok, S::Error> {
        match stage {
            Some(stage) => s.serialize_some(stage.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Stage>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(label) => Stage::from_label(&label)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown stage {label:?}"))),
        }
    }
}
