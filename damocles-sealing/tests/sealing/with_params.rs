//! Sealing real 2KiB sectors end to end, every proof verified by the mock chain.
//!
//! Needs the 2KiB parameters in the parameter cache: `scripts/test.sh` generates them
//! once per machine (`damocles-worker params generate --sector-size 2KiB`) before the
//! tests run, so parallel tests never generate the same file twice.

use crate::common;

use std::time::Duration;

use std::sync::Arc;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{
    check_unsealed_copies, wait_for, CrashAfter, Harness, MINER, REBUILD_PATH,
    REBUILD_UPGRADED_PATH, SEALER_PATH, SNAPUP_PATH,
};
use damocles_core::sealer_api::ManagerError;
use damocles_core::sealer_api::WindowPoStOutput;
use damocles_core::{
    PauseOutcome, PlanState, ResumeOutcome, SealingThread, SectorId, SectorSize, State, StateStore,
    ThreadState,
};
use damocles_core::{Plan, WdPostState};
use damocles_sealing::limits::StageLimits;
use damocles_sealing::mock_chain::{
    ChainCall, ChainSectorState, JobState, WdPostJob, WdPostJobState,
};
use damocles_sealing::params;
use damocles_sealing::proofs::{self, SealIdentity, SealedSector};
use damocles_sealing::update::{self, UpgradedSector};
use damocles_sealing::window_post;

fn require_params() {
    let proof = params::proof_for(SectorSize::KIB_2).expect("2KiB proof type");
    assert!(
        params::present(proof),
        "2KiB parameters missing from {}: run `damocles-worker params generate --sector-size 2KiB`",
        params::cache_dir().display()
    );
}

fn in_c2(info: &damocles_core::ThreadInfo) -> bool {
    matches!(&info.thread_state, ThreadState::Running { proc: Some(p), .. } if p == "builtin C2")
}

/// Three threads seal four sectors (a mix of CC and deals), every seal proof verifies; then
/// WindowPoSt rounds over them: every sector proven, a sector whose cache is gone
/// reported as a fault while the rest verifies, and a job whose worker dies mid-job
/// proven by another once its heartbeat is missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_threads_seal_four_sectors_and_window_post_over_them_verifies() {
    require_params();
    let mut harness = Harness::new(3);
    harness.chain.limit_sectors(4);
    // Every second sector is a deal sector.
    harness.offer_deals(0.5);
    // One C2 at a time: on 2 cores each C2 uses them all.
    harness.limits = StageLimits::new([(damocles_core::ProofStage::C2, 1)]);
    let (chain, dir) = (&harness.chain, harness.dir.path());
    let worker = harness.start();

    // A pause asked for during C2 is shown as requested, and takes effect once C2's
    // result is persisted.
    let threads = wait_for(&worker, Duration::from_secs(5 * 60), "a C2 call", |t| {
        t.iter().any(in_c2)
    })
    .await;
    let index = threads.iter().position(in_c2).expect("a thread in C2");
    assert_eq!(
        worker.thread(index as u64).map(|t| t.pause()),
        Ok(PauseOutcome::Requested)
    );
    assert!(worker.list()[index].pause_requested);
    let threads = wait_for(
        &worker,
        Duration::from_secs(10 * 60),
        "paused after C2",
        |t| matches!(t[index].thread_state, ThreadState::Paused { .. }),
    )
    .await;
    assert_eq!(
        threads[index].job_state,
        Some(PlanState::Sector(State::C2Done)),
        "the proof was kept"
    );
    assert_eq!(threads[index].last_error, None);
    assert!(!threads[index].pause_requested);
    assert!(matches!(
        worker.thread(index as u64).expect("thread").resume(None),
        Ok(ResumeOutcome::Resumed { state: None })
    ));

    let mut saw_waiting = false;
    wait_for(
        &worker,
        Duration::from_secs(20 * 60),
        "four finished sectors",
        |threads| {
            assert!(
                threads.iter().all(|t| t.last_error.is_none()),
                "a thread failed: {threads:#?}"
            );
            saw_waiting |= threads
                .iter()
                .any(|t| matches!(t.thread_state, ThreadState::Waiting { .. }));
            let sectors = chain.sectors();
            sectors.len() == 4
                && sectors
                    .iter()
                    .all(|s| s.state == ChainSectorState::Finished)
                && threads.iter().all(|t| t.job_id.is_none())
        },
    )
    .await;
    worker.shutdown().await;
    assert!(saw_waiting, "with one C2 slot, some thread waited for it");
    let counters = chain.counters();
    assert_eq!(counters.proofs_rejected, 0);
    assert_eq!(counters.proofs_accepted, 4);

    // Verify each accepted proof again, independently of the chain's own check.
    let proven: Vec<_> = chain
        .sectors()
        .into_iter()
        .filter(|s| s.proof.is_some())
        .collect();
    assert!(proven.len() >= 3);
    let deal_sectors = proven.iter().filter(|s| !s.deals.is_empty()).count();
    assert!(
        deal_sectors >= 1 && deal_sectors < proven.len(),
        "a mix of CC and deal sectors: {deal_sectors} of {}",
        proven.len()
    );
    // Sectors persisted after the third proof count too.
    assert!(check_unsealed_copies(&harness) >= deal_sectors);
    for sector in proven {
        let pre_commit = sector.pre_commit.clone().expect("pre-commit");
        let sealed = SealedSector {
            id: SealIdentity {
                proof: sector.proof_type,
                sector: sector.id,
            },
            ticket: pre_commit.ticket.ticket,
            seed: sector.seed.expect("seed").seed,
            commitments: damocles_core::PreCommitOutput {
                comm_r: pre_commit.comm_r,
                comm_d: pre_commit.comm_d,
            },
            proof: sector.proof.clone().expect("proof"),
        };
        assert_eq!(proofs::verify(&sealed), Ok(true), "{}", sector.id);
        // A flipped bit does not verify.
        let mut forged = sealed.clone();
        forged.proof[0] ^= 1;
        assert_ne!(proofs::verify(&forged), Ok(true), "{} forged", sector.id);
        assert!(
            matches!(
                sector.state,
                ChainSectorState::Finished | ChainSectorState::Proven
            ),
            "{:?}",
            sector.state
        );
        assert!(dir
            .join("remote/sealed")
            .join(sector.id.to_string())
            .is_file());
    }

    window_post_rounds(harness).await;
}

