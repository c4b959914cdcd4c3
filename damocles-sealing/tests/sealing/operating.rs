//! Changing a running worker: a thread's hot config (`<location>/config.toml`) and the
//! worker stop asked for over the admin API.

use std::time::Duration;

use damocles_core::{AdminTransport, Happening, Plan, StopMode, StopOutcome, ThreadState};
use damocles_sealing::hot_config::hot_config_path;

use crate::common::{wait_for, Harness};

fn idle_harness(threads: usize) -> Harness {
    let harness = Harness::new(threads);
    // Nothing to seal: the threads idle.
    harness.chain.limit_sectors(0);
    harness
}

/// `set-plan` switches an idle thread (its idle wait cut short) between a sector plan and
/// wdpost and back; a malformed file keeps the plan in use and says why in the list and
/// the history until it is mended; a removed file brings the configured plan back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_config_switches_an_idle_thread_keeps_the_last_good_one_and_reverts_when_removed() {
    let harness = idle_harness(2);
    let worker = harness.start();
    let limit = Duration::from_secs(30);
    let thread = worker.thread(1).expect("thread 1");
    let set = thread.set_plan(Plan::Wdpost).await.expect("set-plan");
    assert_eq!(
        (set.plan, set.before, set.current_job),
        (Plan::Wdpost, None, None)
    );
    let file = hot_config_path(&harness.dir.path().join("store1"));
    assert_eq!(set.file, file.display().to_string());
    wait_for(&worker, limit, "thread 1 under wdpost", |t| {
        t[1].plan == Plan::Wdpost && t[1].job_state.is_some() && t[0].plan == Plan::Sealer
    })
    .await;

    std::fs::write(
        &file,
        "plan = \"wdpost\"\n[sealing]\nmax_retries = \"many\"\n",
    )
    .expect("write");
    let shown = wait_for(&worker, limit, "the error shown", |t| {
        t[1].config_error.is_some()
    })
    .await;
    let error = shown[1].config_error.clone().expect("error");
    assert!(error.contains("max_retries"), "{error}");
    assert_eq!(shown[1].plan, Plan::Wdpost, "the plan in use stays");

    // Mended: taken at the next job (the options changed too).
    std::fs::write(
        &file,
        "plan = \"wdpost\"\n[sealing]\nmax_retries = 7 # mended\n",
    )
    .expect("write");
    wait_for(&worker, limit, "mended", |t| t[1].config_error.is_none()).await;
    let set = thread.set_plan(Plan::Sealer).await.expect("set-plan");
    assert_eq!(set.before, Some(Plan::Wdpost));
    let shown = wait_for(&worker, limit, "back to sealer", |t| {
        t[1].plan == Plan::Sealer
    })
    .await;
    assert_eq!(shown[1].pending_plan, None);
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("max_retries = 7 # mended"), "{text}");

    std::fs::write(&file, "plan = \"snapup\"\n").expect("write");
    wait_for(&worker, limit, "snapup", |t| t[1].plan == Plan::Snapup).await;
    std::fs::remove_file(&file).expect("remove");
    wait_for(&worker, limit, "the configured plan", |t| {
        t[1].plan == Plan::Sealer
    })
    .await;

    let history: Vec<Happening> = thread
        .events(100)
        .await
        .expect("history")
        .into_iter()
        .map(|e| e.event.what)
        .filter(|w| {
            matches!(
                w,
                Happening::ConfigApplied { .. } | Happening::ConfigRejected { .. }
            )
        })
        .collect();
    let gist: Vec<String> = history
        .iter()
        .map(|w| match w {
            Happening::ConfigApplied { plan, file } => format!("{plan} file={file}"),
            _ => "rejected".into(),
        })
        .collect();
    assert_eq!(
        gist,
        [
            "wdpost file=true",
            "rejected",
            "wdpost file=true",
            "sealer file=true",
            "snapup file=true",
            "sealer file=false"
        ],
        "{history:?}"
    );
    worker.shutdown().await;
}

