//! The mock chain's jobs for the rebuild plan, as the real manager keeps them: an
//! operator asks for one (`util sealer sectors rebuild`), a rebuild thread takes it
//! (`AllocateRebuildSector`), and the files it persists are checked against the chain
//! before the job is done (`SubmitPersistedEx`).

use std::path::{Path, PathBuf};

use damocles_core::sealer_api::{AllocatedSector, SectorPublicInfo, SectorRebuildInfo};
use damocles_core::{ManagerError, SectorId};

use super::{ChainSector, ChainSectorState, MockChain};
use crate::proofs;

/// What a job asks a worker to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum JobKind {
    /// Re-create a sealed sector's files (the rebuild plan).
    Rebuild,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JobState {
    /// Waiting for a worker thread.
    Pending,
    /// A worker thread took it (and, once `accepted`, sent back files the chain took).
    Taken,
    /// Done: the files were accepted and the worker finished the job.
    Done,
    /// Dropped by the worker, with its reason.
    Failed(String),
}

impl JobState {
    /// Whether the job is still to be done (pending or taken).
    pub fn is_open(&self) -> bool {
        matches!(self, JobState::Pending | JobState::Taken)
    }
}

/// A job of the mock manager.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainJob {
    /// Numbered from 1.
    pub id: u64,
    /// The sector it is about.
    pub sector: SectorId,
    /// What it asks for.
    pub kind: JobKind,
    /// Where it stands.
    pub state: JobState,
    /// When it was asked for, in Unix seconds.
    pub created_at: u64,
    /// When it was done or dropped, in Unix seconds.
    pub finished_at: Option<u64>,
    /// Why the last files sent back were refused, if they were.
    pub refused: Option<String>,
    /// The files sent back were accepted; the job is done once the worker finishes it.
    #[serde(default)]
    pub accepted: bool,
    /// When a worker thread took it, in Unix seconds.
    #[serde(default)]
    pub taken_at: Option<u64>,
    /// A thread reported a state of the job since it was taken: a thread holds it.
    #[serde(default)]
    pub reported: bool,
}

/// How long a taken job may go without a report before it is offered again: the taking
/// thread reports as soon as it has saved the job, so silence this long means the answer
/// never reached a thread that kept it (a crash right after the call, a lost reply).
pub const UNREPORTED_LEASE_SECS: u64 = 60;