/// WindowPoSt job `id` as the chain holds it.
fn wdpost_job(chain: &damocles_sealing::mock_chain::MockChain, id: &str) -> WdPostJob {
    chain
        .wdpost_jobs()
        .into_iter()
        .find(|j| j.id == id)
        .expect("the job")
}

/// Whether a thread list shows a WindowPoSt job done.
type JobDone = Box<dyn Fn(&[damocles_core::ThreadInfo]) -> bool>;

/// The WindowPoSt rounds over the harness's four finished sectors.
async fn window_post_rounds(mut harness: Harness) {
    let chain = harness.chain.clone();
    chain.schedule_wdpost(None, 4, Duration::from_secs(3));
    harness.plan = Plan::Wdpost;
    harness.threads = 1;
    harness.options.recover_interval = Duration::from_millis(200);
    harness.options.max_retries = 1000;
    let finished = move |id: &str| -> JobDone {
        let (id, chain) = (id.to_owned(), chain.clone());
        // Done on the chain, and let go of by the thread (its history written).
        Box::new(move |threads: &[damocles_core::ThreadInfo]| {
            threads[0].job_id.as_deref() != Some(id.as_str())
                && chain
                    .wdpost_jobs()
                    .iter()
                    .any(|j| j.id == id && j.state == WdPostJobState::Finished)
        })
    };
    let job = |id: &str| wdpost_job(&harness.chain, id);

    // Round 1: every sector proven, verified by the chain and again here.
    assert_eq!(harness.chain.start_wdpost_round(), Some(1));
    let worker = harness.start();
    wait_for(
        &worker,
        Duration::from_secs(120),
        "job 1-0 finished",
        finished("1-0"),
    )
    .await;
    let first = job("1-0");
    assert_eq!(first.sectors.len(), 4);
    assert!(first.faults.is_empty(), "{first:?}");
    assert_eq!(first.verified, Some(true), "{first:?}");
    assert_eq!(first.worker.as_deref(), Some("test-worker"));
    let output = |job: &WdPostJob| WindowPoStOutput {
        proofs: job
            .proofs
            .iter()
            .cloned()
            .map(damocles_core::Opaque)
            .collect(),
        faults: job.faults.clone(),
    };
    assert_eq!(
        window_post::verify(first.challenge(), &first.proven_sectors(), &output(&first)),
        Ok(true)
    );
    let mut forged = output(&first);
    forged.proofs[0].0[0] ^= 1;
    assert_ne!(
        window_post::verify(first.challenge(), &first.proven_sectors(), &forged),
        Ok(true),
        "a flipped bit does not verify"
    );
    // Claiming a proven sector faulty changes what the proof must cover: it fails.
    let mut fewer = first.proven_sectors();
    fewer.pop();
    assert_ne!(
        window_post::verify(first.challenge(), &fewer, &output(&first)),
        Ok(true)
    );

    // Round 2: sector 2's cache is gone: a fault, and the proof verifies for the rest.
    let lost = harness
        .dir
        .path()
        .join("remote/cache")
        .join(SectorId::new(MINER, 2).to_string());
    std::fs::remove_dir_all(&lost).expect("remove the cache");
    assert_eq!(harness.chain.start_wdpost_round(), Some(2));
    wait_for(
        &worker,
        Duration::from_secs(120),
        "job 2-0 finished",
        finished("2-0"),
    )
    .await;
    let second = job("2-0");
    assert_eq!(second.faults, [2], "{second:?}");
    assert_eq!(second.verified, Some(true), "{second:?}");
    assert_eq!(second.proven_sectors().len(), 3);

    // The thread's history has each job's transitions.
    let events = worker
        .thread(0)
        .expect("thread")
        .events(100)
        .await
        .expect("events");
    for id in ["1-0", "2-0"] {
        let moves: Vec<String> = events
            .iter()
            .filter(|e| e.event.sector.as_deref() == Some(id))
            .filter_map(|e| match &e.event.what {
                damocles_core::Happening::Transition { to, .. } => Some(to.to_string()),
                damocles_core::Happening::Finished => Some("finished".into()),
                _ => None,
            })
            .collect();
        assert_eq!(
            moves,
            ["Allocated", "Generated", "Finished", "finished"],
            "{id}"
        );
    }

    // Round 3: the proof is made, but its submission never gets through; the worker dies
    // with the job. Once its heartbeat is missed (3 s here), another worker proves it.
    harness.chain.fail_next(
        ChainCall::WdPoStFinishJob,
        usize::MAX,
        ManagerError::transport("connection reset"),
    );
    assert_eq!(harness.chain.start_wdpost_round(), Some(3));
    wait_for(
        &worker,
        Duration::from_secs(120),
        "job 3-0 generated",
        |t| {
            t[0].job_id.as_deref() == Some("3-0")
                && t[0].job_state == Some(PlanState::WdPost(WdPostState::Generated))
        },
    )
    .await;
    assert_eq!(job("3-0").state, WdPostJobState::Proving);
    worker.shutdown().await;
    drop(worker);
    harness.chain.fail_next(
        ChainCall::WdPoStFinishJob,
        0,
        ManagerError::transport("connection reset"),
    );
    let worker = harness.start();
    wait_for(
        &worker,
        Duration::from_secs(120),
        "job 3-0 finished",
        finished("3-0"),
    )
    .await;
    let third = job("3-0");
    assert_eq!(third.tries, 2, "{third:?}");
    assert!(third.error.is_none(), "{third:?}");
    assert_eq!(third.verified, Some(true), "{third:?}");
    assert_eq!(third.faults, [2]);
    worker.shutdown().await;
    drop(worker);
    sector_on_a_dead_mount(harness, finished).await;
}

