//! The sealer plan: CC and deal sectors from allocation to a landed proof. Each
//! state of [`SEALER_TRANSITIONS`] has a step ([`step_of`]); the runner calls
//! [`Sealer::exec`] for the record's state and applies what it returns.

use std::time::Duration;

use async_trait::async_trait;
use damocles_core::sealer_api::{
    AcquireDealsSpec, OnChainState, PreCommitOnChainInfo, ProofOnChainInfo, SubmitResult,
};
use damocles_core::{Event, Failure, ProofStage, SectorRecord, State};

use super::shared::{
    aborted, add_pieces, allocate_spec, identity, pc1, pc2, persist, submit_persisted, take_job,
    tree_d, unexpected_state, Replica,
};
use super::{Outcome, PlanSteps, StepResult};
use crate::control::Activity;
use crate::proofs::{self, SealIdentity};
use crate::runner::{required, Runner};

/// The sealer plan's steps.
pub(crate) struct Sealer;

/// What the thread does in a state of the sealer plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Allocate,
    AcquireDeals,
    AddPieces,
    TreeD,
    AssignTicket,
    PC1,
    PC2,
    SyntheticPoRep,
    SubmitPreCommit,
    WaitPreCommit,
    Persist,
    SubmitPersisted,
    WaitSeed,
    C1,
    C2,
    SubmitProof,
    WaitProof,
    Finish,
    Abort,
}

/// The step of each state of the sealer plan; `None` for states of other plans.
fn step_of(state: State) -> Option<Step> {
    Some(match state {
        State::Empty => Step::Allocate,
        State::Allocated => Step::AcquireDeals,
        State::DealsAcquired => Step::AddPieces,
        State::PieceAdded => Step::TreeD,
        State::TreeDBuilt => Step::AssignTicket,
        State::TicketAssigned => Step::PC1,
        State::PC1Done => Step::PC2,
        State::SyntheticPoRepNeeded => Step::SyntheticPoRep,
        State::PC2Done => Step::SubmitPreCommit,
        State::PCSubmitted => Step::WaitPreCommit,
        State::PCLanded => Step::Persist,
        State::Persisted => Step::SubmitPersisted,
        State::PersistanceSubmitted => Step::WaitSeed,
        State::SeedAssigned => Step::C1,
        State::C1Done => Step::C2,
        State::C2Done => Step::SubmitProof,
        State::ProofSubmitted => Step::WaitProof,
        State::Finished => Step::Finish,
        State::Aborted => Step::Abort,
        _ => return None,
    })
}

#[async_trait]
impl PlanSteps for Sealer {
    async fn exec(&self, runner: &Runner, record: &SectorRecord) -> StepResult {
        let Some(step) = step_of(record.state) else {
            return Err(unexpected_state(record).into());
        };
        match step {
            Step::Allocate => {
                let ask = runner
                    .ctx
                    .manager
                    .allocate_sector(allocate_spec(&runner.ctx.options));
                Ok(match take_job(runner, "AllocateSector", ask).await? {
                    Some(sector) => Outcome::Event(Event::Allocate(sector)),
                    None => Outcome::Idle,
                })
            }
            Step::AcquireDeals => acquire_deals(runner, record).await,
            Step::AddPieces => add_pieces(runner, record).await,
            Step::TreeD => tree_d(runner, record).await,
            // A ticket assigned before (a resume at an earlier state) is kept, so that PC1
            // gives the same labels and the pre-committed comm_r stays right.
            Step::AssignTicket => Ok(Outcome::Event(Event::AssignTicket(record.ticket))),
            Step::PC1 => run_pc1(runner, record).await,
            Step::PC2 => run_pc2(runner, record).await,
            Step::SubmitPreCommit => submit_pre_commit(runner, record).await,
            Step::WaitPreCommit => {
                let (id, _) = identity(runner, record)?;
                poll_landed(
                    runner,
                    "PollPreCommitState",
                    id,
                    Event::CheckPC,
                    Event::ReSubmitPC,
                    true,
                )
                .await
            }
            Step::Persist => persist(runner, record, &[Replica::Sealed]).await,
            Step::SubmitPersisted => {
                submit_persisted(
                    runner,
                    record,
                    false,
                    "sector files are persisted but unavailable for sealer",
                )
                .await
            }
            Step::WaitSeed => wait_seed(runner, record).await,
            Step::C1 => run_c1(runner, record).await,
            Step::C2 => run_c2(runner, record).await,
            Step::SubmitProof => submit_proof(runner, record).await,
            Step::WaitProof => wait_proof(runner, record).await,
            Step::Finish => Ok(Outcome::Finished),
            Step::Abort => Err(aborted(record).into()),
            Step::SyntheticPoRep => Err(Failure::permanent(
                "synthetic PoRep is not supported by this worker: resume at Aborted",
            )
            .into()),
        }
    }
}

