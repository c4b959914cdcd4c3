//! The mock chain's WindowPoSt jobs, which the original's mock does not have: one round
//! per interval over every finished (and upgraded) sector, split into jobs of a
//! configurable number of sectors (`WdPoStAllocateJobs`), kept alive by the proving
//! thread's heartbeat (`WdPoStHeartbeatJobs`), offered again when it stops
//! ([`HEARTBEAT_TIMEOUT`]), and checked with `verify_window_post` over the sectors not
//! reported faulty (`WdPoStFinishJob`).

use std::time::Duration;

use damocles_core::sealer_api::{
    AllocatePoStSpec, SectorAccessStores, WdPoStInput, WdPoStJob, WdPoStSector, WindowPoStOutput,
};
use damocles_core::{ActorId, ManagerError, PoStProof, SectorNumber};

use super::{allowed, randomness, ChainSectorState, ChainState, MockChain};
use crate::window_post::{self, PoStChallenge};

/// How long a job being proven may go without a heartbeat before another worker is
/// offered it (the real manager's default).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a job's challenge window stays open unless configured: 60 epochs of 30 s, a
/// chain's `WPoStChallengeWindow`.
pub const CHALLENGE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// How many times a job is handed out before it is given up (the real manager's default).
pub const MAX_TRIES: u32 = 2;

/// How many jobs the chain remembers; older finished ones are dropped.
const JOBS_KEPT: usize = 500;

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
    /// by [`MockChain::wdpost_jobs`] from the heartbeats kept beside the jobs; never
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

/// When rounds start and how big their jobs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WdPostSchedule {
    /// A new round once this long has passed since the last (`None`: only on
    /// [`MockChain::start_wdpost_round`]).
    pub interval: Option<Duration>,
    /// Sectors per job.
    pub job_sectors: usize,
    /// How long a heartbeat may be missing.
    pub heartbeat_timeout: Duration,
    /// How long after its round starts a job's deadline passes.
    pub challenge_window: Duration,
    /// When the last round started, in Unix milliseconds (kept with the records: managers
    /// sharing them start each round once).
    pub last_round: Option<u64>,
}

