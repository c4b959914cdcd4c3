//! The mock chain's jobs: WindowPoSt rounds, snap-up, deals, rebuilds.

use super::*;

#[tokio::test]
async fn wdpost_rounds_split_hand_out_keep_alive_reassign_and_give_up_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("chain.json");
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("open");
    let first = first_round_is_split_and_handed_out(&chain).await;
    finishes_are_checked_and_failures_retried(&chain).await;
    let jobs = a_lost_heartbeat_offers_the_job_again(&chain).await;
    assert_eq!(jobs[0].seed, first, "one round, one seed");
    // The jobs survive a restart; one being proven is offered again once its
    // heartbeat is missed.
    drop(chain);
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("reopen");
    assert_eq!(chain.wdpost_jobs(), jobs);
    chain.schedule_wdpost(None, 2, Duration::ZERO);
    let after_restart = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-d".into())
        .await
        .expect("allocate");
    assert_eq!(after_restart[0].id, "1-2");
    assert_eq!(chain.wdpost_jobs()[2].tries, 2);
    // The next round starts on schedule, with its own seed.
    chain.schedule_wdpost(Some(Duration::ZERO), 4, Duration::from_secs(60));
    let next = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-d".into())
        .await
        .expect("allocate");
    assert_eq!(next[0].id, "2-0");
    assert_eq!(next[0].input.sectors.len(), 4);
    assert_ne!(next[0].input.seed, jobs[0].seed);
    // The next round's start misses the job of this one that no thread took.
    assert_eq!(chain.start_wdpost_round(), Some(3));
    let missed = chain
        .wdpost_jobs()
        .into_iter()
        .find(|j| j.id == "2-1")
        .expect("2-1");
    assert!(
        matches!(&missed.state, WdPostJobState::Failed(why) if why.starts_with("missed: round 3")),
        "{missed:?}"
    );
    let taken = chain.wdpost_jobs().into_iter().find(|j| j.id == "2-0");
    assert_eq!(taken.map(|j| j.state), Some(WdPostJobState::Proving));
}

/// Round 1 over 5 finished sectors in jobs of 2, handed out to the miner's threads only,
/// kept alive by its holder's heartbeats; its seed.
async fn first_round_is_split_and_handed_out(chain: &MockChain) -> [u8; 32] {
    assert_eq!(chain.start_wdpost_round(), None, "no sector to prove yet");
    for _ in 0..5 {
        finished_cc_sector(chain).await;
    }
    // A sector not finished is not proven.
    chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect("allocate")
        .expect("a sector");
    chain.schedule_wdpost(None, 2, Duration::from_secs(3600));
    assert_eq!(chain.start_wdpost_round(), Some(1));
    let jobs = chain.wdpost_jobs();
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["1-0", "1-1", "1-2"], "5 sectors in jobs of 2");
    let numbers: Vec<u64> = jobs
        .iter()
        .flat_map(|j| j.sectors.iter().map(|s| s.number))
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert!(jobs
        .iter()
        .all(|j| j.seed == jobs[0].seed && j.seed[31] & 0xc0 == 0));
    assert_eq!(jobs[0].proof_type, PoStProof::StackedDrgWindow2KiBV1_2);

    // Another miner's or size's thread gets nothing.
    let other_miner = AllocatePoStSpec {
        allowed_miners: Some(vec![1001]),
        allowed_proof_types: None,
    };
    let none = chain
        .wdpost_allocate_jobs(other_miner, 1, "w".into())
        .await
        .expect("allocate");
    assert!(none.is_empty());
    let other_size = AllocatePoStSpec {
        allowed_miners: None,
        allowed_proof_types: Some(vec![PoStProof::StackedDrgWindow8MiBV1_2]),
    };
    assert!(chain
        .wdpost_allocate_jobs(other_size, 1, "w".into())
        .await
        .expect("allocate")
        .is_empty());

    let taken = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 2, "worker-a".into())
        .await
        .expect("allocate");
    assert_eq!(taken.len(), 2, "at most the number asked for");
    assert_eq!(taken[0].id, "1-0");
    assert_eq!(taken[0].input.sectors[0].accesses.sealed_file, "remote");
    chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-a".into())
        .await
        .expect("its own job");
    let stranger = chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-b".into())
        .await
        .expect_err("not its job");
    assert!(
        stranger.message.contains("not being proven by worker-b"),
        "{stranger}"
    );

    jobs[0].seed
}

