//! `damocles-worker daemon`: the sealing threads of a configuration and their admin API,
//! until a signal stops them.

use std::path::PathBuf;
use std::sync::Arc;

use damocles_core::{SectorManager, SectorSize};
use damocles_rpc::{AdminService, RpcServer, ServerOptions};
use damocles_sealing::config::WorkerConfig;
use damocles_sealing::mock_chain::MockChain;
use damocles_sealing::{assemble, params, Worker};

use crate::exit;

/// The version the worker reports, in the original's `v<semver>-<build>` form.
pub fn version() -> String {
    format!("v{}-damocles-rs", env!("CARGO_PKG_VERSION"))
}

/// Runs the daemon; returns the exit code.
pub async fn run(config_path: PathBuf, mock_chain: Option<u64>) -> u8 {
    let loaded = match WorkerConfig::load(&config_path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config;
    let manager: Arc<dyn SectorManager> = match mock_chain {
        Some(miner) => {
            let size = config
                .sealing
                .allowed_sizes
                .as_ref()
                .and_then(|sizes| sizes.first().copied())
                .unwrap_or(SectorSize::KIB_2);
            let proof = match params::proof_for(size) {
                Ok(proof) => proof,
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::BAD_INPUT;
                }
            };
            tracing::info!("sealing {size} sectors for an in-process mock chain, miner {miner}");
            Arc::new(MockChain::new(miner, proof))
        }
        None => {
            eprintln!(
                "error: this build talks to no manager over HTTP yet; run with --mock-chain <MINER> to seal for an in-process mock chain"
            );
            return exit::BAD_INPUT;
        }
    };
    let name = config
        .worker
        .name
        .clone()
        .unwrap_or_else(|| "damocles-worker".to_owned());
    let contexts = match assemble::thread_contexts(&config, &name, manager) {
        Ok(contexts) => contexts,
        Err(e) => {
            eprintln!("error: config {}: {e}", config_path.display());
            return exit::BAD_INPUT;
        }
    };
    let threads = contexts.len();
    let worker = Arc::new(Worker::start(contexts, version()));
    let server = &config.worker.rpc_server;
    let options = ServerOptions {
        admin_token: server.admin_token.clone(),
        read_token: server.read_token.clone(),
        ..ServerOptions::default()
    };
    let admin = Arc::new(AdminService::new(worker.clone()));
    let server = match RpcServer::bind(&config.admin_addr(), admin, options).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}: {e} (is another worker running? set [worker] rpc_server.port)",
                config.admin_addr()
            );
            worker.shutdown().await;
            return exit::FAILED;
        }
    };
    eprintln!(
        "damocles-worker {}: {threads} sealing threads; admin API listening on {}",
        version(),
        server.local_addr()
    );
    wait_for_signal().await;
    let in_flight = worker.proof_calls_in_flight();
    eprintln!(
        "stopping: waiting for {in_flight} proof call(s) to return (signal again to exit now; interrupted steps re-run at the next start)"
    );
    server.shutdown().await;
    tokio::select! {
        () = worker.shutdown() => {
            eprintln!("stopped; every thread's record is saved");
            exit::OK
        }
        () = wait_for_signal() => {
            eprintln!("exiting now; the steps in flight re-run at the next start");
            exit::OK
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