/// A graceful stop parks every idle thread at once and is then asked to end the process;
/// a stop called off before lets the threads go on, and a second call-off changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_parks_the_threads_and_can_be_called_off() {
    let harness = idle_harness(2);
    let worker = harness.start();
    let limit = Duration::from_secs(30);
    let by = worker.on_behalf_of("operator");
    assert!(matches!(
        by.stop(StopMode::Graceful).await,
        Ok(StopOutcome::Stopping { .. })
    ));
    let shown = wait_for(&worker, limit, "parked", |t| {
        t.iter()
            .all(|t| t.stopping && matches!(t.thread_state, ThreadState::Paused { .. }))
    })
    .await;
    assert!(shown.iter().all(|t| t.last_error.is_none()));
    assert_eq!(by.stop(StopMode::Cancel).await, Ok(StopOutcome::Cancelled));
    assert_eq!(
        by.stop(StopMode::Cancel).await,
        Ok(StopOutcome::NotStopping)
    );
    wait_for(&worker, limit, "going on", |t| {
        t.iter()
            .all(|t| !t.stopping && !matches!(t.thread_state, ThreadState::Paused { .. }))
    })
    .await;
    let stop = by.stop(StopMode::Graceful).await;
    assert!(matches!(stop, Ok(StopOutcome::Stopping { .. })), "{stop:?}");
    let asked = tokio::time::timeout(limit, worker.stop_asked()).await;
    assert_eq!(asked, Ok(StopMode::Graceful));
    let history = worker
        .thread(0)
        .expect("thread")
        .events(100)
        .await
        .expect("history");
    let stops: Vec<(String, bool)> = history
        .into_iter()
        .filter_map(|e| match e.event.what {
            Happening::Stop { by, on } => Some((by, on)),
            _ => None,
        })
        .collect();
    assert_eq!(
        stops,
        [
            ("operator".to_owned(), true),
            ("operator".to_owned(), false),
            ("operator".to_owned(), true)
        ]
    );
    worker.shutdown().await;
}

/// `[processors.limitation.staggered] pc1`: three threads that reach PC1 together start
/// it at least the interval apart, as their histories show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staggered_pc1_starts_are_spaced_by_the_interval_in_the_histories() {
    // No parameters (one process per test): the sectors stop at C2 at once, and the
    // shutdown waits for no C2.
    let cache = tempfile::tempdir().expect("cache");
    std::env::set_var("FIL_PROOFS_PARAMETER_CACHE", cache.path());
    let mut harness = Harness::new(3);
    harness.chain.limit_sectors(3);
    let interval = Duration::from_millis(700);
    harness.limits = damocles_sealing::limits::StageLimits::default()
        .with_staggered([(damocles_core::ProofStage::PC1, interval)]);
    let worker = harness.start();
    // Each start follows a change the worker announces (the thread leaves Waiting).
    let mut changes = worker.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let starts = loop {
        let mut starts = Vec::new();
        for index in 0..3 {
            let history = worker.thread(index).expect("thread").events(100).await;
            starts.extend(history.expect("history").into_iter().filter_map(|e| {
                matches!(e.event.what, Happening::StaggeredStart { .. }).then_some(e.event.at_ms)
            }));
        }
        if starts.len() == 3 {
            break starts;
        }
        let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
        assert!(matches!(changed, Ok(Ok(()))), "{starts:?}");
    };
    worker.shutdown().await;
    let mut starts = starts;
    starts.sort_unstable();
    let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|gap| *gap >= interval.as_millis() as u64),
        "PC1 starts {gaps:?} ms apart"
    );
}

/// A C2 whose parameters another process is generating (its lock held; a first run's
/// manager generates the update and WindowPoSt circuits while the worker seals) waits,
/// saying why; once the generator lets go it goes on, here failing on the files the
/// generator did not leave, as without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c2_waits_while_its_parameters_are_being_generated_saying_why() {
    let cache = tempfile::tempdir().expect("cache");
    // One process per test (nextest): the cache is this test's alone.
    std::env::set_var("FIL_PROOFS_PARAMETER_CACHE", cache.path());
    let circuit =
        damocles_sealing::params::Circuit::Seal(damocles_core::SealProof::StackedDrg2KiBV1_1);
    let lock = std::fs::File::create(circuit.lock_path()).expect("lock file");
    lock.lock().expect("lock");
    assert!(circuit.being_generated());
    let harness = Harness::new(1);
    harness.chain.limit_sectors(1);
    let worker = harness.start();
    let shown = wait_for(
        &worker,
        Duration::from_secs(60),
        "waiting for parameters",
        |t| {
            t[0].last_error
                .as_deref()
                .is_some_and(|e| e.contains("parameters, being generated"))
        },
    )
    .await;
    assert!(
        matches!(shown[0].thread_state, ThreadState::Waiting { .. }),
        "{shown:?}"
    );
    assert_eq!(
        shown[0].job_state.map(|s| s.as_str()),
        Some("C1Done"),
        "{shown:?}"
    );
    drop(lock);
    let paused = wait_for(&worker, Duration::from_secs(60), "C2 failing", |t| {
        matches!(t[0].thread_state, ThreadState::Paused { .. })
    })
    .await;
    let error = paused[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("parameters"), "{error}");
    worker.shutdown().await;
}
