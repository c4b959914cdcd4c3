//! Sealing threads with real proofs but no Groth parameters: every step up to C2 runs for
//! real (milliseconds for 2KiB), and C2 fails the way the seed document shows. Covers
//! pause, resume, restart, retries and abort without paying for a C2.
//!
//! This binary points `FIL_PROOFS_PARAMETER_CACHE` at an empty directory before any
//! proof call (upstream reads it once per process).

use crate::common;

use std::sync::Once;
use std::time::Duration;

use common::{Harness, MINER};
use damocles_core::sealer_api::ManagerError;
use damocles_core::{
    AdminTransport, PauseOutcome, PlanState, ResumeOutcome, ThreadInfo, ThreadState,
};
use damocles_sealing::mock_chain::{ChainCall, ChainSectorState};
use damocles_sealing::{SealingOptions, Worker};

fn empty_param_cache() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // One empty directory for every test process (nothing writes into it), so that runs
        // leave one behind, not one per process.
        let dir = std::env::temp_dir().join("damocles-no-params");
        std::fs::create_dir_all(&dir).expect("param dir");
        std::env::set_var("FIL_PROOFS_PARAMETER_CACHE", &dir);
    });
}

fn harness(threads: usize) -> Harness {
    empty_param_cache();
    Harness::new(threads)
}

/// Waits at most 60 s for `done`.
async fn wait_for(
    worker: &Worker,
    what: &str,
    done: impl FnMut(&[ThreadInfo]) -> bool,
) -> Vec<ThreadInfo> {
    common::wait_for(worker, Duration::from_secs(60), what, done).await
}

fn paused(info: &ThreadInfo) -> bool {
    matches!(info.thread_state, ThreadState::Paused { .. })
}

