//! A WindowPoSt job of the mock chain and what happens to one: its states, its sectors,
//! who may still finish it (its holder after a lost heartbeat), a deadline that passes,
//! a failed try, and its proof checked with `verify_window_post` over the sectors not
//! reported faulty (a late one recorded as missed). `wdpost` runs the rounds.

use damocles_core::sealer_api::WindowPoStOutput;
use damocles_core::{ActorId, ManagerError, PoStProof, SectorNumber};

use crate::window_post::{self, PoStChallenge};

/// How many times a job is handed out before it is given up (the real manager's default).
pub const MAX_TRIES: u32 = 2;

/// Where a WindowPoSt job stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum WdPostJobState {
    /// Waiting for a wdpost thread.
    Pending,
    /// A thread took it and its heartbeat is alive.
    Proving,
    /// A proof (and faults) came back and was checked: see `verified`.
    Finished,
    /// Given up, with why (every try failed or lost its heartbeat, or its deadline passed
    /// before a thread took it).
    Failed(String),
    /// Its proof came back after the deadline: checked all the same (see `verified`), and
    /// `error` says how late and how long proving took.
    Missed,
}

impl WdPostJobState {
    /// Its name, as lists show it: `pending`, `proving`, `finished`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            WdPostJobState::Pending => "pending",
            WdPostJobState::Proving => "proving",
            WdPostJobState::Finished => "finished",
            WdPostJobState::Failed(_) => "failed",
            WdPostJobState::Missed => "missed",
        }
    }
}

/// A sector a job proves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WdPostJobSector {
    /// The sector number.
    pub number: SectorNumber,
    /// Its replica commitment on chain (the update's for an upgraded sector).
    pub comm_r: [u8; 32],
    /// Whether it was upgraded (its replica is `update/<sector>`).
    pub upgrade: bool,
    /// The store holding its files.
    pub store: String,
}

/// A WindowPoSt job of the mock chain: with the miner, proof type, seed and comm_rs, what
/// an independent verifier needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WdPostJob {
    /// `<round>-<index>`.
    pub id: String,
    /// The round (deadline) it belongs to, numbered from 1.
    pub round: u64,
    /// The miner.
    pub miner: ActorId,
    /// The WindowPoSt proof type.
    pub proof_type: PoStProof,
    /// The challenge randomness.
    pub seed: [u8; 32],
    /// The sectors, by number.
    pub sectors: Vec<WdPostJobSector>,
    /// Where it stands.
    pub state: WdPostJobState,
    /// The worker it was last handed to.
    pub worker: Option<String>,
    /// How many times it was handed out.
    pub tries: u32,
    /// The sectors the worker reported faulty.
    pub faults: Vec<SectorNumber>,
    /// The proofs it sent back.
    pub proofs: Vec<Vec<u8>>,
    /// Whether the proofs verified over the sectors not faulty (`None` until checked).
    pub verified: Option<bool>,
    /// The last error: a try that failed, a lost heartbeat, why the proof was refused.
    pub error: Option<String>,
    /// When it was made, in Unix seconds.
    pub created_at: u64,
    /// When it finished or was given up, in Unix seconds.
    pub finished_at: Option<u64>,
    /// Its last try ended only because its holder's heartbeat stopped (the manager may
    /// have been down): until another thread takes it, [`WdPostJob::worker`] may take it
    /// back. Kept with the records; absent in older ones.
    #[serde(default)]
    pub heartbeat_lost: bool,
    /// When its challenge window closes, in Unix seconds: a proof after it is missed (0 in
    /// records older than deadlines: none).
    #[serde(default)]
    pub deadline_at: u64,
    /// When its last try was handed out, in Unix seconds.
    #[serde(default)]
    pub started_at: Option<u64>,
    /// Its holder's last heartbeat, in Unix seconds, while it is being proven. Filled in
    /// by [`crate::mock_chain::MockChain::wdpost_jobs`] from the heartbeats kept beside the jobs; never
    /// written with the job.
    #[serde(default, skip_serializing)]
    pub heartbeat_at: Option<u64>,
}

impl WdPostJob {
    /// The challenge it proves.
    pub fn challenge(&self) -> PoStChallenge {
        PoStChallenge {
            proof: self.proof_type,
            miner: self.miner,
            seed: self.seed,
        }
    }

    /// The sectors not reported faulty, with their comm_r: what the proof covers.
    pub fn proven_sectors(&self) -> Vec<(SectorNumber, [u8; 32])> {
        self.sectors
            .iter()
            .filter(|s| !self.faults.contains(&s.number))
            .map(|s| (s.number, s.comm_r))
            .collect()
    }
}

pub(super) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A job's proof as the mock checked it: the faults it declared and the proofs, with the
/// verdict of `verify_window_post` over the other sectors.
pub(super) struct CheckedOutput {
    faults: Vec<SectorNumber>,
    proofs: Vec<damocles_core::Opaque>,
    verdict: Result<bool, damocles_core::Failure>,
}

