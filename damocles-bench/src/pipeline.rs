//! Figure 1: N 2KiB sectors sealed through the whole system (a worker of 3 threads talking
//! HTTP on loopback to the mock manager, zero intervals, one C2 at a time) against the
//! same proof calls made back to back in one process: the physical limit here, C2-bound.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use damocles_core::{SealProof, SectorId, SectorSize};
use damocles_rpc::{ManagerService, WorkerRegistry};
use damocles_sealing::mock_chain::{ChainSectorState, MockChain};
use damocles_sealing::params;
use damocles_sealing::paths::SectorPaths;
use damocles_sealing::proofs::{self, SealIdentity};
use serde::Serialize;

use damocles_cli::worker_cli::daemon::{self, ManagerChoice};

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineFigures {
    /// Sectors sealed by each side.
    pub sectors: u64,
    /// Whether C2 ran (false in smoke mode: both sides stop after C1).
    pub with_c2: bool,
    /// The proof calls back to back, seconds.
    pub limit_s: f64,
    /// The whole system, seconds.
    pub system_s: f64,
    /// Sectors per hour, back to back.
    pub limit_sectors_per_hour: f64,
    /// Sectors per hour, whole system.
    pub system_sectors_per_hour: f64,
    /// system / limit throughput (target ≥ 0.95).
    pub ratio: f64,
    /// C2 time inside the system, seconds (the critical path: one C2 at a time).
    pub system_c2_s: f64,
    /// Per sector, the system's time not spent in C2 on the critical path, as a fraction
    /// of the sector's time (target < 1 %).
    pub non_proof_overhead: f64,
}

/// The same proof calls back to back: AddPiece, TreeD, PC1, PC2, C1 (and C2).
fn back_to_back(dir: &Path, sectors: u64, with_c2: bool) -> anyhow::Result<Duration> {
    let proof = params::proof_for(SectorSize::KIB_2)?;
    let start = Instant::now();
    for number in 1..=sectors {
        let sector = SectorId::new(20000, number);
        let id = SealIdentity { proof, sector };
        let paths = SectorPaths::new(dir, sector);
        let fail = |e: damocles_core::Failure| anyhow::anyhow!("{e}");
        let pieces = proofs::add_pieces(proof, &paths, &[]).map_err(fail)?;
        proofs::tree_d(proof, &pieces).map_err(fail)?;
        let ticket = [7u8; 32];
        let pc1 = proofs::pc1(id, &paths, ticket, &pieces).map_err(fail)?;
        let pc2 = proofs::pc2(&pc1, &paths).map_err(fail)?;
        let c1 = proofs::c1(id, &paths, ticket, [9u8; 32], pc2, &pieces).map_err(fail)?;
        if with_c2 {
            proofs::c2(id, &c1).map_err(fail)?;
        }
    }
    Ok(start.elapsed())
}

/// A worker config under `dir` of 3 threads of `plan` (locations prepared, attached store
/// `persist`) talking to `manager`, with zero intervals and one slot of stage
/// `one_at_a_time`; `worker_extra` lines go into `[worker]`.
pub(crate) fn worker_config(
    dir: &Path,
    manager: &str,
    plan: &str,
    one_at_a_time: &str,
    worker_extra: &str,
) -> anyhow::Result<std::path::PathBuf> {
    BenchWorker {
        name: &format!("bench-{plan}"),
        dir,
        persist: &dir.join("persist"),
        manager,
        plans: &[plan; 3],
        worker_extra,
        processors: &format!("[processors.limitation.concurrent]\n{one_at_a_time} = 1\n"),
    }
    .write()
}

/// The configuration of a figure's worker: zero intervals, 2KiB sectors, one thread per
/// plan (locations prepared under `dir`), one attached store.
pub(crate) struct BenchWorker<'a> {
    /// Its instance name.
    pub name: &'a str,
    /// Where its locations and its file go.
    pub dir: &'a Path,
    /// Its attached store, named `persist`.
    pub persist: &'a Path,
    /// The manager's address.
    pub manager: &'a str,
    /// A thread per plan.
    pub plans: &'a [&'a str],
    /// Lines for `[worker]`.
    pub worker_extra: &'a str,
    /// `[processors…]` sections.
    pub processors: &'a str,
}

