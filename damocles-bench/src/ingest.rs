//! Figure 3: `Venus.WorkerPing` from many simulated workers (distinct names, realistic
//! summaries) into a manager whose registry is persisted: sustained pings per second and
//! latency, over several keep-alive connections at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use damocles_core::{SealProof, WorkerReport, WorkerSummary};
use damocles_rpc::sealer::MANAGER_PATH;
use damocles_rpc::{ManagerService, Registry, RpcServer, WorkerRegistry};
use damocles_sealing::mock_chain::MockChain;
use serde::Serialize;
use serde_json::json;

use super::stats::{Connection, Latency};

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct IngestFigures {
    /// Where the registry was: `redb` or `postgres`.
    pub store: &'static str,
    /// Distinct workers.
    pub workers: usize,
    /// Pings sent (every worker pings `pings / workers` times).
    pub pings: usize,
    /// Connections sending at once.
    pub connections: usize,
    /// Sustained pings per second (target ≥ 20,000 on 2 cores).
    pub pings_per_s: f64,
    /// Latency of one ping.
    pub latency: Latency,
    /// Registry entries afterwards (must equal `workers`).
    pub entries: usize,
}

/// The ping of simulated worker `i`, as a JSON-RPC body.
pub fn ping_body(i: usize, id: usize) -> Bytes {
    let threads = 8 + (i % 57) as u64;
    let report = WorkerReport {
        name: format!("sealer-{i:07}"),
        dest: format!(
            "10.{}.{}.{}:17890",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ),
        version: "v0.13.1-git.4235a895".into(),
        summary: WorkerSummary {
            threads,
            empty: i as u64 % 3,
            paused: i as u64 % 2,
            running: threads / 2,
            waiting: threads / 4,
            errors: i as u64 % 2,
        },
    };
    Bytes::from(
        json!({"jsonrpc": "2.0", "method": "Venus.WorkerPing", "params": [report], "id": id})
            .to_string(),
    )
}

/// A manager at a loopback address over `registry`.
pub async fn manager(registry: Arc<dyn Registry>) -> anyhow::Result<RpcServer> {
    let service = ManagerService::new(
        Arc::new(MockChain::new(10000, SealProof::StackedDrg2KiBV1_1)),
        registry,
        Duration::from_secs(600),
        "v-bench",
        None,
    );
    Ok(service.serve("127.0.0.1:0").await?)
}

/// Sends `rounds` pings from each of `workers` workers over `connections` connections.
pub async fn send_pings(
    addr: &str,
    workers: usize,
    rounds: usize,
    connections: usize,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let addr = addr.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&addr, MANAGER_PATH).await?;
            let mut times = Vec::new();
            for round in 0..rounds {
                for i in (c..workers).step_by(connections) {
                    times.push(connection.post(ping_body(i, round)).await?.1);
                }
            }
            anyhow::Ok(times)
        }));
    }
    let mut all = Vec::with_capacity(workers * rounds);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((start.elapsed(), all))
}

/// The registry a figure runs against: redb in a temporary home, or the (empty)
/// PostgreSQL registry at `db`.
pub async fn registry(
    db: Option<&str>,
    home: &std::path::Path,
) -> anyhow::Result<(&'static str, Arc<dyn Registry>)> {
    match db {
        None => Ok(("redb", Arc::new(WorkerRegistry::open(home)?))),
        Some(url) => {
            let registry = damocles_rpc::PgRegistry::connect(url).await?;
            anyhow::ensure!(
                registry.entries().await?.is_empty(),
                "the registry at {} is not empty: give the benchmark a scratch database (it empties it afterwards)",
                damocles_rpc::pg::without_password(url)
            );
            Ok(("postgres", Arc::new(registry)))
        }
    }
}

/// Empties a registry the benchmark filled.
pub async fn empty(registry: &dyn Registry) -> anyhow::Result<()> {
    for entry in registry.entries().await? {
        registry.forget(&entry.info.name).await?;
    }
    Ok(())
}

/// Runs figure 3 against the redb registry, or PostgreSQL's at `db`.
pub async fn run(
    workers: usize,
    rounds: usize,
    connections: usize,
    db: Option<&str>,
) -> anyhow::Result<IngestFigures> {
    let home = tempfile::tempdir()?;
    let (store, registry) = registry(db, home.path()).await?;
    let server = manager(registry.clone()).await?;
    let addr = server.local_addr().to_string();
    let (elapsed, times) = send_pings(&addr, workers, rounds, connections).await?;
    let pings = times.len();
    server.shutdown().await;
    let entries = registry.entries().await?.len();
    empty(&*registry).await?;
    Ok(IngestFigures {
        store,
        workers,
        pings,
        connections,
        pings_per_s: pings as f64 / elapsed.as_secs_f64(),
        latency: Latency::of(times),
        entries,
    })
}