/// Rounds 4–6: sector 3's sealed file is a FIFO, which blocks its reader as a file on a
/// dead mount does. Its check times out (3 s here) and it is a fault, the job proven over
/// the rest; the next round counts it faulty without a new check while the first is
/// still blocked; once the FIFO is let go and the file put back, it is proven again.
async fn sector_on_a_dead_mount(mut harness: Harness, finished: impl Fn(&str) -> JobDone) {
    let sealed = harness
        .dir
        .path()
        .join("remote/sealed")
        .join(SectorId::new(MINER, 3).to_string());
    let aside = sealed.with_extension("aside");
    std::fs::rename(&sealed, &aside).expect("move the sealed file aside");
    let made = std::process::Command::new("mkfifo")
        .arg(&sealed)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", sealed.display());
    harness.options.wdpost_checks = window_post::CheckLimits {
        parallel: 2,
        sector: Duration::from_secs(3),
        partition: Duration::from_secs(30),
    };
    let worker = harness.start();
    let job = |id: &str| wdpost_job(&harness.chain, id);
    let faults_of = |id: &'static str| {
        let worker = &worker;
        async move {
            let events = worker
                .thread(0)
                .expect("thread")
                .events(200)
                .await
                .expect("events");
            events
                .into_iter()
                .filter(|e| e.event.sector.as_deref() == Some(id))
                .filter_map(|e| match e.event.what {
                    damocles_core::Happening::Faulty { number, reason } => Some((number, reason)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        }
    };
    for (round, id, why) in [
        (4, "4-0", "no answer within 3s"),
        (5, "5-0", "still blocked"),
    ] {
        assert_eq!(harness.chain.start_wdpost_round(), Some(round));
        wait_for(&worker, Duration::from_secs(120), id, finished(id)).await;
        let proven = job(id);
        assert_eq!(proven.faults, [2, 3], "{proven:?}");
        assert_eq!(proven.verified, Some(true), "{proven:?}");
        let faults = faults_of(id).await;
        assert!(
            faults
                .iter()
                .any(|(n, reason)| *n == 3 && reason.contains(why)),
            "{id}: {faults:?}"
        );
    }
    // Let the blocked reader go (it reads an empty file and fails), and put the file back.
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&sealed)
            .expect("open the FIFO"),
    );
    std::fs::remove_file(&sealed).expect("remove the FIFO");
    std::fs::rename(&aside, &sealed).expect("put the sealed file back");
    assert_eq!(harness.chain.start_wdpost_round(), Some(6));
    wait_for(&worker, Duration::from_secs(120), "6-0", finished("6-0")).await;
    let healthy = job("6-0");
    assert_eq!(healthy.faults, [2], "{healthy:?}");
    assert_eq!(healthy.verified, Some(true), "{healthy:?}");
    worker.shutdown().await;
    let counters = harness.chain.counters();
    assert_eq!((counters.posts_verified, counters.posts_rejected), (6, 0));
}

