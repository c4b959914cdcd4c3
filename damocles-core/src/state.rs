//! States, stage labels, events and each plan's transition table, as data.
//!
//! The names, the numbering and the stage labels are the original's exactly (reference
//! §1.6–1.8), so records, wire answers and operators' habits carry over.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::Plan;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $num:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)] // the variant names are the original's state names
        pub enum $name { $($variant = $num),+ }

        impl $name {
            /// Every value, in numbering order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The exact, case-sensitive name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }

            /// The number the original stores on disk.
            pub fn number(self) -> u64 {
                self as u64
            }

            /// The value of a stored number, if it is one.
            pub fn from_number(number: u64) -> Option<Self> {
                Self::ALL.iter().copied().find(|s| s.number() == number)
            }

            /// The value with this exact name, if there is one.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|s| s.as_str() == name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                Self::from_name(&name).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", stringify!($name), " {:?}"), name))
                })
            }
        }
    };
}

named_enum! {
    /// The state of a sector record (sealer, snapup, rebuild and unseal plans).
    State {
        Empty = 0,
        Allocated = 1,
        DealsAcquired = 2,
        PieceAdded = 3,
        TreeDBuilt = 4,
        TicketAssigned = 5,
        PC1Done = 6,
        PC2Done = 7,
        SyntheticPoRepNeeded = 8,
        PCSubmitted = 9,
        PCLanded = 10,
        Persisted = 11,
        PersistanceSubmitted = 12,
        SeedAssigned = 13,
        C1Done = 14,
        C2Done = 15,
        ProofSubmitted = 16,
        Finished = 17,
        Aborted = 18,
        SnapEncoded = 19,
        SnapProved = 20,
        SealedChecked = 21,
        SnapPieceAdded = 22,
        SnapTreeDBuilt = 23,
        SnapDone = 24,
        Unsealed = 25,
    }
}

named_enum! {
    /// The state of a window PoSt job (the `wdpost` plan, not persisted).
    WdPostState {
        Empty = 0,
        Allocated = 1,
        Generated = 2,
        Finished = 3,
        Aborted = 4,
    }
}

/// The label `worker list` shows as `JobStage`: what the thread does in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the variant names are the labels
#[non_exhaustive]
pub enum Stage {
    /// Shown as `-`: no work in this state.
    Nothing,
    AcquireDeals,
    AddPieces,
    TreeD,
    AssignTicket,
    PC1,
    PC2,
    SyntheticPoRep,
    SubmitPreCommit,
    WaitPCLanded,
    PersistFiles,
    SubmitPersisted,
    SubmitSnapupProof,
    WaitSeed,
    C1,
    C2,
    SubmitProof,
    WaitProofLanded,
    SnapEncode,
    SnapProve,
    PrepareForSnapup,
    Unseal,
    UploadPiece,
    Generate,
}

