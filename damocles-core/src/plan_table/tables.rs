//! The tables of the sector plans.

use super::{Input, PlanTable, Step};
use crate::plan::Plan;
use crate::state::{EventKind, EventKind as E, Stage, State, State as S, Transition, WdPostState};

const fn t<T>(from: T, event: EventKind, to: T) -> Transition<T> {
    Transition { from, event, to }
}

use Input::*;

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

const SYNTHETIC_POREP: &str = "generate synthetic PoRep";

/// The sealer plan's steps. The PC1 step fetches a ticket when the record has none.
const SEALER_STEPS: &[Step] = &[
    Step::at(S::Empty).produces(&[Sector]),
    Step::at(S::Allocated).consumes(&[Sector]),
    Step::at(S::DealsAcquired)
        .consumes(&[Sector])
        .produces(&[Pieces, StagedFile]),
    Step::at(S::PieceAdded).consumes(&[Sector, Pieces]),
    Step::at(S::TreeDBuilt).consumes(&[Sector, Pieces]),
    Step::at(S::TicketAssigned)
        .consumes(&[Sector, Pieces, StagedFile])
        .produces(&[Ticket, PC1Output, Labels]),
    Step::at(S::PC1Done)
        .consumes(&[Sector, Pieces, PC1Output, StagedFile, Labels])
        .produces(&[PC2Output, Replica]),
    Step::at(S::SyntheticPoRepNeeded).unsupported(SYNTHETIC_POREP),
    Step::at(S::PC2Done).consumes(&[Sector, PC2Output, Ticket]),
    Step::at(S::PCSubmitted)
        .consumes(&[Sector])
        .waits_for_chain(),
    Step::at(S::PCLanded)
        .consumes(&[Sector, Replica])
        .produces(&[PersistInstance])
        .persists(),
    Step::at(S::Persisted).consumes(&[Sector, PersistInstance]),
    Step::at(S::PersistanceSubmitted)
        .consumes(&[Sector])
        .produces(&[Seed]),
    Step::at(S::SeedAssigned)
        .consumes(&[Sector, Ticket, Seed, PC2Output, Pieces, Labels, Replica])
        .produces(&[C1Output]),
    Step::at(S::C1Done)
        .consumes(&[Sector, C1Output])
        .produces(&[Proof]),
    Step::at(S::C2Done).consumes(&[Sector, Proof]),
    Step::at(S::ProofSubmitted)
        .consumes(&[Sector])
        .waits_for_chain(),
    Step::at(S::Finished).consumes(&[Sector]),
];

/// The sealer plan.
pub const SEALER: PlanTable = PlanTable {
    plan: Plan::Sealer,
    transitions: SEALER_TRANSITIONS,
    steps: SEALER_STEPS,
    resume_anywhere: true,
    upgraded: None,
};

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

/// The snap-up plan's steps. The sector key's files are fetched from its store by the
/// steps that read them, so only the record's note of it is an input.
const SNAPUP_STEPS: &[Step] = &[
    Step::at(S::Empty).produces(&[Sector, SectorKey]),
    Step::at(S::Allocated)
        .shown_as(Stage::AddPieces)
        .consumes(&[Sector, SectorKey])
        .produces(&[Pieces, StagedFile]),
    Step::at(S::PieceAdded).consumes(&[Sector, Pieces]),
    Step::at(S::TreeDBuilt)
        .shown_as(Stage::SnapEncode)
        .consumes(&[Sector, SectorKey, Pieces, StagedFile])
        .produces(&[SnapEncodeOutput, UpdatedReplica]),
    Step::at(S::SnapEncoded)
        .consumes(&[Sector, SectorKey, SnapEncodeOutput, UpdatedReplica])
        .produces(&[UpdateProof]),
    // The persist copies the staged file too: a snapped sector holds deals.
    Step::at(S::SnapProved)
        .consumes(&[Sector, UpdatedReplica, StagedFile])
        .produces(&[PersistInstance])
        .persists(),
    Step::at(S::Persisted)
        .shown_as(Stage::SubmitSnapupProof)
        .consumes(&[Sector, PersistInstance, SnapEncodeOutput, UpdateProof]),
    Step::at(S::Finished).consumes(&[Sector]),
];

/// The snapup plan.
pub const SNAPUP: PlanTable = PlanTable {
    plan: Plan::Snapup,
    transitions: SNAPUP_TRANSITIONS,
    steps: SNAPUP_STEPS,
    resume_anywhere: true,
    upgraded: None,
};

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

/// A rebuild's steps up to its sealed check, upgraded or not: the ticket comes with the
/// allocation (the sector's own, from the chain).
const REBUILD_SEAL_STEPS: [Step; 7] = [
    Step::at(S::Empty).produces(&[Sector, Ticket]),
    Step::at(S::Allocated)
        .shown_as(Stage::AddPieces)
        .consumes(&[Sector, Ticket])
        .produces(&[Pieces, StagedFile]),
    Step::at(S::PieceAdded).consumes(&[Sector, Pieces]),
    Step::at(S::TreeDBuilt)
        .shown_as(Stage::PC1)
        .consumes(&[Sector, Ticket, Pieces, StagedFile])
        .produces(&[PC1Output, Labels]),
    Step::at(S::PC1Done)
        .consumes(&[Sector, Pieces, PC1Output, StagedFile, Labels])
        .produces(&[PC2Output, Replica]),
    Step::at(S::SyntheticPoRepNeeded).unsupported(SYNTHETIC_POREP),
    Step::at(S::PC2Done)
        .shown_as(Stage::C1)
        .consumes(&[Sector, Ticket, PC2Output, Pieces, Labels, Replica]),
];

