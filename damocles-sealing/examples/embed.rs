//! Embedding the worker runtime: two sealing threads with in-memory state, sealing real
//! 2KiB sectors for the in-process mock chain, driven through the `AdminTransport` API
//! an embedder's scheduler would use.
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

use damocles_core::testing::MemoryStateStore;
use damocles_core::{AdminTransport, Plan, SealProof, ThreadState};
use damocles_sealing::limits::StageLimits;
use damocles_sealing::mock_chain::MockChain;
use damocles_sealing::store::Location;
use damocles_sealing::{AttachedStore, SealingOptions, ThreadContext, Worker};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let chain = MockChain::new(1000, SealProof::StackedDrg2KiBV1_1);
    let limits = StageLimits::new([(damocles_core::ProofStage::C2, 1)]);
    let contexts = (0..2)
        .map(|i| {
            Ok(ThreadContext {
                worker_name: "embedded".into(),
                location: Location::init(&dir.path().join(format!("thread{i}")))?,
                plan: Plan::Sealer,
                options: SealingOptions::immediate(),
                manager: Arc::new(chain.clone()),
                store: Arc::new(MemoryStateStore::new()),
                limits: limits.clone(),
                attached: vec![AttachedStore {
                    name: "persist".into(),
                    location: dir.path().join("persist"),
                    readonly: false,
                }],
                pieces: Default::default(),
            })
        })
        .collect::<Result<Vec<_>, damocles_sealing::store::LocationError>>()?;
    let worker = Worker::start(contexts, "embed-example");
    let mut changes = worker.subscribe();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
    loop {
        let threads = AdminTransport::list(&worker).await?;
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
    worker.shutdown().await;
    Ok(())
}
