//! The worker's metrics, in the Prometheus text format: per-stage proof call durations
//! (labels `plan`, `stage`), waits for a stage slot, threads by state, failures by level,
//! sectors finished and aborted, and admin calls by method with their latency (recorded
//! by whoever serves the admin API).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use damocles_core::{FailureLevel, Plan, ProofStage, ThreadInfo, ThreadState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    plan: String,
    stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabels {
    stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    level: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

/// The proof calls of one stage, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageStat {
    /// How many calls returned.
    pub calls: u64,
    /// Their total duration.
    pub total: Duration,
}

fn seconds_histogram() -> Histogram {
    // 1 ms … about 70 minutes.
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

/// The metrics of one worker; shared by its threads.
pub struct WorkerMetrics {
    registry: Registry,
    stage_duration: Family<StageLabels, Histogram, fn() -> Histogram>,
    slot_wait: Family<SlotLabels, Histogram, fn() -> Histogram>,
    threads: Family<StateLabels, Gauge>,
    stuck: Gauge,
    failures: Family<LevelLabels, Counter>,
    finished: Counter,
    aborted: Counter,
    admin_calls: Family<MethodLabels, Counter>,
    admin_latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    stages: Mutex<BTreeMap<ProofStage, StageCalls>>,
}

/// How many recent proof calls of a stage the median of [`WorkerMetrics::recent_median`]
/// is taken over.
pub const RECENT_CALLS: usize = 25;

/// The proof calls of one stage: summed, and the most recent ones.
#[derive(Debug, Default)]
struct StageCalls {
    stat: StageStat,
    recent: std::collections::VecDeque<Duration>,
}

impl std::fmt::Debug for WorkerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerMetrics").finish_non_exhaustive()
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("damocles_worker");
        let stage_duration = Family::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let slot_wait = Family::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let admin_latency = Family::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let threads = Family::default();
        let stuck = Gauge::default();
        let failures = Family::default();
        let finished = Counter::default();
        let aborted = Counter::default();
        let admin_calls = Family::default();
        registry.register(
            "stage_duration_seconds",
            "Duration of each stage's proof call",
            stage_duration.clone(),
        );
        registry.register(
            "stage_slot_wait_seconds",
            "Time waiting for a stage slot (concurrency limit)",
            slot_wait.clone(),
        );
        registry.register("threads", "Sealing threads by state", threads.clone());
        registry.register(
            "threads_stuck",
            "Threads in one state far longer than usual",
            stuck.clone(),
        );
        registry.register("failures", "Step failures by level", failures.clone());
        registry.register("sectors_finished", "Sectors finished", finished.clone());
        registry.register("sectors_aborted", "Sectors aborted", aborted.clone());
        registry.register(
            "admin_calls",
            "Admin API calls by method",
            admin_calls.clone(),
        );
        registry.register(
            "admin_call_duration_seconds",
            "Admin API call latency by method",
            admin_latency.clone(),
        );
        Self {
            registry,
            stage_duration,
            slot_wait,
            threads,
            stuck,
            failures,
            finished,
            aborted,
            admin_calls,
            admin_latency,
            stages: Mutex::default(),
        }
    }
}

impl WorkerMetrics {
    /// Adds the external processors' call and restart counters.
    pub fn register_processors(&mut self, processors: &crate::processors::Processors) {
        processors.register_metrics(&mut self.registry);
    }
}

impl WorkerMetrics {
    /// A proof call of `stage` (`pc1`, `c2`, …) in a thread of `plan` took `took`.
    pub fn record_stage(&self, plan: Plan, stage: ProofStage, took: Duration) {
        self.stage_duration
            .get_or_create(&StageLabels {
                plan: plan.as_str().to_owned(),
                stage: stage.as_str().to_owned(),
            })
            .observe(took.as_secs_f64());
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let calls = stages.entry(stage).or_default();
        calls.stat.calls += 1;
        calls.stat.total += took;
        if calls.recent.len() == RECENT_CALLS {
            calls.recent.pop_front();
        }
        calls.recent.push_back(took);
    }