/// A rebuild's last steps, upgraded or not: persist the files (`replicas`: the ones the
/// sector is on chain), report them, finish.
const fn rebuild_persist_steps(replicas: &'static [Input]) -> [Step; 3] {
    [
        Step::at(S::SnapDone)
            .consumes(replicas)
            .produces(&[PersistInstance])
            .persists(),
        Step::at(S::Persisted).consumes(&[Sector, PersistInstance]),
        Step::at(S::Finished).consumes(&[Sector]),
    ]
}

const REBUILD_STEPS: &[Step] = &{
    let seal = REBUILD_SEAL_STEPS;
    let persist = rebuild_persist_steps(&[Sector, Replica]);
    [
        seal[0],
        seal[1],
        seal[2],
        seal[3],
        seal[4],
        seal[5],
        seal[6],
        Step::at(S::SealedChecked)
            .shown_as(Stage::PrepareForSnapup)
            .consumes(&[Sector]),
        persist[0],
        persist[1],
        persist[2],
    ]
};

/// An upgraded sector's rebuild: the sealed replica is the sector key of the snap-up
/// steps, and from SealedChecked on the staged file and the pieces hold the upgrade's
/// deals.
const REBUILD_UPGRADED_STEPS: &[Step] = &{
    let seal = REBUILD_SEAL_STEPS;
    let persist = rebuild_persist_steps(&[Sector, Replica, UpdatedReplica]);
    [
        seal[0],
        seal[1],
        seal[2],
        seal[3],
        seal[4],
        seal[5],
        seal[6],
        Step::at(S::SealedChecked)
            .shown_as(Stage::PrepareForSnapup)
            .consumes(&[Sector])
            .rewrites(&[Pieces, StagedFile]),
        Step::at(S::SnapPieceAdded).consumes(&[Sector, Pieces]),
        Step::at(S::SnapTreeDBuilt)
            .consumes(&[Sector, Pieces, StagedFile, Replica])
            .produces(&[SnapEncodeOutput, UpdatedReplica]),
        Step::at(S::SnapEncoded)
            .consumes(&[Sector, PC2Output, SnapEncodeOutput, Replica, UpdatedReplica])
            .produces(&[UpdateProof]),
        persist[0],
        persist[1],
        persist[2],
    ]
};

/// The rebuild plan: a sector that was never upgraded.
pub const REBUILD: PlanTable = PlanTable {
    plan: Plan::Rebuild,
    transitions: REBUILD_TRANSITIONS,
    steps: REBUILD_STEPS,
    resume_anywhere: true,
    upgraded: Some(&REBUILD_UPGRADED),
};

/// The rebuild plan for an upgraded (snapped) sector.
pub const REBUILD_UPGRADED: PlanTable = PlanTable {
    plan: Plan::Rebuild,
    transitions: REBUILD_TRANSITIONS,
    steps: REBUILD_UPGRADED_STEPS,
    resume_anywhere: true,
    upgraded: None,
};

/// The unseal plan.
pub const UNSEAL_TRANSITIONS: &[Transition<State>] = &[
    t(S::Empty, E::AllocatedUnsealSector, S::Allocated),
    t(S::Allocated, E::UnsealDone, S::Unsealed),
    t(S::Unsealed, E::UploadPieceDone, S::Finished),
];

/// The unseal plan: a job re-runs only its current state.
pub const UNSEAL: PlanTable = PlanTable {
    plan: Plan::Unseal,
    transitions: UNSEAL_TRANSITIONS,
    steps: &[
        Step::at(S::Empty),
        Step::at(S::Allocated).shown_as(Stage::Unseal),
        Step::at(S::Unsealed),
        Step::at(S::Finished),
    ],
    resume_anywhere: false,
    upgraded: None,
};

/// The wdpost plan's job states (its jobs are not sector records).
pub const WDPOST_TRANSITIONS: &[Transition<WdPostState>] = &[
    t(WdPostState::Empty, E::JobAllocated, WdPostState::Allocated),
    t(WdPostState::Allocated, E::Generate, WdPostState::Generated),
    t(WdPostState::Generated, E::Finish, WdPostState::Finished),
];

impl Plan {
    /// The plan's table of sector steps; `None` for wdpost (see [`WDPOST_TRANSITIONS`]).
    pub fn table(self) -> Option<&'static PlanTable> {
        match self {
            Plan::Sealer => Some(&SEALER),
            Plan::Snapup => Some(&SNAPUP),
            Plan::Rebuild => Some(&REBUILD),
            Plan::Unseal => Some(&UNSEAL),
            Plan::Wdpost => None,
        }
    }
}
