use super::*;

#[test]
fn prover_id_is_the_leb128_of_the_actor_id() {
    let id = prover_id(10000);
    assert_eq!(&id[..3], &[0x90, 0x4e, 0x00]);
    assert!(id[2..].iter().all(|b| *b == 0));
    assert_eq!(prover_id(0), [0; 32]);
    assert_eq!(prover_id(127)[..2], [0x7f, 0]);
    assert_eq!(prover_id(128)[..3], [0x80, 0x01, 0]);
    assert_eq!(
        prover_id(u64::MAX)[..11],
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0]
    );
}

#[test]
fn proof_types_map_one_to_one() {
    for proof in SealProof::ALL {
        let upstream = registered(proof);
        assert_eq!(
            u64::from(upstream.sector_size()),
            proof.sector_size().bytes()
        );
    }
}

fn deal_piece(dir: &Path, payload: &[u8], padded_size: u64) -> PieceToWrite {
    let cid = piece_cid_of(SealProof::StackedDrg2KiBV1_1, payload, padded_size).expect("cid");
    let path = dir.join(&cid.text);
    fs::write(&path, payload).expect("write piece");
    PieceToWrite {
        cid,
        padded_size,
        payload: PiecePayload::File(path),
    }
}

fn pledge_piece(padded_size: u64) -> PieceToWrite {
    PieceToWrite {
        cid: pledge_piece_cid(padded_size).expect("zero piece"),
        padded_size,
        payload: PiecePayload::Zeros,
    }
}

fn commitments(pieces: &[PieceToWrite]) -> Vec<([u8; 32], u64)> {
    pieces
        .iter()
        .map(|p| (piece::comm_p(&p.cid).expect("cid"), p.padded_size))
        .collect()
}

#[test]
fn pledge_pieces_the_manager_assigns_are_written_in_their_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proof = SealProof::StackedDrg2KiBV1_1;
    let small: Vec<u8> = (0..400u32).map(|i| (i * 5 % 241) as u8).collect();
    let large: Vec<u8> = (0..900u32).map(|i| (i * 11 % 239) as u8).collect();
    // venus-market's layout: deals by size, a zero piece aligning the larger one.
    let go_layout = [
        deal_piece(dir.path(), &small, 512),
        pledge_piece(512),
        deal_piece(dir.path(), &large, 1024),
    ];
    // A zero piece first: the deal must land after it, not at 0.
    let leading = [pledge_piece(512), deal_piece(dir.path(), &small, 512)];
    for (n, pieces) in [&go_layout[..], &leading[..]].into_iter().enumerate() {
        let paths = SectorPaths::new(dir.path(), SectorId::new(1000, 10 + n as u64));
        let added = add_pieces(proof, &paths, pieces).expect("add pieces");
        let offsets = piece::piece_offsets(pieces.iter().map(|p| p.padded_size));
        for (piece, offset) in pieces.iter().zip(offsets) {
            let unpadded = piece::unpadded_size(piece.padded_size).expect("size");
            let expected = match &piece.payload {
                PiecePayload::File(path) => fs::read(path).expect("payload"),
                PiecePayload::Zeros => vec![0; unpadded as usize],
            };
            let read = read_unsealed(&paths.staged, offset, expected.len() as u64);
            assert_eq!(read.expect("read"), expected, "piece at {offset}");
        }
        let comm_d = tree_d(proof, &added).expect("tree d");
        assert_eq!(sector_comm_d(proof, &commitments(pieces)), Ok(comm_d));
    }

    // A "pledge" piece whose CID is not the zero piece's: refused before writing.
    let paths = SectorPaths::new(dir.path(), SectorId::new(1000, 20));
    let fake = PieceToWrite {
        payload: PiecePayload::Zeros,
        ..deal_piece(dir.path(), &small, 512)
    };
    let err = add_pieces(proof, &paths, &[fake]).expect_err("not zeros");
    assert_eq!(err.level, FailureLevel::Permanent);
    assert!(
        err.message.contains("not the commitment of 512 zero bytes"),
        "{err}"
    );
    assert!(!paths.staged.exists());
}