fn state_of(info: &ThreadInfo) -> Option<&str> {
    info.job_state.map(PlanState::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_parameters_pause_at_c1done_with_the_upstream_text_and_survive_a_restart() {
    let harness = harness(3);
    let worker = harness.start();
    let threads = wait_for(&worker, "three paused threads", |t| t.iter().all(paused)).await;
    for thread in &threads {
        assert_eq!(state_of(thread), Some("C1Done"));
        assert_eq!(thread.job_stage.map(|s| s.as_str()), Some("C2"));
        let error = thread.last_error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("permanent: c2: No cached parameters found for"),
            "{error}"
        );
    }
    let mut ids: Vec<_> = threads.iter().filter_map(|t| t.job_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["s-t01000-1", "s-t01000-2", "s-t01000-3"]);
    worker.shutdown().await;

    // A restart keeps the paused threads paused, with their errors.
    let worker = harness.start();
    let again = wait_for(&worker, "paused after restart", |t| t.iter().all(paused)).await;
    for (before, after) in threads.iter().zip(&again) {
        assert_eq!(before.job_id, after.job_id);
        assert_eq!(before.last_error, after.last_error);
    }
    assert_eq!(
        harness.chain.counters().allocated,
        3,
        "no sector allocated twice"
    );
    assert_eq!(harness.chain.counters().pre_commits_accepted, 3);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_validates_states_and_aborted_aborts() {
    let harness = harness(1);
    let worker = harness.start();
    wait_for(&worker, "paused", |t| paused(&t[0])).await;
    let before = AdminTransport::list(&worker).await.expect("list");

    // Unknown state, another plan's state, bad index: refused, nothing changed.
    let err = worker.resume(0, Some("Foo".into())).await.unwrap_err();
    assert!(err.is_invalid_state());
    assert!(err.to_string().contains("TreeDBuilt"), "{err}");
    assert!(worker
        .resume(0, Some("SnapEncoded".into()))
        .await
        .unwrap_err()
        .is_invalid_state());
    assert!(worker
        .resume(7, None)
        .await
        .unwrap_err()
        .is_thread_not_found());
    assert!(worker.pause(7).await.unwrap_err().is_thread_not_found());
    let after = AdminTransport::list(&worker).await.expect("list");
    assert_eq!(before[0].job_id, after[0].job_id);
    assert!(paused(&after[0]));

    // Pausing a paused thread changes nothing.
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::AlreadyPaused));

    // Aborted: the sector is reported aborted and the thread takes the next one.
    let first = before[0].job_id.clone();
    let outcome = worker
        .resume(0, Some("Aborted".into()))
        .await
        .expect("resume");
    assert!(matches!(outcome, ResumeOutcome::Resumed { state: Some(_) }));
    wait_for(&worker, "the next sector", |t| {
        t[0].job_id.is_some() && t[0].job_id != first && paused(&t[0])
    })
    .await;
    let aborted = harness
        .chain
        .sector(damocles_core::SectorId::new(MINER, 1))
        .expect("sector 1");
    // The reason the manager is told names the error the thread was paused with.
    let ChainSectorState::Aborted(reason) = &aborted.state else {
        panic!("{:?}", aborted.state);
    };
    assert!(
        reason.starts_with("task aborted after permanent: c2: No cached parameters found"),
        "{reason}"
    );
    // A thread that is running is not "resumed".
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_at_treedbuilt_reseals_from_there() {
    let harness = harness(1);
    let worker = harness.start();
    wait_for(&worker, "paused", |t| paused(&t[0])).await;
    let outcome = worker
        .resume(0, Some("TreeDBuilt".into()))
        .await
        .expect("resume");
    assert!(matches!(outcome, ResumeOutcome::Resumed { .. }));
    // It runs PC1, PC2 (pre-commit answered as a duplicate), C1 again and pauses at C2.
    wait_for(&worker, "paused again", |t| {
        paused(&t[0]) && state_of(&t[0]) == Some("C1Done")
    })
    .await;
    let counters = harness.chain.counters();
    assert_eq!(counters.allocated, 1);
    assert_eq!(counters.pre_commits_accepted, 1);
    assert_eq!(counters.pre_commits_duplicate, 1);
    // Resuming a thread that runs again answers "not paused" and changes nothing.
    worker.shutdown().await;
}

/// Resume at a state whose step would not give the same outputs (its inputs are gone, or
/// it skips steps that never ran) is refused, saying why and what to do, and changes
/// nothing; a resume at the state that makes the input again is accepted, and the sector
/// comes out the same (the chain sees the same pre-commit again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_where_a_step_cannot_give_the_same_outputs_is_refused_and_changes_nothing() {
    let harness = harness(1);
    let worker = harness.start();
    let before = wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
    assert_eq!(state_of(&before[0]), Some("C1Done"));
    let unchanged = |why: &str, threads: &[ThreadInfo]| {
        assert!(paused(&threads[0]), "{why}");
        assert_eq!(threads[0].job_state, before[0].job_state, "{why}");
        assert_eq!(threads[0].last_error, before[0].last_error, "{why}");
    };
    let refused = |state: &'static str| {
        let worker = &worker;
        async move {
            let err = worker
                .resume(0, Some(state.into()))
                .await
                .expect_err("refused");
            assert!(err.is_invalid_state(), "{err}");
            err.to_string()
        }
    };

    let err = refused("C2Done").await;
    assert!(
        err.starts_with("cannot resume thread #0 at C2Done: the sector is at C1Done"),
        "{err}"
    );
    let err = refused("SyntheticPoRepNeeded").await;
    assert!(err.contains("does not generate synthetic PoRep"), "{err}");
    unchanged("after skipping ahead", &worker.list());

    // The staged file is gone: PC2 could not restore the sealed file from it, nor PC1
    // read it. Both are refused, naming the file and where to resume instead.
    let sector = damocles_core::SectorId::new(MINER, 1).to_string();
    let staged = harness
        .dir
        .path()
        .join("store0/data/unsealed")
        .join(&sector);
    std::fs::remove_file(&staged).expect("remove the staged file");
    for state in ["PC1Done", "TicketAssigned", "TreeDBuilt", "PieceAdded"] {
        let err = refused(state).await;
        assert!(err.contains("needs the staged file"), "{err}");
        assert!(err.contains(&sector), "names the file: {err}");
        assert!(
            err.ends_with("resume at DealsAcquired to make it again"),
            "{err}"
        );
    }
    // TreeDBuilt's own step needs no file, but PC1's, which runs after it, does.
    let err = refused("TreeDBuilt").await;
    assert!(
        err.contains("the step of TicketAssigned, which runs after it, needs the staged file"),
        "{err}"
    );
    unchanged("after the refusals", &worker.list());
    let journal = worker.events(0, 1000).await.expect("events");
    assert!(
        !journal
            .iter()
            .any(|e| matches!(e.event.what, damocles_core::Happening::Resumed { .. })),
        "a refused resume is not in the history"
    );

    // DealsAcquired writes the staged file again: accepted, and the same sector results.
    assert!(matches!(
        worker.resume(0, Some("DealsAcquired".into())).await,
        Ok(ResumeOutcome::Resumed { .. })
    ));
    let after = wait_for(&worker, "paused at C1Done again", |t| {
        paused(&t[0]) && state_of(&t[0]) == Some("C1Done")
    })
    .await;
    assert_eq!(
        after[0].last_error, before[0].last_error,
        "C2 again, not a mismatch"
    );
    assert!(staged.is_file());
    let counters = harness.chain.counters();
    assert_eq!(counters.pre_commits_accepted, 1);
    assert_eq!(
        counters.pre_commits_duplicate, 1,
        "the same comm_r was sent again"
    );
    worker.shutdown().await;
}

/// Mounts a small tmpfs over a directory for the life of the value (needs root, as the
/// project's machines and CI have).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Self(dir.to_owned())
    }

    /// Fills the disk; returns the filler file.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = [0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        filler
    }

    /// Fills whatever room was freed since.
    fn top_up(&self, filler: &std::path::Path) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(filler)
            .expect("filler");
        while file.write_all(&[0u8; 512]).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A thread whose state database hits a full disk pauses with the I/O error; resume
