//! Each plan as data, once: its transition table, the order a job passes its states in,
//! what each state's step consumes and produces, which steps only wait for the chain,
//! which one persists the sector's files, and each state's stage label.
//!
//! Everything that reasons about a plan reads its [`PlanTable`]: the stage labels
//! `worker list` shows, `resume --state` parsing, and the sealing runtime's resume check
//! (damocles-sealing `resume`, which has no per-plan code). The steps themselves are the
//! plan's module in damocles-sealing `plans`.
//!
//! **A new sector plan** is: a variant of [`Plan`] (`plan.rs`), its table here with one
//! line in [`Plan::table`], its module in damocles-sealing `plans/` with one line in
//! `plans::steps_of`. New states or events add their names to `state.rs`; new record
//! fields to `record.rs`. `wdpost` has no table of sector steps: its jobs are not sector
//! records and run under their own driver (damocles-sealing `plans::wdpost`).

use crate::plan::Plan;
use crate::state::{
    EventKind, EventKind as E, ParseStateError, PlanState, Stage, State, State as S, Transition,
    WdPostState,
};

/// What a step consumes or produces: a field of the sector record, or files of the
/// sector on the worker's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Input {
    /// The allocated sector (`sector`).
    Sector,
    /// The pieces written into the staged file (`pieces`).
    Pieces,
    /// The ticket (`ticket`).
    Ticket,
    /// PC1's output (`pc1_output`).
    PC1Output,
    /// PC2's commitments (`pc2_output`).
    PC2Output,
    /// The store the files were persisted to (`persist_instance`).
    PersistInstance,
    /// The interactive seed (`seed`).
    Seed,
    /// C1's output (`c1_output`).
    C1Output,
    /// C2's proof (`proof`).
    Proof,
    /// File: the staged (unsealed) file the pieces were written into.
    StagedFile,
    /// Files: PC1's labels and tree D in the cache directory.
    Labels,
    /// Files: the encoded replica, with `p_aux`, `t_aux`, tree C and tree R in the cache.
    Replica,
    /// Snap-up: the sealed sector being upgraded, its comm_r and store (`sector_key`).
    SectorKey,
    /// Snap-up: the encode's commitments (`snap_encode_output`).
    SnapEncodeOutput,
    /// Snap-up: the update proof (`update_proof`).
    UpdateProof,
    /// Files, snap-up: the updated replica, with `p_aux`, `t_aux` and tree R in
    /// `update-cache/`.
    UpdatedReplica,
}

impl Input {
    /// How a refusal names the input.
    pub fn describe(self) -> &'static str {
        match self {
            Input::Sector => "the allocated sector",
            Input::Pieces => "the added pieces",
            Input::Ticket => "the ticket",
            Input::PC1Output => "PC1's output",
            Input::PC2Output => "PC2's commitments",
            Input::PersistInstance => "the store the files were persisted to",
            Input::Seed => "the seed",
            Input::C1Output => "C1's output",
            Input::Proof => "C2's proof",
            Input::StagedFile => "the staged file",
            Input::Labels => "PC1's labels and tree D",
            Input::Replica => "the encoded replica and its trees",
            Input::SectorKey => "the sector being upgraded",
            Input::SnapEncodeOutput => "the snap encode's commitments",
            Input::UpdateProof => "the update proof",
            Input::UpdatedReplica => "the updated replica and its trees",
        }
    }
}

/// The step a job runs in one state of its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The state the step runs in.
    pub state: State,
    /// What `worker list` shows while the job is in this state.
    pub stage: Stage,
    /// What the step reads.
    pub consumes: &'static [Input],
    /// What the step makes (a resume at this state makes it again).
    pub produces: &'static [Input],
    /// What the step writes anew over what an earlier step made: from this state on, a
    /// resume at a state between that earlier step and this one would read the new
    /// content as the old.
    pub rewrites: &'static [Input],
    /// The step only waits for the chain: an operator who knows the message landed may
    /// resume past it.
    pub waits_for_chain: bool,
    /// The step persists the sector's files (a deal sector's persist copies the staged
    /// file too, so it consumes [`Input::StagedFile`] then).
    pub persists: bool,
    /// The step is in the table but this worker does not run it (what it would do, in
    /// words: "generate synthetic PoRep"); a resume at it is refused.
    pub unsupported: Option<&'static str>,
}

impl Step {
    /// A step in `state` shown as its default stage, consuming and producing nothing.
    const fn at(state: State) -> Self {
        Step {
            state,
            stage: state.default_stage(),
            consumes: &[],
            produces: &[],
            rewrites: &[],
            waits_for_chain: false,
            persists: false,
            unsupported: None,
        }
    }

    /// Shown as `stage` under this plan.
    const fn shown_as(self, stage: Stage) -> Self {
        Step { stage, ..self }
    }

    const fn consumes(self, consumes: &'static [Input]) -> Self {
        Step { consumes, ..self }
    }

    const fn produces(self, produces: &'static [Input]) -> Self {
        Step { produces, ..self }
    }

    const fn rewrites(self, rewrites: &'static [Input]) -> Self {
        Step {
            rewrites,
            produces: rewrites,
            ..self
        }
    }

