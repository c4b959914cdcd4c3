//! The snapup plan (SnapDeals): a sealed CC sector the manager hands out gets deal data
//! encoded into a new replica, proven, persisted and submitted, without sealing again.
//! Each state of [`SNAPUP_TRANSITIONS`] has a step ([`step_of`]).
//!
//! [`SNAPUP_TRANSITIONS`]: damocles_core::plan_table::SNAPUP_TRANSITIONS

use async_trait::async_trait;
use damocles_core::sealer_api::{
    AcquireDealsSpec, AllocateSnapUpSpec, SnapUpOnChainInfo, SubmitResult,
};
use damocles_core::{Event, Failure, ProofStage, SectorRecord, State};

use super::shared;
use super::shared::{
    aborted, add_pieces, allocate_spec, hand_back, identity, persist, take_job, tree_d,
    unexpected_state, Replica,
};
use super::{Outcome, PlanSteps, StepResult, Stop};
use crate::runner::{required, Runner};
use crate::update;

/// The snapup plan's steps.
pub(crate) struct Snapup;

/// What the thread does in a state of the snapup plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Allocate,
    AddPieces,
    TreeD,
    SnapEncode,
    SnapProve,
    Persist,
    SubmitProof,
    Finish,
    Abort,
}

/// The step of each state of the snapup plan; `None` for states of other plans.
fn step_of(state: State) -> Option<Step> {
    Some(match state {
        State::Empty => Step::Allocate,
        State::Allocated => Step::AddPieces,
        State::PieceAdded => Step::TreeD,
        State::TreeDBuilt => Step::SnapEncode,
        State::SnapEncoded => Step::SnapProve,
        State::SnapProved => Step::Persist,
        State::Persisted => Step::SubmitProof,
        State::Finished => Step::Finish,
        State::Aborted => Step::Abort,
        _ => return None,
    })
}

/// Brings the sector key's files from its store into the thread's `data/` (linked where
/// the file system allows), as the steps that read them need.
async fn fetch_sector_key(runner: &Runner, record: &SectorRecord) -> Result<(), Stop> {
    let (id, paths) = identity(runner, record)?;
    let key = required(record.sector_key.clone(), "sector key")?;
    let store = runner
        .ctx
        .attached
        .iter()
        .find(|s| s.name == key.store)
        .map(|s| s.location.clone())
        .ok_or_else(|| {
            Failure::permanent(format!(
                "the sector key is in store {}, which is not attached to this worker",
                key.store
            ))
        })?;
    let name = id.sector.to_string();
    runner
        .proof_call(ProofStage::Transfer, move || {
            update::fetch_sector_key(&store, &name, &paths)
        })
        .await
}

#[async_trait]
impl PlanSteps for Snapup {
    async fn exec(&self, runner: &Runner, record: &SectorRecord) -> StepResult {
        let Some(step) = step_of(record.state) else {
            return Err(unexpected_state(record).into());
        };
        match step {
            Step::Allocate => allocate(runner).await,
            Step::AddPieces => add_pieces(runner, record).await,
            Step::TreeD => tree_d(runner, record).await,
            Step::SnapEncode => snap_encode(runner, record).await,
            Step::SnapProve => snap_prove(runner, record).await,
            Step::Persist => persist(runner, record, &[Replica::Updated]).await,
            Step::SubmitProof => submit_proof(runner, record).await,
            Step::Finish => Ok(Outcome::Finished),
            Step::Abort => Err(aborted(record).into()),
        }
    }
}