/// A finish with a stray fault is refused; an all-faulty one accepted; a failed try goes
/// back to pending.
async fn finishes_are_checked_and_failures_retried(chain: &MockChain) {
    // A fault that is not a sector of the job is refused, and changes nothing.
    let stray = WindowPoStOutput {
        proofs: Vec::new(),
        faults: vec![9],
    };
    let refused = chain
        .wdpost_finish_job("1-0".into(), Some(stray), String::new())
        .await
        .expect_err("a stray fault");
    assert!(refused.message.contains("fault 9"), "{refused}");
    assert_eq!(chain.wdpost_jobs()[0].state, WdPostJobState::Proving);

    // Every sector faulty: nothing to prove, accepted as such.
    let all_faulty = WindowPoStOutput {
        proofs: Vec::new(),
        faults: vec![2, 1],
    };
    chain
        .wdpost_finish_job("1-0".into(), Some(all_faulty), String::new())
        .await
        .expect("finish");
    let done = &chain.wdpost_jobs()[0];
    assert_eq!(done.state, WdPostJobState::Finished);
    assert_eq!(done.faults, [1, 2]);
    assert_eq!(done.verified, Some(true));
    let again = chain
        .wdpost_finish_job("1-0".into(), None, "late".into())
        .await
        .expect_err("finished already");
    assert!(again.message.contains("finished"), "{again}");

    // A failed try goes back to pending; the second failure gives it up.
    chain
        .wdpost_finish_job("1-1".into(), None, "out of memory".into())
        .await
        .expect("failed try");
    let job = &chain.wdpost_jobs()[1];
    assert_eq!(job.state, WdPostJobState::Pending);
    assert_eq!(job.error.as_deref(), Some("out of memory"));
}

/// With no heartbeat timeout left, a job's second try is given up and the next is
/// offered: the round's jobs afterwards.
async fn a_lost_heartbeat_offers_the_job_again(chain: &MockChain) -> Vec<WdPostJob> {
    // A lost heartbeat: with no timeout left, the next allocation offers it again.
    chain.schedule_wdpost(None, 2, Duration::ZERO);
    let retaken = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-b".into())
        .await
        .expect("allocate");
    assert_eq!(retaken[0].id, "1-1");
    let lost = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-c".into())
        .await
        .expect("allocate");
    assert_eq!(
        lost[0].id, "1-2",
        "1-1 lost its heartbeat on its second try"
    );
    let jobs = chain.wdpost_jobs();
    assert!(
        matches!(&jobs[1].state, WdPostJobState::Failed(why) if why.contains("no heartbeat from worker-b")),
        "{:?}",
        jobs[1].state
    );
    assert_eq!(jobs[1].tries, WDPOST_MAX_TRIES);

    jobs
}

