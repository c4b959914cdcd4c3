//! The original's processor protocol (its `vc-processors` `core/ext`): JSON lines over
//! the child's stdin and stdout. The child first prints `<stage> processor ready`; then
//! each request is one line `{"id": u64, "task": …}` and each answer one line
//! `{"id": u64, "err_msg": null | "…", "output": … | null}`, in any order. Logs go to
//! stderr only.

use damocles_core::ProofStage;
use serde::{Deserialize, Serialize};

/// A request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request<T> {
    /// Unique among the child's requests; its answer carries it back.
    pub id: u64,
    /// The stage's task.
    pub task: T,
}

/// An answer line: `output` on success, `err_msg` on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response<O> {
    /// The request's id.
    pub id: u64,
    /// Why the task failed.
    pub err_msg: Option<String>,
    /// The task's output.
    pub output: Option<O>,
}

/// The line a child prints once it takes requests (`c2 processor ready`).
pub fn ready_line(stage: ProofStage) -> String {
    format!("{stage} processor ready")
}

/// The name a sealing daemon (`[[processors.sealing_daemons]]`) gives in its ready line,
/// `EMPTY processor ready`: the original's name of the task-less processor.
pub const DAEMON_NAME: &str = "EMPTY";