/// For every state of the sealer path: run a fresh runtime on the same location until
/// that state is persisted, then drop the runtime at once (no shutdown of the thread, no
/// report of the transition). The one sector still finishes, verified, and nothing is
/// allocated or accepted twice. One C2 in all.
#[test]
fn a_sector_survives_a_crash_right_after_every_state() {
    require_params();
    let mut harness = Harness::new(1);
    // A deal sector: its pieces are fetched again after a crash before AddPieces ends.
    harness.offer_deals(1.0);
    let sector = SectorId::new(MINER, 1);
    for state in SEALER_PATH {
        if state == State::C1Done {
            // The operator switches the thread to rebuild mid-sector through its hot
            // config: the sector goes on under the sealer plan its record names, the new
            // plan shown as pending.
            let location = harness.dir.path().join("store0");
            damocles_sealing::hot_config::write_plan(&location, Plan::Rebuild).expect("write");
            crash_after(&harness, state, async |worker| {
                let shown = wait_for(worker, Duration::from_secs(60), "pending", |t| {
                    t[0].pending_plan.is_some()
                })
                .await;
                assert_eq!(
                    (shown[0].plan, shown[0].pending_plan),
                    (Plan::Sealer, Some(Plan::Rebuild))
                );
            });
            continue;
        }
        crash_after(&harness, state, async |_| {});
        let chain = harness.chain.sector(sector).expect("sector 1 allocated");
        assert!(
            !matches!(chain.state, ChainSectorState::Aborted(_)),
            "after {state}: {:?}",
            chain.state
        );
    }
    // The last crash came after Finished was persisted; a restart reports it finalized.
    // No new sector is to be had, so the thread then idles.
    harness.chain.fail_next(
        ChainCall::AllocateSector,
        usize::MAX,
        ManagerError::transport("no more sectors for this test"),
    );
    run_until_chain_state(
        &harness,
        sector,
        ChainSectorState::Finished,
        Duration::from_secs(60),
    );
    let counters = harness.chain.counters();
    assert_eq!(counters.allocated, 1, "no sector allocated twice");
    assert_eq!(counters.pre_commits_accepted, 1);
    assert_eq!(counters.proofs_accepted, 1, "{counters:?}");
    assert_eq!(counters.proofs_rejected, 0);
    let finished = harness.chain.sector(sector).expect("sector 1");
    let sealed = harness
        .dir
        .path()
        .join("remote/sealed")
        .join(sector.to_string());
    assert!(sealed.is_file(), "persisted to the attached store");
    assert!(finished.proof.is_some());
    assert!(!finished.deals.is_empty());
    assert_eq!(check_unsealed_copies(&harness), 1);

    // The disk is lost; the rebuild re-creates the same files through a crash in each of
    // its states.
    rebuild_through_crashes(&mut harness, sector, &REBUILD_PATH);
    assert_eq!(check_unsealed_copies(&harness), 1);

    // A retrieval: each deal piece is unsealed out of the rebuilt replica and delivered to
    // a local file, the attached store and the manager's piece store, the first through a
    // crash after every unseal state.
    unseal_every_piece(&mut harness, sector);
}

