//! The worker's metrics, in the Prometheus text format: per-stage proof call durations
//! (labels `plan`, `stage`), waits for a stage slot, threads by state, failures by level,
//! sectors finished and aborted, and admin calls by method with their latency (recorded
//! by whoever serves the admin API); per thread, taken at each scrape, how long its job has
//! been in its state (labels `thread`, `plan`, `state`, `stage`) and whether it is paused on
//! an error (what deploy/prometheus/damocles.rules.yml alerts on).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use damocles_core::{FailureLevel, Plan, ProofStage, Stage, ThreadInfo, ThreadState};
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThreadStateLabels {
    thread: String,
    plan: String,
    state: String,
    stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThreadLabels {
    thread: String,
}

/// One thread at a scrape: what `worker list` shows, and how long its job has been in its
/// current state.
#[derive(Debug, Clone)]
pub struct ThreadSample {
    /// What `worker list` shows.
    pub info: ThreadInfo,
    /// How long the job has been in its current state (`None` between jobs); shown for a
    /// thread with a job id and a state.
    pub in_state: Option<Duration>,
}

/// The `stage` label of a job stage: the proof stage's name where the stage makes proof
/// calls (`pc1`, `c2`, `transfer`: as in `damocles_worker_stage_duration_seconds`), else the
/// label in snake case (`WaitSeed`: `wait_seed`, `WaitPCLanded`: `wait_pc_landed`); `none`
/// for `-`.
pub fn stage_label(stage: Stage) -> String {
    if let Some(proof) = stage.proof_stage() {
        return proof.as_str().to_owned();
    }
    if stage == Stage::Nothing {
        return "none".to_owned();
    }
    let chars: Vec<char> = stage.as_str().chars().collect();
    let mut label = String::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                label.push('_');
            }
        }
        label.push(c.to_ascii_lowercase());
    }
    label
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
    thread_state_seconds: Family<ThreadStateLabels, Gauge>,
    paused_on_error: Family<ThreadLabels, Gauge>,
    /// Held while a scrape sets the per-thread families (cleared and refilled each time).
    rendering: Mutex<()>,
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
        let thread_state_seconds = Family::default();
        let paused_on_error = Family::default();
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
        registry.register(
            "thread_state_seconds",
            "Seconds each thread's job has been in its current state (threads with a sector or job)",
            thread_state_seconds.clone(),
        );
        registry.register(
            "thread_paused_on_error",
            "1 for a thread paused on a failure (it waits for a resume), 0 for the others",
            paused_on_error.clone(),
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
            thread_state_seconds,
            paused_on_error,
            rendering: Mutex::default(),
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
    pub fn render(&self, threads: &[ThreadSample]) -> String {
        // Two scrapes at once would interleave their clearing and refilling.
        let _rendering = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        for state in ["idle", "running", "waiting", "paused"] {
            let n = threads
                .iter()
                .filter(|t| {
                    matches!(
                        (&t.info.thread_state, state),
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
        self.stuck.set(
            i64::try_from(threads.iter().filter(|t| t.info.stuck).count()).unwrap_or(i64::MAX),
        );
        // Per thread, as they are now: a job's earlier states leave no series behind.
        self.thread_state_seconds.clear();
        self.paused_on_error.clear();
        for t in threads {
            let thread = t.info.index.to_string();
            if let (Some(in_state), Some(_), Some(_)) =
                (t.in_state, &t.info.job_id, t.info.job_state)
            {
                self.thread_state_seconds
                    .get_or_create(&ThreadStateLabels {
                        thread: thread.clone(),
                        plan: t.info.plan_shown().to_owned(),
                        state: t.info.job_state_shown().to_owned(),
                        stage: t
                            .info
                            .job_stage
                            .map_or_else(|| "none".to_owned(), stage_label),
                    })
                    .set(i64::try_from(in_state.as_secs()).unwrap_or(i64::MAX));
            }
            let on_error = matches!(t.info.thread_state, ThreadState::Paused { .. })
                && t.info.last_error.is_some();
            self.paused_on_error
                .get_or_create(&ThreadLabels { thread })
                .set(i64::from(on_error));
        }
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
    use damocles_core::{PlanState, State};

    fn thread(index: usize, state: Option<State>, thread_state: ThreadState) -> ThreadInfo {
        ThreadInfo {
            index,
            location: format!("/s{index}"),
            plan: Plan::Sealer,
            job_id: state.map(|_| format!("s-t01000-{index}")),
            job_state: state.map(PlanState::Sector),
            job_stage: state.map(|s| PlanState::Sector(s).stage(Plan::Sealer)),
            thread_state,
            last_error: None,
            pause_requested: false,
            draining: false,
            stuck: false,
            pending_plan: None,
            config_error: None,
            stopping: false,
            as_sent: Default::default(),
        }
    }

    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn stage_labels_are_snake_case_and_proof_stages_named_as_in_durations() {
        assert_eq!(stage_label(Stage::PC1), "pc1");
        assert_eq!(stage_label(Stage::SyntheticPoRep), "synth_proof");
        assert_eq!(stage_label(Stage::PersistFiles), "transfer");
        assert_eq!(stage_label(Stage::Generate), "window_post");
        assert_eq!(stage_label(Stage::WaitSeed), "wait_seed");
        assert_eq!(stage_label(Stage::WaitPCLanded), "wait_pc_landed");
        assert_eq!(stage_label(Stage::SubmitPreCommit), "submit_pre_commit");
        assert_eq!(stage_label(Stage::PrepareForSnapup), "prepare_for_snapup");
        assert_eq!(stage_label(Stage::Nothing), "none");
    }

    #[test]
    fn each_thread_has_its_time_in_state_and_whether_it_is_paused_on_an_error() {
        let metrics = WorkerMetrics::default();
        let running = ThreadState::Running {
            elapsed: 3,
            proc: None,
        };
        let mut on_error = thread(
            1,
            Some(State::PersistanceSubmitted),
            ThreadState::Paused { elapsed: 9 },
        );
        on_error.last_error = Some("permanent: the seed never came".into());
        let by_operator = thread(2, Some(State::C1Done), ThreadState::Paused { elapsed: 9 });
        let text = metrics.render(&[
            ThreadSample {
                info: thread(0, Some(State::TicketAssigned), running.clone()),
                in_state: Some(Duration::from_millis(7_200_900)),
            },
            ThreadSample {
                info: on_error,
                in_state: Some(Duration::from_secs(42)),
            },
            ThreadSample {
                info: by_operator,
                in_state: Some(Duration::from_secs(5)),
            },
            ThreadSample {
                info: thread(3, None, ThreadState::Idle),
                in_state: None,
            },
        ]);
        let lines = samples(&text);
        for line in [
            r#"damocles_worker_thread_state_seconds{thread="0",plan="sealer",state="TicketAssigned",stage="pc1"} 7200"#,
            r#"damocles_worker_thread_state_seconds{thread="1",plan="sealer",state="PersistanceSubmitted",stage="wait_seed"} 42"#,
            r#"damocles_worker_thread_state_seconds{thread="2",plan="sealer",state="C1Done",stage="c2"} 5"#,
            r#"damocles_worker_thread_paused_on_error{thread="0"} 0"#,
            r#"damocles_worker_thread_paused_on_error{thread="1"} 1"#,
            r#"damocles_worker_thread_paused_on_error{thread="2"} 0"#,
            r#"damocles_worker_thread_paused_on_error{thread="3"} 0"#,
            r#"damocles_worker_threads{state="paused"} 2"#,
        ] {
            assert!(lines.contains(&line), "{line} in\n{text}");
        }
        assert!(
            !text.contains(r#"thread_state_seconds{thread="3""#),
            "a thread without a job has no time in state:\n{text}"
        );

        // The next scrape shows the threads as they are then: no series of earlier states.
        let text = metrics.render(&[ThreadSample {
            info: thread(0, Some(State::PC1Done), running),
            in_state: Some(Duration::from_secs(1)),
        }]);
        let lines = samples(&text);
        assert!(lines.contains(
            &r#"damocles_worker_thread_state_seconds{thread="0",plan="sealer",state="PC1Done",stage="pc2"} 1"#
        ));
        assert!(!text.contains("TicketAssigned"), "{text}");
        assert!(!text.contains(r#"thread="1""#), "{text}");
    }

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
