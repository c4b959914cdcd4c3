//! Resume at an earlier state, for every pair (current state, earlier state) of the sealer
//! plan: the re-run steps give the same outputs, so the sector stays correct.
//!
//! One sector is sealed end to end (one real C2, verified by the mock chain) while its
//! record and files are snapshotted at every state. Then, for each pair, the thread is
//! put back exactly as it was at the current state (record and files), paused, resumed at
//! the earlier state, and run until it has redone C1: its PC2 commitments, ticket, seed
//! and C1 output must equal the first run's byte for byte (C1 itself checks the replica
//! against comm_r), and the chain must have seen only duplicates of what it accepted.
//! Finally the issue's own case (paused at C1Done, resumed at PC1Done) runs on through a
//! new C2, whose proof the chain verifies.
//!
//! Needs the 2KiB parameters (see `with_params.rs`).

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{copy_tree, wait_for, Harness, Watching, SEALER_PATH};
use damocles_core::{
    PlanState, ResumeOutcome, SealingThread, SectorRecord, SectorSize, State, StateStore,
    ThreadState,
};
use damocles_sealing::mock_chain::ChainSectorState;
use damocles_sealing::params;
use damocles_sealing::store::{Location, RedbStateStore};

/// The states of one sector's run that a thread can be paused at, in order.
const PATH: &[State] = SEALER_PATH.split_last().expect("a path").1;

/// The record and a copy of the files of a sector at one state.
struct Snapshot {
    record: SectorRecord,
    files: PathBuf,
}

/// Puts the thread's location back as it was at `snapshot`, paused there.
async fn restore(location: &Location, snapshot: &Snapshot) {
    let data = location.data_dir();
    std::fs::remove_dir_all(&data).expect("wipe data");
    copy_tree(&snapshot.files, &data);
    let mut record = snapshot.record.clone();
    record.paused = true;
    record.last_error = None;
    let store = RedbStateStore::open(location).expect("open store");
    store.save(&record).await.expect("save");
}

