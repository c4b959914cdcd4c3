//! Plans as modules. The thread's driver ([`crate::thread`]) knows no plan: it loads the
//! record, asks the record's plan for the step of its state ([`PlanSteps::exec`]), and
//! applies what the step returns (a transition, persisted durably; an idle round; the end
//! of the job; a failure by its level). Each plan is one module here: the steps of the
//! states of its transition table (the table itself is data in `damocles_core::state`).

mod rebuild;
mod sealer;
mod shared;
mod snapup;
mod unseal;
pub(crate) mod wdpost;

use async_trait::async_trait;
use damocles_core::{Event, Plan, SectorRecord};

use crate::runner::Runner;
pub(crate) use crate::runner::Stop;

/// What a step produced.
// A step's return value, moved once into the runner: the size of its largest event (a
// job's allocation) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// Apply this event (a transition of the plan's table) and persist the record.
    Event(Event),
    /// Nothing to do now: wait `recover_interval` and try again.
    Idle,
    /// The job is done.
    Finished,
}

/// What a step returns.
pub(crate) type StepResult = Result<Outcome, Stop>;

/// The steps of one plan.
#[async_trait]
pub(crate) trait PlanSteps: Send + Sync {
    /// Runs the step of the record's state (the record is the plan's).
    async fn exec(&self, runner: &Runner, record: &SectorRecord) -> StepResult;
}

/// The steps of `plan`'s sector records; `None` for wdpost, whose jobs are not sector
/// records and run under their own driver ([`wdpost`]).
pub(crate) fn steps_of(plan: Plan) -> Option<&'static dyn PlanSteps> {
    match plan {
        Plan::Sealer => Some(&sealer::Sealer),
        Plan::Snapup => Some(&snapup::Snapup),
        Plan::Rebuild => Some(&rebuild::Rebuild),
        Plan::Unseal => Some(&unseal::Unseal),
        Plan::Wdpost => None,
    }
}