/// Unseals every deal piece of `sector` (the first through a crash right after every
/// unseal state) to a `file://`, a `store://<instance>/<path>` and the manager's piece
/// store (`store:///<cid>`): each copy must hold the deal's payload then zeros, and the
/// mock accept it once.
fn unseal_every_piece(harness: &mut Harness, sector: SectorId) {
    let chain = harness.chain.clone();
    let deals: Vec<_> = (chain.sector(sector).expect("sector").deals.into_iter())
        .filter(|d| !d.is_pledge())
        .collect();
    assert!(!deals.is_empty());
    harness.plan = damocles_core::Plan::Unseal;
    let out = harness.dir.path().join("retrieved");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let err = chain
        .request_unseal(sector, deals[0].piece.cid.clone(), vec!["ftp://s/x".into()])
        .expect_err("ftp");
    assert!(
        err.to_string().contains("unsupported url scheme \"ftp\""),
        "{err}"
    );
    // A market destination needs its host, scheme and token, as the original reads it.
    let err = chain
        .request_unseal(
            sector,
            deals[0].piece.cid.clone(),
            vec![format!(
                "market://s/{}?host=h:1&scheme=http",
                deals[0].piece.cid.text
            )],
        )
        .expect_err("market without a token");
    assert!(err.to_string().contains("`token` query parameter"), "{err}");
    let elsewhere = vec![format!("store:///{}", deals[0].piece.cid.text).replace("baga", "bagb")];
    let err = chain
        .request_unseal(sector, deals[0].piece.cid.clone(), elsewhere)
        .expect_err("another piece's name");
    assert!(err.to_string().contains("under its own CID"), "{err}");
    assert!(!err.to_string().starts_with("permanent"), "{err}");
    let other = damocles_core::piece::piece_cid(&[3; 32]);
    let err = chain
        .request_unseal(sector, other, vec![])
        .expect_err("not its piece");
    assert!(err.to_string().contains("is not a piece of"), "{err}");
    // A zero piece the sector was assigned is not a deal's: nothing to recover.
    let zero = (chain.sector(sector).expect("sector").deals.into_iter())
        .find(|d| d.is_pledge())
        .expect("a zero piece fills the sector");
    let err = chain
        .request_unseal(sector, zero.piece.cid.clone(), vec![])
        .expect_err("a zero piece");
    assert!(err.to_string().contains("is not a piece of"), "{err}");
    let named = err
        .to_string()
        .matches(zero.piece.cid.text.as_str())
        .count();
    assert_eq!(
        named, 1,
        "named as asked, not listed among the pieces: {err}"
    );
    for (i, deal) in deals.iter().enumerate() {
        let cid = &deal.piece.cid;
        let file = out.join(&cid.text);
        let in_store = format!("unsealed-pieces/{}", cid.text);
        let dest = vec![
            format!("file://{}", file.display()),
            format!("store://remote/{in_store}"),
            format!("store:///{}", cid.text),
        ];
        let job = chain
            .request_unseal(sector, cid.clone(), dest)
            .expect("unseal job");
        if i == 0 {
            for state in [State::Allocated, State::Unsealed, State::Finished] {
                crash_after(harness, state, async |_| {});
            }
        }
        runtime.block_on(async {
            let worker = harness.start();
            wait_for(&worker, Duration::from_secs(5 * 60), "unsealed", |t| {
                t[0].thread_state == ThreadState::Idle
                    && chain
                        .jobs()
                        .iter()
                        .any(|j| j.id == job.id && !j.state.is_open())
            })
            .await;
            worker.shutdown().await;
        });
        let done = chain
            .jobs()
            .into_iter()
            .find(|j| j.id == job.id)
            .expect("job");
        assert_eq!(done.state, JobState::Done, "{done:?}");
        let payload = std::fs::read(harness.piece_dir().join(&cid.text)).expect("payload");
        let unpadded = damocles_core::piece::unpadded_size(deal.piece.size).expect("size");
        let copies = [
            file.clone(),
            harness.dir.path().join("remote").join(&in_store),
            harness.piece_dir().join("unsealed").join(&cid.text),
        ];
        for copy in copies {
            let bytes = std::fs::read(&copy).expect("delivered");
            assert_eq!(bytes.len() as u64, unpadded, "{}", copy.display());
            assert!(bytes[..payload.len()] == payload[..], "{}", copy.display());
            assert!(bytes[payload.len()..].iter().all(|b| *b == 0));
        }
    }
    let counters = chain.counters();
    assert_eq!(
        counters.unseals_accepted,
        deals.len() as u64,
        "{counters:?}"
    );
    assert_eq!(counters.unseals_rejected, 0, "{counters:?}");
}

/// Every file a sector has in the attached store `remote` (replicas, their caches and the
/// unsealed copy), by path, with its bytes.
fn store_files(harness: &Harness, sector: SectorId) -> BTreeMap<PathBuf, Vec<u8>> {
    let store = harness.dir.path().join("remote");
    let name = sector.to_string();
    let mut files = BTreeMap::new();
    for dir in ["sealed", "cache", "unsealed", "update", "update-cache"] {
        let path = store.join(dir).join(&name);
        if path.is_file() {
            files.insert(path.clone(), std::fs::read(&path).expect("read"));
        } else if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                let file = entry.expect("entry").path();
                files.insert(file.clone(), std::fs::read(&file).expect("read"));
            }
        }
    }
    files
}

