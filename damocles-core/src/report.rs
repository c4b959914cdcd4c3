//! What a worker reports to the manager, and how the manager judges its liveness.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::thread::{ThreadInfo, ThreadState};

/// Thread counts of a worker, in the `Venus.WorkerPing` wire shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerSummary {
    /// All threads.
    pub threads: u64,
    /// Threads with no job.
    pub empty: u64,
    /// Paused threads.
    pub paused: u64,
    /// Running threads.
    pub running: u64,
    /// Threads waiting for a stage slot.
    pub waiting: u64,
    /// Threads with a last error.
    pub errors: u64,
}

impl WorkerSummary {
    /// Counts threads as the original does: every thread in `threads`; `empty` without a
    /// job; `errors` with a last error; paused, running and waiting by thread state (idle
    /// threads are in none of the three).
    pub fn from_threads<'a>(threads: impl IntoIterator<Item = &'a ThreadInfo>) -> Self {
        let mut summary = Self::default();
        for thread in threads {
            summary.threads += 1;
            summary.empty += u64::from(thread.job_id.is_none());
            summary.errors += u64::from(thread.last_error.is_some());
            match thread.thread_state {
                ThreadState::Idle => {}
                ThreadState::Paused { .. } => summary.paused += 1,
                ThreadState::Running { .. } => summary.running += 1,
                ThreadState::Waiting { .. } => summary.waiting += 1,
            }
        }
        summary
    }
}

/// A worker's periodic report (`Venus.WorkerPing`'s `WorkerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerReport {
    /// The instance name, unique in the cluster.
    pub name: String,
    /// Where its admin API listens, `host:port`.
    pub dest: String,
    /// Its version string.
    pub version: String,
    /// Its thread counts.
    pub summary: WorkerSummary,
}

/// Whether a worker's last report is recent enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// Reported within the expiration.
    Ok,
    /// Silent for longer than the expiration.
    Expired,
}

impl Liveness {
    /// The liveness of a worker that last reported at `last_ping` (Unix seconds) as seen at
    /// `now` (Unix seconds): expired when strictly more than `expiration` has passed. A
    /// report from the future (clock skew) counts as fresh.
    pub fn at(last_ping: i64, now: i64, expiration: Duration) -> Self {
        let age = now.saturating_sub(last_ping);
        let limit = i64::try_from(expiration.as_secs()).unwrap_or(i64::MAX);
        if age > limit {
            Liveness::Expired
        } else {
            Liveness::Ok
        }
    }
}
