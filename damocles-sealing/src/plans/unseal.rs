//! The unseal plan: a deal piece read back out of a sealed sector for a retrieval. The
//! sector's replica and cache come from the attached store the manager names (linked,
//! never written), the piece is unsealed into `data/unsealed-pieces/` and checked against
//! its piece CID, delivered to every destination the manager gives, and the job reported
//! achieved. Each state of [`UNSEAL_TRANSITIONS`] has a step ([`step_of`]).
//!
//! [`UNSEAL_TRANSITIONS`]: damocles_core::plan_table::UNSEAL_TRANSITIONS

use async_trait::async_trait;
use damocles_core::{Event, Failure, ProofStage, SectorRecord, State, UnsealTarget};

use super::shared::{aborted, allocate_spec, hand_back, identity, take_job, unexpected_state};
use super::{Outcome, PlanSteps, StepResult, Stop};
use crate::control::Activity;
use crate::runner::{required, Runner};
use crate::unseal::{self, Destination};
use crate::update;

/// The unseal plan's steps.
pub(crate) struct Unseal;

/// What the thread does in a state of the unseal plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Allocate,
    Unseal,
    UploadPiece,
    Finish,
    Abort,
}

/// The step of each state of the unseal plan; `None` for states of other plans.
fn step_of(state: State) -> Option<Step> {
    Some(match state {
        State::Empty => Step::Allocate,
        State::Allocated => Step::Unseal,
        State::Unsealed => Step::UploadPiece,
        State::Finished => Step::Finish,
        State::Aborted => Step::Abort,
        _ => return None,
    })
}

/// The directory of the attached store `name`.
fn attached(runner: &Runner, name: &str) -> Result<std::path::PathBuf, Failure> {
    runner
        .ctx
        .attached
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.location.clone())
        .ok_or_else(|| Failure::permanent(format!("store {name} is not attached to this worker")))
}

#[async_trait]
impl PlanSteps for Unseal {
    async fn exec(&self, runner: &Runner, record: &SectorRecord) -> StepResult {
        let Some(step) = step_of(record.state) else {
            return Err(unexpected_state(record).into());
        };
        let manager = &runner.ctx.manager;
        match step {
            Step::Allocate => {
                let call = "AllocateUnsealSector";
                let ask = manager.allocate_unseal_sector(allocate_spec(&runner.ctx.options));
                let Some(info) = take_job(runner, call, ask).await? else {
                    return Ok(Outcome::Idle);
                };
                if let Err(refusal) = attached(runner, &info.private_info.access_instance) {
                    let reason = format!("{}: {refusal}", info.sector.id);
                    let report = manager.achieve_unseal_sector(
                        info.sector.id,
                        info.piece_cid,
                        reason.clone(),
                    );
                    return hand_back(runner, call, reason, report).await;
                }
                Ok(Outcome::Event(Event::AllocatedUnsealSector(info)))
            }
            Step::Unseal => {
                let (id, paths) = identity(runner, record)?;
                let target = required(record.unseal.clone(), "the piece to unseal")?;
                let ticket = required(record.ticket, "ticket")?;
                let store = attached(runner, &target.store)?;
                let out = unseal::unsealed_piece_path(&runner.ctx.location.data_dir(), &target);
                let name = id.sector.to_string();
                let (done_target, done_out) = (target.clone(), out.clone());
                let written = runner
                    .processor_call(
                        move || {
                            // The replica and cache are linked in, so that the labels
                            // regenerated beside them stay out of the store.
                            update::fetch_sector_key(&store, &name, &paths)?;
                            unseal::unseal_task(id, &paths, ticket.ticket, &target, &out)
                        },
                        move |written| unseal::unseal_done(id, &done_target, &done_out, written),
                    )
                    .await?;
                Ok(Outcome::Event(Event::UnsealDone(written)))
            }
            Step::UploadPiece => {
                let (id, _) = identity(runner, record)?;
                let target = required(record.unseal.clone(), "the piece to unseal")?;
                let dests = runner
                    .manager_call(
                        "AcquireUnsealDest",
                        manager.acquire_unseal_dest(id.sector, target.piece_cid.clone()),
                    )
                    .await?;
                let piece = unseal::unsealed_piece_path(&runner.ctx.location.data_dir(), &target);
                for url in dests {
                    deliver(runner, &target, &piece, &url).await?;
                }
                runner
                    .manager_call(
                        "AchieveUnsealSector",
                        manager.achieve_unseal_sector(id.sector, target.piece_cid, String::new()),
                    )
                    .await?;
                Ok(Outcome::Event(Event::UploadPieceDone))
            }
            Step::Finish => Ok(Outcome::Finished),
            Step::Abort => Err(aborted(record).into()),
        }
    }
}

/// Delivers the unsealed piece of `target` (at `piece`) to `url`.
async fn deliver(
    runner: &Runner,
    target: &UnsealTarget,
    piece: &std::path::Path,
    url: &str,
) -> Result<(), Stop> {
    let (to, root) = match unseal::destination_of(url, &target.piece_cid)? {
        Destination::File(path) => {
            let root = unseal::confine_file(&path, &runner.ctx.pieces.unseal_file_dirs)?;
            (path.clone(), root.to_path_buf())
        }
        Destination::Store { instance, path } => {
            let root = attached(runner, &instance)?;
            (root.join(path), root)
        }
        remote => {
            let store = runner.ctx.pieces.remote.as_ref().ok_or_else(|| {
                Failure::permanent(format!(
                    "unseal destination {:?}: this worker has no manager piece store to \
                     send through",
                    unseal::redacted(url)
                ))
            })?;
            runner.control.set_activity(Activity::Running {
                proc: Some(ProofStage::Transfer.builtin_proc().into()),
            });
            let sent = match remote {
                Destination::Http(url) => store.put(&url, piece).await,
                Destination::Market {
                    resource, token, ..
                } => store.put_market(&resource, piece, &token).await,
                _ => store.upload(&target.piece_cid, piece).await,
            };
            return sent.map_err(|e| {
                let mut failure = e.into_failure();
                failure.message = unseal::without_secrets(&failure.message, url);
                failure.into()
            });
        }
    };
    let from = piece.to_path_buf();
    runner
        .proof_call(ProofStage::Transfer, move || {
            unseal::deliver_copy(&from, &to, &root)
        })
        .await
}

#[cfg(test)]
mod tests {
    use damocles_core::plan_table::UNSEAL_TRANSITIONS;

    use super::*;

    #[test]
    fn every_state_of_the_unseal_table_has_a_step() {
        for row in UNSEAL_TRANSITIONS {
            assert!(step_of(row.from).is_some(), "{}", row.from);
            assert!(step_of(row.to).is_some(), "{}", row.to);
        }
        assert_eq!(step_of(State::Aborted), Some(Step::Abort));
        assert_eq!(step_of(State::PC1Done), None);
    }
}
