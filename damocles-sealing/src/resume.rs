//! Which state a paused thread may resume at, and why not (DESIGN "Resume anywhere").
//!
//! Resuming at a state re-runs that state's step. A step re-run from what the sector
//! record and its files still hold gives the same outputs (PC2 restores the sealed file
//! from the staged copy, the ticket and deals are kept), so a target is accepted when
//! every input of its step is still there, and refused otherwise with what is missing and
//! the state to resume at instead. Skipping ahead is refused too, except across the steps
//! that only wait for the chain (`PCSubmitted`, `ProofSubmitted`): any other skipped step
//! would leave its outputs missing or stale. `Aborted` is always accepted (it drops the
//! sector). A refusal changes nothing: the thread stays paused as it was.

use std::path::PathBuf;

use damocles_core::{Plan, SealProof, SectorRecord, State, WdPostState};

use crate::paths::SectorPaths;

mod rules;

use rules::{persist_state, rules_of};
#[cfg(test)]
use rules::{REBUILD_ORDER, REBUILD_UPGRADED_ORDER, SEALER_ORDER, SNAPUP_ORDER};

/// What a step consumes: a field of the sector record, or files of the sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Sector,
    Pieces,
    Ticket,
    PC1Output,
    PC2Output,
    PersistInstance,
    Seed,
    C1Output,
    Proof,
    /// The staged (unsealed) file the pieces were written into.
    StagedFile,
    /// PC1's labels and tree D in the cache directory.
    Labels,
    /// The encoded replica, with `p_aux`, `t_aux`, tree C and tree R in the cache.
    Replica,
    /// Snap-up: the sealed sector being upgraded (its comm_r and store).
    SectorKey,
    /// Snap-up: the encode's commitments.
    SnapEncodeOutput,
    /// Snap-up: the update proof.
    UpdateProof,
    /// Snap-up: the updated replica, with `p_aux`, `t_aux` and tree R in `update-cache/`.
    UpdatedReplica,
}

impl Input {
    /// How the input is named in a refusal.
    fn describe(self) -> &'static str {
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

    /// The state whose step produces the input in `plan`.
    fn producer(self, plan: Plan) -> State {
        match (plan, self) {
            (_, Input::Sector | Input::SectorKey) => State::Empty,
            (Plan::Snapup, Input::Pieces | Input::StagedFile) => State::Allocated,
            (Plan::Snapup, Input::SnapEncodeOutput | Input::UpdatedReplica) => State::TreeDBuilt,
            (Plan::Snapup, Input::UpdateProof) => State::SnapEncoded,
            (Plan::Snapup, Input::PersistInstance) => State::SnapProved,
            (Plan::Rebuild, Input::Ticket) => State::Empty,
            (Plan::Rebuild, Input::Pieces | Input::StagedFile) => State::Allocated,
            (Plan::Rebuild, Input::PC1Output | Input::Labels) => State::TreeDBuilt,
            (Plan::Rebuild, Input::PersistInstance) => State::SnapDone,
            (_, Input::Pieces | Input::StagedFile) => State::DealsAcquired,
            (_, Input::Ticket | Input::PC1Output | Input::Labels) => State::TicketAssigned,
            (_, Input::PC2Output | Input::Replica) => State::PC1Done,
            (_, Input::PersistInstance) => State::PCLanded,
            (_, Input::Seed) => State::PersistanceSubmitted,
            (_, Input::C1Output) => State::SeedAssigned,
            (_, Input::Proof) => State::C1Done,
            (_, Input::SnapEncodeOutput | Input::UpdatedReplica) => State::SnapTreeDBuilt,
            (_, Input::UpdateProof) => State::SnapEncoded,
        }
    }
}

/// What a resume check needs to know of a paused thread's record: cheap to keep beside
/// the thread's control block (no proof outputs, only whether they are there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeFacts {
    plan: Plan,
    state: State,
    proof: Option<SealProof>,
    present: Vec<Input>,
    paths: Option<SectorPaths>,
    /// Whether the sector holds deal pieces (its persist copies the staged file too).
    deals: bool,
    /// Rebuild: the sector was upgraded (its rebuild runs the snap-up states too).
    upgraded: bool,
}

