//! `util sealer proving check` against a mock manager whose records hold sealed sectors
//! (PC1 and PC2 made here: no parameters needed) in a store it was told of
//! (`--persist-store`): each good, then bad with why as its files break, by the fast
//! check and by `--slow`. (A check that blocks is bounded by `--proving-check-timeout`:
//! `damocles-sealing/tests/sealing/post_faults.rs` tries that.)

use std::path::Path;
use std::time::{Duration, Instant};

use damocles_core::sealer_api::{AllocateSectorSpec, PreCommitOnChainInfo};
use damocles_core::{SealProof, SectorManager};
use damocles_sealing::mock_chain::MockChain;
use damocles_sealing::paths::SectorPaths;
use damocles_sealing::proofs::{self, SealIdentity};
use serde_json::{json, Value};

use crate::common::{free_port, manager, util, util_json};

/// Seals `count` CC sectors into `store` (`sealed/`, `cache/`) and records them as
/// finished in the mock records kept in `home`, persisted to the store named `persist`.
fn sealed_sectors(home: &Path, store: &Path, count: u64) {
    let chain = MockChain::open(
        &home.join("mock-chain.json"),
        10000,
        SealProof::StackedDrg2KiBV1_1,
    )
    .expect("records");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for _ in 0..count {
        runtime.block_on(async {
            let sector = chain
                .allocate_sector(AllocateSectorSpec::default())
                .await
                .expect("allocate")
                .expect("a sector");
            let ticket = chain.assign_ticket(sector.id).await.expect("ticket");
            let id = SealIdentity {
                proof: sector.proof_type,
                sector: sector.id,
            };
            let work = store.join("work");
            let paths = SectorPaths::new(&work, id.sector);
            let pieces = proofs::add_pieces(id.proof, &paths, &[]).expect("add pieces");
            let pc1 = proofs::pc1(id, &paths, ticket.ticket, &pieces).expect("pc1");
            let pc2 = proofs::pc2(&pc1, &paths).expect("pc2");
            let name = id.sector.to_string();
            std::fs::create_dir_all(store.join("sealed")).expect("sealed/");
            std::fs::create_dir_all(store.join("cache")).expect("cache/");
            std::fs::rename(&paths.sealed, store.join("sealed").join(&name)).expect("move");
            std::fs::rename(&paths.cache_dir, store.join("cache").join(&name)).expect("move");
            std::fs::remove_dir_all(&work).expect("clean");
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
                .submit_persisted(sector.id, "persist".into(), false)
                .await
                .expect("persisted");
            chain.report_finalized(sector.id).await.expect("finalized");
        });
    }
}

fn check(listen: &str, args: &[&str]) -> Value {
    let mut all = vec!["sealer", "proving", "check"];
    all.extend_from_slice(args);
    util_json(listen, &all)
}

#[test]
fn proving_check_lists_each_sector_good_or_bad_with_why() {
    let (home, store) = (
        tempfile::tempdir().expect("home"),
        tempfile::tempdir().expect("store"),
    );
    sealed_sectors(home.path(), store.path(), 2);
    let listen = format!("127.0.0.1:{}", free_port());
    let persist = format!("persist={}", store.path().display());
    let _manager = manager(
        home.path(),
        &listen,
        &["--persist-store", &persist, "--proving-check-timeout", "2s"],
    );
    let good = |n: u64| json!({"good": true, "sector": n});
    assert_eq!(check(&listen, &[]), json!([good(1), good(2)]));
    assert_eq!(check(&listen, &["--slow", "2"]), json!([good(2)]));

    // Sector 2's replica cut short: the fast check sees its size.
    let replica = store.path().join("sealed/s-t010000-2");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&replica)
        .and_then(|f| f.set_len(1024))
        .expect("truncate");
    let bad = check(&listen, &["--only-bad"]);
    let reason = bad[0]["reason"].as_str().unwrap_or_default();
    assert_eq!(
        (&bad[0]["sector"], &bad[0]["good"]),
        (&json!(2), &json!(false)),
        "{bad}"
    );
    assert!(
        reason.starts_with("the replica holds 1024 bytes, not 2048"),
        "{reason}"
    );
    assert_eq!(bad.as_array().map(Vec::len), Some(1));

    // Sector 1's p_aux a FIFO (a reader blocks, as on a dead mount): found bad at once,
    // by its type, before any vanilla proof would read it.
    let p_aux = store.path().join("cache/s-t010000-1/p_aux");
    std::fs::remove_file(&p_aux).expect("remove");
    assert!(std::process::Command::new("mkfifo")
        .arg(&p_aux)
        .status()
        .expect("mkfifo")
        .success());
    let started = Instant::now();
    let output = util(&listen, &["sealer", "proving", "check", "--slow"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("Sector  Status"), "{table}");
    // The files' check names it without reading it (no reader blocks).
    assert!(
        lines[1].starts_with("1       bad (p_aux is not a file with content"),
        "{table}"
    );
    assert!(lines[2].starts_with("2       bad ("), "{table}");
    // Let the blocked reader go.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p_aux);
    }

    // A sector the manager does not have: bad input, nothing checked.
    let output = util(&listen, &["sealer", "proving", "check", "9"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the manager has no sector 9"), "{stderr}");
}