async fn acquire_deals(runner: &Runner, record: &SectorRecord) -> StepResult {
    let opts = &runner.ctx.options;
    let manager = &runner.ctx.manager;
    // Deals acquired before (a resume at Allocated) are kept: the pieces, and so
    // comm_d, stay those of the sector's first run.
    if let Some(deals) = &record.deals {
        return Ok(Outcome::Event(Event::AcquireDeals(Some(deals.clone()))));
    }
    if !opts.enable_deals {
        return Ok(if opts.disable_cc {
            Outcome::Idle
        } else {
            Outcome::Event(Event::AcquireDeals(None))
        });
    }
    let (id, _) = identity(runner, record)?;
    let spec = AcquireDealsSpec {
        max_deals: opts.max_deals,
        min_used_space: opts.min_deal_space,
    };
    let deals = runner
        .manager_call("AcquireDeals", manager.acquire_deals(id.sector, spec))
        .await?;
    let count = deals.as_ref().map_or(0, Vec::len);
    if opts.disable_cc && count == 0 {
        return Ok(Outcome::Idle);
    }
    Ok(Outcome::Event(Event::AcquireDeals(deals)))
}

async fn run_pc1(runner: &Runner, record: &SectorRecord) -> StepResult {
    let manager = &runner.ctx.manager;
    let ticket = match record.ticket {
        Some(ticket) => ticket,
        None => {
            let (id, _) = identity(runner, record)?;
            runner
                .manager_call("AssignTicket", manager.assign_ticket(id.sector))
                .await?
        }
    };
    let out = pc1(runner, record, ticket).await?;
    Ok(Outcome::Event(Event::PC1(ticket, out)))
}

async fn run_pc2(runner: &Runner, record: &SectorRecord) -> StepResult {
    let opts = &runner.ctx.options;
    let out = pc2(runner, record).await?;
    if opts.verify_after_pc2 {
        let (id, paths) = identity(runner, record)?;
        let ticket = required(record.ticket, "ticket")?;
        let pieces = record.pieces.clone().unwrap_or_default();
        runner
            .proof_call(ProofStage::C1, move || {
                proofs::verify_after_pc2(id, &paths, ticket.ticket, out, &pieces)
            })
            .await?;
    }
    Ok(Outcome::Event(Event::PC2(out)))
}

async fn submit_pre_commit(runner: &Runner, record: &SectorRecord) -> StepResult {
    let manager = &runner.ctx.manager;
    let sector = required(record.sector, "sector")?;
    let pc2 = required(record.pc2_output, "pc2out")?;
    let ticket = required(record.ticket, "ticket")?;
    let info = PreCommitOnChainInfo {
        comm_r: pc2.comm_r,
        comm_d: pc2.comm_d,
        ticket,
    };
    let resp = runner
        .manager_call(
            "SubmitPreCommit",
            manager.submit_pre_commit(sector, info, record.pc_resubmit),
        )
        .await?;
    submit_outcome("pre-commit", resp.res, resp.desc, Event::SubmitPC)
}

async fn wait_seed(runner: &Runner, record: &SectorRecord) -> StepResult {
    let manager = &runner.ctx.manager;
    let (id, _) = identity(runner, record)?;
    loop {
        let resp = runner
            .manager_call("WaitSeed", manager.wait_seed(id.sector, id.proof))
            .await?;
        if let Some(seed) = resp.seed {
            return Ok(Outcome::Event(Event::AssignSeed(seed)));
        }
        if !resp.should_wait || resp.delay <= 0 {
            return Err(Failure::temporary("WaitSeed: no seed and nothing to wait for").into());
        }
        runner.control.set_activity(Activity::Idle);
        runner
            .control
            .sleep(Duration::from_secs(resp.delay.unsigned_abs()))
            .await?;
    }
}

async fn run_c1(runner: &Runner, record: &SectorRecord) -> StepResult {
    let (id, paths) = identity(runner, record)?;
    let ticket = required(record.ticket, "ticket")?;
    let seed = required(record.seed, "seed")?;
    let pc2 = required(record.pc2_output, "pc2out")?;
    let pieces = record.pieces.clone().unwrap_or_default();
    let out = runner
        .proof_call(ProofStage::C1, move || {
            proofs::c1(id, &paths, ticket.ticket, seed.seed, pc2, &pieces)
        })
        .await?;
    Ok(Outcome::Event(Event::C1(out)))
}