/// while the disk is still full is refused saying so (nothing changes); once space is
/// freed, resume re-opens the database and the thread goes on without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_meta_pauses_the_thread_and_resume_reopens_the_store() {
    let harness = harness(1);
    let disk = SmallDisk::mount(&harness.dir.path().join("store0/meta"), "2m");
    let worker = harness.start();
    let params_error = wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await[0]
        .last_error
        .clone();
    let filler = disk.fill();
    // An in-process resume (which does not check the store first) re-runs C2's state and
    // saves the record. redb may still find room inside its file for a commit or two, so
    // resume until a save needs the disk (bounded).
    let mut error = String::new();
    for _ in 0..50 {
        let outcome = damocles_core::SealingThread::resume(&worker.threads()[0], None);
        assert!(
            matches!(outcome, Ok(ResumeOutcome::Resumed { .. })),
            "{outcome:?}"
        );
        let threads = wait_for(&worker, "paused again", |t| {
            paused(&t[0]) && t[0].last_error.is_some()
        })
        .await;
        error = threads[0].last_error.clone().unwrap_or_default();
        if error != params_error.clone().unwrap_or_default() {
            break;
        }
    }
    assert!(error.starts_with("critical: state store "), "{error}");
    assert!(error.contains("No space left on device"), "{error}");

    // The operator's resume re-opens the store and writes the record back first, which
    // fails while the disk is full. redb may still find a free page for that write (the
    // failed commit left some): then the thread runs and pauses again, and the disk is
    // topped up (bounded).
    let mut refused = None;
    for _ in 0..20 {
        disk.top_up(&filler);
        match worker.resume(0, None).await {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => {
                let threads = wait_for(&worker, "paused again", |t| {
                    paused(&t[0]) && t[0].last_error.is_some()
                })
                .await;
                error = threads[0].last_error.clone().unwrap_or_default();
            }
        }
    }
    let err = refused.expect("still full: a resume is refused");
    assert!(
        err.to_string()
            .starts_with("cannot resume thread #0: state store "),
        "{err}"
    );
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(worker.list()[0].last_error.as_deref(), Some(error.as_str()));

    std::fs::remove_file(&filler).expect("free the space");
    assert!(matches!(
        worker.resume(0, None).await,
        Ok(ResumeOutcome::Resumed { .. })
    ));
    // It runs C2 again, which fails for want of parameters: the store works again.
    let threads = wait_for(&worker, "paused on C2 again", |t| {
        paused(&t[0]) && t[0].last_error == params_error
    })
    .await;
    assert_eq!(state_of(&threads[0]), Some("C1Done"));
    worker.shutdown().await;
    drop(disk);
}

/// A record names its plan: after a restart with another plan configured, the thread
/// finishes its job under the record's plan (here it re-seals from TreeDBuilt under the
/// sealer plan), and only its next job is of the configured plan, which this worker does
/// not run yet: it pauses saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_finishes_its_job_under_the_plan_its_record_names() {
    let mut harness = harness(1);
    let worker = harness.start();
    let before = wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
    worker.shutdown().await;

    harness.plan = damocles_core::Plan::Wdpost;
    let worker = harness.start();
    let threads = wait_for(&worker, "paused after restart", |t| paused(&t[0])).await;
    assert_eq!(
        threads[0].plan,
        damocles_core::Plan::Sealer,
        "the record's plan"
    );
    assert_eq!(threads[0].job_id, before[0].job_id);
    worker
        .resume(0, Some("TreeDBuilt".into()))
        .await
        .expect("resume");
    let threads = wait_for(&worker, "re-sealed to C1Done", |t| {
        paused(&t[0]) && state_of(&t[0]) == Some("C1Done")
    })
    .await;
    assert_eq!(
        threads[0].last_error, before[0].last_error,
        "the sealer's C2 failure"
    );
    assert_eq!(harness.chain.counters().pre_commits_duplicate, 1);

    // Dropped, the thread takes its next job under the configured plan.
    worker
        .resume(0, Some("Aborted".into()))
        .await
        .expect("resume");
    let threads = wait_for(&worker, "waiting for a WindowPoSt job", |t| {
        t[0].plan == damocles_core::Plan::Wdpost
    })
    .await;
    assert!(!paused(&threads[0]), "{threads:?}");
    assert_eq!(
        threads[0].job_state,
        Some(PlanState::WdPost(damocles_core::WdPostState::Empty))
    );
    assert_eq!(threads[0].last_error, None);
    assert_eq!(
        harness.chain.counters().allocated,
        1,
        "no sector for a wdpost job"
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_retry_then_pause_as_permanent() {
    let mut harness = harness(1);
    harness.options.max_retries = 2;
    harness.chain.fail_next(
        ChainCall::AssignTicket,
        10,
        ManagerError::transport("connection refused"),
    );
    let worker = harness.start();
    let threads = wait_for(&worker, "paused", |t| paused(&t[0])).await;
    assert_eq!(state_of(&threads[0]), Some("TicketAssigned"));
    assert_eq!(
        threads[0].last_error.as_deref(),
        Some("permanent: AssignTicket: rpc error: connection refused")
    );
    // Resume re-runs the state; the fault is still there (10 calls), so it pauses again.
    assert!(matches!(
        worker.resume(0, None).await,
        Ok(ResumeOutcome::Resumed { state: None })
    ));
    let threads = wait_for(&worker, "paused again", |t| {
        paused(&t[0]) && t[0].last_error.is_some()
    })
    .await;
    assert_eq!(state_of(&threads[0]), Some("TicketAssigned"));
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_reaches_an_idle_thread_at_once() {
    let mut harness = harness(1);
    // No sector to allocate: the thread idles, polling.
    harness.chain.fail_next(
        ChainCall::AllocateSector,
        usize::MAX,
        ManagerError::transport("manager down"),
    );
    harness.options = SealingOptions {
        recover_interval: Duration::from_secs(3600),
        ..SealingOptions::immediate()
    };
    let worker = harness.start();
    wait_for(&worker, "idle", |t| state_of(&t[0]) == Some("Empty")).await;
    assert_eq!(worker.resume(0, None).await, Ok(ResumeOutcome::NotPaused));
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::Paused));
    let threads = wait_for(&worker, "paused", |t| paused(&t[0])).await;
    assert_eq!(threads[0].last_error, None, "a pause is not an error");
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::AlreadyPaused));
    assert!(matches!(
        worker.resume(0, None).await,
        Ok(ResumeOutcome::Resumed { .. })
    ));
    wait_for(&worker, "running again", |t| !paused(&t[0])).await;
    worker.shutdown().await;
}

