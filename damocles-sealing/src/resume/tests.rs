//! The unit tests of `resume`.

use damocles_core::sealer_api::AllocatedSector;
use damocles_core::{Event, SectorId, SectorKey, SnapEncodeOutput};

use super::*;

/// A snap-up record at `state` that holds every record field a snap-up makes.
fn snapup_at(state: State) -> SectorRecord {
    let mut record = SectorRecord::new(Plan::Snapup);
    record.sector = Some(AllocatedSector {
        id: SectorId::new(1000, 1),
        proof_type: SealProof::StackedDrg2KiBV1_1,
    });
    record.sector_key = Some(SectorKey {
        comm_r: [1; 32],
        store: "remote".into(),
    });
    record.pieces = Some(Vec::new());
    record.snap_encode_output = Some(SnapEncodeOutput {
        comm_r_new: [2; 32],
        comm_r_last_new: [3; 32],
        comm_d_new: [4; 32],
    });
    record.update_proof = Some(vec![5; 192]);
    record.persist_instance = Some("remote".into());
    record.apply(Event::SetState(state), 0).expect("set state");
    record
}

fn write_updated_replica(paths: &SectorPaths) {
    std::fs::create_dir_all(&paths.update_cache).expect("update cache");
    std::fs::create_dir_all(paths.update.parent().expect("dir")).expect("update dir");
    std::fs::write(&paths.update, b"replica").expect("update");
    for file in ["p_aux", "t_aux"] {
        std::fs::write(paths.update_cache.join(file), b"aux").expect("aux");
    }
}

#[test]
fn snapup_resumes_follow_its_own_order_and_inputs() {
    let data = tempfile::tempdir().expect("tempdir");
    let facts = |state| ResumeFacts::of(&snapup_at(state), data.path().to_path_buf());
    let paths = SectorPaths::new(data.path(), SectorId::new(1000, 1));

    // The updated replica is missing: SnapEncoded needs it, TreeDBuilt needs the staged
    // file, and the refusals say where to resume instead.
    let err = check(&facts(State::SnapEncoded), State::SnapEncoded).expect_err("no replica");
    assert!(err.to_string().contains("the updated replica"), "{err}");
    assert!(err.to_string().contains("resume at TreeDBuilt"), "{err}");
    let err = check(&facts(State::SnapEncoded), State::TreeDBuilt).expect_err("no staged");
    assert!(err.to_string().contains("the staged file"), "{err}");
    assert!(err.to_string().contains("resume at Allocated"), "{err}");
    assert_eq!(check(&facts(State::SnapEncoded), State::Allocated), Ok(()));
    assert_eq!(check(&facts(State::SnapEncoded), State::Aborted), Ok(()));
    // Empty would take a new sector and leave this one held: Aborted hands it back.
    let err = check(&facts(State::SnapEncoded), State::Empty).expect_err("holds a sector");
    assert!(err.to_string().contains("resume at Aborted"), "{err}");

    write_updated_replica(&paths);
    // SnapProved's persist copies the staged file as well, so a resume before it needs
    // that file too.
    let err = check(&facts(State::SnapEncoded), State::SnapEncoded).expect_err("no staged");
    assert!(
        err.to_string()
            .starts_with("the step of SnapProved, which runs after it, needs the staged file"),
        "{err}"
    );
    std::fs::create_dir_all(paths.staged.parent().expect("dir")).expect("dir");
    std::fs::write(&paths.staged, b"staged").expect("staged");
    assert_eq!(
        check(&facts(State::SnapEncoded), State::SnapEncoded),
        Ok(())
    );
    assert_eq!(check(&facts(State::SnapProved), State::SnapProved), Ok(()));
    assert_eq!(check(&facts(State::Persisted), State::SnapEncoded), Ok(()));

    // No skipping ahead: every snap-up step makes something a later one needs.
    let err = check(&facts(State::SnapEncoded), State::SnapProved).expect_err("skip");
    assert!(
        err.to_string()
            .contains("skipping ahead would leave the step of SnapEncoded unrun"),
        "{err}"
    );
    // States of other plans are refused by name, with the plan's own.
    let err = check(&facts(State::SnapEncoded), State::PC1Done).expect_err("sealer state");
    assert!(
        err.to_string().starts_with(
            "PC1Done is not a state of the snapup plan; its states are Empty, Allocated"
        ),
        "{err}"
    );
    // Without its update proof, Persisted cannot submit.
    let mut record = snapup_at(State::Persisted);
    record.update_proof = None;
    let err = check(
        &ResumeFacts::of(&record, data.path().to_path_buf()),
        State::Persisted,
    )
    .expect_err("no proof");
    assert!(err.to_string().contains("the update proof"), "{err}");
    assert!(err.to_string().contains("resume at SnapEncoded"), "{err}");
}

