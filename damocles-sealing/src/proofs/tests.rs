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