impl ResumeFacts {
    /// The facts of `record`, whose sector's files live under `data_dir`.
    pub fn of(record: &SectorRecord, data_dir: PathBuf) -> Self {
        let mut present = Vec::new();
        let mut has = |input, yes: bool| {
            if yes {
                present.push(input);
            }
        };
        has(Input::Sector, record.sector.is_some());
        has(Input::Pieces, record.pieces.is_some());
        has(Input::Ticket, record.ticket.is_some());
        has(Input::PC1Output, record.pc1_output.is_some());
        has(Input::PC2Output, record.pc2_output.is_some());
        has(Input::PersistInstance, record.persist_instance.is_some());
        has(Input::Seed, record.seed.is_some());
        has(Input::C1Output, record.c1_output.is_some());
        has(Input::Proof, record.proof.is_some());
        has(Input::SectorKey, record.sector_key.is_some());
        has(Input::SnapEncodeOutput, record.snap_encode_output.is_some());
        has(Input::UpdateProof, record.update_proof.is_some());
        Self {
            plan: record.plan,
            state: record.state,
            proof: record.sector.map(|s| s.proof_type),
            present,
            paths: record.sector.map(|s| SectorPaths::new(&data_dir, s.id)),
            deals: record.has_deals(),
            upgraded: record.rebuilds_upgrade(),
        }
    }

    /// The record's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether `input` is there now (files are looked at on disk).
    fn holds(&self, input: Input) -> Result<(), Missing> {
        let missing = |what: String| {
            Err(Missing {
                input: input.describe(),
                what,
            })
        };
        let on_disk = |path: &std::path::Path| {
            if path.exists() {
                Ok(())
            } else {
                missing(format!("{} does not exist", path.display()))
            }
        };
        match input {
            Input::StagedFile | Input::Labels | Input::Replica | Input::UpdatedReplica => {
                let Some(paths) = &self.paths else {
                    return missing("the record has no sector".into());
                };
                // Every file of the cache whose name contains one of `parts`.
                let in_cache = |parts: &[&str]| match parts.iter().find(|p| !paths.cache_has(p)) {
                    Some(part) => {
                        missing(format!("no {part}* file in {}", paths.cache_dir.display()))
                    }
                    None => Ok(()),
                };
                match input {
                    Input::StagedFile => on_disk(&paths.staged),
                    Input::Labels => in_cache(&["layer-", "tree-d"]),
                    Input::UpdatedReplica => {
                        on_disk(&paths.update)?;
                        for file in ["p_aux", "t_aux"] {
                            on_disk(&paths.update_cache.join(file))?;
                        }
                        Ok(())
                    }
                    _ => {
                        on_disk(&paths.sealed)?;
                        if paths.unencoded_marker().exists() {
                            return missing("PC2 has not encoded the sealed file yet".into());
                        }
                        in_cache(&["p_aux", "t_aux", "tree-c", "tree-r-last"])
                    }
                }
            }
            _ if self.present.contains(&input) => Ok(()),
            _ => missing("the record does not have it: the step that makes it has not run".into()),
        }
    }
}

/// An input a step needs that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("needs {input}: {what}")]
pub struct Missing {
    /// The input, in words.
    pub input: &'static str,
    /// Why it is not there (a path that does not exist, a step not run).
    pub what: String,
}