impl Stage {
    /// The label as the original prints it.
    pub fn as_str(self) -> &'static str {
        use Stage::*;
        match self {
            Nothing => "-",
            AcquireDeals => "AcquireDeals",
            AddPieces => "AddPieces",
            TreeD => "TreeD",
            AssignTicket => "AssignTicket",
            PC1 => "PC1",
            PC2 => "PC2",
            SyntheticPoRep => "SyntheticPoRep",
            SubmitPreCommit => "SubmitPreCommit",
            WaitPCLanded => "WaitPCLanded",
            PersistFiles => "PersistFiles",
            SubmitPersisted => "SubmitPersisted",
            SubmitSnapupProof => "SubmitSnapupProof",
            WaitSeed => "WaitSeed",
            C1 => "C1",
            C2 => "C2",
            SubmitProof => "SubmitProof",
            WaitProofLanded => "WaitProofLanded",
            SnapEncode => "SnapEncode",
            SnapProve => "SnapProve",
            PrepareForSnapup => "PrepareForSnapup",
            Unseal => "Unseal",
            UploadPiece => "UploadPiece",
            Generate => "Generate",
        }
    }
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 24] = {
        use Stage::*;
        [
            Nothing,
            AcquireDeals,
            AddPieces,
            TreeD,
            AssignTicket,
            PC1,
            PC2,
            SyntheticPoRep,
            SubmitPreCommit,
            WaitPCLanded,
            PersistFiles,
            SubmitPersisted,
            SubmitSnapupProof,
            WaitSeed,
            C1,
            C2,
            SubmitProof,
            WaitProofLanded,
            SnapEncode,
            SnapProve,
            PrepareForSnapup,
            Unseal,
            UploadPiece,
            Generate,
        ]
    };

    /// The stage with this label, if there is one.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == label)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl State {
    /// The stage label of this state under `plan` (reference §1.6).
    pub fn stage(self, plan: Plan) -> Stage {
        use State::*;
        match (self, plan) {
            (Allocated, Plan::Snapup | Plan::Rebuild) => Stage::AddPieces,
            (Allocated, Plan::Unseal) => Stage::Unseal,
            (Allocated, _) => Stage::AcquireDeals,
            (DealsAcquired, _) => Stage::AddPieces,
            (PieceAdded, _) => Stage::TreeD,
            (TreeDBuilt, Plan::Rebuild) => Stage::PC1,
            (TreeDBuilt, Plan::Snapup) => Stage::SnapEncode,
            (TreeDBuilt, _) => Stage::AssignTicket,
            (TicketAssigned, _) => Stage::PC1,
            (PC1Done, _) => Stage::PC2,
            (SyntheticPoRepNeeded, _) => Stage::SyntheticPoRep,
            (PC2Done, Plan::Rebuild) => Stage::C1,
            (PC2Done, _) => Stage::SubmitPreCommit,
            (PCSubmitted, _) => Stage::WaitPCLanded,
            (PCLanded | SnapProved, _) => Stage::PersistFiles,
            (Persisted, Plan::Snapup) => Stage::SubmitSnapupProof,
            (Persisted, _) => Stage::SubmitPersisted,
            (PersistanceSubmitted, _) => Stage::WaitSeed,
            (SeedAssigned, _) => Stage::C1,
            (C1Done, _) => Stage::C2,
            (C2Done, _) => Stage::SubmitProof,
            (ProofSubmitted, _) => Stage::WaitProofLanded,
            (SnapEncoded, _) => Stage::SnapProve,
            (SealedChecked, Plan::Rebuild) => Stage::PrepareForSnapup,
            (SnapPieceAdded, _) => Stage::TreeD,
            (SnapTreeDBuilt, _) => Stage::SnapEncode,
            (SnapDone, _) => Stage::PersistFiles,
            (Unsealed, _) => Stage::UploadPiece,
            (Empty | Finished | Aborted | SealedChecked, _) => Stage::Nothing,
        }
    }
}

impl WdPostState {
    /// The stage label of this job state.
    pub fn stage(self) -> Stage {
        match self {
            WdPostState::Allocated => Stage::Generate,
            WdPostState::Generated => Stage::SubmitProof,
            WdPostState::Empty | WdPostState::Finished | WdPostState::Aborted => Stage::Nothing,
        }
    }
}

/// The kind of an event: what moves a job from one state to the next. The names are the
/// ones the original logs and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)] // the variant names are the original's event names
#[non_exhaustive]
pub enum EventKind {
    /// An operator set the state (`resume --state`); no table lookup.
    SetState,
    Allocate,
    AcquireDeals,
    AddPiece,
    BuildTreeD,
    AssignTicket,
    PC1,
    PC2,
    PC2NeedSyntheticProof,
    SyntheticPoRep,
    SubmitPC,
    CheckPC,
    ReSubmitPC,
    Persist,
    SubmitPersistance,
    AssignSeed,
    C1,
    C2,
    SubmitProof,
    ReSubmitProof,
    Finish,
    AllocatedSnapUpSector,
    SnapEncode,
    SnapProve,
    RePersist,
    AllocatedRebuildSector,
    CheckSealed,
    SkipSnap,
    AllocatedUnsealSector,
    #[serde(rename = "Unsealed")]
    UnsealDone,
    UploadPieceDone,
    /// wdpost: a job was allocated.
    #[serde(rename = "Allocated")]
    JobAllocated,
    /// wdpost: the proof was generated.
    Generate,
}

/// The name histories and JSON give the event (its variant name, but `Allocated` for a
/// wdpost job's allocation and `Unsealed` for `UnsealDone`, as serde writes them).
impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::JobAllocated => f.write_str("Allocated"),
            EventKind::UnsealDone => f.write_str("Unsealed"),
            other => fmt::Debug::fmt(other, f),
        }
    }
}

