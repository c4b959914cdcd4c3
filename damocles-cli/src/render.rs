//! What the command lines print: tab-aligned tables like the original's, one-sentence
//! messages, and the `--json` shapes.
//!
//! JSON shapes (stable):
//! - `worker list --json`: the array of `WorkerInfo` objects exactly as the admin API
//!   answers `VenusWorker.WorkerList` (snake_case, `thread_state` tagged by `state`, plus
//!   `pause_requested`).
//! - `worker pause --json`: `{"index": N, "outcome": "paused" | "requested" |
//!   "already_paused" | "delivered"}`.
//! - `worker resume --json`: `{"index": N, "outcome": "resumed", "state": "S" | null}` or
//!   `{"index": N, "outcome": "not_paused"}`.
//! - any command with `--json` that fails: `{"error": {"kind": K, "message": M}}` on
//!   stdout, K one of `bad_input`, `unreachable`, `unauthorized`, `failed`.

use std::io::Write;

use damocles_core::{PauseOutcome, ResumeOutcome, ThreadInfo};
use serde::Serialize;
use tabwriter::TabWriter;

/// Aligns tab-separated lines as the original does (minimum width 2, padding 2).
pub fn tabulate(lines: &[String]) -> String {
    let mut writer = TabWriter::new(Vec::new()).minwidth(2).padding(2);
    for line in lines {
        // Writing to a Vec cannot fail.
        let _ = writeln!(writer, "{line}");
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `damocles-worker worker list`: `#  location  Plan  JobID  JobState  JobStage
/// ThreadState  LastErr`, `-` for what is missing, errors kept on one line.
pub fn thread_table(threads: &[ThreadInfo]) -> String {
    let mut lines =
        vec!["#\tlocation\tPlan\tJobID\tJobState\tJobStage\tThreadState\tLastErr".to_owned()];
    for t in threads {
        let mut state = t.thread_state.to_string();
        if t.pause_requested {
            state = format!("{} (pause requested)", state.trim_end());
        }
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            t.index,
            t.location,
            t.plan,
            t.job_id.as_deref().unwrap_or("-"),
            t.job_state.map_or("", |s| s.as_str()),
            t.job_stage.map_or("-", |s| s.as_str()),
            state,
            t.last_error
                .as_deref()
                .map_or_else(|| "-".to_owned(), |e| e.escape_debug().to_string()),
        ));
    }
    tabulate(&lines)
}

/// What a pause did, in one sentence.
pub fn pause_message(index: u64, outcome: PauseOutcome) -> String {
    match outcome {
        PauseOutcome::Paused => format!("thread #{index} paused"),
        PauseOutcome::Requested => format!(
            "pause of thread #{index} requested: it is in a proof call and pauses as soon as the call returns and its result is saved"
        ),
        PauseOutcome::AlreadyPaused => {
            format!("thread #{index} was already paused; nothing changed")
        }
        PauseOutcome::Delivered => format!(
            "pause of thread #{index} delivered: the thread pauses at its next step"
        ),
    }
}

/// What a resume did, in one sentence.
pub fn resume_message(index: u64, outcome: &ResumeOutcome) -> String {
    match outcome {
        ResumeOutcome::Resumed { state: Some(state) } => {
            format!("thread #{index} resumed at {state}")
        }
        ResumeOutcome::Resumed { state: None } => {
            format!("thread #{index} resumed: it re-runs its current state")
        }
        ResumeOutcome::NotPaused => {
            format!("thread #{index} is not paused; nothing to resume")
        }
    }
}

/// `worker pause --json`.
#[derive(Debug, Serialize)]
pub struct PauseJson {
    /// The thread.
    pub index: u64,
    /// What happened.
    pub outcome: PauseOutcome,
}

/// `worker resume --json`.
#[derive(Debug, Serialize)]
pub struct ResumeJson<'a> {
    /// The thread.
    pub index: u64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: &'a ResumeOutcome,
}

/// The JSON of a failure.
#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    /// The failure.
    pub error: ErrorBody<'a>,
}

/// Its kind and message.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// `bad_input`, `unreachable`, `unauthorized` or `failed`.
    pub kind: &'a str,
    /// What went wrong.
    pub message: String,
}

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{e}"));
    text.push('\n');
    text
}
