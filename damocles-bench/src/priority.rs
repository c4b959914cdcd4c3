//! Figure 11: WindowPoSt's priority over sealing (`[worker] wdpost_priority`). One worker
//! with a wdpost thread and two sealer threads whose C2 runs in an external processor
//! (`[[processors.c2]]`): a WindowPoSt job over N sealed 2KiB sectors is timed alone (the
//! sealer threads paused), then while a sealer thread's C2 runs, each the median of
//! `reps` jobs, in one run; then, as the baseline of what the priority is for, the same
//! while C2 runs in a worker with `wdpost_priority = false`. Every job's proof is verified
//! by the mock. The sectors proven are sealed first (PC1, PC2: not timed, no C2); the
//! sealer threads seal new ones.

use std::time::{Duration, Instant};

use damocles_core::{AdminTransport, SealProof, SectorSize, ThreadState};
use damocles_sealing::mock_chain::{MockChain, WdPostJobState};
use damocles_sealing::params;
use damocles_sealing::worker::Worker;
use serde::Serialize;

use damocles_cli::worker_cli::daemon::{self, ManagerChoice};

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct PriorityFigures {
    /// Sectors in each job.
    pub sectors: u64,
    /// Jobs timed on each side.
    pub reps: u64,
    /// A job alone, median seconds.
    pub alone_s: f64,
    /// A job while a C2 runs, median seconds.
    pub during_c2_s: f64,
    /// during_c2 / alone (target ≤ 1.5).
    pub ratio: f64,
    /// A job while a C2 runs, the priority off, median seconds.
    pub during_c2_off_s: f64,
    /// during_c2_off / alone.
    pub ratio_off: f64,
    /// Whether every job's proof verified.
    pub verified: bool,
    /// Every job's seconds: alone, during C2, during C2 with the priority off.
    pub runs_s: [Vec<f64>; 3],
}

/// The median (0 for none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The worker's configuration: thread 0 proves WindowPoSt, threads 1 and 2 seal with C2
/// in one external processor; its priority `on` or off.
fn worker_config(
    dir: &std::path::Path,
    persist: &std::path::Path,
    manager: &str,
    on: bool,
) -> anyhow::Result<std::path::PathBuf> {
    super::pipeline::BenchWorker {
        name: &format!("bench-priority-{on}"),
        dir,
        persist,
        manager,
        plans: &["wdpost", "sealer", "sealer"],
        worker_extra: &format!("wdpost_priority = {on}\n"),
        processors: "[processors.limitation.concurrent]\nc2 = 1\n[[processors.c2]]\n",
    }
    .write()
}

/// Whether a sealer thread is in a C2 call of the external processor.
fn in_external_c2(worker: &Worker) -> bool {
    worker.list().iter().skip(1).any(|t| {
        matches!(&t.thread_state, ThreadState::Running { proc: Some(p), .. } if p.starts_with("ext("))
    })
}

/// Waits (at most 10 minutes) until `done` holds, woken by the worker's changes.
async fn wait_until(
    worker: &Worker,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let mut changes = worker.subscribe();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not in 10 minutes");
        let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
    }
    Ok(())
}

/// Starts a round and waits until its one job is finished (`with_proof`) or taken: the
/// time from the round's start, and whether its proof verified.
async fn one_job(
    chain: &MockChain,
    worker: &Worker,
    with_proof: bool,
) -> anyhow::Result<(f64, bool)> {
    let start = Instant::now();
    let round = chain
        .start_wdpost_round()
        .ok_or_else(|| anyhow::anyhow!("no sector to prove"))?;
    let mut verified = false;
    wait_until(worker, "the WindowPoSt job", || {
        let job = chain.wdpost_jobs().into_iter().find(|j| j.round == round);
        match job.map(|j| (j.state, j.verified, j.faults.is_empty())) {
            Some((WdPostJobState::Finished, v, no_faults)) => {
                verified = v == Some(true) && no_faults;
                true
            }
            Some((WdPostJobState::Proving, ..)) => !with_proof,
            _ => false,
        }
    })
    .await?;
    Ok((start.elapsed().as_secs_f64(), verified || !with_proof))
}