/// One row of a transition table: in `from`, the event `event` leads to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition<S> {
    /// The state before.
    pub from: S,
    /// The event.
    pub event: EventKind,
    /// The state after.
    pub to: S,
}

const fn t<S>(from: S, event: EventKind, to: S) -> Transition<S> {
    Transition { from, event, to }
}

use EventKind as E;
use State as S;

/// The sealer plan (reference §1.8).
pub const SEALER_TRANSITIONS: &[Transition<State>] = &[
    t(S::Empty, E::Allocate, S::Allocated),
    t(S::Allocated, E::AcquireDeals, S::DealsAcquired),
    t(S::DealsAcquired, E::AddPiece, S::PieceAdded),
    t(S::PieceAdded, E::BuildTreeD, S::TreeDBuilt),
    t(S::TreeDBuilt, E::AssignTicket, S::TicketAssigned),
    t(S::TicketAssigned, E::PC1, S::PC1Done),
    t(S::PC1Done, E::PC2, S::PC2Done),
    t(
        S::PC1Done,
        E::PC2NeedSyntheticProof,
        S::SyntheticPoRepNeeded,
    ),
    t(S::SyntheticPoRepNeeded, E::SyntheticPoRep, S::PC2Done),
    t(S::PC2Done, E::SubmitPC, S::PCSubmitted),
    t(S::PCSubmitted, E::ReSubmitPC, S::PC2Done),
    t(S::PCSubmitted, E::CheckPC, S::PCLanded),
    t(S::PCLanded, E::Persist, S::Persisted),
    t(S::Persisted, E::SubmitPersistance, S::PersistanceSubmitted),
    t(S::PersistanceSubmitted, E::AssignSeed, S::SeedAssigned),
    t(S::SeedAssigned, E::C1, S::C1Done),
    t(S::C1Done, E::C2, S::C2Done),
    t(S::C2Done, E::SubmitProof, S::ProofSubmitted),
    t(S::ProofSubmitted, E::ReSubmitProof, S::C2Done),
    t(S::ProofSubmitted, E::Finish, S::Finished),
];

/// The snapup plan.
pub const SNAPUP_TRANSITIONS: &[Transition<State>] = &[
    t(S::Empty, E::AllocatedSnapUpSector, S::Allocated),
    t(S::Allocated, E::AddPiece, S::PieceAdded),
    t(S::PieceAdded, E::BuildTreeD, S::TreeDBuilt),
    t(S::TreeDBuilt, E::SnapEncode, S::SnapEncoded),
    t(S::SnapEncoded, E::SnapProve, S::SnapProved),
    t(S::SnapProved, E::Persist, S::Persisted),
    t(S::Persisted, E::RePersist, S::SnapProved),
    t(S::Persisted, E::Finish, S::Finished),
];

/// The rebuild plan.
pub const REBUILD_TRANSITIONS: &[Transition<State>] = &[
    t(S::Empty, E::AllocatedRebuildSector, S::Allocated),
    t(S::Allocated, E::AddPiece, S::PieceAdded),
    t(S::PieceAdded, E::BuildTreeD, S::TreeDBuilt),
    t(S::TreeDBuilt, E::PC1, S::PC1Done),
    t(
        S::PC1Done,
        E::PC2NeedSyntheticProof,
        S::SyntheticPoRepNeeded,
    ),
    t(S::PC1Done, E::PC2, S::PC2Done),
    t(S::SyntheticPoRepNeeded, E::SyntheticPoRep, S::PC2Done),
    t(S::PC2Done, E::CheckSealed, S::SealedChecked),
    t(S::SealedChecked, E::SkipSnap, S::SnapDone),
    t(S::SealedChecked, E::AddPiece, S::SnapPieceAdded),
    t(S::SnapPieceAdded, E::BuildTreeD, S::SnapTreeDBuilt),
    t(S::SnapTreeDBuilt, E::SnapEncode, S::SnapEncoded),
    t(S::SnapEncoded, E::SnapProve, S::SnapDone),
    t(S::SnapDone, E::Persist, S::Persisted),
    t(S::Persisted, E::SubmitPersistance, S::Finished),
];