#[tokio::test]
async fn snap_up_jobs_take_each_finished_cc_sector_once_and_check_what_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = MockChain::new(1000, SealProof::StackedDrg2KiBV1_1);
    let spec = AllocateSnapUpSpec::default();
    let sector = finished_cc_sector(&chain).await;
    // Without a piece directory there are no deals to put in: no job.
    assert_eq!(chain.allocate_snapup_sector(spec.clone()).await, Ok(None));

    chain.offer_deals(0.0, dir.path()).expect("offer");
    let job = chain
        .allocate_snapup_sector(spec.clone())
        .await
        .expect("allocate")
        .expect("a snap-up job");
    assert_eq!(job.sector, sector);
    assert_eq!(job.public.comm_r, [7; 32]);
    assert_eq!(job.private.access_instance, "remote");
    assert!(job.pieces.iter().any(|p| !p.is_pledge()));
    assert_eq!(job.pieces.iter().map(|p| p.piece.size).sum::<u64>(), 2048);
    for piece in job.pieces.iter().filter(|p| !p.is_pledge()) {
        assert!(dir.path().join(&piece.piece.cid.text).is_file(), "served");
    }
    let state = |chain: &MockChain| chain.sector(sector.id).map(|s| s.state);
    assert_eq!(state(&chain), Some(ChainSectorState::Upgrading));
    // Taken once; a late finalize from the sealer thread that sealed it changes nothing.
    assert_eq!(chain.allocate_snapup_sector(spec.clone()).await, Ok(None));
    chain.report_finalized(sector.id).await.expect("finalized");
    assert_eq!(state(&chain), Some(ChainSectorState::Upgrading));

    // Pieces other than the sector's, or a proof that does not verify: rejected.
    let mut info = SnapUpOnChainInfo {
        comm_r: [8; 32],
        comm_d: [9; 32],
        access_instance: "remote".into(),
        pieces: Vec::new(),
        proof: vec![1; 192],
    };
    let resp = chain
        .submit_snapup_proof(sector.id, info.clone())
        .await
        .expect("submit");
    assert_eq!(resp.res, SubmitResult::Rejected);
    info.pieces = job.pieces.iter().map(|p| p.piece.cid.clone()).collect();
    let resp = chain
        .submit_snapup_proof(sector.id, info)
        .await
        .expect("submit");
    assert_eq!(resp.res, SubmitResult::Rejected, "{:?}", resp.desc);
    assert_eq!(chain.counters().upgrades_rejected, 1);
    assert_eq!(chain.counters().upgrades_accepted, 0);

    // A dropped snap-up leaves the CC sector free to upgrade again.
    chain
        .report_aborted(sector.id, "test".into())
        .await
        .expect("aborted");
    assert_eq!(state(&chain), Some(ChainSectorState::Finished));
    assert!(chain.sector(sector.id).is_some_and(|s| s.upgrade.is_none()));
    for piece in &job.pieces {
        assert!(!dir.path().join(&piece.piece.cid.text).exists(), "removed");
    }
    let again = chain.allocate_snapup_sector(spec).await.expect("allocate");
    assert_eq!(again.map(|j| j.sector), Some(sector));
    // What is on chain stays there: an abort of a finished sector is ignored.
    chain
        .report_aborted(sector.id, "late".into())
        .await
        .expect("aborted");
    chain
        .report_aborted(sector.id, "late".into())
        .await
        .expect("aborted");
    assert_eq!(state(&chain), Some(ChainSectorState::Finished));
}

