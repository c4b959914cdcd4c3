//! `WorkerBuilder`: a configuration becomes running threads that hold their locations
//! until shut down; what it refuses, it refuses before anything runs.

use std::sync::Arc;

use damocles_core::{ManagerError, Plan, SealProof, SectorManager};
use damocles_sealing::config::WorkerConfig;
use damocles_sealing::mock_chain::{ChainCall, MockChain};
use damocles_sealing::{BuildError, WorkerBuilder};

fn config(dir: &std::path::Path) -> WorkerConfig {
    let text = format!(
        "[worker]\nname = \"from-config\"\n\
         [sealing]\nseal_interval = \"1h\"\n\
         [[sealing_thread]]\nlocation = \"{0}/t0\"\n\
         [[sealing_thread]]\nlocation = \"{0}/t1\"\nplan = \"snapup\"\n\
         [[attached]]\nname = \"persist\"\nlocation = \"{0}/persist\"\n",
        dir.display()
    );
    WorkerConfig::parse(&text, "test.toml")
        .expect("config")
        .config
}

fn chain() -> Arc<dyn SectorManager> {
    Arc::new(MockChain::new(1000, SealProof::StackedDrg2KiBV1_1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_starts_its_threads_and_holds_their_locations_until_shut_down() {
    let dir = tempfile::tempdir().expect("dir");
    let running = WorkerBuilder::from_config(config(dir.path()))
        .manager(chain())
        .start()
        .await
        .expect("starts");
    assert_eq!(running.name(), "from-config");
    let threads = running.worker().list();
    let plans: Vec<Plan> = threads.iter().map(|t| t.plan).collect();
    assert_eq!(plans, [Plan::Sealer, Plan::Snapup]);
    assert!(
        threads[0].location.ends_with("t0"),
        "{}",
        threads[0].location
    );
    assert!(dir.path().join("t0").join("meta").is_dir(), "created");

    let second = WorkerBuilder::from_config(config(dir.path()))
        .manager(chain())
        .start()
        .await;
    assert!(
        matches!(second, Err(BuildError::Assemble(_))),
        "a second worker on the same locations is refused"
    );

    running.shutdown().await;
    let again = WorkerBuilder::from_config(config(dir.path()))
        .manager(chain())
        .name("renamed")
        .start()
        .await
        .expect("the locations are free once shut down");
    assert_eq!(again.name(), "renamed");
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_without_a_manager_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("dir");
    let refused = WorkerBuilder::from_config(config(dir.path())).start().await;
    let Err(error) = refused else {
        panic!("started without a manager")
    };
    assert!(matches!(error, BuildError::NoManager), "{error}");
    assert!(
        error.to_string().contains("WorkerBuilder::manager"),
        "{error}"
    );
    assert!(!dir.path().join("t0").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_manager_at_start_does_not_stop_the_worker() {
    let dir = tempfile::tempdir().expect("dir");
    let chain = MockChain::new(1000, SealProof::StackedDrg2KiBV1_1);
    chain.fail_next(
        ChainCall::StoreBasicInfo,
        1,
        ManagerError::transport("connection refused"),
    );
    let running = WorkerBuilder::from_config(config(dir.path()))
        .manager(Arc::new(chain))
        .start()
        .await
        .expect("starts anyway");
    assert_eq!(running.worker().list().len(), 2);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_worker_keeps_its_locations_locked_until_its_threads_stop() {
    let dir = tempfile::tempdir().expect("dir");
    let start = || {
        WorkerBuilder::from_config(config(dir.path()))
            .manager(chain())
            .start()
    };
    let running = start().await.expect("starts");
    let handle = running.worker().clone();
    drop(running);
    assert!(
        matches!(start().await, Err(BuildError::Assemble(_))),
        "another handle keeps the threads, and so the locks"
    );
    drop(handle);
    // The threads stop after their current step; then the locations are free. Nothing
    // outside the worker is told when its last lock goes, so this retries the start (the
    // condition) every 50 ms, for at most 60 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let again = loop {
        match start().await {
            Ok(again) => break again,
            Err(BuildError::Assemble(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the locations were never released: {e}"),
        }
    };
    again.shutdown().await;
}