/// The unseal plan.
pub const UNSEAL_TRANSITIONS: &[Transition<State>] = &[
    t(S::Empty, E::AllocatedUnsealSector, S::Allocated),
    t(S::Allocated, E::UnsealDone, S::Unsealed),
    t(S::Unsealed, E::UploadPieceDone, S::Finished),
];

/// The wdpost plan.
pub const WDPOST_TRANSITIONS: &[Transition<WdPostState>] = &[
    t(WdPostState::Empty, E::JobAllocated, WdPostState::Allocated),
    t(WdPostState::Allocated, E::Generate, WdPostState::Generated),
    t(WdPostState::Generated, E::Finish, WdPostState::Finished),
];

/// The state of a thread's job under its plan: a sector state, or a wdpost job state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlanState {
    /// A sector state (sealer, snapup, rebuild, unseal).
    Sector(State),
    /// A window PoSt job state (wdpost).
    WdPost(WdPostState),
}

impl PlanState {
    /// The exact name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::Sector(s) => s.as_str(),
            PlanState::WdPost(s) => s.as_str(),
        }
    }

    /// The stage label under `plan`.
    pub fn stage(self, plan: Plan) -> Stage {
        match self {
            PlanState::Sector(s) => s.stage(plan),
            PlanState::WdPost(s) => s.stage(),
        }
    }
}

impl fmt::Display for PlanState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name the plan does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {input:?} for plan {plan}; valid states: {}", valid.join(", "))]
pub struct ParseStateError {
    /// The plan the name was parsed for.
    pub plan: Plan,
    /// What was given.
    pub input: String,
    /// The names the plan accepts.
    pub valid: Vec<&'static str>,
}

impl Plan {
    /// The transition table of a sector plan; empty for wdpost (see [`WDPOST_TRANSITIONS`]).
    pub fn transitions(self) -> &'static [Transition<State>] {
        match self {
            Plan::Sealer => SEALER_TRANSITIONS,
            Plan::Snapup => SNAPUP_TRANSITIONS,
            Plan::Rebuild => REBUILD_TRANSITIONS,
            Plan::Unseal => UNSEAL_TRANSITIONS,
            Plan::Wdpost => &[],
        }
    }

    /// The state `event` leads to from `from` under this plan, if the table has that row.
    pub fn next_state(self, from: State, event: EventKind) -> Option<State> {
        self.transitions()
            .iter()
            .find(|row| row.from == from && row.event == event)
            .map(|row| row.to)
    }

    /// The state a new job of this plan starts in.
    pub fn initial_state(self) -> PlanState {
        match self {
            Plan::Wdpost => PlanState::WdPost(WdPostState::Empty),
            _ => PlanState::Sector(State::Empty),
        }
    }

    /// The states `resume --state` accepts for a thread of this plan: every state of its
    /// table except `Empty` (which would drop the job's sector), plus `Aborted`.
    pub fn resumable_states(self) -> Vec<PlanState> {
        let mut states: Vec<PlanState> = match self {
            Plan::Wdpost => WDPOST_TRANSITIONS
                .iter()
                .flat_map(|row| [row.from, row.to])
                .map(PlanState::WdPost)
                .collect(),
            _ => self
                .transitions()
                .iter()
                .flat_map(|row| [row.from, row.to])
                .map(PlanState::Sector)
                .collect(),
        };
        states.push(match self {
            Plan::Wdpost => PlanState::WdPost(WdPostState::Aborted),
            _ => PlanState::Sector(State::Aborted),
        });
        let mut unique: Vec<PlanState> = Vec::new();
        for state in states {
            if state != self.initial_state() && !unique.contains(&state) {
                unique.push(state);
            }
        }
        unique.sort_by_key(|s| match s {
            PlanState::Sector(s) => s.number(),
            PlanState::WdPost(s) => s.number(),
        });
        unique
    }

    /// Parses a `resume --state` name for a thread of this plan. An unknown name, or one of
    /// another plan, fails with an error that names the plan and lists the valid states.
    pub fn parse_state(self, name: &str) -> Result<PlanState, ParseStateError> {
        let valid = self.resumable_states();
        valid
            .iter()
            .copied()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| ParseStateError {
                plan: self,
                input: name.to_owned(),
                valid: valid.iter().map(|s| s.as_str()).collect(),
            })
    }
}