#[test]
fn deal_pieces_are_written_checked_and_padded_with_pledge_pieces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = SealIdentity {
        proof: SealProof::StackedDrg2KiBV1_1,
        sector: SectorId::new(1000, 2),
    };
    let paths = SectorPaths::new(dir.path(), id.sector);
    let first: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let second: Vec<u8> = (0..300u32).map(|i| (i * 13 % 253) as u8).collect();
    let deals = [
        deal_piece(dir.path(), &first, 1024),
        deal_piece(dir.path(), &second, 512),
    ];
    let pieces = add_pieces(id.proof, &paths, &deals).expect("add pieces");
    assert_eq!(
        pieces.iter().map(|p| p.size).collect::<Vec<_>>(),
        vec![1016, 508, 508],
        "two deals and one pledge piece filling the sector"
    );
    assert_eq!(piece::piece_cid(&pieces[0].commitment), deals[0].cid);
    assert_eq!(piece::piece_cid(&pieces[1].commitment), deals[1].cid);
    assert_eq!(fs::metadata(&paths.staged).expect("staged").len(), 2048);
    assert_eq!(read_unsealed(&paths.staged, 0, 1000).expect("read"), first);
    assert_eq!(
        read_unsealed(&paths.staged, 1024, 300).expect("read"),
        second
    );
    // The sealed sector's comm_d is that of the deal pieces.
    let comm_d = tree_d(id.proof, &pieces).expect("tree d");
    let deal_commitments = commitments(&deals);
    assert_eq!(sector_comm_d(id.proof, &deal_commitments), Ok(comm_d));
    assert_eq!(sector_comm_d(id.proof, &deal_commitments[..1]).ok(), {
        let one = add_pieces(
            id.proof,
            &SectorPaths::new(dir.path(), SectorId::new(1000, 5)),
            &deals[..1],
        )
        .expect("one deal");
        tree_d(id.proof, &one).ok()
    });
    let pc1_out = pc1(id, &paths, [3; 32], &pieces).expect("pc1");
    assert_eq!(pc2(&pc1_out, &paths).expect("pc2").comm_d, comm_d);
    let cc = tree_d(
        id.proof,
        &add_pieces(
            id.proof,
            &SectorPaths::new(dir.path(), SectorId::new(1000, 3)),
            &[],
        )
        .expect("cc"),
    )
    .expect("cc comm_d");
    assert_ne!(comm_d, cc);
}

#[test]
fn a_bad_or_missing_deal_piece_fails_for_good_naming_it_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proof = SealProof::StackedDrg2KiBV1_1;
    let paths = SectorPaths::new(dir.path(), SectorId::new(1000, 4));
    fs::create_dir_all(paths.staged.parent().expect("parent")).expect("mkdir");
    fs::write(&paths.staged, b"earlier").expect("staged");
    let good = deal_piece(dir.path(), &[1; 500], 512);

    let mut tampered = deal_piece(dir.path(), &[2; 500], 512);
    if let PiecePayload::File(path) = &tampered.payload {
        fs::write(path, [3; 500]).expect("tamper");
    }
    let err = add_pieces(proof, &paths, &[good.clone(), tampered.clone()]).expect_err("tampered");
    assert_eq!(err.level, FailureLevel::Permanent);
    assert!(err.message.contains(&tampered.cid.text), "{err}");
    assert!(err.message.contains("not the one the CID names"), "{err}");

    tampered.payload = PiecePayload::File(dir.path().join("nowhere"));
    let err = add_pieces(proof, &paths, &[tampered.clone()]).expect_err("missing");
    assert_eq!(err.level, FailureLevel::Permanent);
    assert!(err.message.contains(&tampered.cid.text), "{err}");

    let too_big = PieceToWrite {
        padded_size: 4096,
        ..deal_piece(dir.path(), &[4; 3000], 4096)
    };
    let err = add_pieces(proof, &paths, &[too_big]).expect_err("larger than the sector");
    assert!(err.message.contains("more than the sector's 2048"), "{err}");
    assert_eq!(fs::read(&paths.staged).expect("staged"), b"earlier");
    assert!(!paths.staged.with_extension("part").exists());
}

#[test]
fn pledge_pieces_fill_the_rest_smallest_first() {
    assert_eq!(pledge_sizes(0, 2048), vec![2048]);
    assert_eq!(pledge_sizes(1536, 2048), vec![512]);
    assert_eq!(pledge_sizes(128, 2048), vec![128, 256, 512, 1024]);
    assert_eq!(pledge_sizes(2048, 2048), Vec::<u64>::new());
}