/// A rebuild record at `state` holding every record field a rebuild makes up to it.
fn rebuild_at(state: State, upgraded: bool) -> SectorRecord {
    let mut record = snapup_at(State::Empty);
    record.plan = Plan::Rebuild;
    record.sector_key = None;
    record.comm_r_before_upgrade = upgraded.then_some([10; 32]);
    record.ticket = Some(damocles_core::sealer_api::Ticket {
        ticket: [6; 32],
        epoch: 1,
    });
    record.pc1_output = Some(damocles_core::Opaque(vec![7]));
    record.pc2_output = Some(damocles_core::PreCommitOutput {
        comm_r: [8; 32],
        comm_d: [9; 32],
    });
    record.apply(Event::SetState(state), 0).expect("set state");
    record
}

fn write_replica(paths: &SectorPaths) {
    std::fs::create_dir_all(&paths.cache_dir).expect("cache");
    std::fs::create_dir_all(paths.sealed.parent().expect("dir")).expect("sealed dir");
    std::fs::write(&paths.sealed, b"replica").expect("sealed");
    for file in [
        "p_aux",
        "t_aux",
        "sc-02-data-tree-c.dat",
        "sc-02-data-tree-r-last.dat",
    ] {
        std::fs::write(paths.cache_dir.join(file), b"tree").expect("cache file");
    }
}

#[test]
fn rebuild_resumes_follow_the_sectors_own_path() {
    let data = tempfile::tempdir().expect("tempdir");
    let facts =
        |state, upgraded| ResumeFacts::of(&rebuild_at(state, upgraded), data.path().to_path_buf());
    let paths = SectorPaths::new(data.path(), SectorId::new(1000, 1));

    // A sector never upgraded has no snap-up states.
    let err = check(&facts(State::Persisted, false), State::SnapEncoded).expect_err("snap");
    assert!(
        err.to_string()
            .contains("SnapEncoded is not a state of the rebuild plan"),
        "{err}"
    );
    assert!(!err.to_string().contains("SnapPieceAdded"), "{err}");
    // Persisting again needs the rebuilt replica, which PC2 makes.
    let err = check(&facts(State::Persisted, false), State::SnapDone).expect_err("replica");
    assert!(err.to_string().contains("the encoded replica"), "{err}");
    assert!(err.to_string().contains("resume at PC1Done"), "{err}");
    write_replica(&paths);
    assert_eq!(
        check(&facts(State::Persisted, false), State::SnapDone),
        Ok(())
    );
    // The check after PC2 reads PC1's labels too.
    let err = check(&facts(State::SealedChecked, false), State::PC2Done).expect_err("labels");
    assert!(err.to_string().contains("PC1's labels"), "{err}");
    assert!(err.to_string().contains("resume at TreeDBuilt"), "{err}");
    // The ticket comes with the job: without it, only dropping the job is left.
    let mut record = rebuild_at(State::PieceAdded, false);
    record.ticket = None;
    let err = check(
        &ResumeFacts::of(&record, data.path().to_path_buf()),
        State::Allocated,
    )
    .expect_err("no ticket");
    assert!(err.to_string().contains("needs the ticket"), "{err}");
    assert!(err.to_string().contains("resume at Aborted"), "{err}");
    let err = check(&facts(State::PC1Done, false), State::PC2Done).expect_err("skip");
    assert!(err.to_string().contains("skipping ahead"), "{err}");

    // Upgraded: once the deals are added, the staged file is no longer the sealed
    // sector's, so the seal steps can only start over from Allocated.
    let err = check(&facts(State::SnapEncoded, true), State::PC1Done).expect_err("staged");
    assert!(err.to_string().contains("resume at Allocated"), "{err}");
    let err = check(&facts(State::SealedChecked, true), State::TreeDBuilt).expect_err("");
    assert_eq!(err, ResumeRefusal::DealsStaged);
    assert!(err.to_string().contains("may hold the deal data"), "{err}");
    assert!(
        matches!(
            check(&facts(State::SealedChecked, false), State::PC1Done),
            Err(ResumeRefusal::MissingInput { .. })
        ),
        "not upgraded: only the missing labels"
    );
    assert_eq!(
        check(&facts(State::SnapEncoded, true), State::Allocated),
        Ok(())
    );
    std::fs::create_dir_all(paths.staged.parent().expect("dir")).expect("dir");
    std::fs::write(&paths.staged, b"staged").expect("staged");
    // From SealedChecked on, the snap-up steps run again over the rebuilt replica; the
    // persist needs the updated one as well.
    let err = check(&facts(State::Persisted, true), State::SnapDone).expect_err("updated");
    assert!(err.to_string().contains("the updated replica"), "{err}");
    assert!(
        err.to_string().contains("resume at SnapTreeDBuilt"),
        "{err}"
    );
    assert_eq!(
        check(&facts(State::SnapEncoded, true), State::SealedChecked),
        Ok(())
    );
    write_updated_replica(&paths);
    assert_eq!(
        check(&facts(State::Persisted, true), State::SnapDone),
        Ok(())
    );
}