async fn run_c2(runner: &Runner, record: &SectorRecord) -> StepResult {
    let (id, _) = identity(runner, record)?;
    let c1 = required(record.c1_output.clone(), "c1out")?;
    runner
        .wait_for_params(crate::params::Circuit::Seal(id.proof))
        .await?;
    let proof = runner
        .processor_call(move || proofs::c2_task(id, &c1), |out| Ok(out.proof))
        .await?;
    Ok(Outcome::Event(Event::C2(proof)))
}

async fn submit_proof(runner: &Runner, record: &SectorRecord) -> StepResult {
    let manager = &runner.ctx.manager;
    let (id, _) = identity(runner, record)?;
    let proof = required(record.proof.clone(), "c2out")?;
    let resp = runner
        .manager_call(
            "SubmitProof",
            manager.submit_proof(id.sector, ProofOnChainInfo { proof }, record.proof_resubmit),
        )
        .await?;
    submit_outcome("proof", resp.res, resp.desc, Event::SubmitProof)
}

async fn wait_proof(runner: &Runner, record: &SectorRecord) -> StepResult {
    let opts = &runner.ctx.options;
    let (id, paths) = identity(runner, record)?;
    if !opts.ignore_proof_check {
        let outcome = poll_landed(
            runner,
            "PollProofState",
            id,
            Event::Finish,
            Event::ReSubmitProof,
            false,
        )
        .await?;
        if !matches!(outcome, Outcome::Event(Event::Finish)) {
            return Ok(outcome);
        }
    }
    tokio::task::spawn_blocking(move || proofs::clear_cache(&paths))
        .await
        .map_err(|e| Failure::critical(e.to_string()))??;
    Ok(Outcome::Event(Event::Finish))
}

async fn poll_landed(
    runner: &Runner,
    call: &str,
    id: SealIdentity,
    landed: Event,
    resubmit: Event,
    pre_commit: bool,
) -> StepResult {
    let manager = &runner.ctx.manager;
    loop {
        let resp = if pre_commit {
            runner
                .manager_call(call, manager.poll_pre_commit_state(id.sector))
                .await?
        } else {
            runner
                .manager_call(call, manager.poll_proof_state(id.sector))
                .await?
        };
        let desc = resp.desc.unwrap_or_default();
        match resp.state {
            OnChainState::Landed => return Ok(Outcome::Event(landed)),
            OnChainState::NotFound => {
                return Err(Failure::permanent(format!("{call}: not found on chain {desc}")).into())
            }
            OnChainState::Failed => {
                runner.control.sleep(Duration::from_secs(30)).await?;
                return Ok(Outcome::Event(resubmit));
            }
            OnChainState::PermFailed => {
                return Err(Failure::permanent(format!("{call}: permanently failed {desc}")).into())
            }
            OnChainState::ShouldAbort => {
                return Err(Failure::abort(format!("{call}: should abort {desc}")).into())
            }
            OnChainState::Pending | OnChainState::Packed | OnChainState::Unknown => {
                runner.control.set_activity(Activity::Idle);
                runner
                    .control
                    .sleep(runner.ctx.options.rpc_polling_interval)
                    .await?;
            }
        }
    }
}

fn submit_outcome(
    what: &str,
    res: SubmitResult,
    desc: Option<String>,
    accepted: Event,
) -> StepResult {
    let desc = desc.unwrap_or_default();
    match res {
        SubmitResult::Accepted | SubmitResult::DuplicateSubmit => Ok(Outcome::Event(accepted)),
        SubmitResult::MismatchedSubmission => {
            Err(Failure::permanent(format!("{what} submission mismatched: {desc}")).into())
        }
        SubmitResult::Rejected => Err(Failure::abort(format!("{what} rejected: {desc}")).into()),
        SubmitResult::FilesMissed => {
            Err(Failure::permanent(format!("{what}: files missed: {desc}")).into())
        }
        SubmitResult::Unknown => {
            Err(Failure::temporary(format!("{what}: unknown submit result: {desc}")).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use damocles_core::plan_table::SEALER_TRANSITIONS;

    use super::*;

    #[test]
    fn every_state_of_the_sealer_table_has_a_step() {
        for row in SEALER_TRANSITIONS {
            assert!(step_of(row.from).is_some(), "{}", row.from);
            assert!(step_of(row.to).is_some(), "{}", row.to);
        }
        assert_eq!(step_of(State::Aborted), Some(Step::Abort));
        // States of the other plans are not the sealer's.
        assert_eq!(step_of(State::SnapEncoded), None);
    }
}