/// The operator's story of a lost disk: `sector`'s files are deleted from the attached
/// store, a rebuild is asked for, and a rebuild thread that crashes right after every
/// state of `path` it persists re-creates them. Every file must come back byte for byte,
/// and the mock accept them (their p_aux gives the comm_r on chain) exactly once.
fn rebuild_through_crashes(harness: &mut Harness, sector: SectorId, path: &[State]) {
    let before = store_files(harness, sector);
    assert!(
        before
            .keys()
            .any(|p| p.starts_with(harness.dir.path().join("remote/sealed"))),
        "{before:?}"
    );
    for file in before.keys() {
        std::fs::remove_file(file).expect("lose the file");
    }
    let chain = harness.chain.clone();
    chain.attach_store("remote", &harness.dir.path().join("remote"));
    let job = chain.request_rebuild(sector).expect("a rebuild job");
    assert!(
        chain.request_rebuild(sector).is_err(),
        "one open job per sector"
    );
    harness.plan = damocles_core::Plan::Rebuild;
    for state in path {
        crash_after(harness, *state, async |_| {});
    }
    // The files were accepted; the job is done once the thread finishes it (the crash came
    // right after Finished was persisted, before that).
    let jobs = chain.jobs();
    let taken = jobs.iter().find(|j| j.id == job.id).expect("the job");
    assert_eq!(
        (&taken.state, taken.accepted),
        (&JobState::Taken, true),
        "{taken:?}"
    );
    assert_eq!(taken.refused, None);
    let counters = chain.counters();
    assert_eq!(counters.rebuilds_accepted, 1, "{counters:?}");
    assert_eq!(counters.rebuilds_rejected, 0, "{counters:?}");
    assert_eq!(chain.sector(sector).map(|s| s.rebuilt), Some(1));
    let after = store_files(harness, sector);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (file, bytes) in &before {
        assert!(after[file] == *bytes, "{} differs", file.display());
    }
    // Restarted after Finished, the thread ends the job and finds no other.
    let idle = |t: &[damocles_core::ThreadInfo]| {
        t[0].thread_state == ThreadState::Idle
            && t[0].job_state == Some(PlanState::Sector(State::Empty))
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let worker = harness.start();
        wait_for(&worker, Duration::from_secs(60), "idle", idle).await;
        worker.shutdown().await;
    });
    assert_eq!(chain.jobs()[0].state, JobState::Done);

    // Lost again, rebuilt again, this time without a crash: every report of the rebuild
    // reaches the manager, which must not take the sector's finished state for the job's.
    // The thread starts as a sealer with nothing to seal and is switched to rebuild while
    // it runs (`set-plan`: its hot config). Paused once it holds the job, and resumed, it
    // goes on where it was.
    for file in before.keys() {
        std::fs::remove_file(file).expect("lose the file");
    }
    let hot = damocles_sealing::hot_config::hot_config_path(&harness.dir.path().join("store0"));
    // The sealer test left one (written mid-sector); the snap-up test none.
    let _ = std::fs::remove_file(&hot);
    harness.plan = Plan::Sealer;
    let second = chain.request_rebuild(sector).expect("a new job once done");
    runtime.block_on(async {
        let worker = harness.start();
        wait_for(&worker, Duration::from_secs(60), "an idle sealer", |t| {
            t[0].plan == Plan::Sealer && t[0].thread_state == ThreadState::Idle
        })
        .await;
        let set = worker
            .thread(0)
            .expect("thread")
            .set_plan(Plan::Rebuild)
            .await;
        assert_eq!(set.map(|s| (s.before, s.current_job)), Ok((None, None)));
        wait_for(&worker, Duration::from_secs(60), "the job taken", |t| {
            t[0].job_state
                .is_some_and(|s| s != PlanState::Sector(State::Empty))
        })
        .await;
        let thread = worker.thread(0).expect("thread");
        assert!(matches!(
            thread.pause(),
            PauseOutcome::Paused | PauseOutcome::Requested
        ));
        let paused = wait_for(&worker, Duration::from_secs(5 * 60), "paused", |t| {
            matches!(t[0].thread_state, ThreadState::Paused { .. })
        })
        .await;
        assert_eq!(paused[0].last_error, None);
        assert!(matches!(
            thread.resume(None),
            Ok(ResumeOutcome::Resumed { state: None })
        ));
        wait_for(&worker, Duration::from_secs(5 * 60), "rebuilt again", |t| {
            idle(t)
                && chain
                    .jobs()
                    .iter()
                    .any(|j| j.id == second.id && !j.state.is_open())
        })
        .await;
        worker.shutdown().await;
    });
    std::fs::remove_file(&hot).expect("the hot config set-plan wrote");
    let jobs = chain.jobs();
    assert_eq!(jobs[1].state, JobState::Done, "{jobs:?}");
    assert_eq!(chain.sector(sector).map(|s| s.rebuilt), Some(2));
    assert_eq!(store_files(harness, sector), before);
}

