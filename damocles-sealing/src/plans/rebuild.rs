//! The rebuild plan: a sealed sector whose files were lost (a failed disk) is sealed
//! again from what the chain keeps (its ticket and deal pieces), so that the re-created
//! replica is the lost one bit for bit, checked with C1 (seed := ticket), persisted into
//! an attached store and handed back with `SubmitPersistedEx`. An upgraded (snap-up)
//! sector is rebuilt as CC and its deals encoded into it again. No new proof goes on
//! chain. Each state of [`REBUILD_TRANSITIONS`] has a step ([`step_of`]).
//!
//! [`REBUILD_TRANSITIONS`]: damocles_core::plan_table::REBUILD_TRANSITIONS

use async_trait::async_trait;
use damocles_core::{Event, Failure, ProofStage, SectorRecord, State};

use super::shared;
use super::shared::{
    aborted, add_pieces, add_these_pieces, allocate_spec, hand_back, identity, pc1, pc2, persist,
    snap_encode, submit_persisted, take_job, tree_d, unexpected_state, Replica,
};
use super::{Outcome, PlanSteps, StepResult};
use crate::proofs;
use crate::runner::{required, Runner};

/// The rebuild plan's steps.
pub(crate) struct Rebuild;

/// What the thread does in a state of the rebuild plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Allocate,
    AddPieces,
    TreeD,
    PC1,
    PC2,
    SyntheticPoRep,
    CheckSealed,
    PrepareForSnapup,
    SnapTreeD,
    SnapEncode,
    SnapProve,
    Persist,
    SubmitPersisted,
    Finish,
    Abort,
}

/// The step of each state of the rebuild plan; `None` for states of other plans.
fn step_of(state: State) -> Option<Step> {
    Some(match state {
        State::Empty => Step::Allocate,
        State::Allocated => Step::AddPieces,
        State::PieceAdded => Step::TreeD,
        State::TreeDBuilt => Step::PC1,
        State::PC1Done => Step::PC2,
        State::SyntheticPoRepNeeded => Step::SyntheticPoRep,
        State::PC2Done => Step::CheckSealed,
        State::SealedChecked => Step::PrepareForSnapup,
        State::SnapPieceAdded => Step::SnapTreeD,
        State::SnapTreeDBuilt => Step::SnapEncode,
        State::SnapEncoded => Step::SnapProve,
        State::SnapDone => Step::Persist,
        State::Persisted => Step::SubmitPersisted,
        State::Finished => Step::Finish,
        State::Aborted => Step::Abort,
        _ => return None,
    })
}

/// The replicas a rebuilt sector persists: the sealed one, and the updated one for an
/// upgraded sector (its sealed replica, the sector key, is kept too, as the snap-up did).
fn replicas(record: &SectorRecord) -> &'static [Replica] {
    if record.rebuilds_upgrade() {
        &[Replica::Sealed, Replica::Updated]
    } else {
        &[Replica::Sealed]
    }
}

#[async_trait]
impl PlanSteps for Rebuild {
    async fn exec(&self, runner: &Runner, record: &SectorRecord) -> StepResult {
        let Some(step) = step_of(record.state) else {
            return Err(unexpected_state(record).into());
        };
        match step {
            Step::Allocate => allocate(runner).await,
            // An upgraded sector was sealed as CC: its deals come in after the check.
            Step::AddPieces if record.rebuilds_upgrade() => {
                add_these_pieces(runner, record, vec![]).await
            }
            Step::AddPieces => add_pieces(runner, record).await,
            Step::TreeD | Step::SnapTreeD => tree_d(runner, record).await,
            Step::PC1 => {
                let ticket = required(record.ticket, "ticket")?;
                let out = pc1(runner, record, ticket).await?;
                Ok(Outcome::Event(Event::PC1(ticket, out)))
            }
            Step::PC2 => Ok(Outcome::Event(Event::PC2(pc2(runner, record).await?))),
            Step::SyntheticPoRep => Err(Failure::permanent(
                "synthetic PoRep is not supported by this worker: resume at Aborted",
            )
            .into()),
            Step::CheckSealed => check_sealed(runner, record).await,
            Step::PrepareForSnapup if record.rebuilds_upgrade() => add_pieces(runner, record).await,
            Step::PrepareForSnapup => Ok(Outcome::Event(Event::SkipSnap)),
            Step::SnapEncode => snap_encode(runner, record).await,
            Step::SnapProve => snap_prove(runner, record).await,
            Step::Persist => persist(runner, record, replicas(record)).await,
            Step::SubmitPersisted => {
                submit_persisted(
                    runner,
                    record,
                    record.rebuilds_upgrade(),
                    "the manager does not take the rebuilt files (`damocles-manager util sealer \
                     jobs list` says why): resume at SnapDone to persist them again, or at \
                     Aborted to drop the job",
                )
                .await
            }
            Step::Finish => Ok(Outcome::Finished),
            Step::Abort => Err(aborted(record).into()),
        }
    }
}