/// A pause asked while `AllocateSector` is on the wire waits for its answer: the sector
/// the manager handed out is recorded, and the thread pauses holding it (before, the
/// answer was dropped and the allocated sector held by nobody).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_during_allocation_keeps_the_allocated_sector() {
    let harness = harness(1);
    harness.chain.limit_sectors(1);
    harness
        .chain
        .delay_allocation_answers(Duration::from_millis(800));
    let worker = harness.start();
    for _ in 0..200 {
        if harness.chain.counters().allocated == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(harness.chain.counters().allocated, 1, "allocated");
    // The answer is still on its way.
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::Paused));
    // Shown paused at once; the thread records the sector when the answer comes.
    let threads = common::wait_for(
        &worker,
        Duration::from_secs(10),
        "paused holding the sector",
        |t| paused(&t[0]) && state_of(&t[0]) == Some("Allocated"),
    )
    .await;
    assert_eq!(
        threads[0].job_id.as_deref(),
        Some("s-t01000-1"),
        "the allocated sector is the thread's"
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_reaches_a_thread_waiting_for_a_stage_slot() {
    let mut harness = harness(1);
    // No PC1 slot at all: the thread waits for one until paused.
    harness.limits =
        damocles_sealing::limits::StageLimits::new([(damocles_core::ProofStage::PC1, 0)]);
    let worker = harness.start();
    let threads = wait_for(&worker, "waiting for a PC1 slot", |t| {
        matches!(t[0].thread_state, ThreadState::Waiting { .. })
    })
    .await;
    assert_eq!(state_of(&threads[0]), Some("TicketAssigned"));
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::Paused));
    let threads = wait_for(&worker, "paused", |t| paused(&t[0])).await;
    assert_eq!(state_of(&threads[0]), Some("TicketAssigned"));
    assert!(!threads[0].pause_requested, "a wait is not a proof call");
    // Resumed, it waits for the slot again.
    assert!(matches!(
        worker.resume(0, None).await,
        Ok(ResumeOutcome::Resumed { state: None })
    ));
    wait_for(&worker, "waiting again", |t| {
        matches!(t[0].thread_state, ThreadState::Waiting { .. })
    })
    .await;
    worker.shutdown().await;
}

/// While a WindowPoSt job is being proven, a sector about to start PC2 waits (shown as
/// Waiting, pausable), and starts once the job is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pc2_waits_while_a_window_post_job_is_proven() {
    let mut harness = harness(1);
    harness.priority = damocles_sealing::priority::PostPriority::new(Default::default());
    let proving = harness.priority.proving().expect("on");
    let worker = harness.start();
    let threads = wait_for(&worker, "waiting before PC2", |t| {
        matches!(t[0].thread_state, ThreadState::Waiting { .. })
    })
    .await;
    assert_eq!(state_of(&threads[0]), Some("PC1Done"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let threads = worker.list();
    assert_eq!(state_of(&threads[0]), Some("PC1Done"), "still waiting");
    assert!(matches!(
        threads[0].thread_state,
        ThreadState::Waiting { .. }
    ));
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::Paused));
    assert!(matches!(
        worker.resume(0, None).await,
        Ok(ResumeOutcome::Resumed { state: None })
    ));
    drop(proving);
    // Without parameters the sector goes on through PC2 and C1 and pauses at C1Done.
    let threads = wait_for(&worker, "past PC2", |t| {
        t[0].job_state.is_some_and(|s| s.as_str() == "C1Done")
    })
    .await;
    assert_eq!(state_of(&threads[0]), Some("C1Done"));
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_thread_finishes_its_sector_takes_no_other_and_stays_drained_across_a_restart() {
    use damocles_core::DrainOutcome;
    let harness = harness(1);
    let worker = harness.start();
    let threads = wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
    let sector = threads[0].job_id.clone();
    assert_eq!(worker.drain(0, true).await, Ok(DrainOutcome::Draining));
    assert_eq!(
        worker.drain(0, true).await,
        Ok(DrainOutcome::AlreadyDraining)
    );
    assert!(worker.list()[0].draining);
    // The current sector still goes on to its end: here (no parameters for C2) it is
    // dropped by a resume at Aborted; skipping to Finished would be refused.
    worker
        .resume(0, Some("Aborted".into()))
        .await
        .expect("resume");
    wait_for(&worker, "idle, drained", |t| {
        t[0].job_id.is_none() && t[0].draining && !paused(&t[0])
    })
    .await;
    let finished = harness
        .chain
        .sector(damocles_core::SectorId::new(MINER, 1))
        .expect("sector 1");
    let ChainSectorState::Aborted(reason) = &finished.state else {
        panic!("{sector:?}: {:?}", finished.state);
    };
    assert!(
        reason.starts_with("task aborted after permanent: c2: No cached parameters found"),
        "{sector:?}: {reason}"
    );
    assert_eq!(harness.chain.counters().allocated, 1, "no new sector taken");
    worker.shutdown().await;

    // The drain survives a restart.
    let worker = harness.start();
    let threads = wait_for(&worker, "drained after restart", |t| t[0].draining).await;
    assert_eq!(threads[0].job_id, None);
    assert_eq!(harness.chain.counters().allocated, 1);
    // Undrained, it takes a sector again.
    assert_eq!(worker.drain(0, false).await, Ok(DrainOutcome::Undrained));
    assert_eq!(worker.drain(0, false).await, Ok(DrainOutcome::NotDraining));
    wait_for(&worker, "a new sector", |t| t[0].job_id.is_some()).await;
    assert_eq!(harness.chain.counters().allocated, 2);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_long_in_one_state_is_flagged_stuck_until_paused() {
    let mut harness = harness(1);
    // Waits for a PC1 slot that never comes; stuck after a second in that state.
    harness.limits =
        damocles_sealing::limits::StageLimits::new([(damocles_core::ProofStage::PC1, 0)]);
    harness.options = SealingOptions {
        stuck_after: Some(Duration::from_secs(1)),
        ..SealingOptions::immediate()
    };
    let worker = harness.start();
    wait_for(&worker, "waiting for PC1", |t| {
        matches!(t[0].thread_state, ThreadState::Waiting { .. })
    })
    .await;
    assert!(!worker.list()[0].stuck, "not yet");
    // Stuck is a matter of time passing: poll for it, at most 10 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !worker.list()[0].stuck {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never flagged: {:#?}",
            worker.list()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = worker.render_metrics();
    assert!(
        metrics.contains("damocles_worker_threads_stuck 1"),
        "{metrics}"
    );
    // A paused thread is the operator's, not stuck.
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::Paused));
    assert!(!worker.list()[0].stuck);
    worker.shutdown().await;
}