#[test]
fn cc_sector_steps_run_for_real() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = SealIdentity {
        proof: SealProof::StackedDrg2KiBV1_1,
        sector: SectorId::new(1000, 1),
    };
    let paths = SectorPaths::new(dir.path(), id.sector);
    let pieces = add_pieces(id.proof, &paths, &[]).expect("add piece");
    assert_eq!(pieces.len(), 1);
    assert_eq!(fs::metadata(&paths.staged).expect("staged").len(), 2048);
    let comm_d = tree_d(id.proof, &pieces).expect("tree d");
    let pc1_out = pc1(id, &paths, [3; 32], &pieces).expect("pc1");
    assert!(paths.unencoded_marker().exists(), "PC1 marks the copy");
    let commitments = pc2(&pc1_out, &paths).expect("pc2");
    assert_eq!(commitments.comm_d, comm_d);
    assert!(
        !paths.unencoded_marker().exists(),
        "PC2 takes the mark away"
    );
    // PC2 again over the encoded file, as after a crash mid-PC2 or a resume at
    // PC1Done: the file is restored first, so the same commitments.
    assert_eq!(pc2(&pc1_out, &paths).expect("pc2 again"), commitments);
    let c1_out = c1(id, &paths, [3; 32], [4; 32], commitments, &pieces).expect("c1");
    assert!(!c1_out.0.is_empty());
    // The check after PC2 passes on the replica, and fails on a comm_r it does not give.
    assert_eq!(
        verify_after_pc2(id, &paths, [3; 32], commitments, &pieces),
        Ok(())
    );
    let mut wrong = commitments;
    wrong.comm_r[0] ^= 1;
    let err = verify_after_pc2(id, &paths, [3; 32], wrong, &pieces).expect_err("wrong comm_r");
    assert_eq!(err.level, FailureLevel::Permanent);
    assert!(err.message.starts_with("verify after pc2: "), "{err}");
}