impl BenchWorker<'_> {
    /// Writes `<dir>/worker.toml`: its path.
    pub(crate) fn write(&self) -> anyhow::Result<std::path::PathBuf> {
        let (name, manager) = (self.name, self.manager);
        let mut text = format!(
            "[worker]\nname = \"{name}\"\nrpc_server.host = \"127.0.0.1\"\nrpc_server.port = 0\nping_interval = \"1s\"\n{}\
             [sector_manager]\nrpc_client.addr = \"http://{manager}\"\n\
             [sealing]\nallowed_sizes = [\"2KiB\"]\nseal_interval = \"0s\"\nrecover_interval = \"0s\"\nrpc_polling_interval = \"0s\"\n{}",
            self.worker_extra, self.processors
        );
        for (i, plan) in self.plans.iter().enumerate() {
            let location = self.dir.join(format!("store{i}"));
            damocles_sealing::store::Location::init(&location)?;
            text.push_str(&format!(
                "[[sealing_thread]]\nlocation = \"{}\"\nplan = \"{plan}\"\n",
                location.display()
            ));
        }
        text.push_str(&format!(
            "[[attached]]\nname = \"persist\"\nlocation = \"{}\"\n",
            self.persist.display()
        ));
        let path = self.dir.join("worker.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

/// Serves `chain` as the manager's API on a free loopback port (no registry file, no
/// tokens).
pub(crate) async fn serve_chain(chain: &MockChain) -> anyhow::Result<damocles_rpc::RpcServer> {
    let service = ManagerService::new(
        Arc::new(chain.clone()),
        Arc::new(WorkerRegistry::in_memory()?),
        Duration::from_secs(600),
        "v-bench",
        None,
    );
    Ok(service.serve("127.0.0.1:0").await?)
}

/// Runs figure 1 with `sectors` sectors; without C2 in smoke mode.
pub async fn run(sectors: u64, with_c2: bool) -> anyhow::Result<PipelineFigures> {
    let dir = tempfile::tempdir()?;
    let limit = {
        let path = dir.path().join("limit");
        tokio::task::spawn_blocking(move || back_to_back(&path, sectors, with_c2)).await??
    };

    let chain = MockChain::new(10000, SealProof::StackedDrg2KiBV1_1);
    chain.limit_sectors(sectors);
    let server = serve_chain(&chain).await?;
    let config = worker_config(
        dir.path(),
        &server.local_addr().to_string(),
        "sealer",
        "c2",
        "",
    )?;
    let start = Instant::now();
    let running = daemon::start(&config, ManagerChoice::FromConfig).await?;
    let mut changes = running.worker().subscribe();
    let done = |chain: &MockChain| {
        let all = chain.sectors();
        with_c2
            && all.len() as u64 == sectors
            && all.iter().all(|s| s.state == ChainSectorState::Finished)
    };
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !done(&chain) {
        // C1 is the last step without parameters; in smoke mode C2 fails and pauses.
        if !with_c2
            && running
                .worker()
                .list()
                .iter()
                .filter(|t| t.job_state.map(|s| s.as_str()) == Some("C1Done"))
                .count() as u64
                >= sectors
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the system did not finish in an hour"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
    let system = start.elapsed();
    let c2 = running
        .worker()
        .stage_stats()
        .get("c2")
        .map(|s| s.total)
        .unwrap_or_default();
    running.stop().await;
    server.shutdown().await;

    let per_hour = |d: Duration| sectors as f64 * 3600.0 / d.as_secs_f64();
    let non_proof = if with_c2 && c2 > Duration::ZERO {
        (system.as_secs_f64() - c2.as_secs_f64()).max(0.0) / system.as_secs_f64()
    } else {
        0.0
    };
    Ok(PipelineFigures {
        sectors,
        with_c2,
        limit_s: limit.as_secs_f64(),
        system_s: system.as_secs_f64(),
        limit_sectors_per_hour: per_hour(limit),
        system_sectors_per_hour: per_hour(system),
        ratio: limit.as_secs_f64() / system.as_secs_f64(),
        system_c2_s: c2.as_secs_f64(),
        non_proof_overhead: non_proof,
    })
}