fn paused(info: &damocles_core::ThreadInfo) -> bool {
    matches!(info.thread_state, ThreadState::Paused { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resume_at_an_earlier_state_gives_the_same_sector() {
    let proof = params::proof_for(SectorSize::KIB_2).expect("2KiB proof type");
    assert!(params::present(proof), "2KiB parameters missing");
    let harness = Harness::new(1);
    harness.chain.limit_sectors(1);
    let location = Location::init(&harness.dir.path().join("store0")).expect("location");
    let shots_dir = harness.dir.path().join("snapshots");

    // The first run, snapshotted at every state.
    let snapshots: Arc<Mutex<BTreeMap<State, Snapshot>>> = Arc::default();
    let worker = {
        let snapshots = snapshots.clone();
        let data = location.data_dir();
        let shots_dir = shots_dir.clone();
        let thread = Arc::new(std::sync::OnceLock::new());
        let handle = thread.clone();
        let worker = harness.start_with(move |inner| {
            let mut store = Watching::new(inner, None);
            store.thread = thread.clone();
            let (snapshots, data, shots_dir) = (snapshots.clone(), data.clone(), shots_dir.clone());
            store.on_save = Box::new(move |record| {
                let mut snapshots = snapshots.lock().expect("snapshots");
                if PATH.contains(&record.state) && !snapshots.contains_key(&record.state) {
                    let files = shots_dir.join(record.state.as_str());
                    copy_tree(&data, &files);
                    let record = record.clone();
                    snapshots.insert(record.state, Snapshot { record, files });
                }
            });
            Arc::new(store) as Arc<dyn StateStore>
        });
        let _ = handle.set(worker.threads()[0].clone());
        worker
    };
    wait_for(
        &worker,
        Duration::from_secs(10 * 60),
        "the first proof",
        |_| harness.chain.counters().proofs_accepted == 1,
    )
    .await;
    worker.shutdown().await;
    let snapshots = Arc::try_unwrap(snapshots)
        .ok()
        .expect("one owner")
        .into_inner()
        .expect("snapshots");
    assert_eq!(snapshots.len(), PATH.len(), "a snapshot of every state");
    let reference = snapshots[&State::ProofSubmitted].record.clone();
    let accepted = harness.chain.counters();
    assert_eq!(accepted.pre_commits_accepted, 1);

    // Every pair (current, earlier): back at current, resumed at earlier, run until C1 is
    // redone; the thread pauses at C1Done (before C2) so the pairs cost no C2. The one
    // earlier state after C1Done (ProofSubmitted -> C2Done) re-submits the same proof.
    let mut pairs = 0;
    for (i, current) in PATH.iter().enumerate() {
        for target in &PATH[..i] {
            let pair = format!("{current} -> {target}");
            restore(&location, &snapshots[current]).await;
            if *target > State::C1Done {
                let duplicates = harness.chain.counters().proofs_duplicate;
                let done = run(&harness, *target, Until::ProofsDuplicate(duplicates + 1)).await;
                assert_eq!(done.map(|r| r.state), Some(State::Finished), "{pair}");
                pairs += 1;
                continue;
            }
            let done = run(&harness, *target, Until::PausedAt(State::C1Done))
                .await
                .unwrap_or_else(|| panic!("{pair}: nothing saved"));
            assert_eq!(done.state, State::C1Done, "{pair}");
            assert_eq!(done.last_error, None, "{pair}");
            assert_eq!(done.ticket, reference.ticket, "{pair}: the ticket");
            assert_eq!(
                done.pc2_output, reference.pc2_output,
                "{pair}: comm_r, comm_d"
            );
            assert_eq!(done.seed, reference.seed, "{pair}: the seed");
            assert_eq!(done.c1_output, reference.c1_output, "{pair}: C1's output");
            pairs += 1;
        }
    }
    assert_eq!(pairs, PATH.len() * (PATH.len() - 1) / 2);
    let counters = harness.chain.counters();
    assert_eq!(counters.allocated, 1, "{counters:?}");
    assert_eq!(counters.pre_commits_accepted, 1, "{counters:?}");
    assert_eq!(counters.proofs_accepted, 1, "{counters:?}");
    assert!(counters.pre_commits_duplicate > 0, "{counters:?}");

    // The case to the end: paused at C1Done, resumed at PC1Done; a new C2 whose
    // proof the chain verifies (another valid proof of a proven sector is a duplicate, an
    // invalid one a mismatch that would pause the thread).
    restore(&location, &snapshots[&State::C1Done]).await;
    let duplicates = harness.chain.counters().proofs_duplicate;
    let done = run(
        &harness,
        State::PC1Done,
        Until::ProofsDuplicate(duplicates + 1),
    )
    .await;
    assert_eq!(done.map(|r| r.state), Some(State::Finished));
    let counters = harness.chain.counters();
    assert_eq!(counters.proofs_rejected, 0, "{counters:?}");
    assert_eq!(counters.proofs_accepted, 1, "{counters:?}");
    let sector = reference.sector.expect("sector").id;
    assert_eq!(
        harness.chain.sector(sector).map(|s| s.state),
        Some(ChainSectorState::Proven)
    );
}

/// When a run is over.
enum Until {
    /// The thread paused in this state (or on an error).
    PausedAt(State),
    /// The chain has answered this many proof submissions as duplicates and the thread
    /// has reached Finished (paused there, before finalizing).
    ProofsDuplicate(u64),
}

/// Starts the worker on the restored location, resumes its paused thread at `target` and
/// waits until the run is over. Returns the last record the thread saved.
async fn run(harness: &Harness, target: State, until: Until) -> Option<SectorRecord> {
    // A finished sector is paused at Finished before it is finalized (a finalized sector
    // is closed on the chain: further rework of it is aborted).
    let pause_at = match until {
        Until::PausedAt(state) => Some(state),
        Until::ProofsDuplicate(_) => Some(State::Finished),
    };
    let last = Arc::new(Mutex::new(None));
    let thread = Arc::new(std::sync::OnceLock::new());
    let worker = {
        let (last, thread) = (last.clone(), thread.clone());
        harness.start_with(move |inner| {
            let mut store = Watching::new(inner, pause_at);
            store.last = last.clone();
            store.thread = thread.clone();
            Arc::new(store) as Arc<dyn StateStore>
        })
    };
    let _ = thread.set(worker.threads()[0].clone());
    wait_for(
        &worker,
        Duration::from_secs(60),
        "paused as restored",
        |t| paused(&t[0]),
    )
    .await;
    let outcome = worker.threads()[0].resume(Some(target.as_str()));
    assert!(
        matches!(outcome, Ok(ResumeOutcome::Resumed { state: Some(PlanState::Sector(s)) }) if s == target),
        "resume at {target}: {outcome:?}"
    );
    match until {
        Until::PausedAt(state) => {
            wait_for(&worker, Duration::from_secs(60), "paused again", |t| {
                paused(&t[0]) && t[0].job_state == Some(PlanState::Sector(state))
                    || t[0].last_error.is_some()
            })
            .await;
        }
        Until::ProofsDuplicate(n) => {
            wait_for(&worker, Duration::from_secs(10 * 60), "finished", |t| {
                assert_eq!(t[0].last_error, None, "resumed at {target}");
                harness.chain.counters().proofs_duplicate >= n
                    && paused(&t[0])
                    && t[0].job_state == Some(PlanState::Sector(State::Finished))
            })
            .await;
        }
    }
    worker.shutdown().await;
    let record = last.lock().expect("last").clone();
    record
}