#[tokio::test]
async fn deals_go_to_the_share_asked_for_keep_to_the_spec_and_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = MockChain::new(1000, SealProof::StackedDrg2KiBV1_1);
    chain.offer_deals(0.5, dir.path()).expect("offer");
    let mut with_deals = Vec::new();
    for _ in 0..4 {
        let sector = chain
            .allocate_sector(AllocateSectorSpec::default())
            .await
            .expect("allocate")
            .expect("a sector");
        let deals = chain
            .acquire_deals(sector.id, AcquireDealsSpec::default())
            .await
            .expect("acquire");
        with_deals.push(deals.is_some());
        if let Some(deals) = deals {
            // Laid out as venus-market does: deals smallest first, zero pieces aligning
            // them and filling the sector, no gap.
            let sizes: Vec<u64> = deals.iter().map(|d| d.piece.size).collect();
            assert_eq!(sizes.iter().sum::<u64>(), 2048, "{sizes:?}");
            assert_eq!(damocles_core::piece::pieces_end(sizes.clone()), 2048);
            let (pledges, real): (Vec<_>, Vec<_>) = deals.iter().partition(|d| d.is_pledge());
            let layout: Vec<(u64, bool)> = deals
                .iter()
                .map(|d| (d.piece.size, d.is_pledge()))
                .collect();
            assert!(
                layout == [(1024, false), (1024, true)]
                    || layout == [(512, false), (512, true), (1024, false)],
                "{layout:?}"
            );
            for pledge in pledges {
                assert_eq!(
                    Ok(pledge.piece.cid.clone()),
                    proofs::pledge_piece_cid(pledge.piece.size)
                );
                assert!(!pledge.deal_info.is_builtin_market);
            }
            for deal in real {
                // Served as kept, and it is the piece its CID names.
                let copy = dir.path().join("copy");
                let len = chain
                    .fetch(&deal.piece.cid, &copy, 2032)
                    .await
                    .expect("fetch");
                assert_eq!(len, deal.deal_info.payload_size);
                let bytes = std::fs::read(&copy).expect("copy");
                assert_eq!(
                    proofs::piece_cid_of(SealProof::StackedDrg2KiBV1_1, &bytes, deal.piece.size),
                    Ok(deal.piece.cid.clone())
                );
                assert!(matches!(
                    chain.fetch(&deal.piece.cid, &copy, 10).await,
                    Err(PieceFetchError::TooLarge { .. })
                ));
            }
            // Asked again, the same pieces.
            let again = chain
                .acquire_deals(sector.id, AcquireDealsSpec::default())
                .await
                .expect("again");
            assert_eq!(again, Some(deals));
        }
    }
    assert_eq!(
        with_deals,
        [false, true, false, true],
        "every second sector"
    );

    deals_keep_to_the_spec(&chain, &dir).await;
}

/// With every sector offered deals, `max_deals` and `min_used_space` are kept to; an
/// unknown piece is not found.
async fn deals_keep_to_the_spec(chain: &MockChain, dir: &tempfile::TempDir) {
    chain.offer_deals(1.0, dir.path()).expect("offer");
    let spec = |max_deals, min_used_space| AcquireDealsSpec {
        max_deals,
        min_used_space,
    };
    for (asked, most) in [
        (spec(Some(1), None), Some(1)),
        (spec(None, Some(4096)), None),
    ] {
        let sector = chain
            .allocate_sector(AllocateSectorSpec::default())
            .await
            .expect("allocate")
            .expect("a sector");
        let deals = chain
            .acquire_deals(sector.id, asked)
            .await
            .expect("acquire");
        let real = deals.map(|d| d.iter().filter(|p| !p.is_pledge()).count());
        assert_eq!(real, most);
    }
    let unknown = piece::piece_cid(&[9; 32]);
    assert!(matches!(
        chain.fetch(&unknown, &dir.path().join("x"), 2032).await,
        Err(PieceFetchError::NotFound { .. })
    ));
}

#[tokio::test]
async fn rebuild_jobs_are_asked_for_taken_and_checked_against_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = MockChain::new(1000, SealProof::StackedDrg2KiBV1_1);
    let spec = AllocateSectorSpec::default();
    let unknown = SectorId::new(1000, 9);
    let err = chain.request_rebuild(unknown).expect_err("unknown");
    assert!(
        err.to_string().contains("not a sector of this chain"),
        "{err}"
    );
    let sealing = chain
        .allocate_sector(spec.clone())
        .await
        .expect("allocate")
        .expect("a sector");
    let err = chain.request_rebuild(sealing.id).expect_err("not finished");
    assert!(
        err.to_string()
            .contains("only a finished or upgraded sector"),
        "{err}"
    );
    assert_eq!(chain.allocate_rebuild_sector(spec.clone()).await, Ok(None));

    let sector = finished_cc_sector(&chain).await;
    a_rebuild_job_is_taken_once(&chain, &dir, sector).await;
    a_lost_lease_is_offered_again_and_reports_hold_it(&chain, sector).await;
    rebuilt_files_are_checked_against_the_chain(&chain, &dir, sector).await;
    // Dropped by the worker: the job fails with its reason, the sector stays finished
    // and can be asked for again.
    chain
        .report_aborted(sector.id, "task aborted".into())
        .await
        .expect("aborted");
    assert_eq!(
        chain.jobs()[0].state,
        JobState::Failed("task aborted".into())
    );
    assert_eq!(
        chain.sector(sector.id).map(|s| s.state),
        Some(ChainSectorState::Finished)
    );
    assert_eq!(chain.request_rebuild(sector.id).expect("again").id, 2);
}