/// Jobs timed on one worker with its threads under `dir` (its priority `on` or off):
/// `reps` alone (the sealer threads paused; none when `alone` is false), then `reps` while
/// a C2 runs. The seconds of each side, and whether every proof verified without a fault.
async fn side(
    chain: &MockChain,
    (dir, persist): (&std::path::Path, &std::path::Path),
    manager: &str,
    on: bool,
    (reps, alone, with_proof): (u64, bool, bool),
) -> anyhow::Result<(Vec<f64>, Vec<f64>, bool)> {
    let config = worker_config(dir, persist, manager, on)?;
    let running = daemon::start(&config, ManagerChoice::FromConfig).await?;
    let worker = running.worker();
    let mut times = (Vec::new(), Vec::new());
    let mut verified = true;
    // Paused for the jobs alone, and for good in smoke mode (where a C2 would only make
    // the stop wait for it).
    let paused = alone || !with_proof;
    if paused {
        for thread in [1, 2] {
            worker.pause(thread).await.map_err(anyhow::Error::msg)?;
        }
    }
    if alone {
        for _ in 0..reps {
            let (took, ok) = one_job(chain, worker, with_proof).await?;
            times.0.push(took);
            verified &= ok;
        }
    }
    if paused && with_proof {
        for thread in [1, 2] {
            worker
                .resume(thread, None)
                .await
                .map_err(anyhow::Error::msg)?;
        }
    }
    for _ in 0..reps {
        if with_proof {
            wait_until(worker, "a C2 in the external processor", || {
                in_external_c2(worker)
            })
            .await?;
        }
        let (took, ok) = one_job(chain, worker, with_proof).await?;
        times.1.push(took);
        verified &= ok;
    }
    // Waits for the C2 under way (a stop throws no proof call away).
    running.stop().await;
    Ok((times.0, times.1, verified))
}

/// Runs figure 11 over `sectors` sectors, `reps` jobs a side; in smoke mode (`with_proof`
/// false) one job on each worker, only until it is taken, with no C2 waited for.
pub async fn run(sectors: u64, reps: u64, with_proof: bool) -> anyhow::Result<PriorityFigures> {
    anyhow::ensure!(
        !with_proof || params::all_present(SectorSize::KIB_2),
        "the 2KiB parameters are missing: run `damocles-worker params generate --sector-size 2KiB`"
    );
    let dir = tempfile::tempdir()?;
    let chain = MockChain::new(10000, SealProof::StackedDrg2KiBV1_1);
    super::snapup::seal_sector_keys(&chain, dir.path(), sectors).await?;
    // Each round's first job covers the sectors sealed here; a sector the sealer threads
    // finish meanwhile lands in a second, smaller job, proven after the timed one.
    chain.schedule_wdpost(None, sectors as usize, Duration::from_secs(15));
    let server = super::pipeline::serve_chain(&chain).await?;
    let manager = server.local_addr().to_string();
    let persist = dir.path().join("persist");
    // In smoke mode no job is proven (no parameters): a thread takes one job a side, then
    // pauses on the missing parameters, so no job is timed alone.
    let (alone, during, on_verified) = side(
        &chain,
        (dir.path(), &persist),
        &manager,
        true,
        (reps, with_proof, with_proof),
    )
    .await?;
    let off_dir = dir.path().join("off");
    std::fs::create_dir_all(&off_dir)?;
    let (_, during_off, off_verified) = side(
        &chain,
        (&off_dir, &persist),
        &manager,
        false,
        (reps, false, with_proof),
    )
    .await?;
    server.shutdown().await;
    let (alone_s, during_c2_s, during_c2_off_s) = (
        median(alone.clone()),
        median(during.clone()),
        median(during_off.clone()),
    );
    Ok(PriorityFigures {
        sectors,
        reps,
        alone_s,
        during_c2_s,
        ratio: during_c2_s / alone_s,
        during_c2_off_s,
        ratio_off: during_c2_off_s / alone_s,
        verified: on_verified && off_verified,
        runs_s: [alone, during, during_off],
    })
}
