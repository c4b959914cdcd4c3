//! Sealing real 2KiB sectors end to end, every proof verified by the mock chain.
//!
//! Needs the 2KiB parameters in the parameter cache: `scripts/test.sh` generates them
//! once per machine (`damocles-worker params generate --sector-size 2KiB`) before the
//! tests run, so parallel tests never generate the same file twice.

mod common;

use std::time::Duration;

use common::{wait_for, Harness};
use damocles_core::{SectorSize, ThreadState};
use damocles_sealing::limits::StageLimits;
use damocles_sealing::mock_chain::ChainSectorState;
use damocles_sealing::params;
use damocles_sealing::proofs::{self, SealIdentity, SealedSector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_threads_seal_three_sectors_and_every_proof_verifies() {
    let proof = params::proof_for(SectorSize::KIB_2).expect("2KiB proof type");
    assert!(
        params::present(proof),
        "2KiB parameters missing from {}: run `damocles-worker params generate --sector-size 2KiB`",
        params::cache_dir().display()
    );
    let mut harness = Harness::new(3);
    // One C2 at a time: on 2 cores each C2 uses them all.
    harness.limits = StageLimits::new([("c2", 1)]);
    let (chain, dir) = (&harness.chain, harness.dir.path());
    let worker = harness.start();
    let mut saw_waiting = false;
    wait_for(
        &worker,
        Duration::from_secs(20 * 60),
        "three proven sectors",
        |threads| {
            assert!(
                threads.iter().all(|t| t.last_error.is_none()),
                "a thread failed: {threads:#?}"
            );
            saw_waiting |= threads
                .iter()
                .any(|t| matches!(t.thread_state, ThreadState::Waiting { .. }));
            chain.counters().proofs_accepted >= 3
        },
    )
    .await;
    worker.shutdown().await;
    assert!(saw_waiting, "with one C2 slot, some thread waited for it");
    let counters = chain.counters();
    assert_eq!(counters.proofs_rejected, 0);
    assert!(counters.proofs_accepted >= 3);

    // Verify each accepted proof again, independently of the chain's own check.
    let proven: Vec<_> = chain
        .sectors()
        .into_iter()
        .filter(|s| s.proof.is_some())
        .collect();
    assert!(proven.len() >= 3);
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
}
