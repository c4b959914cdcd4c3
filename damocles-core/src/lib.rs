//! The vocabulary and traits of damocles-rs, the crate every other crate and every embedder
//! builds on.
//!
//! It owns sector identity ([`SectorId`], [`SealProof`], [`SectorSize`]), [`Plan`]s and
//! [`State`]s with their stage labels and transition tables (as data), [`FailureLevel`]s,
//! a thread's event history ([`ThreadEvent`], [`JournalEntry`]),
//! what operators see of a thread ([`ThreadInfo`], [`ThreadState`]), the worker report and
//! its summary, the persisted [`SectorRecord`], the sealer API types, and the traits
//! [`SealingThread`], [`StateStore`], [`Reporter`], [`AdminTransport`] and
//! [`SectorManager`].
//!
//! **Boundary:** no I/O, no async runtime, no transport or proof types. Anything that
//! touches a disk, a socket or a prover lives in `damocles-sealing` or `damocles-rpc`.
//! With the `testing` feature, the `testing` module has in-memory implementations of the
//! traits.
//!
//! ```
//! use damocles_core::{Plan, SectorId, State, Stage, EventKind};
//!
//! let id: SectorId = "s-t010000-2".parse()?;
//! assert_eq!(id.number, 2);
//!
//! // Transition tables are data: ask a plan where an event leads.
//! let next = Plan::Sealer.next_state(State::C1Done, EventKind::C2);
//! assert_eq!(next, Some(State::C2Done));
//! assert_eq!(State::C1Done.stage(Plan::Sealer), Stage::C2);
//!
//! // `resume --state` names are checked against the thread's plan.
//! let err = Plan::Sealer.parse_state("SnapEncoded").unwrap_err();
//! assert!(err.to_string().contains("TreeDBuilt"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod failure;
pub mod journal;
pub mod listing;
pub mod piece;
pub mod plan;
pub mod plan_table;
pub mod proof_stage;
pub mod record;
pub mod report;
pub mod sealer_api;
pub mod sector;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod thread;
pub mod traits;
pub mod wire;

pub use failure::{Failure, FailureLevel};
pub use journal::{Happening, JournalEntry, ThreadEvent, JOURNAL_LIMIT};
pub use piece::{NotThePiece, PieceCheck, PieceFetchError, PieceStore, PieceUploadError};
pub use plan::{ParsePlanError, Plan};
pub use plan_table::PlanTable;
pub use proof_stage::{ParseProofStageError, ProofStage};
pub use record::{
    AddedPiece, Event, HistoryEntry, Opaque, PreCommitOutput, SectorKey, SectorRecord,
    SnapEncodeOutput, UnsealTarget,
};
pub use report::{Liveness, WorkerReport, WorkerSummary};
pub use sealer_api::{ManagerError, SectorManager};
pub use sector::{ActorId, PoStProof, SealProof, SectorId, SectorNumber, SectorSize, UpdateProof};
pub use state::{EventKind, ParseStateError, PlanState, Stage, State, Transition, WdPostState};
pub use thread::{ThreadInfo, ThreadState};
pub use traits::{
    AdminError, AdminTransport, DrainOutcome, PauseOutcome, PlanSet, ReportError, Reporter,
    ResumeOutcome, SealingThread, StateStore, StopMode, StopOutcome, StoreError,
};