/// Why a thread cannot resume at a state; each says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeRefusal {
    /// A plan without resume rules re-runs only its current state.
    #[error(
        "the {plan} plan can only re-run its current state ({current}) or drop the job (Aborted)"
    )]
    OnlyCurrent {
        /// The plan.
        plan: Plan,
        /// The record's state.
        current: State,
    },
    /// The sealer plan's SyntheticPoRepNeeded.
    #[error("this worker does not generate synthetic PoRep{proof}")]
    NoSyntheticPoRep {
        /// ` (the sector's proof type is …)`, or empty.
        proof: String,
    },
    /// Empty would take a new sector while the thread holds one.
    #[error("the thread holds a sector: resume at Aborted to drop it (the manager is told), not at Empty")]
    HoldsSector,
    /// The state is not on the plan's path.
    #[error("{target} is not a state of the {plan} plan; its states are {states}, and Aborted")]
    NotAState {
        /// The state asked for.
        target: State,
        /// The plan.
        plan: Plan,
        /// Its states, comma-separated.
        states: String,
    },
    /// A rebuild of an upgraded sector has written the upgrade's deals over its staged
    /// file.
    #[error("from SealedChecked on the staged file and the pieces may hold the deal data of the upgrade, not the sealed sector's: resume at Allocated to rebuild the replica from the start, or at SealedChecked or later")]
    DealsStaged,
    /// Resuming ahead would skip a step that makes something.
    #[error("the sector is at {current}: skipping ahead would leave the step of {skipped} unrun; {can_skip}")]
    WouldSkip {
        /// The record's state.
        current: State,
        /// The first step that would not run.
        skipped: State,
        /// Which steps can be skipped, in words.
        can_skip: String,
    },
    /// A step from the target on needs an input that is not there.
    #[error("{whose} {missing}; {instead}")]
    MissingInput {
        /// `its step`, or the later step that needs it.
        whose: String,
        /// What is missing.
        missing: Missing,
        /// Where to resume instead.
        instead: String,
    },
}

/// What a wdpost thread holds, which a resume at a state is checked against (its job is
/// not persisted: a restarted thread holds none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WdPostFacts {
    /// It holds a job.
    pub job: bool,
    /// The job's proof is generated and not yet submitted.
    pub proof: bool,
}

/// Why a wdpost thread cannot resume at a state; each says what to do instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WdPostRefusal {
    /// There is no job to resume in.
    #[error("the thread holds no WindowPoSt job: resume without a state to take the next one")]
    NoJob,
    /// Generated needs the generated proof.
    #[error("the job's proof is not generated yet: resume at Allocated to prove it, or at Aborted to drop the job")]
    NoProof,
    /// A job finishes only when its proof is submitted.
    #[error("a job is finished by submitting its proof: resume at {instead} to do that, or at Aborted to drop the job (the manager is told)")]
    NotSubmitted {
        /// Generated (a proof is ready) or Allocated.
        instead: WdPostState,
    },
}

/// Whether a wdpost thread holding what `facts` says may resume at `target`: Allocated
/// proves the job again, Generated submits the proof it holds, Aborted drops the job and
/// tells the manager; Finished is reached only by submitting.
pub fn check_wdpost(facts: WdPostFacts, target: WdPostState) -> Result<(), WdPostRefusal> {
    match target {
        _ if !facts.job => Err(WdPostRefusal::NoJob),
        WdPostState::Generated if !facts.proof => Err(WdPostRefusal::NoProof),
        WdPostState::Finished | WdPostState::Empty => Err(WdPostRefusal::NotSubmitted {
            instead: if facts.proof {
                WdPostState::Generated
            } else {
                WdPostState::Allocated
            },
        }),
        WdPostState::Allocated | WdPostState::Generated | WdPostState::Aborted => Ok(()),
    }
}

