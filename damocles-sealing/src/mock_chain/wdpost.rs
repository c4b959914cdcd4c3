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
use damocles_core::{ActorId, ManagerError, PoStProof};

use super::wdpost_job::{
    retry_or_fail, unix_millis, unix_now, verify_output, WdPostJob, WdPostJobSector, WdPostJobState,
};
use super::{allowed, randomness, ChainSectorState, ChainState, MockChain};

/// How long a job being proven may go without a heartbeat before another worker is
/// offered it (the real manager's default).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a job's challenge window stays open unless configured: 60 epochs of 30 s, a
/// chain's `WPoStChallengeWindow`.
pub const CHALLENGE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// How many jobs the chain remembers; older finished ones are dropped.
const JOBS_KEPT: usize = 500;

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
