//! Embedding the worker runtime: a [`WorkerBuilder`] starts two sealing threads from a
//! configuration, sealing real 2KiB sectors for the in-process mock chain, watched
//! through the `AdminTransport` API an embedder's scheduler would use.
//!
//! ```text
//! cargo run -p damocles-sealing --example embed
//! ```
//!
//! Without the 2KiB parameters (`damocles-worker params generate --sector-size 2KiB`)
//! the threads run every step up to C2 and then pause with the upstream error, which this
//! example prints.

use std::sync::Arc;
use std::time::Duration;

use damocles_core::{AdminTransport, SealProof, ThreadState};
use damocles_sealing::config::WorkerConfig;
use damocles_sealing::mock_chain::MockChain;
use damocles_sealing::WorkerBuilder;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let chain = MockChain::new(1000, SealProof::StackedDrg2KiBV1_1);
    // One sector: the second thread shows how an idle thread looks, and the example ends
    // with the first proof instead of waiting for a second C2.
    chain.limit_sectors(1);
    // The configuration a daemon would read from worker.toml; the locations are created.
    let config = WorkerConfig::parse(
        &format!(
            "[sealing]\nseal_interval = \"0s\"\nrecover_interval = \"1s\"\nrpc_polling_interval = \"0s\"\n\
             [processors.limitation.concurrent]\nc2 = 1\n\
             [[sealing_thread]]\nlocation = \"{0}/thread0\"\n\
             [[sealing_thread]]\nlocation = \"{0}/thread1\"\n\
             [[attached]]\nname = \"persist\"\nlocation = \"{0}/persist\"\n",
            dir.path().display()
        ),
        "embed example",
    )?
    .config;
    std::fs::create_dir_all(dir.path().join("persist"))?;
    let running = WorkerBuilder::from_config(config)
        .name("embedded")
        .manager(Arc::new(chain.clone()))
        .piece_store(Arc::new(chain.clone()))
        .start()
        .await?;
    let worker = running.worker().clone();
    let mut changes = worker.subscribe();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
    loop {
        let threads = AdminTransport::list(&*worker).await?;
        for t in &threads {
            println!(
                "#{} {:<14} {:<16} {}",
                t.index,
                t.job_id.as_deref().unwrap_or("-"),
                t.job_state.map_or("-", |s| s.as_str()),
                t.thread_state
            );
        }
        let proven = chain.counters().proofs_accepted;
        let all_paused = threads
            .iter()
            .all(|t| matches!(t.thread_state, ThreadState::Paused { .. }));
        if proven >= 1 || all_paused {
            println!("proofs accepted by the mock chain: {proven}");
            for t in threads.iter().filter(|t| t.last_error.is_some()) {
                println!(
                    "#{} paused: {}",
                    t.index,
                    t.last_error.as_deref().unwrap_or("")
                );
            }
            break;
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            println!("gave up after 15 minutes");
            break;
        }
    }
    drop(worker);
    running.shutdown().await;
    Ok(())
}