    const fn waits_for_chain(self) -> Self {
        Step {
            waits_for_chain: true,
            ..self
        }
    }

    const fn persists(self) -> Self {
        Step {
            persists: true,
            ..self
        }
    }

    const fn unsupported(self, what: &'static str) -> Self {
        Step {
            unsupported: Some(what),
            ..self
        }
    }

    /// Whether the step makes `input` (anew or over an earlier step's).
    pub fn makes(&self, input: Input) -> bool {
        self.produces.contains(&input) || self.rewrites.contains(&input)
    }
}

/// A sector plan as data.
#[derive(Debug, PartialEq, Eq)]
pub struct PlanTable {
    /// The plan.
    pub plan: Plan,
    /// Which event leads from which state to which.
    pub transitions: &'static [Transition<State>],
    /// One step per state of the table, in the order a job passes them, `Empty` first
    /// and `Finished` last (a step [`Step::unsupported`] sits where its branch leaves).
    pub steps: &'static [Step],
    /// Whether a paused job may resume at another state than its own (checked against
    /// the steps); when not, only its current state or `Aborted`.
    pub resume_anywhere: bool,
    /// The table of the plan's jobs whose sector was upgraded (a rebuild of a snapped
    /// sector runs the snap-up steps too).
    pub upgraded: Option<&'static PlanTable>,
}

impl PlanTable {
    /// The step of `state`, if the plan has one.
    pub fn step(&self, state: State) -> Option<&'static Step> {
        self.steps.iter().find(|step| step.state == state)
    }

    /// The steps a job passes, in order (the [`Step::unsupported`] ones left out).
    pub fn path(&self) -> impl Iterator<Item = &'static Step> {
        self.steps.iter().filter(|step| step.unsupported.is_none())
    }

    /// The table for a job whose sector was upgraded or not.
    pub fn for_job(&'static self, upgraded: bool) -> &'static PlanTable {
        match self.upgraded {
            Some(table) if upgraded => table,
            _ => self,
        }
    }
}

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

    /// The transition table of a sector plan; empty for wdpost (see [`WDPOST_TRANSITIONS`]).
    pub fn transitions(self) -> &'static [Transition<State>] {
        self.table().map_or(&[], |table| table.transitions)
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

impl State {
    /// The stage label of this state under `plan` (reference §1.6): its step's in the
    /// plan's table, or the state's default outside it.
    pub fn stage(self, plan: Plan) -> Stage {
        plan.table()
            .and_then(|table| {
                table
                    .step(self)
                    .or_else(|| table.upgraded.and_then(|up| up.step(self)))
            })
            .map_or(self.default_stage(), |step| step.stage)
    }
}

impl PlanState {
    /// The stage label under `plan`.
    pub fn stage(self, plan: Plan) -> Stage {
        match self {
            PlanState::Sector(s) => s.stage(plan),
            PlanState::WdPost(s) => s.stage(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stage label of this state under `plan` (reference §1.6).
    /// Each table's steps restate its transitions: every pair of neighbours on a job's
    /// path is a row of its table, the path runs from Empty to Finished, and the steps
    /// (with an upgraded variant's) name every state of the table once.
    #[test]
    fn every_path_follows_its_plans_transitions() {
        let tables = [&SEALER, &SNAPUP, &REBUILD, &REBUILD_UPGRADED, &UNSEAL];
        for table in tables {
            let path: Vec<State> = table.path().map(|step| step.state).collect();
            let plan = table.plan;
            assert_eq!(path.first(), Some(&State::Empty), "{plan}");
            assert_eq!(path.last(), Some(&State::Finished), "{plan}");
            for pair in path.windows(2) {
                assert!(
                    table
                        .transitions
                        .iter()
                        .any(|row| row.from == pair[0] && row.to == pair[1]),
                    "{plan}: no row of its table leads from {} to {}",
                    pair[0],
                    pair[1]
                );
            }
            for (i, step) in table.steps.iter().enumerate() {
                assert!(
                    !table.steps[..i].iter().any(|s| s.state == step.state),
                    "{plan}: {} has two steps",
                    step.state
                );
            }
        }
        for plan in [Plan::Sealer, Plan::Snapup, Plan::Rebuild, Plan::Unseal] {
            let table = plan.table().expect("a sector plan");
            for row in table.transitions {
                for state in [row.from, row.to] {
                    assert!(
                        table.step(state).is_some()
                            || table.upgraded.is_some_and(|up| up.step(state).is_some()),
                        "{plan}: {state} is in its table but has no step"
                    );
                }
            }
        }
    }

    /// Every input a step consumes is made by an earlier step of the same path (or the
    /// allocation), so a job run from Empty never lacks one.
    #[test]
    fn every_consumed_input_is_made_before() {
        for table in [&SEALER, &SNAPUP, &REBUILD, &REBUILD_UPGRADED] {
            let mut made: Vec<Input> = Vec::new();
            for step in table.path() {
                for input in step.consumes {
                    assert!(
                        made.contains(input),
                        "{}: the step of {} consumes {input:?}, which no earlier step makes",
                        table.plan,
                        step.state
                    );
                }
                made.extend(step.produces.iter().chain(step.rewrites));
            }
        }
    }
}
