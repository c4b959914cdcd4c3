//! The unit tests of `sector`.

use super::*;
use proptest::prelude::*;

#[test]
fn post_proof_names_integers_and_sizes_match_upstream() {
    let window = PoStProof::window_for(SectorSize::KIB_2).expect("2KiB");
    assert_eq!(window, PoStProof::StackedDrgWindow2KiBV1_2);
    assert_eq!(window.as_i64(), 10);
    assert!(window.is_window());
    assert!(!PoStProof::StackedDrgWinning2KiBV1.is_window());
    assert_eq!(
        PoStProof::window_for(SectorSize::GIB_64).map(PoStProof::as_i64),
        Some(14)
    );
    for proof in PoStProof::ALL {
        assert_eq!(PoStProof::from_i64(proof.as_i64()), Some(proof));
        let json = serde_json::to_string(&proof).expect("json");
        assert_eq!(json, format!("\"{proof}\""));
        assert_eq!(serde_json::from_str::<PoStProof>(&json).ok(), Some(proof));
    }
    assert_eq!(
        PoStProof::StackedDrgWindow8MiBV1.sector_size(),
        SectorSize::MIB_8
    );
    assert!(serde_json::from_str::<PoStProof>("\"StackedDrgWindow2KiBV1_1\"").is_err());
    assert_eq!(PoStProof::from_i64(15), None);
}

#[test]
fn update_proof_matches_the_seal_proof_size_and_the_abi_integers() {
    for proof in SealProof::ALL {
        assert_eq!(proof.update_proof().sector_size(), proof.sector_size());
    }
    assert_eq!(
        SealProof::StackedDrg2KiBV1_1.update_proof(),
        UpdateProof::StackedDrg2KiBV1
    );
    assert_eq!(UpdateProof::StackedDrg32GiBV1.as_i64(), 3);
    assert_eq!(
        UpdateProof::of(SectorSize::MIB_8),
        Some(UpdateProof::StackedDrg8MiBV1)
    );
    assert_eq!(UpdateProof::of(SectorSize(4096)), None);
    assert_eq!(
        serde_json::to_string(&UpdateProof::StackedDrg64GiBV1).unwrap(),
        "4"
    );
    assert!(serde_json::from_str::<UpdateProof>("5").is_err());
}

#[test]
fn sector_id_displays_as_the_original_path_name() {
    assert_eq!(SectorId::new(10000, 2).to_string(), "s-t010000-2");
    assert_eq!("s-t010000-2".parse(), Ok(SectorId::new(10000, 2)));
}

#[test]
fn sector_id_rejects_what_it_would_not_print() {
    for bad in [
        "",
        "s-t010000",
        "s-t0-2",
        "s-t010000-",
        "t010000-2",
        "s-t010000-+2",
        "s-t010000-02",
        "s-t0010-2",
        "s-t010000-2x",
        "s-t010000-99999999999999999999999",
    ] {
        assert!(bad.parse::<SectorId>().is_err(), "{bad:?} parsed");
    }
}

#[test]
fn sector_sizes_show_as_operators_write_them() {
    for (text, bytes) in [
        ("2KiB", 2048),
        ("8MiB", 8 << 20),
        ("512MiB", 512 << 20),
        ("32GiB", 32 << 30),
        ("64GiB", 64 << 30),
    ] {
        assert_eq!(SectorSize(bytes).to_string(), text);
        assert_eq!(text.parse(), Ok(SectorSize(bytes)));
    }
    assert_eq!("2kib".parse(), Ok(SectorSize::KIB_2));
    assert!("2 KB".parse::<SectorSize>().is_err());
    assert!("KiB".parse::<SectorSize>().is_err());
    assert!("-2KiB".parse::<SectorSize>().is_err());
}

#[test]
fn seal_proofs_map_to_their_sizes_and_integers() {
    for (i, proof) in SealProof::ALL.iter().enumerate() {
        assert_eq!(proof.as_i64(), i as i64);
        assert_eq!(SealProof::from_i64(i as i64), Some(*proof));
        assert_eq!(
            SealProof::of(proof.family(), proof.sector_size()),
            Some(*proof)
        );
    }
    assert_eq!(
        SealProof::StackedDrg2KiBV1_1.sector_size(),
        SectorSize::KIB_2
    );
    assert_eq!(
        SealProof::StackedDrg64GiBV1_1.sector_size(),
        SectorSize::GIB_64
    );
    assert_eq!(
        SealProof::StackedDrg32GiBV1_1_Feat_SyntheticPoRep.sector_size(),
        SectorSize::GIB_32
    );
    assert_eq!(SealProof::from_i64(20), None);
    assert_eq!(SealProof::from_i64(-1), None);
    assert_eq!(
        SealProof::allowed_for_size(SectorSize::KIB_2),
        vec![
            SealProof::StackedDrg2KiBV1_1,
            SealProof::StackedDrg2KiBV1_1_Feat_SyntheticPoRep,
            SealProof::StackedDrg2KiBV1_2_Feat_NonInteractivePoRep
        ]
    );
    assert!(SealProof::allowed_for_size(SectorSize(4096)).is_empty());
}

#[test]
fn seal_proof_serialises_as_its_integer() {
    let json = serde_json::to_string(&SealProof::StackedDrg2KiBV1_1).expect("serialise");
    assert_eq!(json, "5");
    assert!(serde_json::from_str::<SealProof>("20").is_err());
}

proptest! {
    #[test]
    fn sector_id_round_trips(miner in any::<u64>(), number in any::<u64>()) {
        let id = SectorId::new(miner, number);
        prop_assert_eq!(id.to_string().parse::<SectorId>(), Ok(id));
    }

    #[test]
    fn sector_size_round_trips(bytes in 1u64..(1 << 50)) {
        let size = SectorSize(bytes);
        prop_assert_eq!(size.to_string().parse::<SectorSize>(), Ok(size));
    }

    #[test]
    fn sector_id_parsing_never_panics(text in ".{0,40}") {
        let _ = text.parse::<SectorId>();
    }
}
