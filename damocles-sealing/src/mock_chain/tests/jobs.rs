//! The mock chain's jobs: snap-up, deals, rebuilds.

use super::*;

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
    let refused = persist_refused(chain, sector.id).await;
    assert!(refused.contains("--persist-store remote=PATH"), "{refused}");
    let store = dir.path().join("remote");
    chain.attach_store("remote", &store);
    let refused = persist_refused(chain, sector.id).await;
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
    let refused = persist_refused(chain, sector.id).await;
    assert!(refused.contains("but the chain holds 0707"), "{refused}");
    let counters = chain.counters();
    assert_eq!(
        (counters.rebuilds_accepted, counters.rebuilds_rejected),
        (0, 3)
    );
    assert_eq!(chain.sector(sector.id).map(|s| s.rebuilt), Some(0));
}

/// Submits the rebuilt files of `id` as persisted in store `remote`: refused (`false`),
/// with the reason the job keeps.
async fn persist_refused(chain: &MockChain, id: SectorId) -> String {
    assert_eq!(
        chain.submit_persisted(id, "remote".into(), false).await,
        Ok(false)
    );
    chain.jobs()[0].refused.clone().unwrap_or_default()
}
