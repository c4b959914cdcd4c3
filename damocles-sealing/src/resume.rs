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

use damocles_core::plan_table::{Input, PlanTable, Step};
use damocles_core::{Plan, SealProof, SectorRecord, State, WdPostState};

use crate::paths::SectorPaths;

/// What a resume check needs to know of a paused thread's record: cheap to keep beside
/// the thread's control block (no proof outputs, only whether they are there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeFacts {
    plan: Plan,
    /// The plan's table for this job (an upgraded sector's rebuild has its own); `None`
    /// for wdpost.
    table: Option<&'static PlanTable>,
    state: State,
    proof: Option<SealProof>,
    present: Vec<Input>,
    paths: Option<SectorPaths>,
    /// Whether the sector holds deal pieces (its persist copies the staged file too).
    deals: bool,
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
            table: (record.plan.table()).map(|table| table.for_job(record.rebuilds_upgrade())),
            state: record.state,
            proof: record.sector.map(|s| s.proof_type),
            present,
            paths: record.sector.map(|s| SectorPaths::new(&data_dir, s.id)),
            deals: record.has_deals(),
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
    /// The state's step is in the plan's table but this worker does not run it.
    #[error("this worker does not {what}{proof}: resume at an earlier state, or at Aborted to drop the sector")]
    Unsupported {
        /// What the step would do ("generate synthetic PoRep").
        what: &'static str,
        /// ` (the sector's proof type is …)`, or empty.
        proof: String,
    },
    /// The thread holds no sector: there is nothing to resume in, or to drop.
    #[error("the thread holds no sector: resume without a state to take the next job")]
    NoSector,
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
    /// A step of the job has written anew what an earlier step made (a rebuild of an
    /// upgraded sector writes the upgrade's deals over its staged file and pieces), and
    /// the target lies between the two.
    #[error("from SealedChecked on the staged file and the pieces may hold the deal data of the upgrade, not the sealed sector's: resume at Allocated to rebuild the replica from the start, or at SealedChecked or later")]
    DealsStaged,
    /// Resuming ahead would skip a step that makes something.
    #[error("the sector is at {current}: skipping ahead would leave the step of {skipped} unrun; {can_skip}: resume at {skipped} or earlier, or without a state")]
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
/// says why not and what to do instead. Every rule is read from the plan's table
/// ([`damocles_core::plan_table`]); none is per plan.
pub fn check(facts: &ResumeFacts, target: State) -> Result<(), ResumeRefusal> {
    if facts.table.is_some() && !facts.present.contains(&Input::Sector) {
        return Err(ResumeRefusal::NoSector);
    }
    if target == State::Aborted {
        return Ok(());
    }
    let Some(table) = facts.table.filter(|table| table.resume_anywhere) else {
        return if target == facts.state {
            Ok(())
        } else {
            Err(ResumeRefusal::OnlyCurrent {
                plan: facts.plan,
                current: facts.state,
            })
        };
    };
    if let Some(what) = table.step(target).and_then(|step| step.unsupported) {
        return Err(ResumeRefusal::Unsupported {
            what,
            proof: facts
                .proof
                .map(|p| format!(" (the sector's proof type is {p})"))
                .unwrap_or_default(),
        });
    }
    if target == State::Empty && facts.present.contains(&Input::Sector) {
        return Err(ResumeRefusal::HoldsSector);
    }
    let path: Vec<&'static Step> = table.path().collect();
    let position = |state: State| path.iter().position(|step| step.state == state);
    let Some(to) = position(target) else {
        let names: Vec<&str> = path.iter().map(|step| step.state.as_str()).collect();
        return Err(ResumeRefusal::NotAState {
            target,
            plan: facts.plan,
            states: names.join(", "),
        });
    };
    let from = position(facts.state).unwrap_or(0);
    if rewritten_before(&path, from, to) {
        return Err(ResumeRefusal::DealsStaged);
    }
    if let Some(skipped) = path
        .get(from..to)
        .unwrap_or_default()
        .iter()
        .find(|step| !step.waits_for_chain)
    {
        let waits: Vec<&str> = path
            .iter()
            .filter(|step| step.waits_for_chain)
            .map(|step| step.state.as_str())
            .collect();
        let can_skip = if waits.is_empty() {
            "this plan has no step that can be skipped".to_owned()
        } else {
            format!(
                "only waits for the chain ({}) can be skipped",
                waits.join(", ")
            )
        };
        return Err(ResumeRefusal::WouldSkip {
            current: facts.state,
            skipped: skipped.state,
            can_skip,
        });
    }
    inputs_hold(facts, &path, to)
}

/// Whether a step the job has reached (at or before `from` on `path`) wrote anew an
/// input that the step at `to` or one after it, before the rewrite, would read as the
/// first version: `to` lies after the input's first maker and before the rewriting step
/// (a crash may leave the record at the rewriting state with the new content written).
fn rewritten_before(path: &[&Step], from: usize, to: usize) -> bool {
    path.iter()
        .enumerate()
        .filter(|(at, step)| *at <= from && !step.rewrites.is_empty())
        .any(|(at, step)| {
            step.rewrites.iter().any(|input| {
                path.iter()
                    .position(|earlier| earlier.makes(*input))
                    .is_some_and(|first| first < to && to < at)
            })
        })
}

/// Every step from the target (at `to` on the plan's path) on runs again, in order: each
/// input must be there now, unless a step before it in this run makes it again.
fn inputs_hold(facts: &ResumeFacts, path: &[&Step], to: usize) -> Result<(), ResumeRefusal> {
    let mut made: Vec<Input> = Vec::new();
    for (at, step) in path.iter().enumerate().skip(to) {
        // A deal sector's persist copies the unsealed (staged) file as well.
        let unsealed_copy = (facts.deals && step.persists).then_some(Input::StagedFile);
        for input in step.consumes.iter().copied().chain(unsealed_copy) {
            if made.contains(&input) {
                continue;
            }
            if let Err(missing) = facts.holds(input) {
                // The last step before this one that makes the input.
                let maker = path[..at].iter().rev().find(|earlier| earlier.makes(input));
                let instead = match maker.map(|maker| maker.state) {
                    None | Some(State::Empty) => "resume at Aborted to drop the sector".to_owned(),
                    Some(maker) => format!("resume at {maker} to make it again"),
                };
                let whose = if at == to {
                    "its step".to_owned()
                } else {
                    format!("the step of {}, which runs after it,", step.state)
                };
                return Err(ResumeRefusal::MissingInput {
                    whose,
                    missing,
                    instead,
                });
            }
            made.push(input);
        }
        made.extend(step.produces.iter().chain(step.rewrites));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