/// Runs a fresh runtime with `harness`'s worker until its thread persists `state`, then
/// drops the runtime at once, as a crash right after that write. `during` runs on the
/// worker first.
fn crash_after(
    harness: &Harness,
    state: State,
    during: impl AsyncFnOnce(&damocles_sealing::Worker),
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let crashed = Arc::new(tokio::sync::Notify::new());
    runtime.block_on(async {
        let worker = harness.start_with(|inner| {
            Arc::new(CrashAfter {
                inner,
                at: state,
                crashed: crashed.clone(),
            }) as Arc<dyn StateStore>
        });
        during(&worker).await;
        tokio::time::timeout(Duration::from_secs(10 * 60), crashed.notified())
            .await
            .unwrap_or_else(|_| panic!("{state} was never persisted: {:#?}", worker.list()));
    });
    runtime.shutdown_timeout(Duration::from_secs(30));
}

/// Runs `harness`'s worker on a fresh runtime until the mock chain shows `sector` in
/// `state` (at most `limit`), then shuts it down.
fn run_until_chain_state(
    harness: &Harness,
    sector: SectorId,
    state: ChainSectorState,
    limit: Duration,
) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let worker = harness.start();
        wait_for(&worker, limit, &format!("{sector} {state:?}"), |_| {
            harness
                .chain
                .sector(sector)
                .is_some_and(|s| s.state == state)
        })
        .await;
        worker.shutdown().await;
    });
}

fn in_snap_prove(info: &damocles_core::ThreadInfo) -> bool {
    matches!(&info.thread_state, ThreadState::Running { proc: Some(p), .. } if p == "builtin SnapProve")
}

