//! Each plan's resume rules: its states in the order a job passes them (checked against
//! its transition table by `tests::every_resume_order_follows_its_plans_table`), what
//! each state's step consumes, and what may be skipped.

use damocles_core::{Plan, State};

use super::{Input, ResumeFacts};

/// What each sealer state's step consumes.
fn sealer_inputs(state: State) -> &'static [Input] {
    use Input::*;
    match state {
        State::Allocated | State::DealsAcquired => &[Sector],
        State::PieceAdded | State::TreeDBuilt => &[Sector, Pieces],
        State::TicketAssigned => &[Sector, Pieces, StagedFile],
        State::PC1Done => &[Sector, Pieces, PC1Output, StagedFile, Labels],
        State::PC2Done => &[Sector, PC2Output, Ticket],
        State::PCLanded => &[Sector, Replica],
        State::Persisted => &[Sector, PersistInstance],
        State::SeedAssigned => &[Sector, Ticket, Seed, PC2Output, Pieces, Labels, Replica],
        State::C1Done => &[Sector, C1Output],
        State::C2Done => &[Sector, Proof],
        State::PCSubmitted | State::PersistanceSubmitted | State::ProofSubmitted => &[Sector],
        State::Finished => &[Sector],
        _ => &[],
    }
}

/// What each snap-up state's step consumes. The sector key's files are fetched from its
/// store by the steps that read them, so only the record's note of it is an input.
fn snapup_inputs(state: State) -> &'static [Input] {
    use Input::*;
    match state {
        State::Allocated => &[Sector, SectorKey],
        State::PieceAdded => &[Sector, Pieces],
        State::TreeDBuilt => &[Sector, SectorKey, Pieces, StagedFile],
        State::SnapEncoded => &[Sector, SectorKey, SnapEncodeOutput, UpdatedReplica],
        // The persist copies the staged file too: a snapped sector holds deals.
        State::SnapProved => &[Sector, UpdatedReplica, StagedFile],
        State::Persisted => &[Sector, PersistInstance, SnapEncodeOutput, UpdateProof],
        State::Finished => &[Sector],
        _ => &[],
    }
}

/// What each rebuild state's step consumes (an upgraded sector's in
/// [`rebuild_upgraded_inputs`]).
fn rebuild_inputs(state: State) -> &'static [Input] {
    use Input::*;
    match state {
        State::Allocated => &[Sector, Ticket],
        State::PieceAdded => &[Sector, Pieces],
        State::TreeDBuilt => &[Sector, Ticket, Pieces, StagedFile],
        State::PC1Done => &[Sector, Pieces, PC1Output, StagedFile, Labels],
        State::PC2Done => &[Sector, Ticket, PC2Output, Pieces, Labels, Replica],
        State::SealedChecked | State::Finished => &[Sector],
        State::SnapDone => &[Sector, Replica],
        State::Persisted => &[Sector, PersistInstance],
        _ => &[],
    }
}

/// What each state's step of an upgraded sector's rebuild consumes: the sealed replica
/// is the sector key of the snap-up steps.
fn rebuild_upgraded_inputs(state: State) -> &'static [Input] {
    use Input::*;
    match state {
        State::SnapPieceAdded => &[Sector, Pieces],
        State::SnapTreeDBuilt => &[Sector, Pieces, StagedFile, Replica],
        State::SnapEncoded => &[Sector, PC2Output, SnapEncodeOutput, Replica, UpdatedReplica],
        State::SnapDone => &[Sector, Replica, UpdatedReplica],
        other => rebuild_inputs(other),
    }
}

/// The rules of a plan's resumes: its states in the order a job passes them, what each
/// state's step consumes, and the states that only wait for the chain (an operator who
/// knows the message landed may skip them).
pub(super) struct PlanRules {
    pub(super) order: &'static [State],
    pub(super) inputs: fn(State) -> &'static [Input],
    pub(super) skippable: &'static [State],
}

pub(super) const SEALER_ORDER: &[State] = &[
    State::Empty,
    State::Allocated,
    State::DealsAcquired,
    State::PieceAdded,
    State::TreeDBuilt,
    State::TicketAssigned,
    State::PC1Done,
    State::PC2Done,
    State::PCSubmitted,
    State::PCLanded,
    State::Persisted,
    State::PersistanceSubmitted,
    State::SeedAssigned,
    State::C1Done,
    State::C2Done,
    State::ProofSubmitted,
    State::Finished,
];

pub(super) const SNAPUP_ORDER: &[State] = &[
    State::Empty,
    State::Allocated,
    State::PieceAdded,
    State::TreeDBuilt,
    State::SnapEncoded,
    State::SnapProved,
    State::Persisted,
    State::Finished,
];

pub(super) const REBUILD_ORDER: &[State] = &[
    State::Empty,
    State::Allocated,
    State::PieceAdded,
    State::TreeDBuilt,
    State::PC1Done,
    State::PC2Done,
    State::SealedChecked,
    State::SnapDone,
    State::Persisted,
    State::Finished,
];

pub(super) const REBUILD_UPGRADED_ORDER: &[State] = &[
    State::Empty,
    State::Allocated,
    State::PieceAdded,
    State::TreeDBuilt,
    State::PC1Done,
    State::PC2Done,
    State::SealedChecked,
    State::SnapPieceAdded,
    State::SnapTreeDBuilt,
    State::SnapEncoded,
    State::SnapDone,
    State::Persisted,
    State::Finished,
];

/// The state whose step persists the sector's files (a deal sector's persist copies the
/// staged file too).
pub(super) fn persist_state(plan: Plan) -> Option<State> {
    match plan {
        Plan::Sealer => Some(State::PCLanded),
        Plan::Snapup => Some(State::SnapProved),
        Plan::Rebuild => Some(State::SnapDone),
        Plan::Unseal | Plan::Wdpost => None,
    }
}

pub(super) fn rules_of(facts: &ResumeFacts) -> Option<PlanRules> {
    match facts.plan {
        Plan::Rebuild if facts.upgraded => Some(PlanRules {
            order: REBUILD_UPGRADED_ORDER,
            inputs: rebuild_upgraded_inputs,
            skippable: &[],
        }),
        Plan::Rebuild => Some(PlanRules {
            order: REBUILD_ORDER,
            inputs: rebuild_inputs,
            skippable: &[],
        }),
        Plan::Sealer => Some(PlanRules {
            order: SEALER_ORDER,
            inputs: sealer_inputs,
            skippable: &[State::PCSubmitted, State::ProofSubmitted],
        }),
        Plan::Snapup => Some(PlanRules {
            order: SNAPUP_ORDER,
            inputs: snapup_inputs,
            skippable: &[],
        }),
        Plan::Unseal | Plan::Wdpost => None,
    }
}