/// What a history entry says, in few words: its kind and its main field.
fn gist(entry: &damocles_core::JournalEntry) -> String {
    use damocles_core::Happening;
    match &entry.event.what {
        Happening::Started {
            state,
            paused,
            draining,
        } => format!("started {state} paused={paused} draining={draining}"),
        Happening::Transition { to, .. } => format!("-> {to}"),
        Happening::Failed { level, retry, .. } => format!("failed {level} retry={retry:?}"),
        Happening::Paused { by, reason } => {
            format!("paused by={by:?} on_error={}", reason.is_some())
        }
        Happening::PauseRequested { by } => format!("pause requested by {by}"),
        Happening::PauseCalledOff { by } => format!("pause called off by {by}"),
        Happening::Resumed { by, state } => format!("resumed by {by} at {state:?}"),
        Happening::Drain { by, on } => format!("drain {on} by {by}"),
        // Up to the missing file's name, which names this run's directory.
        Happening::Aborted { reason } => {
            format!(
                "aborted: {}",
                reason.split(" for ").next().unwrap_or_default()
            )
        }
        Happening::Finished => "finished".into(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_records_transitions_failures_and_who_asked_across_a_restart() {
    let mut harness = harness(1);
    harness.options.max_retries = 3;
    harness.chain.fail_next(
        ChainCall::AssignTicket,
        1,
        ManagerError::transport("connection refused"),
    );
    let worker = harness.start();
    wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
    // Nothing changes: nothing is recorded.
    assert_eq!(
        worker.on_behalf_of("ops").pause(0).await,
        Ok(PauseOutcome::AlreadyPaused)
    );
    let resumed = worker
        .on_behalf_of("ops@10.0.0.9")
        .resume(0, Some("Aborted".into()))
        .await
        .expect("resume");
    assert!(matches!(resumed, ResumeOutcome::Resumed { state: Some(_) }));
    wait_for(&worker, "sector 2 paused", |t| {
        t[0].job_id.as_deref() == Some("s-t01000-2") && paused(&t[0])
    })
    .await;
    assert_eq!(
        worker.on_behalf_of("ops").drain(0, true).await,
        Ok(damocles_core::DrainOutcome::Draining)
    );
    worker.shutdown().await;

    let worker = harness.start();
    // The thread records its start before it shows itself paused again.
    wait_for(&worker, "paused after restart", |t| paused(&t[0])).await;
    let entries = worker.events(0, 1_000).await.expect("events");
    let gists: Vec<String> = entries.iter().map(gist).collect();
    let sealed_to_c1done = [
        "-> Allocated",
        "-> DealsAcquired",
        "-> PieceAdded",
        "-> TreeDBuilt",
        "-> TicketAssigned",
        "-> PC1Done",
        "-> PC2Done",
        "-> PCSubmitted",
        "-> PCLanded",
        "-> Persisted",
        "-> PersistanceSubmitted",
        "-> SeedAssigned",
        "-> C1Done",
        "failed permanent retry=None",
        "paused by=None on_error=true",
    ];
    let mut expected = vec!["started Empty paused=false draining=false"];
    // AssignTicket is the step of TicketAssigned (PC1 fetches the ticket).
    expected.extend(&sealed_to_c1done[..5]);
    expected.push("failed temporary retry=Some(1)");
    expected.extend(&sealed_to_c1done[5..]);
    expected.extend([
        "resumed by ops@10.0.0.9 at Some(Sector(Aborted))",
        "-> Aborted",
        // The reason names the error that stopped the job, not only that it was dropped.
        "aborted: task aborted after permanent: c2: No cached parameters found",
    ]);
    expected.extend(sealed_to_c1done);
    expected.extend([
        "drain true by ops",
        "started C1Done paused=true draining=true",
    ]);
    assert_eq!(gists, expected);
    // Numbered in order from 1; each entry names the sector the thread had.
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    assert!(entries
        .windows(2)
        .all(|w| w[0].event.at_ms <= w[1].event.at_ms));
    assert_eq!(entries[0].event.sector, None, "started without a sector");
    assert_eq!(entries[1].event.sector.as_deref(), Some("s-t01000-1"));
    assert_eq!(
        entries.last().and_then(|e| e.event.sector.as_deref()),
        Some("s-t01000-2")
    );
    let failed = entries
        .iter()
        .find(|e| gist(e) == "failed permanent retry=None")
        .expect("the C2 failure");
    assert!(
        failed
            .event
            .what
            .describe()
            .contains("No cached parameters found"),
        "{failed:?}"
    );
    // A limit answers the newest entries.
    let last_two = worker.events(0, 2).await.expect("events");
    assert_eq!(last_two, entries[entries.len() - 2..]);
    worker.shutdown().await;
}

/// Starts `harness`'s worker with its thread pausing itself right after it first saves
/// `state`.
fn start_pausing_at(harness: &Harness, state: damocles_core::State) -> Worker {
    let thread = std::sync::Arc::new(std::sync::OnceLock::new());
    let worker = {
        let thread = thread.clone();
        harness.start_with(move |inner| {
            let mut store = common::Watching::new(inner, Some(state));
            store.thread = thread.clone();
            store.once = true;
            std::sync::Arc::new(store) as std::sync::Arc<dyn damocles_core::StateStore>
        })
    };
    let _ = thread.set(worker.threads()[0].clone());
    worker
}

fn deal_harness() -> Harness {
    let mut harness = harness(1);
    harness.offer_deals(1.0);
    harness.chain.limit_sectors(1);
    harness
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_sector_is_pre_committed_with_its_pieces_comm_d_and_persisted_with_their_bytes() {
    let harness = deal_harness();
    let worker = harness.start();
    let threads = wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
    assert_eq!(state_of(&threads[0]), Some("C1Done"), "{threads:#?}");
    let sector = harness.chain.sectors().remove(0);
    assert!(!sector.deals.is_empty());
    let pieces: Vec<_> = sector
        .deals
        .iter()
        .map(|d| {
            let comm_p = damocles_core::piece::comm_p(&d.piece.cid).expect("a piece cid");
            (comm_p, d.piece.size)
        })
        .collect();
    let comm_d = damocles_sealing::proofs::sector_comm_d(sector.proof_type, &pieces);
    assert_eq!(
        Ok(sector.pre_commit.expect("pre-committed").comm_d),
        comm_d,
        "the chain took the comm_d of the deal pieces"
    );
    assert_eq!(harness.chain.counters().pre_commits_accepted, 1);
    assert_eq!(common::check_unsealed_copies(&harness), 1);
    let downloads = harness.dir.path().join("store0/data/pieces");
    assert_eq!(
        std::fs::read_dir(&downloads).map_or(0, |d| d.count()),
        0,
        "downloaded pieces are removed once written"
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_missing_piece_pauses_the_thread_naming_it_and_writes_nothing() {
    let harness = deal_harness();
    let worker = start_pausing_at(&harness, damocles_core::State::DealsAcquired);
    wait_for(&worker, "paused at DealsAcquired", |t| {
        paused(&t[0]) && state_of(&t[0]) == Some("DealsAcquired")
    })
    .await;
    let sector = harness.chain.sectors().remove(0);
    let cid = sector.deals[0].piece.cid.text.clone();
    let piece = harness.piece_dir().join(&cid);
    let payload = std::fs::read(&piece).expect("the mock's piece");
    let staged = harness
        .dir
        .path()
        .join("store0/data/unsealed")
        .join(sector.id.to_string());
    let thread = &worker.threads()[0];

    let mut tampered = payload.clone();
    tampered[0] ^= 0xff;
    for (bytes, says) in [
        (Some(tampered), "not the one the CID names"),
        (None, "not found"),
    ] {
        match bytes {
            Some(bytes) => std::fs::write(&piece, bytes).expect("tamper"),
            None => std::fs::remove_file(&piece).expect("remove"),
        }
        assert!(matches!(
            damocles_core::SealingThread::resume(thread, None),
            Ok(ResumeOutcome::Resumed { .. })
        ));
        let threads = wait_for(&worker, "paused with an error", |t| {
            paused(&t[0]) && t[0].last_error.is_some()
        })
        .await;
        let error = threads[0].last_error.clone().unwrap_or_default();
        assert!(error.starts_with("permanent: "), "{error}");
        assert!(error.contains(&cid) && error.contains(says), "{error}");
        assert_eq!(state_of(&threads[0]), Some("DealsAcquired"));
        assert!(!staged.exists(), "nothing written: {error}");
    }

    // The right bytes back: the sector goes on.
    std::fs::write(&piece, &payload).expect("restore");
    assert!(matches!(
        damocles_core::SealingThread::resume(thread, None),
        Ok(ResumeOutcome::Resumed { .. })
    ));
    let threads = wait_for(&worker, "paused at C1Done", |t| {
        paused(&t[0]) && state_of(&t[0]) == Some("C1Done")
    })
    .await;
    assert!(threads[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("No cached parameters found")));
    assert_eq!(harness.chain.counters().pre_commits_accepted, 1);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_disable_cc_a_sector_waits_at_allocated_until_deals_come() {
    let mut harness = deal_harness();
    harness
        .chain
        .offer_deals(0.0, &harness.piece_dir())
        .expect("no deals");
    harness.options.disable_cc = true;
    let worker = harness.start();
    let threads = wait_for(&worker, "a sector at Allocated", |t| {
        state_of(&t[0]) == Some("Allocated")
    })
    .await;
    assert_eq!(threads[0].last_error, None);
    // It keeps asking: deals offered now reach it.
    harness
        .chain
        .offer_deals(1.0, &harness.piece_dir())
        .expect("deals");
    let threads = wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
    assert_eq!(state_of(&threads[0]), Some("C1Done"));
    let sector = harness.chain.sectors().remove(0);
    assert!(!sector.deals.is_empty(), "sealed with deals");
    assert_eq!(harness.chain.counters().allocated, 1);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_sector_without_its_unsealed_copy_cannot_resume_at_persist() {
    let harness = deal_harness();
    let worker = harness.start();
    wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
    let sector = harness.chain.sectors().remove(0);
    let staged = harness
        .dir
        .path()
        .join("store0/data/unsealed")
        .join(sector.id.to_string());
    std::fs::remove_file(&staged).expect("remove the staged file");
    let refused = damocles_core::SealingThread::resume(&worker.threads()[0], Some("PCLanded"));
    let message = format!("{refused:?}");
    assert!(
        message.contains("the staged file") && message.contains("DealsAcquired"),
        "{message}"
    );
    worker.shutdown().await;
}

/// How many C1 calls the worker's metrics count.
fn c1_calls(worker: &Worker) -> u64 {
    worker
        .render_metrics()
        .lines()
        .find(|l| l.contains("stage_duration_seconds_count") && l.contains("stage=\"c1\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// `verify_after_pc2` runs C1 with a zero seed inside PC2's step (a C1 call more per
/// sector), and a sealed sector passes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_after_pc2_runs_a_c1_before_the_pre_commit() {
    for (verify, calls) in [(false, 1), (true, 2)] {
        let mut harness = harness(1);
        harness.chain.limit_sectors(1);
        harness.options.verify_after_pc2 = verify;
        let worker = harness.start();
        let threads = wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
        assert_eq!(state_of(&threads[0]), Some("C1Done"), "{threads:#?}");
        assert_eq!(c1_calls(&worker), calls, "verify_after_pc2 = {verify}");
        assert_eq!(harness.chain.counters().pre_commits_accepted, 1);
        worker.shutdown().await;
    }
}

/// Dropping a worker stops its threads: they let go of their state databases, which a new
/// store on the same location can then read (each redb file opens once per process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_worker_stops_its_threads() {
    let harness = harness(1);
    let worker = harness.start();
    let before = wait_for(&worker, "paused at C1Done", |t| paused(&t[0])).await;
    let location = damocles_sealing::store::Location::init(&harness.dir.path().join("store0"))
        .expect("location");
    let open = || damocles_sealing::store::RedbStateStore::open(&location);
    assert!(open().is_err(), "held by the running thread");
    drop(worker);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let store = loop {
        match open() {
            Ok(store) => break store,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the dropped worker's thread still holds its database: {e}"),
        }
    };
    use damocles_core::StateStore;
    let record = store.load().await.expect("load");
    let record = record.expect("the record");
    assert_eq!(record.state.as_str(), "C1Done");
    assert!(record.paused, "saved as it was: {:?}", before[0].last_error);
}

/// A snap-up job whose sector lives in a store this worker has not attached is handed
/// back at once, and the thread idles saying why (asking again only after its
/// recover_interval), instead of taking and dropping it in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapup_sector_in_a_store_not_attached_is_handed_back_and_the_thread_idles() {
    let mut harness = harness(1);
    harness.offer_deals(0.0);
    harness.plan = damocles_core::Plan::Snapup;
    harness.options.recover_interval = Duration::from_millis(500);
    let chain = &harness.chain;
    // A CC sector finished and persisted to a store named "elsewhere".
    let sector = common::finished_sectors_without_files(chain, "elsewhere", 1).await[0];

    let worker = harness.start();
    let threads = wait_for(&worker, "idle, saying why", |t| t[0].last_error.is_some()).await;
    assert_eq!(threads[0].thread_state, ThreadState::Idle);
    assert_eq!(threads[0].job_id, None);
    let error = threads[0].last_error.clone().unwrap_or_default();
    assert!(
        error.starts_with(
            "AllocateSanpUpSector: s-t01000-1 is in store elsewhere, which is not attached"
        ),
        "{error}"
    );
    let history = worker.events(0, 100).await.expect("events");
    worker.shutdown().await;
    assert!(
        history.iter().all(|e| e.event.sector.is_none()),
        "no job was taken: {history:#?}"
    );
    assert_eq!(
        chain.sector(sector.id).map(|s| s.state),
        Some(ChainSectorState::Finished),
        "handed back"
    );
    // Each dropped offer's pieces are removed.
    let deals = chain
        .sector(sector.id)
        .and_then(|s| s.upgrade)
        .map(|u| u.deals);
    assert_eq!(deals, None);
    let left = std::fs::read_dir(harness.piece_dir())
        .expect("piece dir")
        .count();
    assert_eq!(left, 0, "pieces of dropped offers are removed");
}

/// A wdpost thread without parameters: sectors whose files are missing are faults (no
/// SNARK is needed when every sector is one), resume at a state follows the job, and a
/// job in a store the worker has not attached is handed back until the manager gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wdpost_thread_reports_faults_resumes_by_its_job_and_hands_back_what_it_cannot_reach() {
    use damocles_core::{Plan, WdPostState};
    use damocles_sealing::mock_chain::WdPostJobState;

    let mut harness = harness(1);
    harness.plan = Plan::Wdpost;
    harness.options.recover_interval = Duration::from_millis(100);
    harness.options.max_retries = 1000;
    let chain = harness.chain.clone();
    chain.schedule_wdpost(None, 4, Duration::from_secs(60));
    common::finished_sectors_without_files(&chain, "remote", 2).await;
    let job = |id: &str| chain.wdpost_jobs().into_iter().find(|j| j.id == id);
    let finished = |id: &'static str| {
        let chain = chain.clone();
        // Done on the chain, and let go of by the thread (its history written).
        move |threads: &[ThreadInfo]| {
            threads[0].job_id.as_deref() != Some(id)
                && chain.wdpost_jobs().iter().any(|j| {
                    j.id == id
                        && !matches!(j.state, WdPostJobState::Pending | WdPostJobState::Proving)
                })
        }
    };

    let worker = harness.start();
    // No job yet: a resume at a state has nothing to resume in.
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::Paused));
    let refused = worker
        .resume(0, Some("Allocated".into()))
        .await
        .expect_err("no job");
    assert!(
        refused.to_string().contains("holds no WindowPoSt job"),
        "{refused}"
    );
    let unknown = worker
        .resume(0, Some("PC1Done".into()))
        .await
        .expect_err("not a wdpost state");
    assert!(
        unknown
            .to_string()
            .contains("Allocated, Generated, Finished, Aborted"),
        "{unknown}"
    );
    assert!(worker.resume(0, None).await.is_ok());

    // Round 1: both sectors' files are missing: two faults, nothing to prove, accepted.
    // Its submission fails for a while: the thread waits in Generated, where it is paused.
    chain.fail_next(
        ChainCall::WdPoStFinishJob,
        usize::MAX,
        ManagerError::transport("connection reset"),
    );
    assert_eq!(chain.start_wdpost_round(), Some(1));
    wait_for(&worker, "job 1-0 generated", |t| {
        t[0].job_id.as_deref() == Some("1-0")
            && t[0].job_state == Some(PlanState::WdPost(WdPostState::Generated))
    })
    .await;
    assert_eq!(worker.pause(0).await, Ok(PauseOutcome::Paused));
    let refused = worker
        .resume(0, Some("Finished".into()))
        .await
        .expect_err("not submitted");
    assert!(
        refused.to_string().contains("resume at Generated"),
        "{refused}"
    );
    chain.fail_next(ChainCall::WdPoStFinishJob, 0, ManagerError::transport("-"));
    // Allocated proves the job again, then submits it.
    assert!(matches!(
        worker.resume(0, Some("Allocated".into())).await,
        Ok(ResumeOutcome::Resumed { state: Some(_) })
    ));
    wait_for(&worker, "job 1-0 finished", finished("1-0")).await;
    let first = job("1-0").expect("job 1-0");
    assert_eq!(first.state, WdPostJobState::Finished);
    assert_eq!(first.faults, [1, 2]);
    assert!(first.proofs.is_empty());
    assert_eq!(first.verified, Some(true), "nothing left to prove");

    // Round 2: sector 3 is in a store this worker has not attached: the job is handed
    // back with why, and given up after its second try.
    common::finished_sectors_without_files(&chain, "elsewhere", 1).await;
    assert_eq!(chain.start_wdpost_round(), Some(2));
    wait_for(&worker, "job 2-0 given up", finished("2-0")).await;
    let second = job("2-0").expect("job 2-0");
    assert!(
        matches!(&second.state, WdPostJobState::Failed(why) if why.contains("store \"elsewhere\" is not attached")),
        "{second:?}"
    );
    assert_eq!(second.tries, 2);
    let threads = worker.list();
    assert!(!paused(&threads[0]), "an abort does not pause: {threads:?}");

    // The history names each job.
    let events = worker
        .thread(0)
        .expect("thread")
        .events(200)
        .await
        .expect("events");
    let kinds = |id: &str| -> Vec<&str> {
        events
            .iter()
            .filter(|e| e.event.sector.as_deref() == Some(id))
            .map(|e| e.event.what.kind())
            .collect()
    };
    let first_kinds = kinds("1-0");
    for kind in ["transition", "paused", "resumed", "finished"] {
        assert!(first_kinds.contains(&kind), "{kind} in {first_kinds:?}");
    }
    assert!(kinds("2-0").contains(&"aborted"), "{:?}", kinds("2-0"));
    worker.shutdown().await;
}