/// The tasks cross to a processor in the original's shapes (its
/// `vc-processors/src/builtin/tasks.rs`): field names as they are there (`vannilla_proofs`
/// misspelt), byte arrays as arrays of numbers, proof types by name, WindowPoSt proofs
/// base64; and they read back.
#[test]
fn tasks_cross_in_the_originals_json_shapes() {
    use filecoin_proofs_api::{
        RegisteredPoStProof, RegisteredSealProof, RegisteredUpdateProof, UnpaddedByteIndex,
        UnpaddedBytesAmount,
    };
    use serde_json::json;
    use tasks::{PoStReplicaInfo, SnapEncode, SnapProve, Unseal, WindowPoSt};

    let c = |b: u8| [b; 32];
    let numbers = |b: u8| json!(vec![b; 32]);
    let encode = SnapEncode {
        registered_proof: RegisteredUpdateProof::StackedDrg2KiBV1,
        new_replica_path: "/d/update/s-t01000-1".into(),
        new_cache_path: "/d/update-cache/s-t01000-1".into(),
        sector_path: "/d/sealed/s-t01000-1".into(),
        sector_cache_path: "/d/cache/s-t01000-1".into(),
        staged_data_path: "/d/unsealed/s-t01000-1".into(),
        piece_infos: vec![PieceInfo {
            commitment: c(7),
            size: UnpaddedBytesAmount(2032),
        }],
    };
    assert_eq!(
        serde_json::to_value(&encode).expect("json"),
        json!({
            "registered_proof": "StackedDrg2KiBV1",
            "new_replica_path": "/d/update/s-t01000-1",
            "new_cache_path": "/d/update-cache/s-t01000-1",
            "sector_path": "/d/sealed/s-t01000-1",
            "sector_cache_path": "/d/cache/s-t01000-1",
            "staged_data_path": "/d/unsealed/s-t01000-1",
            "piece_infos": [{"commitment": numbers(7), "size": 2032}],
        })
    );
    let encoded =
        json!({"comm_r_new": numbers(1), "comm_r_last_new": numbers(2), "comm_d_new": numbers(3)});
    let out: <SnapEncode as ProcessorTask>::Output =
        serde_json::from_value(encoded).expect("snap_encode output");
    assert_eq!((out.comm_r_new, out.comm_d_new), (c(1), c(3)));

    let prove = SnapProve {
        registered_proof: RegisteredUpdateProof::StackedDrg2KiBV1,
        vannilla_proofs: vec![vec![1, 2], vec![3]],
        comm_r_old: c(4),
        comm_r_new: c(5),
        comm_d_new: c(6),
    };
    assert_eq!(
        serde_json::to_value(&prove).expect("json"),
        json!({
            "registered_proof": "StackedDrg2KiBV1",
            "vannilla_proofs": [[1, 2], [3]],
            "comm_r_old": numbers(4),
            "comm_r_new": numbers(5),
            "comm_d_new": numbers(6),
        })
    );
    let proof: Vec<u8> = serde_json::from_str("[9,8,7]").expect("snap_prove output");
    assert_eq!(proof, [9, 8, 7]);

    let unseal = Unseal {
        registered_proof: RegisteredSealProof::StackedDrg2KiBV1_1,
        prover_id: prover_id(1000),
        sector_id: filecoin_proofs_api::SectorId::from(1),
        comm_d: c(8),
        ticket: c(9),
        cache_dir: "/s/cache/s-t01000-1".into(),
        sealed_file: "/s/sealed/s-t01000-1".into(),
        unsealed_output: "/d/piece/baga".into(),
        offset: UnpaddedByteIndex(0),
        num_bytes: UnpaddedBytesAmount(2032),
    };
    let mut prover = [0u8; 32];
    prover[..2].copy_from_slice(&[0xe8, 0x07]);
    assert_eq!(
        serde_json::to_value(&unseal).expect("json"),
        json!({
            "registered_proof": "StackedDrg2KiBV1_1",
            "prover_id": prover,
            "sector_id": 1,
            "comm_d": numbers(8),
            "ticket": numbers(9),
            "cache_dir": "/s/cache/s-t01000-1",
            "sealed_file": "/s/sealed/s-t01000-1",
            "unsealed_output": "/d/piece/baga",
            "offset": 0,
            "num_bytes": 2032,
        })
    );
    let written: UnpaddedBytesAmount = serde_json::from_str("2032").expect("unseal output");
    assert_eq!(written.0, 2032);

    let post = WindowPoSt {
        miner_id: 1000,
        proof_type: RegisteredPoStProof::StackedDrgWindow2KiBV1_2,
        replicas: vec![PoStReplicaInfo {
            sector_id: filecoin_proofs_api::SectorId::from(1),
            comm_r: c(10),
            cache_dir: "/s/cache/s-t01000-1".into(),
            sealed_file: "/s/sealed/s-t01000-1".into(),
        }],
        seed: c(11),
    };
    assert_eq!(
        serde_json::to_value(&post).expect("json"),
        json!({
            "miner_id": 1000,
            "proof_type": "StackedDrgWindow2KiBV1_2",
            "replicas": [{
                "sector_id": 1,
                "comm_r": numbers(10),
                "cache_dir": "/s/cache/s-t01000-1",
                "sealed_file": "/s/sealed/s-t01000-1",
            }],
            "seed": numbers(11),
        })
    );
    for (answer, proofs, faults) in [
        (
            r#"{"proofs":["AQID"],"faults":[]}"#,
            vec![vec![1u8, 2, 3]],
            vec![],
        ),
        (r#"{"proofs":[],"faults":[1,5]}"#, vec![], vec![1u64, 5]),
    ] {
        let out: <WindowPoSt as ProcessorTask>::Output =
            serde_json::from_str(answer).expect("window_post output");
        let got: Vec<Vec<u8>> = out.proofs.into_iter().map(|p| p.0).collect();
        assert_eq!((got, out.faults), (proofs, faults), "{answer}");
    }
}

/// What a processor answers is taken only once it holds up: an answer naming another
/// commitment than a piece's CID (a processor that read other bytes) leaves the staged
/// file as it was and removes the part file.
#[test]
fn an_add_pieces_answer_with_another_commitment_is_refused_and_the_staged_file_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proof = SealProof::StackedDrg2KiBV1_1;
    let paths = SectorPaths::new(dir.path(), SectorId::new(1000, 3));
    let payload: Vec<u8> = (0..700u32).map(|i| (i * 3 % 251) as u8).collect();
    let deals = [deal_piece(dir.path(), &payload, 1024)];
    add_pieces(proof, &paths, &deals).expect("the first run");
    let staged = fs::read(&paths.staged).expect("staged");

    let task = add_pieces_task(proof, &paths, &deals).expect("task");
    assert_eq!(
        task.pieces
            .iter()
            .map(|p| (p.piece_file.clone(), p.piece_size.0))
            .collect::<Vec<_>>(),
        [
            (PieceFile::Local(dir.path().join(&deals[0].cid.text)), 1016),
            (PieceFile::Pledge, 1016),
        ],
        "the deal as its local file, then the pledge piece filling the sector"
    );
    assert_eq!(task.pieces[0].payload_size, 700);
    let part = task.staged_filepath.clone();
    let mut written = task.execute().expect("written");
    assert!(part.is_file());
    written[0].commitment[0] ^= 1;
    let err = add_pieces_done(proof, &paths, &deals, &written).expect_err("refused");
    assert_eq!(err.level, FailureLevel::Permanent);
    assert!(err.message.contains("not the one the CID names"), "{err}");
    assert!(!part.exists(), "the part file is removed");
    assert_eq!(fs::read(&paths.staged).expect("staged"), staged, "kept");
    // One piece short of what was sent: refused too.
    let task = add_pieces_task(proof, &paths, &deals).expect("task");
    let written = task.execute().expect("written");
    let err = add_pieces_done(proof, &paths, &deals, &written[..1]).expect_err("refused");
    assert!(
        err.message.contains("1 pieces written where 2 were sent"),
        "{err}"
    );
}

