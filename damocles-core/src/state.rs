//! States, stage labels and events: the vocabulary of the plans' tables
//! ([`crate::plan_table`]).
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
    /// The stage label the original gives this state outside the plans whose tables say
    /// otherwise (reference §1.6); [`State::stage`] is the label under a plan.
    pub const fn default_stage(self) -> Stage {
        use State::*;
        match self {
            Allocated => Stage::AcquireDeals,
            DealsAcquired => Stage::AddPieces,
            PieceAdded | SnapPieceAdded => Stage::TreeD,
            TreeDBuilt => Stage::AssignTicket,
            TicketAssigned => Stage::PC1,
            PC1Done => Stage::PC2,
            SyntheticPoRepNeeded => Stage::SyntheticPoRep,
            PC2Done => Stage::SubmitPreCommit,
            PCSubmitted => Stage::WaitPCLanded,
            PCLanded | SnapProved | SnapDone => Stage::PersistFiles,
            Persisted => Stage::SubmitPersisted,
            PersistanceSubmitted => Stage::WaitSeed,
            SeedAssigned => Stage::C1,
            C1Done => Stage::C2,
            C2Done => Stage::SubmitProof,
            ProofSubmitted => Stage::WaitProofLanded,
            SnapEncoded => Stage::SnapProve,
            SnapTreeDBuilt => Stage::SnapEncode,
            Unsealed => Stage::UploadPiece,
            Empty | Finished | Aborted | SealedChecked => Stage::Nothing,
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
