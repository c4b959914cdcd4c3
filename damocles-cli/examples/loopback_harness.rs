//! A test harness with the manager and a worker in one process on loopback: the mock
//! chain served at `/rpc/v0` on a free port, a worker started from a config pointing at
//! it (as `damocles-worker daemon` starts one), and the thread driven over the worker's
//! admin API through [`HttpAdminClient`], the `AdminTransport` a remote scheduler uses.
//! It pauses the thread, resumes it, and waits until the mock chain has verified the
//! sector's proof (about a minute on 2 cores, nearly all of it C2) or, without the 2KiB
//! parameters, until the thread pauses at C2 with upstream's error; then it stops
//! everything.
//!
//! ```text
//! cargo run -p damocles-cli --example loopback_harness
//! ```

use std::sync::Arc;
use std::time::Duration;

use damocles_cli::worker_cli::daemon::{self, ManagerChoice};
use damocles_core::{AdminTransport, PauseOutcome, SealProof, ThreadState};
use damocles_rpc::admin::HttpAdminClient;
use damocles_rpc::client::Timeouts;
use damocles_rpc::{ManagerService, WorkerRegistry};
use damocles_sealing::mock_chain::MockChain;

type Error = Box<dyn std::error::Error>;

/// Polls `done` every 50 ms for at most `limit`.
async fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl AsyncFnMut() -> bool,
) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{what}");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let chain = MockChain::new(10000, SealProof::StackedDrg2KiBV1_1);
    chain.limit_sectors(1);
    let manager = ManagerService::new(
        Arc::new(chain.clone()),
        Arc::new(WorkerRegistry::in_memory()?),
        Duration::from_secs(60),
        "v-harness",
        None,
    )
    .serve("127.0.0.1:0")
    .await?;
    let location = dir.path().join("store0");
    damocles_sealing::store::Location::init(&location)?;
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "[worker]\nname = \"harness\"\nrpc_server.host = \"127.0.0.1\"\nrpc_server.port = 0\nping_interval = \"1s\"\n\
             [sector_manager]\nrpc_client.addr = \"http://{}\"\n\
             [sealing]\nallowed_sizes = [\"2KiB\"]\nrecover_interval = \"1s\"\nrpc_polling_interval = \"0s\"\n\
             [[sealing_thread]]\nlocation = \"{}\"\n\
             [[attached]]\nname = \"persist\"\nlocation = \"{}\"\n",
            manager.local_addr(),
            location.display(),
            dir.path().join("persist").display()
        ),
    )?;
    let running = daemon::start(&config, ManagerChoice::FromConfig).await?;
    let admin = HttpAdminClient::new(&running.admin_addr().to_string(), None, Timeouts::default())?;

    // Paused once it holds its sector: a pause while its AllocateSector call is in flight
    // drops the manager's answer (a known issue), and this mock allocates one sector only.
    wait_until(
        "thread 0 holds a sector",
        Duration::from_secs(60),
        async || {
            admin
                .list()
                .await
                .is_ok_and(|t| t.first().is_some_and(|t| t.job_id.is_some()))
        },
    )
    .await?;
    let outcome = admin.pause(0).await?;
    println!("pause over HTTP: {outcome:?}");
    wait_until("thread 0 paused", Duration::from_secs(60), async || {
        admin.list().await.is_ok_and(|t| {
            matches!(t[0].thread_state, ThreadState::Paused { .. })
                || outcome == PauseOutcome::Requested
        })
    })
    .await?;
    println!("resume over HTTP: {:?}", admin.resume(0, None).await?);
    let paused_with_error = |t: &[damocles_core::ThreadInfo]| {
        t.first().is_some_and(|t| {
            matches!(t.thread_state, ThreadState::Paused { .. }) && t.last_error.is_some()
        })
    };
    let mut last = String::new();
    wait_until(
        "the sector proven (or the thread paused on an error)",
        Duration::from_secs(10 * 60),
        async || {
            let threads = admin.list().await.unwrap_or_default();
            if let Some(t) = threads.first() {
                let proc = match &t.thread_state {
                    ThreadState::Running { proc: Some(p), .. } => p.as_str(),
                    other => other.name(),
                };
                let now = format!(
                    "  thread 0: {} {proc}",
                    t.job_state.map_or("-", |s| s.as_str())
                );
                if now != last {
                    println!("{now}");
                    last = now;
                }
            }
            chain.counters().proofs_accepted == 1 || paused_with_error(&threads)
        },
    )
    .await?;
    let threads = admin.list().await?;
    println!(
        "thread 0: {} at {}; proofs verified by the mock chain: {}",
        threads[0].job_id.as_deref().unwrap_or("-"),
        threads[0].job_state.map_or("-", |s| s.as_str()),
        chain.counters().proofs_accepted
    );
    if let Some(error) = &threads[0].last_error {
        println!("thread 0 paused: {error}");
    }
    let registered = chain.sectors().len();
    println!("sectors on the mock chain: {registered}");
    running.stop().await;
    manager.shutdown().await;
    println!("stopped; records kept in {}", location.display());
    Ok(())
}
