//! Figure 10: sector allocations per second through two mock managers sharing their
//! records in PostgreSQL (a row per record), with the records holding N sectors first,
//! side by side at each N: a change costs what it writes, not what the records hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use damocles_cli::manager_cli::shared_chain::SharedChain;
use damocles_core::sealer_api::AllocateSectorSpec;
use damocles_core::{SealProof, SectorManager};
use damocles_sealing::mock_chain::MockChain;
use serde::Serialize;

/// The figures at one size.
#[derive(Debug, Clone, Serialize)]
pub struct RecordsFigures {
    /// Sectors the records held before the timed allocations.
    pub sectors_before: u64,
    /// Allocations timed, split over the two managers.
    pub allocations: u64,
    /// Allocations in flight at once.
    pub in_flight: usize,
    /// Allocations per second.
    pub allocations_per_s: f64,
    /// Seconds the records took to fill to `sectors_before` (through the same calls).
    pub fill_s: f64,
}

/// Two managers for a fresh miner on the database at `url`.
async fn two_managers(url: &str, miner: u64) -> anyhow::Result<[MockChain; 2]> {
    let proof = SealProof::StackedDrg2KiBV1_1;
    let mut chains = Vec::new();
    for _ in 0..2 {
        let shared = Arc::new(SharedChain::connect(url, miner).await?);
        chains.push(MockChain::shared(shared, miner, proof)?);
    }
    let [a, b]: [MockChain; 2] = chains.try_into().expect("two");
    Ok([a, b])
}

/// `count` allocations, `in_flight` at once, alternating between the managers; how long
/// they took. Every allocation must give a sector.
async fn allocate(
    chains: &[MockChain; 2],
    count: u64,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let per_task = count.div_ceil(in_flight as u64);
    let mut tasks = Vec::new();
    for task in 0..in_flight {
        let chain = chains[task % 2].clone();
        let mine = per_task.min(count.saturating_sub(per_task * task as u64));
        tasks.push(tokio::spawn(async move {
            for _ in 0..mine {
                let got = chain.allocate_sector(AllocateSectorSpec::default()).await?;
                anyhow::ensure!(got.is_some(), "an allocation gave no sector");
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// Fills fresh records to `sectors` sectors, then times `allocations` more.
pub async fn run(url: &str, sectors: u64, allocations: u64) -> anyhow::Result<RecordsFigures> {
    const IN_FLIGHT: usize = 16;
    // A miner of its own per run and size: fresh records, left in the database.
    let miner = 900_000 + (std::process::id() as u64 % 1000) * 100 + sectors.ilog10() as u64;
    let chains = two_managers(url, miner).await?;
    let fill = allocate(&chains, sectors, IN_FLIGHT).await?;
    let timed = allocate(&chains, allocations, IN_FLIGHT).await?;
    let held = chains[1].counters().allocated;
    anyhow::ensure!(
        held == sectors + allocations,
        "the records hold {held} allocations, not {}",
        sectors + allocations
    );
    Ok(RecordsFigures {
        sectors_before: sectors,
        allocations,
        in_flight: IN_FLIGHT,
        allocations_per_s: allocations as f64 / timed.as_secs_f64(),
        fill_s: fill.as_secs_f64(),
    })
}