/// Whether a thread whose record is described by `facts` may resume at `target`; `Err`
/// says why not and what to do instead.
pub fn check(facts: &ResumeFacts, target: State) -> Result<(), ResumeRefusal> {
    if target == State::Aborted {
        return Ok(());
    }
    let Some(rules) = rules_of(facts) else {
        return if target == facts.state {
            Ok(())
        } else {
            Err(ResumeRefusal::OnlyCurrent {
                plan: facts.plan,
                current: facts.state,
            })
        };
    };
    if facts.plan == Plan::Sealer && target == State::SyntheticPoRepNeeded {
        return Err(ResumeRefusal::NoSyntheticPoRep {
            proof: facts
                .proof
                .map(|p| format!(" (the sector's proof type is {p})"))
                .unwrap_or_default(),
        });
    }
    if target == State::Empty && facts.present.contains(&Input::Sector) {
        return Err(ResumeRefusal::HoldsSector);
    }
    let position = |state: State| rules.order.iter().position(|s| *s == state);
    let Some(to) = position(target) else {
        let names: Vec<&str> = rules.order.iter().map(|s| s.as_str()).collect();
        return Err(ResumeRefusal::NotAState {
            target,
            plan: facts.plan,
            states: names.join(", "),
        });
    };
    let from = position(facts.state).unwrap_or(0);
    // An upgraded sector's deals are written over the staged file from SealedChecked on
    // (a crash may leave the record there with the deals written).
    let deals_staged = facts.plan == Plan::Rebuild
        && facts.upgraded
        && position(State::SealedChecked).is_some_and(|at| from >= at);
    let seal_steps =
        position(State::PieceAdded).unwrap_or(0)..=position(State::PC2Done).unwrap_or(0);
    if deals_staged && seal_steps.contains(&to) {
        return Err(ResumeRefusal::DealsStaged);
    }
    if let Some(skipped) = rules
        .order
        .get(from..to)
        .unwrap_or_default()
        .iter()
        .find(|s| !rules.skippable.contains(s))
    {
        let can_skip = if rules.skippable.is_empty() {
            "this plan has no step that can be skipped".to_owned()
        } else {
            let names: Vec<&str> = rules.skippable.iter().map(|s| s.as_str()).collect();
            format!(
                "only waits for the chain ({}) can be skipped",
                names.join(", ")
            )
        };
        return Err(ResumeRefusal::WouldSkip {
            current: facts.state,
            skipped: *skipped,
            can_skip,
        });
    }
    inputs_hold(facts, &rules, to, target)
}

/// Every step from the target (at `to` in the plan's order) on runs again, in order:
/// each input must be there now, unless a step before it in this run makes it again.
fn inputs_hold(
    facts: &ResumeFacts,
    rules: &rules::PlanRules,
    to: usize,
    target: State,
) -> Result<(), ResumeRefusal> {
    let mut made: Vec<Input> = Vec::new();
    for &state in &rules.order[to..] {
        // A deal sector's persist copies the unsealed (staged) file as well.
        let unsealed_copy =
            (facts.deals && persist_state(facts.plan) == Some(state)).then_some(Input::StagedFile);
        for input in (rules.inputs)(state).iter().copied().chain(unsealed_copy) {
            if made.contains(&input) {
                continue;
            }
            if let Err(missing) = facts.holds(input) {
                let instead = match input.producer(facts.plan) {
                    State::Empty => "resume at Aborted to drop the sector".to_owned(),
                    producer => format!("resume at {producer} to make it again"),
                };
                let whose = if state == target {
                    "its step".to_owned()
                } else {
                    format!("the step of {state}, which runs after it,")
                };
                return Err(ResumeRefusal::MissingInput {
                    whose,
                    missing,
                    instead,
                });
            }
            made.push(input);
        }
        made.extend(
            ALL_INPUTS
                .iter()
                .filter(|input| input.producer(facts.plan) == state),
        );
    }
    Ok(())
}

const ALL_INPUTS: [Input; 16] = [
    Input::Sector,
    Input::Pieces,
    Input::Ticket,
    Input::PC1Output,
    Input::PC2Output,
    Input::PersistInstance,
    Input::Seed,
    Input::C1Output,
    Input::Proof,
    Input::StagedFile,
    Input::Labels,
    Input::Replica,
    Input::SectorKey,
    Input::SnapEncodeOutput,
    Input::UpdateProof,
    Input::UpdatedReplica,
];

#[cfg(test)]
mod tests;