/// Checks `output` of `job`: every fault is a sector of the job, and the proof verifies
/// (on a blocking thread) over the sectors not declared faulty.
pub(super) async fn verify_output(
    job: &WdPostJob,
    output: WindowPoStOutput,
) -> Result<CheckedOutput, ManagerError> {
    if let Some(stray) = output
        .faults
        .iter()
        .find(|n| !job.sectors.iter().any(|s| s.number == **n))
    {
        return Err(ManagerError::remote(
            1,
            format!("fault {stray} is not a sector of WindowPoSt job {}", job.id),
        ));
    }
    let mut finished = job.clone();
    finished.faults = output.faults.clone();
    finished.faults.sort_unstable();
    finished.faults.dedup();
    let faults = finished.faults.clone();
    let proofs = output.proofs.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        window_post::verify(finished.challenge(), &finished.proven_sectors(), &output)
    })
    .await
    .unwrap_or_else(|e| Err(damocles_core::Failure::critical(e.to_string())));
    Ok(CheckedOutput {
        faults,
        proofs,
        verdict,
    })
}

impl CheckedOutput {
    /// Finishes `job` with this output and counts its verdict.
    pub(super) fn record(self, job: &mut WdPostJob, counters: &mut super::ChainCounters) {
        job.faults = self.faults;
        job.proofs = self.proofs.into_iter().map(|p| p.0).collect();
        job.state = WdPostJobState::Finished;
        job.finished_at = Some(unix_now());
        counters.post_faults += job.faults.len() as u64;
        let (verified, error) = match self.verdict {
            Ok(true) => (true, None),
            Ok(false) => (false, Some("the proof does not verify".to_owned())),
            Err(failure) => (false, Some(failure.to_string())),
        };
        job.verified = Some(verified);
        job.error = error;
        if verified {
            counters.posts_verified += 1;
        } else {
            counters.posts_rejected += 1;
        }
        let now = unix_now();
        if job.deadline_at != 0 && now > job.deadline_at {
            let took = now.saturating_sub(job.started_at.unwrap_or(job.created_at));
            let late = format!(
                "missed: proven {}s after its deadline (proving took {took}s)",
                now - job.deadline_at
            );
            tracing::warn!("mock chain: WindowPoSt job {}: {late}", job.id);
            job.error = Some(match job.error.take() {
                Some(error) => format!("{late}; {error}"),
                None => late,
            });
            job.state = WdPostJobState::Missed;
            counters.posts_missed += 1;
        }
    }
}

impl WdPostJob {
    /// Whether its holder may still finish it: it is being proven, or it only lost its
    /// heartbeat (a manager down longer than the timeout) and no other thread took it
    /// since. The original manager likewise takes a heartbeat of such a job and puts it
    /// back to running (damocles PR#1028), so a round a worker proved is not lost.
    pub(super) fn held(&self) -> bool {
        match self.state {
            WdPostJobState::Proving => true,
            WdPostJobState::Pending | WdPostJobState::Failed(_) => self.heartbeat_lost,
            WdPostJobState::Finished | WdPostJobState::Missed => false,
        }
    }

    /// Gives the job up if it is waiting for a thread at `now` (Unix seconds), after its
    /// deadline; whether it did. One whose holder only lost its heartbeat may still be
    /// finished by it (recorded as missed), so that a proven round is kept.
    pub(super) fn miss_if_late(&mut self, now: u64) -> bool {
        if self.state != WdPostJobState::Pending || self.deadline_at == 0 || now <= self.deadline_at
        {
            return false;
        }
        self.state = WdPostJobState::Failed(
            "missed: its deadline passed while no thread was proving it".to_owned(),
        );
        self.finished_at = Some(now);
        true
    }

    /// Back to being proven by its holder (see [`WdPostJob::held`]).
    pub(super) fn take_back(&mut self) {
        if self.state != WdPostJobState::Proving {
            tracing::info!(
                "mock chain: WindowPoSt job {} is proven by {} after all: its heartbeat is back",
                self.id,
                self.worker.as_deref().unwrap_or("?")
            );
            self.state = WdPostJobState::Proving;
            self.finished_at = None;
        }
        self.heartbeat_lost = false;
    }
}

/// A try of `job` failed: offered again while it has tries left, else given up.
pub(super) fn retry_or_fail(job: &mut WdPostJob, error: String) {
    job.heartbeat_lost = false;
    if job.tries < MAX_TRIES {
        job.state = WdPostJobState::Pending;
    } else {
        job.state = WdPostJobState::Failed(format!("{error} (tried {} times)", job.tries));
        job.finished_at = Some(unix_now());
    }
    job.error = Some(error);
}