/// The snap-up story: a CC sector sealed by a sealer thread is upgraded with deals by a
/// snap-up thread that crashes right after every state it persists. Without the update
/// parameters its SnapProve pauses with the upstream text; once they arrive, a resume
/// finishes it. The update proof verifies (on the chain and here again), a forged one does
/// not, and the updated replica decodes back to the deals' bytes. One C2 and one snap prove
/// in all.
#[test]
fn a_cc_sector_is_upgraded_with_deals_through_a_crash_in_every_snapup_state() {
    // This process's parameter cache: the PoRep files only, until the update files
    // "arrive" (nextest runs each test in its own process, so the variable is this test's).
    // Upstream reads the variable once, at its first parameter lookup: set it before any,
    // and pick the files by name.
    let real_cache = params::cache_dir();
    let cache = tempfile::tempdir().expect("param dir");
    let link = |prefix: &str| {
        for entry in std::fs::read_dir(&real_cache).expect("parameter cache") {
            let name = entry.expect("entry").file_name();
            if name.to_string_lossy().starts_with(prefix) {
                std::os::unix::fs::symlink(real_cache.join(&name), cache.path().join(&name))
                    .expect("link");
            }
        }
    };
    link("v28-stacked-proof-of-replication-");
    std::env::set_var(params::CACHE_ENV, cache.path());
    require_params();
    let snap = params::Circuit::all_for(SectorSize::KIB_2).expect("2KiB")[1];
    assert!(!snap.present(), "the update parameters are hidden");

    let mut harness = Harness::new(1);
    harness.offer_deals(0.0); // no deal sectors; the piece directory serves snap-up deals
    harness.chain.limit_sectors(1);
    let sector = SectorId::new(MINER, 1);
    run_until_chain_state(
        &harness,
        sector,
        ChainSectorState::Finished,
        Duration::from_secs(10 * 60),
    );

    harness.plan = damocles_core::Plan::Snapup;
    // Allocated … SnapEncoded: each step runs, its result is persisted, and the process dies.
    for state in &SNAPUP_PATH[..4] {
        crash_after(&harness, *state, async |_| {});
        assert_eq!(
            harness.chain.sector(sector).map(|s| s.state),
            Some(ChainSectorState::Upgrading),
            "after {state}"
        );
    }
    // SnapProve without the update parameters: paused with the upstream text; a restart
    // keeps it paused.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let worker = harness.start();
        let threads = wait_for(
            &worker,
            Duration::from_secs(5 * 60),
            "paused in SnapProve",
            |t| matches!(t[0].thread_state, ThreadState::Paused { .. }),
        )
        .await;
        assert_eq!(
            threads[0].job_state,
            Some(PlanState::Sector(State::SnapEncoded))
        );
        let error = threads[0].last_error.clone().unwrap_or_default();
        assert!(
            error.starts_with("permanent: snap prove")
                && error.contains("No cached parameters found"),
            "{error}"
        );
        worker.shutdown().await;
    });
    drop(runtime);
    // The parameters arrive; the resume proves, asked to pause meanwhile (taken as a
    // request, as during C2), and the process dies right after SnapProved is persisted.
    link("v28-empty-sector-update-");
    assert!(snap.present());
    crash_after(&harness, State::SnapProved, async |worker| {
        wait_for(worker, Duration::from_secs(60), "paused again", |t| {
            matches!(t[0].thread_state, ThreadState::Paused { .. })
        })
        .await;
        let thread = worker.thread(0).expect("thread");
        assert!(matches!(
            thread.resume(None),
            Ok(ResumeOutcome::Resumed { state: None })
        ));
        wait_for(
            worker,
            Duration::from_secs(10 * 60),
            "SnapProve running",
            |t| in_snap_prove(&t[0]),
        )
        .await;
        assert_eq!(thread.pause(), PauseOutcome::Requested);
        assert!(worker.list()[0].pause_requested);
    });
    for state in &SNAPUP_PATH[5..] {
        crash_after(&harness, *state, async |_| {});
    }
    // The restart after Finished reports the sector finalized; no other sector to upgrade.
    run_until_chain_state(
        &harness,
        sector,
        ChainSectorState::Upgraded,
        Duration::from_secs(60),
    );
    let counters = harness.chain.counters();
    assert_eq!(counters.allocated, 1, "{counters:?}");
    assert_eq!(counters.proofs_accepted, 1, "{counters:?}");
    assert_eq!(counters.upgrades_accepted, 1, "{counters:?}");
    assert_eq!(counters.upgrades_rejected, 0, "{counters:?}");

    // Verified again, independently of the chain's own check.
    let chain = harness.chain.sector(sector).expect("sector");
    let upgrade = chain.upgrade.clone().expect("upgrade");
    let accepted = upgrade.accepted.clone().expect("accepted update");
    let upgraded = UpgradedSector {
        proof_type: accepted.proof_type,
        comm_r_old: chain.pre_commit.clone().expect("pre-commit").comm_r,
        comm_r_new: accepted.comm_r_new,
        comm_d_new: accepted.comm_d_new,
        proof: accepted.proof.clone(),
    };
    assert_eq!(update::verify_update(&upgraded), Ok(true));
    let mut forged = upgraded.clone();
    forged.proof[0] ^= 1;
    assert_ne!(update::verify_update(&forged), Ok(true), "forged");
    let mut other_old = upgraded.clone();
    other_old.comm_r_old[0] ^= 1;
    assert_ne!(
        update::verify_update(&other_old),
        Ok(true),
        "another sector key"
    );

    // The updated replica in the store decodes back to the deals' bytes.
    let store = harness.dir.path().join("remote");
    let name = sector.to_string();
    let decoded = harness.dir.path().join("decoded");
    update::decode_update(
        accepted.proof_type,
        &decoded,
        &store.join("update").join(&name),
        &store.join("sealed").join(&name),
        &store.join("cache").join(&name),
        accepted.comm_d_new,
    )
    .expect("decode");
    let offsets = damocles_core::piece::piece_offsets(upgrade.deals.iter().map(|d| d.piece.size));
    assert!(!upgrade.deals.is_empty());
    for (deal, offset) in upgrade.deals.iter().zip(offsets) {
        if deal.is_pledge() {
            let zeros = proofs::read_unsealed(&decoded, offset, 127).expect("read");
            assert!(zeros.iter().all(|b| *b == 0), "pledge piece at {offset}");
            continue;
        }
        let payload =
            std::fs::read(harness.piece_dir().join(&deal.piece.cid.text)).expect("payload");
        let read = proofs::read_unsealed(&decoded, offset, payload.len() as u64).expect("read");
        assert!(
            read == payload,
            "deal {} differs at offset {offset}",
            deal.deal_info.deal_id
        );
    }
    assert!(
        store.join("unsealed").join(&name).is_file(),
        "the unsealed copy persisted"
    );

    // The disk is lost: the sector key and the updated replica are rebuilt, byte for byte.
    rebuild_through_crashes(&mut harness, sector, &REBUILD_UPGRADED_PATH);
}
