//! Figure 5: resident memory of a worker daemon with N idle threads, and of a mock
//! manager holding M registry entries, read from /proc once they have settled.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use super::{ingest, stats::rss_mib};

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryFigures {
    /// Idle worker threads.
    pub worker_threads: usize,
    /// Worker RSS, MiB (target < 50 MiB at 64 threads).
    pub worker_rss_mib: f64,
    /// Registry entries.
    pub manager_entries: usize,
    /// Manager RSS, MiB (target < 200 MiB at 10,000 entries).
    pub manager_rss_mib: f64,
}

/// A child that said where it listens; killed when dropped.
struct Child {
    child: std::process::Child,
    address: String,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command, marker: &str) -> anyhow::Result<Child> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("exited before listening"))??;
        if let Some((_, rest)) = line.split_once(marker) {
            let rest = rest.trim().trim_start_matches("http://");
            break rest.split('/').next().unwrap_or_default().to_owned();
        }
    };
    // Keep draining its logs so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Child { child, address })
}

fn sibling(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        path.is_file(),
        "{} not found: build it first",
        path.display()
    );
    Ok(path)
}

/// Runs figure 5.
pub async fn run(worker_threads: usize, manager_entries: usize) -> anyhow::Result<MemoryFigures> {
    let dir = tempfile::tempdir()?;
    // A worker whose threads have nothing to seal: the mock chain is miner 10000, the
    // threads only take sectors of miner 1.
    let mut config = String::from(
        "[worker]\nrpc_server.host = \"127.0.0.1\"\nrpc_server.port = 0\n\
         [sealing]\nallowed_miners = [1]\nrecover_interval = \"1h\"\n",
    );
    for i in 0..worker_threads {
        let location = dir.path().join(format!("store{i}"));
        damocles_sealing::store::Location::init(&location)?;
        config.push_str(&format!(
            "[[sealing_thread]]\nlocation = \"{}\"\n",
            location.display()
        ));
    }
    config.push_str(&format!(
        "[[attached]]\nname = \"persist\"\nlocation = \"{}\"\n",
        dir.path().join("persist").display()
    ));
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, config)?;
    let mut command = Command::new(sibling("damocles-worker")?);
    command
        .args(["daemon", "--mock-chain", "10000", "-c"])
        .arg(&config_path);
    let worker = spawn(command, "admin API listening on ")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let worker_rss = rss_mib(worker.child.id()).unwrap_or(f64::NAN);
    drop(worker);

    let mut command = Command::new(sibling("damocles-manager")?);
    command
        .args(["mock", "--listen", "127.0.0.1:0", "--home"])
        .arg(dir.path().join("manager"));
    let manager = spawn(command, "listening on ")?;
    ingest::send_pings(&manager.address, manager_entries, 1, 16).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let manager_rss = rss_mib(manager.child.id()).unwrap_or(f64::NAN);
    drop(manager);
    Ok(MemoryFigures {
        worker_threads,
        worker_rss_mib: worker_rss,
        manager_entries,
        manager_rss_mib: manager_rss,
    })
}