    /// The median of the last [`RECENT_CALLS`] proof calls of `stage`, summed over the
    /// threads, once at least `min_calls` have returned.
    pub fn recent_median(&self, stage: ProofStage, min_calls: usize) -> Option<Duration> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let recent = &stages.get(&stage)?.recent;
        if recent.len() < min_calls.max(1) {
            return None;
        }
        let mut sorted: Vec<Duration> = recent.iter().copied().collect();
        sorted.sort_unstable();
        let mid = sorted.len() / 2;
        Some(if sorted.len().is_multiple_of(2) {
            (sorted[mid - 1] + sorted[mid]) / 2
        } else {
            sorted[mid]
        })
    }

    /// A thread waited `took` for a slot of `stage`.
    pub fn record_slot_wait(&self, stage: ProofStage, took: Duration) {
        self.slot_wait
            .get_or_create(&SlotLabels {
                stage: stage.as_str().to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A step failed at `level`.
    pub fn record_failure(&self, level: FailureLevel) {
        self.failures
            .get_or_create(&LevelLabels {
                level: level.to_string(),
            })
            .inc();
    }

    /// A sector was finished.
    pub fn sector_finished(&self) {
        self.finished.inc();
    }

    /// A sector was aborted.
    pub fn sector_aborted(&self) {
        self.aborted.inc();
    }

    /// An admin call of `method` took `took`.
    pub fn record_admin_call(&self, method: &str, took: Duration) {
        let labels = MethodLabels {
            method: method.to_owned(),
        };
        self.admin_calls.get_or_create(&labels).inc();
        self.admin_latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Proof call totals per stage, summed over the threads.
    pub fn stage_totals(&self) -> BTreeMap<String, StageStat> {
        self.stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(stage, calls)| (stage.as_str().to_owned(), calls.stat))
            .collect()
    }

    /// The text exposition, with the thread gauges taken from `threads` now.
    pub fn render(&self, threads: &[ThreadInfo]) -> String {
        for state in ["idle", "running", "waiting", "paused"] {
            let n = threads
                .iter()
                .filter(|t| {
                    matches!(
                        (&t.thread_state, state),
                        (ThreadState::Idle, "idle")
                            | (ThreadState::Running { .. }, "running")
                            | (ThreadState::Waiting { .. }, "waiting")
                            | (ThreadState::Paused { .. }, "paused")
                    )
                })
                .count();
            self.threads
                .get_or_create(&StateLabels {
                    state: state.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.stuck
            .set(i64::try_from(threads.iter().filter(|t| t.stuck).count()).unwrap_or(i64::MAX));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_of_the_recent_calls_of_a_stage() {
        let metrics = WorkerMetrics::default();
        let secs = Duration::from_secs;
        assert_eq!(metrics.recent_median(ProofStage::C2, 3), None);
        for s in [60, 1, 62] {
            metrics.record_stage(Plan::Sealer, ProofStage::C2, secs(s));
        }
        assert_eq!(
            metrics.recent_median(ProofStage::C2, 4),
            None,
            "too few calls"
        );
        assert_eq!(
            metrics.recent_median(ProofStage::C2, 3),
            Some(secs(60)),
            "1 outlier"
        );
        metrics.record_stage(Plan::Sealer, ProofStage::C2, secs(64));
        assert_eq!(
            metrics.recent_median(ProofStage::C2, 3),
            Some(secs(61)),
            "even: the middle two"
        );
        // A slower machine's last 25 calls take over; totals keep everything.
        for _ in 0..RECENT_CALLS {
            metrics.record_stage(Plan::Sealer, ProofStage::C2, secs(300));
        }
        assert_eq!(metrics.recent_median(ProofStage::C2, 3), Some(secs(300)));
        assert_eq!(metrics.stage_totals()["c2"].calls, 29);
        assert_eq!(
            metrics.recent_median(ProofStage::PC1, 1),
            None,
            "another stage"
        );
    }
}
