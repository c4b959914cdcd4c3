//! Figure 4: `damocles-manager util worker list` end to end (process start, the call, the
//! table or JSON on stdout) against a manager holding N registry entries.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use damocles_core::{WorkerReport, WorkerSummary};
use damocles_rpc::Registry;
use serde::Serialize;

use super::ingest;

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct ListingFigures {
    /// Where the registry was: `redb` or `postgres`.
    pub store: &'static str,
    /// Registry entries.
    pub entries: usize,
    /// Median of the runs, table, ms (target < 200 ms at 10,000).
    pub table_ms: f64,
    /// Median of the runs, `--json`, ms.
    pub json_ms: f64,
    /// Size of the table, bytes.
    pub table_bytes: usize,
    /// Size of the JSON, bytes.
    pub json_bytes: usize,
}

/// Fills `registry` with `entries` workers, 8 pings at a time (redb shares commits).
pub async fn fill(registry: &Arc<dyn Registry>, entries: usize) -> anyhow::Result<()> {
    let now = damocles_rpc::manager::unix_now();
    let mut parts = Vec::new();
    for part in 0..8 {
        let registry = registry.clone();
        parts.push(tokio::spawn(async move {
            for i in (part..entries).step_by(8) {
                let report = WorkerReport {
                    name: format!("sealer-{i:07}"),
                    dest: format!("10.0.{}.{}:17890", (i >> 8) & 255, i & 255),
                    version: "v0.13.1-git.4235a895".into(),
                    summary: WorkerSummary {
                        threads: 32,
                        empty: 1,
                        paused: 0,
                        running: 24,
                        waiting: 7,
                        errors: 0,
                    },
                };
                registry.ping(report, now - (i % 900) as i64, true).await?;
            }
            anyhow::Ok(())
        }));
    }
    for part in parts {
        part.await??;
    }
    Ok(())
}

fn median(mut values: Vec<Duration>) -> f64 {
    values.sort();
    values[values.len() / 2].as_secs_f64() * 1e3
}

/// Runs figure 4 with `entries` entries, `runs` runs of each form, against the redb
/// registry or PostgreSQL's at `db`.
pub async fn run(entries: usize, runs: usize, db: Option<&str>) -> anyhow::Result<ListingFigures> {
    let home = tempfile::tempdir()?;
    let (store, registry) = ingest::registry(db, home.path()).await?;
    fill(&registry, entries).await?;
    let server = ingest::manager(registry.clone()).await?;
    let addr = server.local_addr().to_string();
    let binary = super::sibling_binary("damocles-manager")?;
    let time = |json: bool| -> anyhow::Result<(Duration, usize)> {
        let mut command = Command::new(&binary);
        command.args(["util", "--listen", &addr]);
        if json {
            command.arg("--json");
        }
        command.args(["worker", "list"]);
        let start = Instant::now();
        let output = command.output()?;
        let took = start.elapsed();
        anyhow::ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((took, output.stdout.len()))
    };
    let (mut table, mut json) = (Vec::new(), Vec::new());
    let (mut table_bytes, mut json_bytes) = (0, 0);
    for _ in 0..runs.max(1) {
        let (t, b) = tokio::task::block_in_place(|| time(false))?;
        table.push(t);
        table_bytes = b;
        let (t, b) = tokio::task::block_in_place(|| time(true))?;
        json.push(t);
        json_bytes = b;
    }
    server.shutdown().await;
    ingest::empty(&*registry).await?;
    Ok(ListingFigures {
        store,
        entries,
        table_ms: median(table),
        json_ms: median(json),
        table_bytes,
        json_bytes,
    })
}