impl Default for WdPostSchedule {
    fn default() -> Self {
        Self {
            interval: None,
            job_sectors: 4,
            heartbeat_timeout: HEARTBEAT_TIMEOUT,
            challenge_window: CHALLENGE_WINDOW,
            last_round: None,
        }
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The manager does not know the job (as the original's code for an unknown sector): the
/// thread drops it instead of retrying.
fn unknown_job(id: &str) -> ManagerError {
    ManagerError::sector_not_found(format!("no WindowPoSt job {id}"))
}

impl ChainState {
    /// Starts a round over every provable sector (finished, being upgraded, upgraded), if
    /// there is one: `None` otherwise.
    fn start_wdpost_round(&mut self, miner: ActorId) -> Option<u64> {
        let sectors: Vec<WdPostJobSector> = self
            .sectors
            .values()
            .filter(|s| s.id.miner == miner && s.pre_commit.is_some())
            .filter_map(|s| match &s.state {
                ChainSectorState::Upgraded => {
                    let accepted = s.upgrade.as_ref()?.accepted.as_ref()?;
                    Some(WdPostJobSector {
                        number: s.id.number,
                        comm_r: accepted.comm_r_new,
                        upgrade: true,
                        store: accepted.store.clone(),
                    })
                }
                // Until its upgrade lands, a sector being upgraded is proven as sealed.
                ChainSectorState::Finished | ChainSectorState::Upgrading => Some(WdPostJobSector {
                    number: s.id.number,
                    comm_r: s.pre_commit.as_ref()?.comm_r,
                    upgrade: false,
                    store: s.persisted.clone()?,
                }),
                _ => None,
            })
            .collect();
        let first = self.sectors.values().find(|s| s.id.miner == miner)?;
        let proof_type = PoStProof::window_for(first.proof_type.sector_size())?;
        if sectors.is_empty() {
            return None;
        }
        self.wdpost_round += 1;
        let round = self.wdpost_round;
        // A deadline passes when the next one opens: a job nobody took is missed.
        for job in &mut self.wdpost_jobs {
            if job.state == WdPostJobState::Pending {
                job.state = WdPostJobState::Failed(format!(
                    "missed: round {round} started before a thread took it"
                ));
                job.finished_at = Some(unix_now());
                // Its deadline has passed: not even its last holder may finish it now.
                job.heartbeat_lost = false;
            }
        }
        let seed = randomness();
        let deadline_at = unix_now() + self.wdpost_schedule.challenge_window.as_secs();
        for (index, chunk) in sectors
            .chunks(self.wdpost_schedule.job_sectors.max(1))
            .enumerate()
        {
            self.wdpost_jobs.push(WdPostJob {
                id: format!("{round}-{index}"),
                round,
                miner,
                proof_type,
                seed,
                sectors: chunk.to_vec(),
                state: WdPostJobState::Pending,
                worker: None,
                tries: 0,
                faults: Vec::new(),
                proofs: Vec::new(),
                verified: None,
                error: None,
                created_at: unix_now(),
                finished_at: None,
                heartbeat_lost: false,
                deadline_at,
                started_at: None,
                heartbeat_at: None,
            });
        }
        let excess = self.wdpost_jobs.len().saturating_sub(JOBS_KEPT);
        self.wdpost_jobs.drain(..excess);
        self.wdpost_schedule.last_round = Some(unix_millis());
        Some(round)
    }

    /// Offers again (or gives up) every job whose heartbeat stopped, and misses every job
    /// still waiting for a thread at its deadline.
    fn expire_heartbeats(&mut self) {
        let timeout = self.wdpost_schedule.heartbeat_timeout;
        let now = unix_millis();
        let mut changed = false;
        for job in &mut self.wdpost_jobs {
            changed |= job.miss_if_late(now / 1000);
            if job.state != WdPostJobState::Proving {
                continue;
            }
            let alive = self
                .wdpost_heartbeats
                .get(&job.id)
                .is_some_and(|at| u128::from(now.saturating_sub(*at)) < timeout.as_millis());
            if alive {
                continue;
            }
            let lost = format!(
                "no heartbeat from {} for {}s",
                job.worker.as_deref().unwrap_or("?"),
                timeout.as_secs()
            );
            tracing::warn!("mock chain: WindowPoSt job {}: {lost}", job.id);
            retry_or_fail(job, lost);
            job.heartbeat_lost = true;
            changed = true;
        }
        // Heartbeats of jobs no longer proven (finished elsewhere, given up, dropped).
        let proving: Vec<&String> = self
            .wdpost_jobs
            .iter()
            .filter(|j| j.state == WdPostJobState::Proving)
            .map(|j| &j.id)
            .collect();
        let kept = self.wdpost_heartbeats.len();
        self.wdpost_heartbeats.retain(|id, _| proving.contains(&id));
        changed |= self.wdpost_heartbeats.len() != kept;
        if changed {
            self.save();
        }
    }
}

/// A job's proof as the mock checked it: the faults it declared and the proofs, with the
/// verdict of `verify_window_post` over the other sectors.
struct CheckedOutput {
    faults: Vec<SectorNumber>,
    proofs: Vec<damocles_core::Opaque>,
    verdict: Result<bool, damocles_core::Failure>,
}

/// Checks `output` of `job`: every fault is a sector of the job, and the proof verifies
/// (on a blocking thread) over the sectors not declared faulty.
async fn verify_output(
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
    fn record(self, job: &mut WdPostJob, counters: &mut super::ChainCounters) {
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
    fn held(&self) -> bool {
        match self.state {
            WdPostJobState::Proving => true,
            WdPostJobState::Pending | WdPostJobState::Failed(_) => self.heartbeat_lost,
            WdPostJobState::Finished | WdPostJobState::Missed => false,
        }
    }

    /// Gives the job up if it is waiting for a thread at `now` (Unix seconds), after its
    /// deadline; whether it did. One whose holder only lost its heartbeat may still be
    /// finished by it (recorded as missed), so that a proven round is kept.
    fn miss_if_late(&mut self, now: u64) -> bool {
        if self.state != WdPostJobState::Pending || self.deadline_at == 0 || now <= self.deadline_at
        {
            return false;
        }
        self.state = WdPostJobState::Failed(format!(
            "missed: its deadline passed {}s ago before a thread took it",
            now - self.deadline_at
        ));
        self.finished_at = Some(now);
        true
    }

    /// Back to being proven by its holder (see [`WdPostJob::held`]).
    fn take_back(&mut self) {
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
fn retry_or_fail(job: &mut WdPostJob, error: String) {
    job.heartbeat_lost = false;
    if job.tries < MAX_TRIES {
        job.state = WdPostJobState::Pending;
    } else {
        job.state = WdPostJobState::Failed(format!("{error} (tried {} times)", job.tries));
        job.finished_at = Some(unix_now());
    }
    job.error = Some(error);
}

impl MockChain {
    /// Starts a WindowPoSt round a new job per `job_sectors` sectors every `interval`
    /// (checked whenever a wdpost thread asks for a job), and gives a job whose heartbeat
    /// stops for `heartbeat_timeout` to another thread.
    pub fn schedule_wdpost(
        &self,
        interval: Option<Duration>,
        job_sectors: usize,
        heartbeat_timeout: Duration,
    ) {
        let mut state = self.lock();
        state.wdpost_schedule.interval = interval;
        state.wdpost_schedule.job_sectors = job_sectors.max(1);
        state.wdpost_schedule.heartbeat_timeout = heartbeat_timeout;
    }

    /// Gives each job of a new round a deadline `window` after the round starts (a chain's
    /// challenge window, [`CHALLENGE_WINDOW`] unless set): a job no thread took by then is
    /// given up as missed, and a proof that comes back after it is recorded as missed.
    pub fn wdpost_challenge_window(&self, window: Duration) {
        self.lock().wdpost_schedule.challenge_window = window;
    }

    /// Starts a WindowPoSt round now over every finished and upgraded sector: its number,
    /// or `None` when there is no sector to prove.
    pub fn start_wdpost_round(&self) -> Option<u64> {
        let mut state = self.lock();
        let round = state.start_wdpost_round(self.miner);
        if round.is_some() {
            state.save();
        }
        round
    }

    /// Every WindowPoSt job the chain remembers, oldest first (a job whose heartbeat
    /// stopped is shown offered again, or given up).
    pub fn wdpost_jobs(&self) -> Vec<WdPostJob> {
        let mut state = self.lock();
        state.expire_heartbeats();
        let mut jobs = state.wdpost_jobs.clone();
        for job in &mut jobs {
            job.heartbeat_at = state.wdpost_heartbeats.get(&job.id).map(|ms| ms / 1000);
        }
        jobs
    }

    pub(super) fn allocate_wdpost_jobs(
        &self,
        spec: &AllocatePoStSpec,
        num: u32,
        worker: &str,
    ) -> Result<Vec<WdPoStJob>, ManagerError> {
        let mut state = self.lock();
        state.expire_heartbeats();
        let due = state.wdpost_schedule.interval.is_some_and(|interval| {
            state.wdpost_schedule.last_round.is_none_or(|at| {
                u128::from(unix_millis().saturating_sub(at)) >= interval.as_millis()
            })
        });
        if due && state.start_wdpost_round(self.miner).is_some() {
            state.save();
        }
        let ChainState {
            wdpost_jobs,
            wdpost_heartbeats,
            ..
        } = &mut *state;
        let mut taken = Vec::new();
        for job in wdpost_jobs.iter_mut() {
            if taken.len() >= num as usize {
                break;
            }
            if job.state != WdPostJobState::Pending
                || !allowed(&spec.allowed_miners, &job.miner)
                || !allowed(&spec.allowed_proof_types, &job.proof_type)
            {
                continue;
            }
            job.state = WdPostJobState::Proving;
            job.worker = Some(worker.to_owned());
            job.heartbeat_lost = false;
            job.tries += 1;
            job.started_at = Some(unix_now());
            wdpost_heartbeats.insert(job.id.clone(), unix_millis());
            taken.push(WdPoStJob {
                id: job.id.clone(),
                input: WdPoStInput {
                    sectors: job
                        .sectors
                        .iter()
                        .map(|s| WdPoStSector {
                            sector_id: s.number,
                            comm_r: s.comm_r,
                            upgrade: s.upgrade,
                            accesses: SectorAccessStores {
                                sealed_file: s.store.clone(),
                                cache_dir: s.store.clone(),
                            },
                        })
                        .collect(),
                    miner_id: job.miner,
                    proof_type: job.proof_type,
                    seed: job.seed,
                },
            });
        }
        if !taken.is_empty() {
            state.save();
        }
        state.commit()?;
        Ok(taken)
    }

    pub(super) fn wdpost_heartbeat(
        &self,
        ids: &[String],
        worker: &str,
    ) -> Result<(), ManagerError> {
        let mut state = self.lock();
        let ChainState {
            wdpost_jobs,
            wdpost_heartbeats,
            ..
        } = &mut *state;
        for id in ids {
            let job = wdpost_jobs
                .iter_mut()
                .find(|j| &j.id == id)
                .ok_or_else(|| unknown_job(id))?;
            if !job.held() || job.worker.as_deref() != Some(worker) {
                return Err(ManagerError::remote(
                    1,
                    format!(
                        "WindowPoSt job {id} is not being proven by {worker} (it is {}, by {})",
                        job.state.name(),
                        job.worker.as_deref().unwrap_or("nobody")
                    ),
                ));
            }
            job.take_back();
            wdpost_heartbeats.insert(id.clone(), unix_millis());
        }
        state.save();
        state.commit()
    }

    /// `WdPoStFinishJob`: the proof is verified (outside the lock) over the sectors not
    /// listed as faults; a failed try is offered again while the job has tries left.
    pub(super) async fn finish_wdpost_job(
        &self,
        id: &str,
        output: Option<WindowPoStOutput>,
        error: String,
    ) -> Result<(), ManagerError> {
        let job = {
            let state = self.lock();
            let job = state
                .wdpost_jobs
                .iter()
                .find(|j| j.id == id)
                .ok_or_else(|| unknown_job(id))?;
            if !job.held() {
                // Given to another thread, or given up: this result is not wanted.
                return Err(ManagerError::sector_not_found(format!(
                    "WindowPoSt job {id} is {}, not being proven: nothing to finish",
                    job.state.name()
                )));
            }
            job.clone()
        };
        let checked = match output {
            None => None,
            Some(output) => Some(verify_output(&job, output).await?),
        };
        let mut state = self.lock();
        let ChainState {
            wdpost_jobs,
            wdpost_heartbeats,
            counters,
            ..
        } = &mut *state;
        let job = wdpost_jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| unknown_job(id))?;
        if !job.held() {
            return Err(ManagerError::sector_not_found(format!(
                "WindowPoSt job {id} was finished meanwhile"
            )));
        }
        wdpost_heartbeats.remove(id);
        match checked {
            None => {
                let error = if error.is_empty() {
                    "finished without a proof or an error".to_owned()
                } else {
                    error
                };
                tracing::warn!("mock chain: WindowPoSt job {id} failed: {error}");
                retry_or_fail(job, error);
            }
            Some(checked) => checked.record(job, counters),
        }
        state.save();
        state.commit()
    }
}
