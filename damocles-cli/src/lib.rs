//! The `damocles-worker` and `damocles-manager` command lines: clap definitions, dispatch,
//! table and JSON renderers and exit codes, so the binaries stay thin.
//!
//! **Boundary:** no sealing or protocol logic: that lives in damocles-sealing and
//! damocles-rpc.

pub mod bad_value;
pub mod bulk;
pub mod events;
pub mod exit;
pub mod logging;
pub mod manager_cli;
pub mod render;
pub mod worker_cli;
pub mod worker_ops;
