//! Figure 8: one WindowPoSt over N sealed 2KiB sectors through the whole system (the mock
//! manager starting a round of one job over `/rpc/v0`, a worker's wdpost thread checking
//! each sector, proving, checking its proof, and the mock verifying it) against the bare
//! `generate_window_post` call over the same sectors in the same run. The sectors are
//! sealed first (PC1, PC2: not timed, no C2).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use damocles_core::{PoStProof, SealProof, SectorSize};
use damocles_sealing::mock_chain::{MockChain, WdPostJobState};
use damocles_sealing::params;
use damocles_sealing::proofs::{prover_id, registered_post};
use filecoin_proofs_api::{post, PrivateReplicaInfo, SectorId as ApiSectorId};
use serde::Serialize;

use damocles_cli::worker_cli::daemon::{self, ManagerChoice};

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct WdPostFigures {
    /// Sectors in the one job.
    pub sectors: u64,
    /// The bare `generate_window_post` call, seconds.
    pub bare_s: f64,
    /// The whole system, from the round's start to the verified job, seconds.
    pub system_s: f64,
    /// bare / system.
    pub ratio: f64,
    /// Whether the mock verified the system's proof.
    pub verified: bool,
}

/// The bare call over the persisted sectors of `chain`.
fn bare(dir: &std::path::Path, chain: &MockChain) -> anyhow::Result<Duration> {
    let proof = registered_post(
        PoStProof::window_for(SectorSize::KIB_2).ok_or_else(|| anyhow::anyhow!("2KiB"))?,
    );
    let store = dir.join("persist");
    let mut replicas = BTreeMap::new();
    for sector in chain.sectors() {
        let name = sector.id.to_string();
        let comm_r = sector
            .pre_commit
            .as_ref()
            .map(|p| p.comm_r)
            .ok_or_else(|| anyhow::anyhow!("{name} has no pre-commit"))?;
        replicas.insert(
            ApiSectorId::from(sector.id.number),
            PrivateReplicaInfo::new(
                proof,
                comm_r,
                store.join("cache").join(&name),
                store.join("sealed").join(&name),
            ),
        );
    }
    let seed = [7u8; 32];
    let start = Instant::now();
    post::generate_window_post(&seed, &replicas, prover_id(10000))?;
    Ok(start.elapsed())
}

/// Runs figure 8 over `sectors` sectors; in smoke mode (`with_proof` false) the system
/// only until a thread takes the job, and no bare call.
pub async fn run(sectors: u64, with_proof: bool) -> anyhow::Result<WdPostFigures> {
    anyhow::ensure!(
        !with_proof || params::all_present(SectorSize::KIB_2),
        "the 2KiB parameters are missing: run `damocles-worker params generate --sector-size 2KiB`"
    );
    let dir = tempfile::tempdir()?;
    let chain = MockChain::new(10000, SealProof::StackedDrg2KiBV1_1);
    super::snapup::seal_sector_keys(&chain, dir.path(), sectors).await?;
    let bare = if with_proof {
        let (path, chain) = (dir.path().to_path_buf(), chain.clone());
        tokio::task::spawn_blocking(move || bare(&path, &chain)).await??
    } else {
        Duration::ZERO
    };

    chain.schedule_wdpost(None, sectors as usize, Duration::from_secs(15));
    let server = super::pipeline::serve_chain(&chain).await?;
    let config = super::pipeline::worker_config(
        dir.path(),
        &server.local_addr().to_string(),
        "wdpost",
        "window_post",
        "",
    )?;
    let running = daemon::start(&config, ManagerChoice::FromConfig).await?;
    let mut changes = running.worker().subscribe();
    let start = Instant::now();
    chain
        .start_wdpost_round()
        .ok_or_else(|| anyhow::anyhow!("no sector to prove"))?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let job = loop {
        let wanted = if with_proof {
            WdPostJobState::Finished
        } else {
            WdPostJobState::Proving
        };
        if let Some(job) = chain.wdpost_jobs().into_iter().find(|j| j.state == wanted) {
            break job;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the system did not prove in 10 minutes"
        );
        // Woken by every change a thread shows; the chain has no events of its own.
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
    };
    let system = start.elapsed();
    running.stop().await;
    server.shutdown().await;
    Ok(WdPostFigures {
        sectors,
        bare_s: bare.as_secs_f64(),
        system_s: system.as_secs_f64(),
        ratio: bare.as_secs_f64() / system.as_secs_f64(),
        verified: job.verified == Some(true) && job.faults.is_empty(),
    })
}