/// A rebuild job of a finished sector, taken by a thread of its miner once, with the
/// sector's ticket; no snap-up of it meanwhile.
async fn a_rebuild_job_is_taken_once(
    chain: &MockChain,
    dir: &tempfile::TempDir,
    sector: AllocatedSector,
) {
    let spec = AllocateSectorSpec::default();
    let job = chain.request_rebuild(sector.id).expect("job");
    assert_eq!((job.id, &job.state), (1, &JobState::Pending));
    chain
        .offer_deals(0.0, &dir.path().join("pieces"))
        .expect("pieces");
    assert_eq!(
        chain
            .allocate_snapup_sector(AllocateSnapUpSpec::default())
            .await,
        Ok(None),
        "no snap-up of a sector whose files are being rebuilt"
    );
    let err = chain.request_rebuild(sector.id).expect_err("open job");
    assert!(
        err.to_string().contains("already has rebuild job 1"),
        "{err}"
    );
    let other_miner = AllocateSectorSpec {
        allowed_miners: Some(vec![2000]),
        ..spec.clone()
    };
    assert_eq!(chain.allocate_rebuild_sector(other_miner).await, Ok(None));
    let info = chain
        .allocate_rebuild_sector(spec.clone())
        .await
        .expect("allocate")
        .expect("the job");
    assert_eq!(info.sector, sector);
    let on_chain = chain.sector(sector.id).expect("sector");
    assert_eq!(Some(info.ticket), on_chain.pre_commit.map(|p| p.ticket));
    assert_eq!((info.is_snap_up, info.pieces), (false, None));
    assert_eq!(chain.jobs()[0].state, JobState::Taken);
    assert_eq!(
        chain.allocate_rebuild_sector(spec.clone()).await,
        Ok(None),
        "taken once"
    );
}

/// A job taken and never reported is offered again once its lease is over; one its
/// thread reports on (failures shown, then cleared) is held.
async fn a_lost_lease_is_offered_again_and_reports_hold_it(
    chain: &MockChain,
    sector: AllocatedSector,
) {
    let spec = AllocateSectorSpec::default();
    // A job taken and never reported (the answer lost, the thread gone) is offered
    // again once its lease is over; one reported is not.
    chain.lock().jobs[0].taken_at = Some(1);
    let again = chain.allocate_rebuild_sector(spec.clone()).await;
    assert_eq!(again.ok().flatten().map(|i| i.sector), Some(sector));
    let report = ReportStateReq {
        worker: WorkerIdentifier {
            instance: "w".into(),
            location: "/l".into(),
        },
        state_change: StateChange {
            prev: "Empty".into(),
            next: "Allocated".into(),
            event: "None".into(),
        },
        failure: None,
    };
    let failing = ReportStateReq {
        failure: Some(damocles_core::sealer_api::ReportFailure {
            level: "Permanent".into(),
            desc: "no room".into(),
        }),
        ..report.clone()
    };
    chain
        .report_state(sector.id, failing)
        .await
        .expect("report");
    assert_eq!(
        chain.jobs()[0].failure.as_deref(),
        Some("Permanent: no room"),
        "a job shows the failure its thread paused on"
    );
    let resp = chain.report_state(sector.id, report).await.expect("report");
    assert!(!resp.finalized, "the sector is finished, the job is not");
    assert_eq!(chain.jobs()[0].failure, None, "cleared by the next step");
    chain.lock().jobs[0].taken_at = Some(1);
    assert_eq!(
        chain.allocate_rebuild_sector(spec.clone()).await,
        Ok(None),
        "held"
    );
}

