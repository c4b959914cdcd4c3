//! The thread listings: `damocles-worker worker list` and `damocles-manager util worker
//! info`, one row per thread.

use damocles_core::ThreadInfo;

use super::{cell, tabulate};

/// `damocles-worker worker list`: `#  location  Plan  JobID  JobState  JobStage
/// ThreadState  LastErr`, `-` for what is missing, errors kept on one line.
pub fn thread_table(threads: &[ThreadInfo]) -> String {
    tabulate(&threads_with(
        "#\tlocation\tPlan\tJobID\tJobState\tJobStage\tThreadState\tLastErr",
        "-",
        threads,
    ))
}

/// `damocles-manager util worker info`: the threads of one worker, `NULL` for what is
/// missing; nothing at all for a worker without threads.
pub fn info_table(threads: &[ThreadInfo]) -> String {
    if threads.is_empty() {
        return String::new();
    }
    tabulate(&info_lines(threads))
}

/// The lines of [`info_table`] before alignment, the header first (the dashboard makes an
/// HTML table of them).
pub fn info_lines(threads: &[ThreadInfo]) -> Vec<String> {
    threads_with(
        "Index\tLoc\tPlan\tJobID\tJobState\tJobStage\tThreadState\tLastErr",
        "NULL",
        threads,
    )
}

fn threads_with(header: &str, missing: &str, threads: &[ThreadInfo]) -> Vec<String> {
    let mut lines = vec![header.to_owned()];
    for t in threads {
        let mut state = t.thread_state.to_string();
        if t.pause_requested {
            state = format!("{} (pause requested)", state.trim_end());
        }
        if t.stuck {
            state = format!("{} (stuck)", state.trim_end());
        }
        if t.stopping {
            state = format!("{} (stopping)", state.trim_end());
        }
        if t.draining {
            state = if t.job_id.is_none()
                && !matches!(t.thread_state, damocles_core::ThreadState::Paused { .. })
            {
                "idle-drained".to_owned()
            } else {
                format!("{} (draining)", state.trim_end())
            };
        }
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            t.index,
            cell(&t.location),
            cell(&plan_cell(t)),
            cell(t.job_id.as_deref().unwrap_or(missing)),
            cell(t.job_state_shown()),
            cell(t.job_stage_shown().unwrap_or(missing)),
            cell(&state),
            cell(&last_error_cell(t, missing)),
        ));
    }
    lines
}

/// The plan, and the one its hot config names for the next job: `sealer->rebuild`.
fn plan_cell(t: &ThreadInfo) -> String {
    match t.pending_plan {
        Some(next) => format!("{}->{next}", t.plan_shown()),
        None => t.plan_shown().to_owned(),
    }
}

/// The last error; a hot config that is not used is named after it.
fn last_error_cell(t: &ThreadInfo, missing: &str) -> String {
    match (&t.last_error, &t.config_error) {
        (Some(error), Some(config)) => format!("{error}; config.toml not used: {config}"),
        (None, Some(config)) => format!("config.toml not used: {config}"),
        (Some(error), None) => error.clone(),
        (None, None) => missing.to_owned(),
    }
}
