//! The integration tests of damocles-cli, one binary (linking the proof stack once): each
//! module is one area.

mod common;
mod dashboard;
mod deploy_metrics;
mod external_processors;
mod interop;
mod manager_and_worker;
mod metrics;
mod original_configs;
mod original_worker_seals;
mod postgres;
mod proving_check;
mod reliability;
mod render;
mod worker_daemon;
mod worker_startup;