#[test]
fn a_transfer_copies_files_and_directories_links_where_allowed_and_refuses_a_kind_change() {
    use tasks::{Transfer, TransferItem, TransferOption, TransferRoute};
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("cache/sub")).expect("src");
    fs::write(src.join("sealed"), b"replica").expect("sealed");
    fs::write(src.join("cache/p_aux"), b"aux").expect("p_aux");
    fs::write(src.join("cache/sub/t"), b"tree").expect("tree");
    let dest = dir.path().join("store");
    // An old copy of the file, hard-linked elsewhere: replaced, never written to.
    fs::create_dir_all(dest.join("sealed")).expect("dest");
    fs::write(dest.join("sealed/s-1"), b"old").expect("old");
    fs::hard_link(dest.join("sealed/s-1"), dir.path().join("elsewhere")).expect("link");
    let route = |from: &str, to: &str, allow_link: bool| TransferRoute {
        src: TransferItem {
            store_name: None,
            uri: src.join(from),
        },
        dest: TransferItem {
            store_name: Some("store".into()),
            uri: dest.join(to),
        },
        opt: allow_link.then_some(TransferOption {
            is_dir: false,
            allow_link: true,
        }),
    };
    let task = Transfer {
        stores: Default::default(),
        routes: vec![
            route("sealed", "sealed/s-1", false),
            route("cache", "cache/s-1", false),
            route("sealed", "linked/s-1", true),
        ],
    };
    assert_eq!(task.execute(), Ok(true));
    assert_eq!(fs::read(dest.join("sealed/s-1")).expect("copy"), b"replica");
    assert_eq!(
        fs::read(dir.path().join("elsewhere")).expect("link"),
        b"old"
    );
    assert_eq!(
        fs::read(dest.join("cache/s-1/sub/t")).expect("copy"),
        b"tree"
    );
    assert_eq!(
        fs::read_link(dest.join("linked/s-1")).expect("symlink"),
        src.join("sealed")
    );
    assert!(!dest.join("sealed/s-1.part").exists());

    let wrong_kind = Transfer {
        stores: Default::default(),
        routes: vec![route("cache", "sealed/s-1", false)],
    };
    let err = wrong_kind.execute().expect_err("a directory over a file");
    assert_eq!(err.level, FailureLevel::Critical);
    assert!(err.message.contains("exists as a different kind"), "{err}");
    // A destination that is the source, or holds it, or lies inside it: nothing removed.
    for (from, to, link) in [
        ("cache", "../src/cache", false),
        ("cache", "../src/cache/sub/copy", false),
        ("sealed", "../src/sealed", true),
        ("cache/sub", "../src", false),
    ] {
        let err = Transfer {
            stores: Default::default(),
            routes: vec![route(from, to, link)],
        }
        .execute()
        .expect_err("overlapping");
        assert!(
            err.message
                .contains("is the source, lies inside it or holds it"),
            "{err}"
        );
    }
    assert_eq!(fs::read(src.join("cache/sub/t")).expect("kept"), b"tree");
    assert_eq!(fs::read(src.join("sealed")).expect("kept"), b"replica");
    let mut relative = route("sealed", "x", false);
    relative.dest.uri = "store/x".into();
    let err = Transfer {
        stores: Default::default(),
        routes: vec![relative],
    }
    .execute()
    .expect_err("relative");
    assert!(err.message.contains("must be absolute"), "{err}");
}