/// Files the chain cannot see, or that do not give its comm_r, are refused and counted.
async fn rebuilt_files_are_checked_against_the_chain(
    chain: &MockChain,
    dir: &tempfile::TempDir,
    sector: AllocatedSector,
) {
    // Files the chain cannot see, or that do not give its comm_r, are refused.
    assert_eq!(
        chain
            .submit_persisted(sector.id, "remote".into(), false)
            .await,
        Ok(false)
    );
    let refused = chain.jobs()[0].refused.clone().unwrap_or_default();
    assert!(refused.contains("--persist-store remote=PATH"), "{refused}");
    let store = dir.path().join("remote");
    chain.attach_store("remote", &store);
    assert_eq!(
        chain
            .submit_persisted(sector.id, "remote".into(), false)
            .await,
        Ok(false)
    );
    let refused = chain.jobs()[0].refused.clone().unwrap_or_default();
    assert!(refused.contains("sealed/s-t01000-"), "{refused}");
    let name = sector.id.to_string();
    std::fs::create_dir_all(store.join("sealed")).expect("dir");
    std::fs::write(store.join("sealed").join(&name), vec![0; 2048]).expect("replica");
    std::fs::create_dir_all(store.join("cache").join(&name)).expect("dir");
    let p_aux = storage_proofs_porep::stacked::PersistentAux {
        comm_c: filecoin_hashers::poseidon::PoseidonDomain::default(),
        comm_r_last: filecoin_hashers::poseidon::PoseidonDomain::default(),
    };
    std::fs::write(
        store.join("cache").join(&name).join("p_aux"),
        bincode::serialize(&p_aux).expect("p_aux"),
    )
    .expect("p_aux");
    assert_eq!(
        chain
            .submit_persisted(sector.id, "remote".into(), false)
            .await,
        Ok(false)
    );
    let refused = chain.jobs()[0].refused.clone().unwrap_or_default();
    assert!(refused.contains("but the chain holds 0707"), "{refused}");
    let counters = chain.counters();
    assert_eq!(
        (counters.rebuilds_accepted, counters.rebuilds_rejected),
        (0, 3)
    );
    assert_eq!(chain.sector(sector.id).map(|s| s.rebuilt), Some(0));
}

