//! JSON-RPC 2.0 over hyper 1 for damocles-rs.
//!
//! [`server`] serves any [`server::RpcService`] (a method table and its calls) with body
//! limits, bearer tokens and graceful shutdown; [`client`] calls one with timeouts;
//! [`admin`] is the worker admin API (`VenusWorker.*`) on both sides, wire-compatible with
//! the original damocles.
//!
//! **Boundary:** knows nothing of proofs or of rendering tables.

pub mod admin;
pub mod client;
pub mod jsonrpc;
pub mod method;
pub mod server;

pub use admin::{AdminService, HttpAdminClient};
pub use client::{CallError, RpcClient, Timeouts};
pub use server::{RpcServer, RpcService, ServerOptions};