async fn allocate(runner: &Runner) -> StepResult {
    let manager = &runner.ctx.manager;
    let call = "AllocateRebuildSector";
    let ask = manager.allocate_rebuild_sector(allocate_spec(&runner.ctx.options));
    let Some(info) = take_job(runner, call, ask).await? else {
        return Ok(Outcome::Idle);
    };
    let deals = info
        .deal_pieces()
        .into_iter()
        .flatten()
        .any(|p| !p.is_pledge());
    let id = info.sector.id;
    let refusal = if info.is_snap_up && !deals {
        Some(format!(
            "{id} is upgraded, but its rebuild job names no deal pieces"
        ))
    } else if info.is_snap_up && info.upgrade_public.is_none() {
        Some(format!(
            "{id} is upgraded, but its rebuild job does not say its comm_r before the upgrade"
        ))
    } else if info.sector.proof_type.needs_synthetic_porep() {
        Some(format!(
            "{id} is {}, which needs synthetic PoRep: this worker cannot rebuild it",
            info.sector.proof_type
        ))
    } else {
        None
    };
    if let Some(reason) = refusal {
        let report = manager.report_aborted(id, reason.clone());
        return hand_back(runner, call, reason, report).await;
    }
    Ok(Outcome::Event(Event::AllocatedRebuildSector(info)))
}

async fn check_sealed(runner: &Runner, record: &SectorRecord) -> StepResult {
    // C1 verifies its vanilla proofs against the commitments: the seed is the
    // ticket, as the original's check; no SNARK is made.
    let (id, paths) = identity(runner, record)?;
    let ticket = required(record.ticket, "ticket")?;
    let pc2 = required(record.pc2_output, "pc2out")?;
    let pieces = record.pieces.clone().unwrap_or_default();
    runner
        .proof_call(ProofStage::C1, move || {
            proofs::c1(id, &paths, ticket.ticket, ticket.ticket, pc2, &pieces)
                .map_err(|e| e.context("rebuilt replica check"))
        })
        .await?;
    if let Some(on_chain) = record.comm_r_before_upgrade {
        if pc2.comm_r != on_chain {
            // Before anything is encoded or persisted: the store keeps what it has.
            return Err(Failure::permanent(format!(
                "the rebuilt sector key gives comm_r {}, but before its upgrade \
                 the chain held {}: the job's ticket is not the sector's; resume \
                 at Aborted",
                hex::encode(pc2.comm_r),
                hex::encode(on_chain)
            ))
            .into());
        }
    }
    Ok(Outcome::Event(Event::CheckSealed))
}

/// The sector key is the replica just rebuilt in data/sealed, data/cache: its comm_r is
/// PC2's.
async fn snap_prove(runner: &Runner, record: &SectorRecord) -> StepResult {
    let comm_r_old = required(record.pc2_output, "pc2out")?.comm_r;
    shared::snap_prove(runner, record, comm_r_old).await
}

#[cfg(test)]
mod tests {
    use damocles_core::plan_table::REBUILD_TRANSITIONS;

    use super::*;

    #[test]
    fn every_state_of_the_rebuild_table_has_a_step() {
        for row in REBUILD_TRANSITIONS {
            assert!(step_of(row.from).is_some(), "{}", row.from);
            assert!(step_of(row.to).is_some(), "{}", row.to);
        }
        assert_eq!(step_of(State::Aborted), Some(Step::Abort));
        assert_eq!(step_of(State::TicketAssigned), None);
    }
}
