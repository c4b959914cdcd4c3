//! A WindowPoSt check against sector files broken the ways storage breaks them: a FIFO
//! in place of the sealed file or of `p_aux` (it blocks its reader, as a file on a dead
//! mount does), a directory in place of the sealed file, a truncated sealed file, and a
//! store whose files cannot be written. Each is a copy of one real 2KiB sector (PC1 and
//! PC2 here; no parameters needed: the checks are vanilla proofs, as a round's and `util
//! sealer proving check`'s are).

use std::path::Path;
use std::time::{Duration, Instant};

use damocles_core::{PoStProof, SealProof, SectorId};
use damocles_sealing::options::CheckLimits;
use damocles_sealing::paths::SectorPaths;
use damocles_sealing::proofs::{self, SealIdentity};
use damocles_sealing::window_post::{self, PoStChallenge, ProvingSector};

use crate::common::copy_tree;

const MINER: u64 = 1000;

/// Seals one CC sector (PC1, PC2) under `dir`: its comm_r and paths.
fn sealed_sector(dir: &Path) -> ([u8; 32], SectorPaths) {
    let id = SealIdentity {
        proof: SealProof::StackedDrg2KiBV1_1,
        sector: SectorId::new(MINER, 1),
    };
    let paths = SectorPaths::new(dir, id.sector);
    let pieces = proofs::add_pieces(id.proof, &paths, &[]).expect("add pieces");
    let pc1 = proofs::pc1(id, &paths, [3; 32], &pieces).expect("pc1");
    let pc2 = proofs::pc2(&pc1, &paths).expect("pc2");
    (pc2.comm_r, paths)
}

/// A copy of the sector's replica and cache as sector `number`, under `root/<name>`.
fn copy_of(
    paths: &SectorPaths,
    comm_r: [u8; 32],
    root: &Path,
    name: &str,
    number: u64,
) -> ProvingSector {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let replica = dir.join("sealed");
    std::fs::copy(&paths.sealed, &replica).expect("copy replica");
    let cache = dir.join("cache");
    copy_tree(&paths.cache_dir, &cache);
    ProvingSector {
        number,
        comm_r,
        replica,
        cache,
    }
}

/// Replaces `path` with a FIFO (a file nobody writes: its reader blocks).
fn fifo_in_place_of(path: &Path) {
    std::fs::remove_file(path).expect("remove");
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
}

/// Lets a reader blocked on the FIFO at `path` go: opened to write (without waiting for
/// a reader), then closed.
fn release(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
}