/// A manager down for longer than the heartbeat timeout (here: a timeout of 0) moves the
/// held job back to pending; its holder's next heartbeat takes it back, and its proof is
/// accepted, so a round the worker proved is not lost (damocles PR#1028). A job another
/// thread took meanwhile stays that thread's.
#[tokio::test]
async fn a_job_that_only_lost_its_heartbeat_is_taken_back_by_its_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("chain.json");
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("open");
    for _ in 0..2 {
        finished_cc_sector(&chain).await;
    }
    chain.schedule_wdpost(None, 1, Duration::from_secs(3600));
    assert_eq!(chain.start_wdpost_round(), Some(1));
    let any = AllocatePoStSpec::default;
    let taken = chain
        .wdpost_allocate_jobs(any(), 2, "worker-a".into())
        .await
        .expect("allocate");
    assert_eq!(taken.len(), 2);

    // The manager restarts after the timeout: the listing finds both heartbeats lost.
    drop(chain);
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("reopen");
    chain.schedule_wdpost(None, 1, Duration::ZERO);
    let jobs = chain.wdpost_jobs();
    assert!(
        jobs.iter().all(|j| j.state == WdPostJobState::Pending),
        "{jobs:?}"
    );
    chain.schedule_wdpost(None, 1, Duration::from_secs(3600));
    // 1-1 is taken by another thread before its holder is heard of again.
    let retaken = chain
        .wdpost_allocate_jobs(any(), 1, "worker-b".into())
        .await
        .expect("allocate");
    assert_eq!(retaken[0].id, "1-0");

    // worker-a's heartbeat takes 1-1 back; 1-0 is worker-b's now.
    chain
        .wdpost_heartbeat_jobs(vec!["1-1".into()], "worker-a".into())
        .await
        .expect("taken back");
    let back = &chain.wdpost_jobs()[1];
    assert_eq!(
        (&back.state, back.worker.as_deref()),
        (&WdPostJobState::Proving, Some("worker-a"))
    );
    let refused = chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-a".into())
        .await
        .expect_err("worker-b's");
    assert!(
        refused.message.contains("not being proven by worker-a"),
        "{refused}"
    );

    // A proof that arrives while the job only lost its heartbeat is accepted too.
    chain.schedule_wdpost(None, 1, Duration::ZERO);
    assert_eq!(chain.wdpost_jobs()[1].state, WdPostJobState::Pending);
    let number = chain.wdpost_jobs()[1].sectors[0].number;
    let all_faulty = WindowPoStOutput {
        proofs: Vec::new(),
        faults: vec![number],
    };
    chain
        .wdpost_finish_job("1-1".into(), Some(all_faulty), String::new())
        .await
        .expect("finished by its holder");
    let done = &chain.wdpost_jobs()[1];
    assert_eq!(done.state, WdPostJobState::Finished);
    assert_eq!(done.verified, Some(true));
    // A job whose try failed (not a lost heartbeat; here its last try) is not taken back.
    chain.schedule_wdpost(None, 1, Duration::from_secs(3600));
    chain
        .wdpost_finish_job("1-0".into(), None, "out of memory".into())
        .await
        .expect("failed try");
    let refused = chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-b".into())
        .await
        .expect_err("a failed try is not taken back");
    assert!(
        refused
            .message
            .contains("not being proven by worker-b (it is failed"),
        "{refused}"
    );
}

/// `util sealer wdpost reset` offers a job again as new (its holder loses it); `remove`
/// forgets it, an unknown id being no error; both survive a restart.
#[tokio::test]
async fn wdpost_jobs_are_reset_and_removed_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("chain.json");
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("open");
    for _ in 0..2 {
        finished_cc_sector(&chain).await;
    }
    chain.schedule_wdpost(None, 1, Duration::from_secs(3600));
    assert_eq!(chain.start_wdpost_round(), Some(1));
    let any = AllocatePoStSpec::default;
    chain
        .wdpost_allocate_jobs(any(), 1, "worker-a".into())
        .await
        .expect("allocate");
    chain
        .wdpost_finish_job("1-0".into(), None, "out of memory".into())
        .await
        .expect("a failed try");
    chain
        .wdpost_allocate_jobs(any(), 1, "worker-a".into())
        .await
        .expect("allocate again");
    assert_eq!(chain.wdpost_jobs()[0].tries, 2);

    let reset = chain.reset_wdpost_job("1-0").expect("reset");
    assert_eq!(
        (
            &reset.state,
            reset.worker.as_deref(),
            reset.tries,
            &reset.error
        ),
        (&WdPostJobState::Pending, None, 0, &None)
    );
    let lost = chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-a".into())
        .await
        .expect_err("no longer worker-a's");
    assert!(
        lost.message.contains("not being proven by worker-a"),
        "{lost}"
    );
    assert_eq!(
        chain.reset_wdpost_job("9-9"),
        Err(WdPostJobError::Unknown("9-9".into()))
    );
    assert_eq!(
        chain
            .reset_wdpost_job("9-9")
            .map(drop)
            .unwrap_err()
            .to_string(),
        "job '9-9' does not exist"
    );

    assert_eq!(chain.remove_wdpost_job("1-1"), Ok(true));
    assert_eq!(chain.remove_wdpost_job("1-1"), Ok(false), "gone already");
    drop(chain);
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("reopen");
    let ids: Vec<String> = chain.wdpost_jobs().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, ["1-0"]);
    assert_eq!(chain.wdpost_jobs()[0].tries, 0, "the reset was kept");
}
