//! Each plan as data, once: its transition table, the order a job passes its states in,
//! what each state's step consumes and produces, which steps only wait for the chain,
//! which one persists the sector's files, and each state's stage label.
//!
//! Everything that reasons about a plan reads its [`PlanTable`]: the stage labels
//! `worker list` shows, `resume --state` parsing, and the sealing runtime's resume check
//! (damocles-sealing `resume`, which has no per-plan code). The steps themselves are the
//! plan's module in damocles-sealing `plans`.
//!
//! **A new sector plan** is: a variant of [`Plan`] (`plan.rs`), its table in `plan_table/tables.rs` with its
//! line in [`Plan::table`] there, its module in damocles-sealing `plans/` with one line in
//! `plans::steps_of`. New states or events add their names to `state.rs`; new record
//! fields to `record.rs`. `wdpost` has no table of sector steps: its jobs are not sector
//! records and run under their own driver (damocles-sealing `plans::wdpost`).

use crate::plan::Plan;
use crate::state::{EventKind, ParseStateError, PlanState, Stage, State, Transition, WdPostState};

mod input;
mod tables;

pub use input::Input;
pub use tables::{
    REBUILD, REBUILD_TRANSITIONS, REBUILD_UPGRADED, SEALER, SEALER_TRANSITIONS, SNAPUP,
    SNAPUP_TRANSITIONS, UNSEAL, UNSEAL_TRANSITIONS, WDPOST_TRANSITIONS,
};

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
    /// and `Finished` last (a step this worker does not run, its `unsupported` set, sits
    /// where its branch leaves).
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

    /// The steps a job passes, in order (those this worker does not run left out).
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

impl Plan {
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
mod tests;