/// The job a worker thread holds for `id` (taken, not yet done or dropped).
fn taken_job(jobs: &mut [ChainJob], id: SectorId) -> Option<&mut ChainJob> {
    jobs.iter_mut()
        .find(|j| j.sector == id && j.kind == JobKind::Rebuild && j.state == JobState::Taken)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl MockChain {
    /// Tells the chain where the store `name` is mounted, so that it can check the files
    /// a rebuild persists there.
    pub fn attach_store(&self, name: &str, path: &Path) {
        self.lock()
            .stores
            .insert(name.to_owned(), path.to_path_buf());
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<ChainJob> {
        self.lock().jobs.clone()
    }

    /// Asks for `id`'s files to be rebuilt: a pending job a rebuild thread takes. Refused
    /// (with why) unless the sector is finished or upgraded, its files were persisted and
    /// it has no rebuild job open.
    pub fn request_rebuild(&self, id: SectorId) -> Result<ChainJob, String> {
        let mut state = self.lock();
        let sector = state
            .sectors
            .get(&id)
            .ok_or_else(|| format!("{id} is not a sector of this chain"))?;
        match &sector.state {
            ChainSectorState::Finished | ChainSectorState::Upgraded => {}
            other => {
                return Err(format!(
                    "{id} is {other:?}: only a finished or upgraded sector can be rebuilt"
                ))
            }
        }
        if sector.pre_commit.is_none() || sector.persisted.is_none() {
            return Err(format!("{id} was never pre-committed and persisted"));
        }
        if let Some(open) = state
            .jobs
            .iter()
            .find(|j| j.sector == id && j.state.is_open())
        {
            return Err(format!(
                "{id} already has rebuild job {} ({:?})",
                open.id, open.state
            ));
        }
        let job = ChainJob {
            id: state.jobs.last().map_or(1, |j| j.id + 1),
            sector: id,
            kind: JobKind::Rebuild,
            state: JobState::Pending,
            created_at: unix_now(),
            finished_at: None,
            refused: None,
            accepted: false,
            taken_at: None,
            reported: false,
        };
        state.jobs.push(job.clone());
        state.save();
        Ok(job)
    }

    /// Whether a worker thread holds a rebuild job of `id`: its reports are then the
    /// rebuild's, not the sector's (which stays finished on chain).
    pub(super) fn rebuilding(&self, id: SectorId) -> bool {
        taken_job(&mut self.lock().jobs, id).is_some()
    }

    /// A report of `id`'s state while a thread rebuilds it: the thread holds the job.
    pub(super) fn note_rebuild_report(&self, id: SectorId) {
        let mut state = self.lock();
        if let Some(job) = taken_job(&mut state.jobs, id).filter(|j| !j.reported) {
            job.reported = true;
            state.save();
        }
    }

    /// The rebuild thread finished its job: done if its files were accepted, failed
    /// otherwise.
    pub(super) fn finish_rebuild_job(&self, id: SectorId) {
        let mut state = self.lock();
        if let Some(job) = taken_job(&mut state.jobs, id) {
            job.finished_at = Some(unix_now());
            job.state = if job.accepted {
                JobState::Done
            } else {
                JobState::Failed("finished without its files accepted".into())
            };
            state.save();
        }
    }

    /// Takes the oldest pending rebuild job, or one taken [`UNREPORTED_LEASE_SECS`] ago and
    /// never reported: what a rebuild thread needs.
    pub(super) fn take_rebuild_job(&self) -> Option<SectorRebuildInfo> {
        let now = unix_now();
        let mut state = self.lock();
        let super::ChainState { jobs, sectors, .. } = &mut *state;
        let offered = |j: &ChainJob| match j.state {
            JobState::Pending => true,
            JobState::Taken => {
                !j.reported
                    && !j.accepted
                    && j.taken_at
                        .is_some_and(|at| now.saturating_sub(at) >= UNREPORTED_LEASE_SECS)
            }
            _ => false,
        };
        let (job, info) = jobs
            .iter_mut()
            .filter(|j| j.kind == JobKind::Rebuild && offered(j))
            .find_map(|j| {
                sectors
                    .get(&j.sector)
                    .and_then(rebuild_info)
                    .map(|i| (j, i))
            })?;
        if job.state == JobState::Taken {
            tracing::warn!(
                "mock chain: rebuild job {} of {} was taken and never reported; offered again",
                job.id,
                job.sector
            );
        }
        job.state = JobState::Taken;
        job.taken_at = Some(now);
        state.save();
        Some(info)
    }

    /// A rebuild thread dropped its job.
    pub(super) fn fail_rebuild_job(&self, id: SectorId, reason: String) {
        let mut state = self.lock();
        if let Some(job) = taken_job(&mut state.jobs, id) {
            tracing::info!(
                "mock chain: rebuild job {} of {id} dropped: {reason}",
                job.id
            );
            job.state = JobState::Failed(reason);
            job.finished_at = Some(unix_now());
            state.save();
        }
    }

    /// `SubmitPersistedEx` of a rebuilt sector: accepted only if the files persisted in
    /// `instance` give the comm_r on chain (and, for an upgraded sector, the updated
    /// replica's files the comm_r of its upgrade); refused (`false`, the reason kept in
    /// the job) otherwise. The job is done once the thread reports it finished.
    pub(super) async fn check_rebuilt(
        &self,
        id: SectorId,
        instance: String,
        is_upgrade: bool,
    ) -> Result<bool, ManagerError> {
        let sector = self.with_sector(id, |s, _| s.clone())?;
        let store = self.lock().stores.get(&instance).cloned();
        let verdict = match store {
            None => Err(format!(
                "the mock does not know where store {instance} is: start it with \
                 --persist-store {instance}=PATH (or --with-worker)"
            )),
            Some(store) => {
                tokio::task::spawn_blocking(move || check_files(&sector, &store, is_upgrade))
                    .await
                    .map_err(|e| ManagerError::remote(1, format!("rebuild check panicked: {e}")))?
            }
        };
        let mut state = self.lock();
        let super::ChainState {
            jobs,
            sectors,
            counters,
            ..
        } = &mut *state;
        let Some(job) = taken_job(jobs, id) else {
            return Ok(false);
        };
        let accepted = match verdict {
            // Sent again (a restart after the answer was lost): the same answer.
            Ok(()) if job.accepted => true,
            Ok(()) => {
                job.accepted = true;
                job.refused = None;
                counters.rebuilds_accepted += 1;
                if let Some(sector) = sectors.get_mut(&id) {
                    sector.rebuilt += 1;
                    sector.persisted = Some(instance.clone());
                    if let Some(accepted) =
                        sector.upgrade.as_mut().and_then(|u| u.accepted.as_mut())
                    {
                        accepted.store = instance;
                    }
                }
                true
            }
            Err(why) => {
                tracing::warn!("mock chain: rebuilt files of {id} refused: {why}");
                job.refused = Some(why);
                counters.rebuilds_rejected += 1;
                false
            }
        };
        state.save();
        Ok(accepted)
    }
}

/// What a rebuild thread is given for `sector`: `None` if the chain lacks what re-creates
/// it.
fn rebuild_info(sector: &ChainSector) -> Option<SectorRebuildInfo> {
    let ticket = sector.pre_commit.as_ref()?.ticket;
    let accepted = sector.upgrade.as_ref().filter(|u| u.accepted.is_some());
    let (pieces, upgrade_public) = match accepted {
        Some(upgrade) => (
            upgrade.deals.clone(),
            upgrade.accepted.as_ref().map(|a| SectorPublicInfo {
                comm_r: a.comm_r_new,
                sealed_cid: None,
                activation: 0,
                expiration: 0,
            }),
        ),
        None => (sector.deals.clone(), None),
    };
    Some(SectorRebuildInfo {
        sector: AllocatedSector {
            id: sector.id,
            proof_type: sector.proof_type,
        },
        ticket,
        pieces: (!pieces.is_empty()).then_some(pieces),
        is_snap_up: upgrade_public.is_some(),
        upgrade_public,
    })
}

/// The check of a rebuilt sector's files in `store`: the sealed replica is there at the
/// sector's size and its cache's `p_aux` gives the pre-committed comm_r; for an upgraded
/// sector the same of the updated replica against the accepted update's comm_r.
fn check_files(sector: &ChainSector, store: &Path, is_upgrade: bool) -> Result<(), String> {
    let name = sector.id.to_string();
    let upgrade = sector
        .upgrade
        .as_ref()
        .and_then(|u| u.accepted.as_ref())
        .map(|a| a.comm_r_new);
    if is_upgrade != upgrade.is_some() {
        return Err(format!(
            "submitted with is_upgrade = {is_upgrade}, but the sector {} upgraded",
            if upgrade.is_some() { "is" } else { "is not" }
        ));
    }
    let pre_commit = sector
        .pre_commit
        .as_ref()
        .ok_or("the sector was never pre-committed")?;
    let mut replicas: Vec<(&str, &str, [u8; 32])> = vec![("sealed", "cache", pre_commit.comm_r)];
    if let Some(comm_r_new) = upgrade {
        replicas.push(("update", "update-cache", comm_r_new));
    }
    let size = sector.proof_type.sector_size().bytes();
    for (file_dir, cache_dir, expected) in replicas {
        let file: PathBuf = store.join(file_dir).join(&name);
        let len = std::fs::metadata(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .len();
        if len != size {
            return Err(format!("{} holds {len} bytes, not {size}", file.display()));
        }
        let cache = store.join(cache_dir).join(&name);
        let found = proofs::comm_r_of_cache(&cache)?;
        if found != expected {
            return Err(format!(
                "{} gives comm_r {}, but the chain holds {}",
                cache.display(),
                hex::encode(found),
                hex::encode(expected)
            ));
        }
    }
    Ok(())
}
