//! JSON-RPC 2.0 over hyper 1 for damocles-rs.
//!
//! [`server`] serves any [`server::RpcService`] (a method table and its calls) with body
//! limits, bearer tokens and graceful shutdown; [`client`] calls one with timeouts;
//! [`admin`] is the worker admin API (`VenusWorker.*`) on both sides; [`manager`] the
//! manager's API (`Venus.*` at `/rpc/v0`: pings into the [`registry`], the [`sealer`] API
//! over any `SectorManager`) and its clients. All wire-compatible with the original
//! damocles.
//!
//! With the `postgres` feature (on in the command lines, off by default), [`pg`] keeps
//! the manager's state in PostgreSQL (or YugabyteDB): [`pg_registry`] the workers,
//! [`pg_records`] the mock chain's records (one row each), [`pg_pieces`] the piece store; without it the
//! crate does not compile sqlx.
//!
//! **Boundary:** knows nothing of proofs or of rendering tables.

pub mod admin;
pub mod client;
pub mod conn;
pub mod dialect;
pub mod fleet;
pub mod jsonrpc;
pub mod manager;
pub mod method;
pub mod metrics;
pub mod net;
pub mod pages;
#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "postgres")]
pub mod pg_pieces;
#[cfg(feature = "postgres")]
pub mod pg_records;
#[cfg(feature = "postgres")]
pub mod pg_registry;
pub mod piece_server;
pub mod piecestore;
pub mod protocol;
pub mod registry;
pub mod sealer;
pub mod server;
pub mod tls;

pub use admin::{AdminService, HttpAdminClient};
pub use client::{CallError, RpcClient, Timeouts};
pub use conn::ConnectionLimits;
pub use manager::{ManagerClient, ManagerService};
#[cfg(feature = "postgres")]
pub use pg_registry::PgRegistry;
pub use piecestore::HttpPieceStore;
pub use registry::{Registry, WorkerRegistry};
pub use sealer::HttpSectorManager;
pub use server::{Caller, RpcServer, RpcService, ServerOptions};