#[test]
fn broken_files_are_faults_with_their_reasons_and_the_rest_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (comm_r, paths) = sealed_sector(&dir.path().join("work"));
    let stores = dir.path().join("stores");
    let healthy = copy_of(&paths, comm_r, &stores, "healthy", 1);
    let fifo_replica = copy_of(&paths, comm_r, &stores, "fifo-replica", 2);
    fifo_in_place_of(&fifo_replica.replica);
    let fifo_p_aux = copy_of(&paths, comm_r, &stores, "fifo-p-aux", 3);
    let p_aux = fifo_p_aux.cache.join("p_aux");
    fifo_in_place_of(&p_aux);
    let directory = copy_of(&paths, comm_r, &stores, "directory", 4);
    std::fs::remove_file(&directory.replica).expect("remove");
    std::fs::create_dir(&directory.replica).expect("a directory instead");
    let truncated = copy_of(&paths, comm_r, &stores, "truncated", 5);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated.replica)
        .expect("open");
    file.set_len(1024).expect("truncate");
    let read_only = copy_of(&paths, comm_r, &stores, "read-only", 6);
    for path in [&read_only.replica, &read_only.cache.join("p_aux")] {
        let mut permissions = std::fs::metadata(path).expect("metadata").permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(path, permissions).expect("read-only");
    }
    let sectors = [
        healthy,
        fifo_replica,
        fifo_p_aux,
        directory,
        truncated,
        read_only,
    ];

    let challenge = PoStChallenge {
        proof: PoStProof::StackedDrgWindow2KiBV1_2,
        miner: MINER,
        seed: [9; 32],
    };
    let limits = CheckLimits {
        parallel: 3,
        sector: Duration::from_secs(2),
        partition: Duration::from_secs(20),
    };
    let started = Instant::now();
    let faults = window_post::check(challenge, &sectors, &limits).expect("checked");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "bounded: {took:?}");
    let numbers: Vec<u64> = faults.iter().map(|f| f.number).collect();
    assert_eq!(numbers, [2, 3, 4, 5], "{faults:#?}");
    let reason = |n: u64| &faults.iter().find(|f| f.number == n).expect("fault").reason;
    for fifo in [2, 3] {
        assert!(
            reason(fifo).starts_with("no answer within 2s"),
            "{}",
            reason(fifo)
        );
    }
    for broken in [4, 5] {
        assert!(
            !reason(broken).starts_with("no answer"),
            "{}",
            reason(broken)
        );
    }
    assert!(reason(4).contains("Is a directory"), "{}", reason(4));
    assert!(
        reason(5).contains("failed to fill whole buffer"),
        "{}",
        reason(5)
    );

    // Still blocked: counted faulty again without a new check, at once.
    let again = window_post::check(challenge, &sectors[1..3], &limits).expect("checked");
    assert!(
        again.iter().all(|f| f.reason.contains("still blocked")),
        "{again:#?}"
    );
    // Let go, the blocked checks return; the next check starts anew (a fault again:
    // nothing writes these FIFOs), and is let go too.
    release(&sectors[1].replica);
    release(&p_aux);
    // Once they returned, the files' check (which reads nothing, so never blocks) no
    // longer finds them blocked (within 10 s).
    let returned = Instant::now() + Duration::from_secs(10);
    while window_post::check_files(&sectors[1..3], 2048, &limits)
        .iter()
        .any(|f| f.reason.contains("still blocked"))
    {
        assert!(
            Instant::now() < returned,
            "the released checks never returned"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let anew = window_post::check(challenge, &sectors[1..3], &limits).expect("checked");
    assert!(
        anew.iter()
            .all(|f| f.reason.starts_with("no answer within 2s")),
        "{anew:#?}"
    );
    release(&sectors[1].replica);
    release(&p_aux);
}

/// A job removed by an operator while its thread is still checking its sector (blocked
/// on a FIFO) is dropped by the thread at its next heartbeat's refusal, saying why: its
/// result is not sent. (A reset job is refused the same way; once dropped, the idle thread
/// may take it again as new, so a removal is what shows the result was not sent.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_removed_while_it_is_proven_is_dropped_not_finished() {
    use damocles_core::sealer_api::{AllocateSectorSpec, PreCommitOnChainInfo};
    use damocles_core::{SectorManager, ThreadState};
    use damocles_sealing::mock_chain::WdPostJobState;

    let mut harness = crate::common::Harness::new(1);
    harness.plan = damocles_core::Plan::Wdpost;
    harness.options.wdpost_checks = CheckLimits {
        parallel: 1,
        sector: Duration::from_secs(6),
        partition: Duration::from_secs(12),
    };
    let chain = harness.chain.clone();
    // One finished sector in the attached store `remote`, its replica a FIFO.
    let sector = chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect("allocate")
        .expect("a sector");
    let ticket = chain.assign_ticket(sector.id).await.expect("ticket");
    let store = harness.dir.path().join("remote");
    let id = SealIdentity {
        proof: sector.proof_type,
        sector: sector.id,
    };
    let paths = SectorPaths::new(&store.join("work"), sector.id);
    let pieces = proofs::add_pieces(id.proof, &paths, &[]).expect("add pieces");
    let pc1 = proofs::pc1(id, &paths, ticket.ticket, &pieces).expect("pc1");
    let pc2 = proofs::pc2(&pc1, &paths).expect("pc2");
    let info = PreCommitOnChainInfo {
        comm_r: pc2.comm_r,
        comm_d: pc2.comm_d,
        ticket,
    };
    chain
        .submit_pre_commit(sector, info, false)
        .await
        .expect("pre-commit");
    chain
        .submit_persisted(sector.id, "remote".into(), false)
        .await
        .expect("persisted");
    chain.report_finalized(sector.id).await.expect("finalized");
    let name = sector.id.to_string();
    std::fs::create_dir_all(store.join("sealed")).expect("sealed/");
    std::fs::create_dir_all(store.join("cache")).expect("cache/");
    std::fs::rename(&paths.cache_dir, store.join("cache").join(&name)).expect("cache");
    let replica = store.join("sealed").join(&name);
    std::fs::write(&replica, b"").expect("placeholder");
    fifo_in_place_of(&replica);

    chain.schedule_wdpost(None, 1, Duration::from_secs(60));
    assert_eq!(chain.start_wdpost_round(), Some(1));
    let worker = harness.start();
    crate::common::wait_for(&worker, Duration::from_secs(30), "the job taken", |_| {
        chain.wdpost_jobs()[0].state == WdPostJobState::Proving
    })
    .await;
    assert_eq!(chain.remove_wdpost_job("1-0"), Ok(true));
    let threads =
        crate::common::wait_for(&worker, Duration::from_secs(30), "the job dropped", |t| {
            t[0].job_id.is_none() && !matches!(t[0].thread_state, ThreadState::Paused { .. })
        })
        .await;
    assert_eq!(threads[0].last_error, None, "{threads:#?}");
    assert!(chain.wdpost_jobs().is_empty());
    let counters = chain.counters();
    assert_eq!(
        (counters.posts_verified, counters.posts_rejected),
        (0, 0),
        "no result sent: {counters:?}"
    );
    let events = worker
        .thread(0)
        .expect("thread")
        .events(100)
        .await
        .expect("events");
    assert!(
        format!("{events:?}").contains("the manager took the job back"),
        "{events:#?}"
    );
    release(&replica);
    worker.shutdown().await;
}
