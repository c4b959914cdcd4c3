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
struct PlanRules {
    order: &'static [State],
    inputs: fn(State) -> &'static [Input],
    skippable: &'static [State],
}

const SEALER_ORDER: &[State] = &[
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

const SNAPUP_ORDER: &[State] = &[
    State::Empty,
    State::Allocated,
    State::PieceAdded,
    State::TreeDBuilt,
    State::SnapEncoded,
    State::SnapProved,
    State::Persisted,
    State::Finished,
];

const REBUILD_ORDER: &[State] = &[
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

const REBUILD_UPGRADED_ORDER: &[State] = &[
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
fn persist_state(plan: Plan) -> Option<State> {
    match plan {
        Plan::Sealer => Some(State::PCLanded),
        Plan::Snapup => Some(State::SnapProved),
        Plan::Rebuild => Some(State::SnapDone),
        Plan::Unseal | Plan::Wdpost => None,
    }
}

fn rules_of(facts: &ResumeFacts) -> Option<PlanRules> {
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
    // Every step from the target on runs again, in order: each input must be there now,
    // unless a step before it in this run makes it again.
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
mod tests {
    use damocles_core::sealer_api::AllocatedSector;
    use damocles_core::{Event, SectorId, SectorKey, SnapEncodeOutput};

    use super::*;

    /// The resume orders restate the transition tables: each step of an order is a row of
    /// its plan's table (a job passes its states in that order), each order runs from
    /// Empty to Finished, and together they name every state of the table but
    /// SyntheticPoRepNeeded, which this worker never enters.
    #[test]
    fn every_resume_order_follows_its_plans_table() {
        let orders = [
            (Plan::Sealer, SEALER_ORDER),
            (Plan::Snapup, SNAPUP_ORDER),
            (Plan::Rebuild, REBUILD_ORDER),
            (Plan::Rebuild, REBUILD_UPGRADED_ORDER),
        ];
        for (plan, order) in orders {
            assert_eq!(order.first(), Some(&State::Empty), "{plan}");
            assert_eq!(order.last(), Some(&State::Finished), "{plan}");
            for pair in order.windows(2) {
                assert!(
                    plan.transitions()
                        .iter()
                        .any(|row| row.from == pair[0] && row.to == pair[1]),
                    "{plan}: no row of its table leads from {} to {}",
                    pair[0],
                    pair[1]
                );
            }
        }
        for plan in [Plan::Sealer, Plan::Snapup, Plan::Rebuild] {
            for row in plan.transitions() {
                for state in [row.from, row.to] {
                    let ordered = orders
                        .iter()
                        .any(|(p, order)| *p == plan && order.contains(&state));
                    assert!(
                        ordered || state == State::SyntheticPoRepNeeded,
                        "{plan}: {state} is in its table but in no resume order"
                    );
                }
            }
        }
    }

    /// A snap-up record at `state` that holds every record field a snap-up makes.
    fn snapup_at(state: State) -> SectorRecord {
        let mut record = SectorRecord::new(Plan::Snapup);
        record.sector = Some(AllocatedSector {
            id: SectorId::new(1000, 1),
            proof_type: SealProof::StackedDrg2KiBV1_1,
        });
        record.sector_key = Some(SectorKey {
            comm_r: [1; 32],
            store: "remote".into(),
        });
        record.pieces = Some(Vec::new());
        record.snap_encode_output = Some(SnapEncodeOutput {
            comm_r_new: [2; 32],
            comm_r_last_new: [3; 32],
            comm_d_new: [4; 32],
        });
        record.update_proof = Some(vec![5; 192]);
        record.persist_instance = Some("remote".into());
        record.apply(Event::SetState(state), 0).expect("set state");
        record
    }

    fn write_updated_replica(paths: &SectorPaths) {
        std::fs::create_dir_all(&paths.update_cache).expect("update cache");
        std::fs::create_dir_all(paths.update.parent().expect("dir")).expect("update dir");
        std::fs::write(&paths.update, b"replica").expect("update");
        for file in ["p_aux", "t_aux"] {
            std::fs::write(paths.update_cache.join(file), b"aux").expect("aux");
        }
    }

    #[test]
    fn snapup_resumes_follow_its_own_order_and_inputs() {
        let data = tempfile::tempdir().expect("tempdir");
        let facts = |state| ResumeFacts::of(&snapup_at(state), data.path().to_path_buf());
        let paths = SectorPaths::new(data.path(), SectorId::new(1000, 1));

        // The updated replica is missing: SnapEncoded needs it, TreeDBuilt needs the staged
        // file, and the refusals say where to resume instead.
        let err = check(&facts(State::SnapEncoded), State::SnapEncoded).expect_err("no replica");
        assert!(err.to_string().contains("the updated replica"), "{err}");
        assert!(err.to_string().contains("resume at TreeDBuilt"), "{err}");
        let err = check(&facts(State::SnapEncoded), State::TreeDBuilt).expect_err("no staged");
        assert!(err.to_string().contains("the staged file"), "{err}");
        assert!(err.to_string().contains("resume at Allocated"), "{err}");
        assert_eq!(check(&facts(State::SnapEncoded), State::Allocated), Ok(()));
        assert_eq!(check(&facts(State::SnapEncoded), State::Aborted), Ok(()));
        // Empty would take a new sector and leave this one held: Aborted hands it back.
        let err = check(&facts(State::SnapEncoded), State::Empty).expect_err("holds a sector");
        assert!(err.to_string().contains("resume at Aborted"), "{err}");

        write_updated_replica(&paths);
        // SnapProved's persist copies the staged file as well, so a resume before it needs
        // that file too.
        let err = check(&facts(State::SnapEncoded), State::SnapEncoded).expect_err("no staged");
        assert!(
            err.to_string()
                .starts_with("the step of SnapProved, which runs after it, needs the staged file"),
            "{err}"
        );
        std::fs::create_dir_all(paths.staged.parent().expect("dir")).expect("dir");
        std::fs::write(&paths.staged, b"staged").expect("staged");
        assert_eq!(
            check(&facts(State::SnapEncoded), State::SnapEncoded),
            Ok(())
        );
        assert_eq!(check(&facts(State::SnapProved), State::SnapProved), Ok(()));
        assert_eq!(check(&facts(State::Persisted), State::SnapEncoded), Ok(()));

        // No skipping ahead: every snap-up step makes something a later one needs.
        let err = check(&facts(State::SnapEncoded), State::SnapProved).expect_err("skip");
        assert!(
            err.to_string()
                .contains("skipping ahead would leave the step of SnapEncoded unrun"),
            "{err}"
        );
        // States of other plans are refused by name, with the plan's own.
        let err = check(&facts(State::SnapEncoded), State::PC1Done).expect_err("sealer state");
        assert!(
            err.to_string().starts_with(
                "PC1Done is not a state of the snapup plan; its states are Empty, Allocated"
            ),
            "{err}"
        );
        // Without its update proof, Persisted cannot submit.
        let mut record = snapup_at(State::Persisted);
        record.update_proof = None;
        let err = check(
            &ResumeFacts::of(&record, data.path().to_path_buf()),
            State::Persisted,
        )
        .expect_err("no proof");
        assert!(err.to_string().contains("the update proof"), "{err}");
        assert!(err.to_string().contains("resume at SnapEncoded"), "{err}");
    }

    /// A rebuild record at `state` holding every record field a rebuild makes up to it.
    fn rebuild_at(state: State, upgraded: bool) -> SectorRecord {
        let mut record = snapup_at(State::Empty);
        record.plan = Plan::Rebuild;
        record.sector_key = None;
        record.comm_r_before_upgrade = upgraded.then_some([10; 32]);
        record.ticket = Some(damocles_core::sealer_api::Ticket {
            ticket: [6; 32],
            epoch: 1,
        });
        record.pc1_output = Some(damocles_core::Opaque(vec![7]));
        record.pc2_output = Some(damocles_core::PreCommitOutput {
            comm_r: [8; 32],
            comm_d: [9; 32],
        });
        record.apply(Event::SetState(state), 0).expect("set state");
        record
    }

    fn write_replica(paths: &SectorPaths) {
        std::fs::create_dir_all(&paths.cache_dir).expect("cache");
        std::fs::create_dir_all(paths.sealed.parent().expect("dir")).expect("sealed dir");
        std::fs::write(&paths.sealed, b"replica").expect("sealed");
        for file in [
            "p_aux",
            "t_aux",
            "sc-02-data-tree-c.dat",
            "sc-02-data-tree-r-last.dat",
        ] {
            std::fs::write(paths.cache_dir.join(file), b"tree").expect("cache file");
        }
    }

    #[test]
    fn rebuild_resumes_follow_the_sectors_own_path() {
        let data = tempfile::tempdir().expect("tempdir");
        let facts = |state, upgraded| {
            ResumeFacts::of(&rebuild_at(state, upgraded), data.path().to_path_buf())
        };
        let paths = SectorPaths::new(data.path(), SectorId::new(1000, 1));

        // A sector never upgraded has no snap-up states.
        let err = check(&facts(State::Persisted, false), State::SnapEncoded).expect_err("snap");
        assert!(
            err.to_string()
                .contains("SnapEncoded is not a state of the rebuild plan"),
            "{err}"
        );
        assert!(!err.to_string().contains("SnapPieceAdded"), "{err}");
        // Persisting again needs the rebuilt replica, which PC2 makes.
        let err = check(&facts(State::Persisted, false), State::SnapDone).expect_err("replica");
        assert!(err.to_string().contains("the encoded replica"), "{err}");
        assert!(err.to_string().contains("resume at PC1Done"), "{err}");
        write_replica(&paths);
        assert_eq!(
            check(&facts(State::Persisted, false), State::SnapDone),
            Ok(())
        );
        // The check after PC2 reads PC1's labels too.
        let err = check(&facts(State::SealedChecked, false), State::PC2Done).expect_err("labels");
        assert!(err.to_string().contains("PC1's labels"), "{err}");
        assert!(err.to_string().contains("resume at TreeDBuilt"), "{err}");
        // The ticket comes with the job: without it, only dropping the job is left.
        let mut record = rebuild_at(State::PieceAdded, false);
        record.ticket = None;
        let err = check(
            &ResumeFacts::of(&record, data.path().to_path_buf()),
            State::Allocated,
        )
        .expect_err("no ticket");
        assert!(err.to_string().contains("needs the ticket"), "{err}");
        assert!(err.to_string().contains("resume at Aborted"), "{err}");
        let err = check(&facts(State::PC1Done, false), State::PC2Done).expect_err("skip");
        assert!(err.to_string().contains("skipping ahead"), "{err}");

        // Upgraded: once the deals are added, the staged file is no longer the sealed
        // sector's, so the seal steps can only start over from Allocated.
        let err = check(&facts(State::SnapEncoded, true), State::PC1Done).expect_err("staged");
        assert!(err.to_string().contains("resume at Allocated"), "{err}");
        let err = check(&facts(State::SealedChecked, true), State::TreeDBuilt).expect_err("");
        assert_eq!(err, ResumeRefusal::DealsStaged);
        assert!(err.to_string().contains("may hold the deal data"), "{err}");
        assert!(
            matches!(
                check(&facts(State::SealedChecked, false), State::PC1Done),
                Err(ResumeRefusal::MissingInput { .. })
            ),
            "not upgraded: only the missing labels"
        );
        assert_eq!(
            check(&facts(State::SnapEncoded, true), State::Allocated),
            Ok(())
        );
        std::fs::create_dir_all(paths.staged.parent().expect("dir")).expect("dir");
        std::fs::write(&paths.staged, b"staged").expect("staged");
        // From SealedChecked on, the snap-up steps run again over the rebuilt replica; the
        // persist needs the updated one as well.
        let err = check(&facts(State::Persisted, true), State::SnapDone).expect_err("updated");
        assert!(err.to_string().contains("the updated replica"), "{err}");
        assert!(
            err.to_string().contains("resume at SnapTreeDBuilt"),
            "{err}"
        );
        assert_eq!(
            check(&facts(State::SnapEncoded, true), State::SealedChecked),
            Ok(())
        );
        write_updated_replica(&paths);
        assert_eq!(
            check(&facts(State::Persisted, true), State::SnapDone),
            Ok(())
        );
    }
}
