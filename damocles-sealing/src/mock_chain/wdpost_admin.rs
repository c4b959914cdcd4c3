//! What an operator does to WindowPoSt jobs (`util sealer wdpost reset|remove`): the
//! original's `Damocles.WdPoStResetJob` and `Damocles.WdPoStRemoveJob`.

use super::wdpost_job::{unix_now, WdPostJob, WdPostJobState};
use super::{ChainState, MockChain};

/// Why a WindowPoSt job could not be reset or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WdPostJobError {
    /// No job has this id (the original's words).
    #[error("job '{0}' does not exist")]
    Unknown(String),
    /// The job's round is over (a newer one started): its challenge is gone, so proving it
    /// again would only be missed.
    #[error("job '{id}' belongs to round {round}, and round {current} has started: its deadline has passed")]
    RoundOver {
        /// The job.
        id: String,
        /// Its round.
        round: u64,
        /// The round now open.
        current: u64,
    },
    /// The job's challenge window closed: proving it again would only be missed.
    #[error("job '{id}': its deadline passed {ago_s}s ago, so a proof now would be missed")]
    DeadlinePassed {
        /// The job.
        id: String,
        /// How long ago its deadline passed, in seconds.
        ago_s: u64,
    },
    /// The change was decided but the records were not saved: nothing changed.
    #[error("{0}")]
    NotSaved(String),
}

impl MockChain {
    /// `Damocles.WdPoStResetJob` (`util sealer wdpost reset`): the job is offered again
    /// from the start, as if new: pending, no tries, no holder, no result (the original's
    /// `Reset` sets its creation time to now as well). A thread still proving it loses it at
    /// its next heartbeat.
    ///
    /// # Errors
    /// No such job ([`WdPostJobError::Unknown`]); a job of a round before the current one
    /// ([`WdPostJobError::RoundOver`]: the next round's start would only miss it); a job
    /// whose deadline passed ([`WdPostJobError::DeadlinePassed`]); the records were not
    /// saved.
    pub fn reset_wdpost_job(&self, id: &str) -> Result<WdPostJob, WdPostJobError> {
        let mut state = self.lock();
        let ChainState {
            wdpost_jobs,
            wdpost_heartbeats,
            wdpost_round,
            ..
        } = &mut *state;
        let job = wdpost_jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| WdPostJobError::Unknown(id.to_owned()))?;
        if job.round < *wdpost_round {
            return Err(WdPostJobError::RoundOver {
                id: id.to_owned(),
                round: job.round,
                current: *wdpost_round,
            });
        }
        let now = unix_now();
        if job.deadline_at != 0 && now >= job.deadline_at {
            return Err(WdPostJobError::DeadlinePassed {
                id: id.to_owned(),
                ago_s: now - job.deadline_at,
            });
        }
        job.state = WdPostJobState::Pending;
        job.worker = None;
        job.tries = 0;
        job.faults.clear();
        job.proofs.clear();
        job.verified = None;
        job.error = None;
        job.created_at = now;
        job.started_at = None;
        job.finished_at = None;
        job.heartbeat_lost = false;
        let reset = job.clone();
        wdpost_heartbeats.remove(id);
        state.save();
        state
            .commit()
            .map_err(|e| WdPostJobError::NotSaved(e.to_string()))?;
        tracing::info!("mock chain: WindowPoSt job {id} reset");
        Ok(reset)
    }

    /// `Damocles.WdPoStRemoveJob` (`util sealer wdpost remove`): the job is forgotten;
    /// `false` when there was none (as the original, not an error). A thread still proving
    /// it loses it at its next heartbeat.
    ///
    /// # Errors
    /// The records were not saved.
    pub fn remove_wdpost_job(&self, id: &str) -> Result<bool, WdPostJobError> {
        let mut state = self.lock();
        let before = state.wdpost_jobs.len();
        state.wdpost_jobs.retain(|j| j.id != id);
        if state.wdpost_jobs.len() == before {
            return Ok(false);
        }
        state.wdpost_heartbeats.remove(id);
        state.save();
        state
            .commit()
            .map_err(|e| WdPostJobError::NotSaved(e.to_string()))?;
        tracing::info!("mock chain: WindowPoSt job {id} removed");
        Ok(true)
    }
}