async fn allocate(runner: &Runner) -> StepResult {
    let opts = &runner.ctx.options;
    let manager = &runner.ctx.manager;
    let spec = AllocateSnapUpSpec {
        sector: allocate_spec(opts),
        deals: AcquireDealsSpec {
            max_deals: opts.max_deals,
            min_used_space: opts.min_deal_space,
        },
    };
    let call = "AllocateSanpUpSector";
    let ask = manager.allocate_snapup_sector(spec);
    let Some(allocated) = take_job(runner, call, ask).await? else {
        return Ok(Outcome::Idle);
    };
    let store = &allocated.private.access_instance;
    let refusal = if !allocated.pieces.iter().any(|p| !p.is_pledge()) {
        Some("deals required, got empty".to_owned())
    } else if store.is_empty() {
        Some("the allocation names no store holding the sector".to_owned())
    } else if !runner.ctx.attached.iter().any(|s| &s.name == store) {
        Some(format!(
            "{} is in store {store}, which is not attached to this worker",
            allocated.sector.id
        ))
    } else {
        None
    };
    if let Some(reason) = refusal {
        let id = allocated.sector.id;
        let report = manager.report_aborted(id, reason.clone());
        return hand_back(runner, call, reason, report).await;
    }
    Ok(Outcome::Event(Event::AllocatedSnapUpSector(allocated)))
}

/// The sector key is fetched from its store first.
async fn snap_encode(runner: &Runner, record: &SectorRecord) -> StepResult {
    identity(runner, record)?;
    fetch_sector_key(runner, record).await?;
    shared::snap_encode(runner, record).await
}

/// The sector key (fetched again if a restart lost it) is the upgraded CC sector's.
async fn snap_prove(runner: &Runner, record: &SectorRecord) -> StepResult {
    let (_, paths) = identity(runner, record)?;
    let key = required(record.sector_key.clone(), "sector key")?;
    required(record.snap_encode_output, "snap encode output")?;
    if !paths.sealed.exists() {
        fetch_sector_key(runner, record).await?;
    }
    shared::snap_prove(runner, record, key.comm_r).await
}

async fn submit_proof(runner: &Runner, record: &SectorRecord) -> StepResult {
    let manager = &runner.ctx.manager;
    let (id, _) = identity(runner, record)?;
    let encoded = required(record.snap_encode_output, "snap encode output")?;
    let info = SnapUpOnChainInfo {
        comm_r: encoded.comm_r_new,
        comm_d: encoded.comm_d_new,
        access_instance: required(record.persist_instance.clone(), "persist_instance")?,
        // Every piece it was assigned, pledge pieces included, in order: the
        // Go manager compares count and order with what it assigned.
        pieces: record
            .deals
            .iter()
            .flatten()
            .map(|d| d.piece.cid.clone())
            .collect(),
        proof: required(record.update_proof.clone(), "update proof")?,
    };
    let resp = runner
        .manager_call(
            "SubmitSnapUpProof",
            manager.submit_snapup_proof(id.sector, info),
        )
        .await?;
    let desc = resp.desc.unwrap_or_default();
    match resp.res {
        SubmitResult::Accepted | SubmitResult::DuplicateSubmit => Ok(Outcome::Event(Event::Finish)),
        SubmitResult::MismatchedSubmission => {
            Err(Failure::abort(format!("snap-up proof submission mismatched: {desc}")).into())
        }
        SubmitResult::Rejected => {
            Err(Failure::abort(format!("snap-up proof rejected: {desc}")).into())
        }
        // The manager could not find the updated files: persist them again.
        SubmitResult::FilesMissed => {
            tracing::warn!(sector = %id.sector, "snap-up files missed: {desc}; persisting again");
            Ok(Outcome::Event(Event::RePersist))
        }
        SubmitResult::Unknown => {
            Err(Failure::temporary(format!("snap-up proof: unknown submit result: {desc}")).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use damocles_core::plan_table::SNAPUP_TRANSITIONS;

    use super::*;

    #[test]
    fn every_state_of_the_snapup_table_has_a_step() {
        for row in SNAPUP_TRANSITIONS {
            assert!(step_of(row.from).is_some(), "{}", row.from);
            assert!(step_of(row.to).is_some(), "{}", row.to);
        }
        assert_eq!(step_of(State::Aborted), Some(Step::Abort));
        assert_eq!(step_of(State::PC1Done), None);
    }
}
