//! The worker's periodic report to the manager (`Venus.WorkerPing`): once at start, then
//! every `ping_interval`. A failed report is logged and retried at the next tick; it never
//! stops sealing.

use std::sync::Arc;
use std::time::Duration;

use damocles_core::Reporter;
use tokio::task::JoinHandle;

use crate::worker::Worker;

/// Who the worker says it is in its reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportIdentity {
    /// The instance name.
    pub name: String,
    /// Where its admin API can be reached (`host:port`).
    pub dest: String,
}

/// Reports `worker` through `reporter` every `interval` until the task is aborted.
pub fn spawn_reporting(
    worker: Arc<Worker>,
    reporter: Arc<dyn Reporter>,
    identity: ReportIdentity,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticks.tick().await;
            let report = worker.report(&identity.name, &identity.dest);
            match reporter.report(&report).await {
                Ok(()) if failing => {
                    tracing::info!("reporting to the manager again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!("failed to ping the manager: {e}");
                    failing = true;
                }
            }
        }
    })
}
