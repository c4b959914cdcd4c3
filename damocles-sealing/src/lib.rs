//! The damocles-rs worker runtime and its proof backend.
//!
//! [`proofs`] runs each sealing step for real through `filecoin-proofs-api` (blocking
//! calls, every error classified into a failure level where it is called); [`params`]
//! finds and, for test sizes, generates the Groth parameters; [`paths`] lays out a
//! sector's files under a thread's location.
//!
//! With the `mock-chain` feature (on in the command lines and the benchmarks, off by
//! default), [`mock_chain`] is the manager's side for one machine: a chain that allocates
//! jobs of every plan, offers deals, hands out tickets and seeds and verifies every proof.
//! A worker-only embedder leaves it out.
//!
//! **Boundary:** knows nothing of HTTP or JSON-RPC. Build with the `cuda` or `opencl`
//! feature to run C2 on a GPU; the default build is CPU-only.

pub mod assemble;
mod builder;
pub mod config;
pub mod config_check;
mod control;
mod cpuset;
pub mod hot_config;
mod journal;
pub mod limits;
pub mod metrics;
#[cfg(feature = "mock-chain")]
pub mod mock_chain;
pub mod options;
pub mod panics;
pub mod params;
pub mod paths;
pub mod pieces;
mod plans;
pub mod priority;
pub mod processors;
pub mod proofs;
pub mod reporting;
pub mod resume;
mod runner;
pub mod store;
pub mod thread;
pub mod unseal;
pub mod update;
pub mod window_post;
pub mod worker;

pub use builder::{BuildError, RunningWorker, WorkerBuilder};
pub use options::SealingOptions;
pub use thread::{AttachedStore, ThreadContext};
pub use worker::{ThreadHandle, Worker};
