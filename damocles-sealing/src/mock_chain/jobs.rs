//! The mock chain's jobs for the rebuild and unseal plans, as the real manager keeps them:
//! an operator asks for one (`util sealer sectors rebuild|unseal`), a thread takes it
//! (`AllocateRebuildSector`, `AllocateUnsealSector`), what it sends back is checked
//! against the chain (the rebuilt files at `SubmitPersistedEx`, the unsealed piece's CID
//! at `AchieveUnsealSector`), and the job is done once the thread finishes it.

use std::path::Path;

use damocles_core::sealer_api::{
    AllocatedSector, Cid, ReportFailure, SectorPiece, SectorPrivateInfo, SectorPublicInfo,
    SectorRebuildInfo, SectorUnsealInfo, UnsealState,
};
use damocles_core::{ManagerError, SectorId};

use super::{ChainSector, ChainSectorState, MockChain};

/// What a job asks a worker to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum JobKind {
    /// Re-create a sealed sector's files (the rebuild plan).
    Rebuild,
    /// Read a deal piece back out of the sector (the unseal plan) and deliver it.
    Unseal {
        /// The piece.
        piece: Cid,
        /// Where it goes (`AcquireUnsealDest`).
        dest: Vec<String>,
    },
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for a worker thread.
    Pending,
    /// A worker thread took it (and, once `accepted`, sent back what the chain took).
    Taken,
    /// Done: what the thread sent back was accepted and it finished the job.
    Done,
    /// Dropped by the worker, with its reason.
    Failed(String),
}

impl JobState {
    /// Its name, as lists show it: `pending`, `taken`, `done`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Taken => "taken",
            JobState::Done => "done",
            JobState::Failed(_) => "failed",
        }
    }

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
    /// Why what the thread last sent back (rebuilt files, an unsealed piece) was refused.
    pub refused: Option<String>,
    /// What the thread sent back was accepted; the job is done once it finishes it.
    #[serde(default)]
    pub accepted: bool,
    /// When a worker thread took it, in Unix seconds.
    #[serde(default)]
    pub taken_at: Option<u64>,
    /// A thread reported a state of the job since it was taken: a thread holds it.
    #[serde(default)]
    pub reported: bool,
    /// The failure the thread last reported (`"<level>: <message>"`; a thread paused on a
    /// permanent one holds the job until an operator acts), cleared by a report without one.
    #[serde(default)]
    pub failure: Option<String>,
}

/// How long a taken job may go without a report before it is offered again: the taking
/// thread reports as soon as it has saved the job, so silence this long means the answer
/// never reached a thread that kept it (a crash right after the call, a lost reply).
pub const UNREPORTED_LEASE_SECS: u64 = 60;

/// The job a worker thread holds for `id` (taken, not yet done or dropped).
pub(super) fn taken_job(jobs: &mut [ChainJob], id: SectorId) -> Option<&mut ChainJob> {
    jobs.iter_mut()
        .find(|j| j.sector == id && j.state == JobState::Taken)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl MockChain {
    /// Tells the chain where the store `name` is mounted, so that it can check the files
    /// a rebuild persists or an unseal delivers there.
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
    /// it has no job open.
    pub fn request_rebuild(&self, id: SectorId) -> Result<ChainJob, JobRefused> {
        self.open_job(id, JobKind::Rebuild)
    }

    /// Asks for deal piece `piece` of `id` to be unsealed and delivered to `dest` (none:
    /// the manager's piece store, `store:///<piece cid>`): a pending job an unseal thread
    /// takes. Refused as a rebuild is, and unless the piece is one the sector was sealed
    /// with (the pieces of an upgrade cannot be unsealed yet, nor by the original).
    pub fn request_unseal(
        &self,
        id: SectorId,
        piece: Cid,
        dest: Vec<String>,
    ) -> Result<ChainJob, JobRefused> {
        let sector = self.sector(id).ok_or(JobRefused::UnknownSector(id))?;
        // Deal pieces only: a zero piece the sector was assigned has nothing to recover.
        let sealed_with =
            |deals: &[SectorPiece]| deals.iter().any(|d| !d.is_pledge() && d.piece.cid == piece);
        if !sealed_with(&sector.deals) {
            let upgrade = sector.upgrade.as_ref().map(|u| u.deals.as_slice());
            if upgrade.is_some_and(sealed_with) {
                return Err(JobRefused::UpgradePiece {
                    id,
                    piece: piece.text,
                });
            }
            let cids: Vec<&str> = sector
                .deals
                .iter()
                .filter(|d| !d.is_pledge())
                .map(|d| d.piece.cid.text.as_str())
                .collect();
            return Err(JobRefused::NotAPiece {
                id,
                piece: piece.text,
                pieces: if cids.is_empty() {
                    "none, a CC sector".to_owned()
                } else {
                    cids.join(", ")
                },
            });
        }
        for url in &dest {
            crate::unseal::destination_of(url, &piece).map_err(|e| JobRefused::BadDestination {
                url: url.clone(),
                reason: e.message,
            })?;
        }
        let dest = if dest.is_empty() {
            vec![format!("store:///{}", piece.text)]
        } else {
            dest
        };
        self.open_job(id, JobKind::Unseal { piece, dest })
    }

    /// A pending job of `kind` for `id`, if the sector can have one.
    fn open_job(&self, id: SectorId, kind: JobKind) -> Result<ChainJob, JobRefused> {
        let mut state = self.lock();
        let sector = state
            .sectors
            .get(&id)
            .ok_or(JobRefused::UnknownSector(id))?;
        match &sector.state {
            ChainSectorState::Finished | ChainSectorState::Upgraded => {}
            other => {
                return Err(JobRefused::NotSealed {
                    id,
                    state: format!("{other:?}"),
                })
            }
        }
        if sector.pre_commit.is_none() || sector.persisted.is_none() {
            return Err(JobRefused::NotPersisted(id));
        }
        if let Some(open) = state
            .jobs
            .iter()
            .find(|j| j.sector == id && j.state.is_open())
        {
            return Err(JobRefused::JobOpen {
                id,
                kind: kind_name(&open.kind),
                job: open.id,
                state: open.state.name(),
            });
        }
        let job = ChainJob {
            id: state.jobs.last().map_or(1, |j| j.id + 1),
            sector: id,
            kind,
            state: JobState::Pending,
            created_at: unix_now(),
            finished_at: None,
            refused: None,
            failure: None,
            accepted: false,
            taken_at: None,
            reported: false,
        };
        state.jobs.push(job.clone());
        state.save();
        state
            .commit()
            .map_err(|e| JobRefused::NotSaved(e.message))?;
        Ok(job)
    }

    /// Whether a worker thread holds a job of `id`: its reports are then the job's, not
    /// the sector's (which stays finished on chain).
    pub(super) fn job_held(&self, id: SectorId) -> bool {
        taken_job(&mut self.lock().jobs, id).is_some()
    }

    /// Whether a worker thread holds a rebuild job of `id`.
    pub(super) fn rebuilding(&self, id: SectorId) -> bool {
        taken_job(&mut self.lock().jobs, id).is_some_and(|j| j.kind == JobKind::Rebuild)
    }

    /// A report of `id`'s state: if a thread holds a job of it, the job is marked
    /// reported (the thread keeps it) and `true` says so.
    pub(super) fn note_job_report(
        &self,
        id: SectorId,
        failure: Option<&ReportFailure>,
    ) -> Result<bool, ManagerError> {
        let mut state = self.lock();
        let Some(job) = taken_job(&mut state.jobs, id) else {
            return Ok(false);
        };
        let failure = failure.map(|f| format!("{}: {}", f.level, f.desc));
        if !job.reported || job.failure != failure {
            job.reported = true;
            job.failure = failure;
            state.save();
        }
        state.commit()?;
        Ok(true)
    }

    /// The thread finished its job: done if what it sent back was accepted, failed
    /// otherwise.
    pub(super) fn finish_job(&self, id: SectorId) -> Result<(), ManagerError> {
        let mut state = self.lock();
        if let Some(job) = taken_job(&mut state.jobs, id) {
            job.finished_at = Some(unix_now());
            job.state = if job.accepted {
                JobState::Done
            } else {
                JobState::Failed("finished without what it sent back accepted".into())
            };
            state.save();
        }
        state.commit()
    }

    /// Takes the oldest pending rebuild job, or one taken [`UNREPORTED_LEASE_SECS`] ago and
    /// never reported: what a rebuild thread needs.
    pub(super) fn take_rebuild_job(&self) -> Result<Option<SectorRebuildInfo>, ManagerError> {
        self.take_job(|job, sector| match job.kind {
            JobKind::Rebuild => rebuild_info(sector),
            _ => None,
        })
    }

    /// Takes the oldest pending unseal job (or one whose lease is over): what an unseal
    /// thread needs.
    pub(super) fn take_unseal_job(&self) -> Result<Option<SectorUnsealInfo>, ManagerError> {
        self.take_job(|job, sector| match &job.kind {
            JobKind::Unseal { piece, dest } => unseal_info(sector, piece, dest),
            _ => None,
        })
    }

    /// Takes the oldest job `info` makes something of: pending, or taken
    /// [`UNREPORTED_LEASE_SECS`] ago and never reported.
    fn take_job<T>(
        &self,
        info: impl Fn(&ChainJob, &ChainSector) -> Option<T>,
    ) -> Result<Option<T>, ManagerError> {
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
        let Some((job, info)) = jobs.iter_mut().filter(|j| offered(j)).find_map(|j| {
            let info = sectors.get(&j.sector).and_then(|s| info(j, s))?;
            Some((j, info))
        }) else {
            return Ok(None);
        };
        if job.state == JobState::Taken {
            tracing::warn!(
                "mock chain: job {} of {} was taken and never reported; offered again",
                job.id,
                job.sector
            );
        }
        job.state = JobState::Taken;
        job.taken_at = Some(now);
        state.save();
        state.commit()?;
        Ok(Some(info))
    }

    /// `AcquireUnsealDest`: where the taken unseal job of `piece` in `id` goes.
    pub(super) fn unseal_dest(
        &self,
        id: SectorId,
        piece: &Cid,
    ) -> Result<Vec<String>, ManagerError> {
        let mut state = self.lock();
        match taken_job(&mut state.jobs, id).map(|j| &j.kind) {
            Some(JobKind::Unseal { piece: p, dest }) if p == piece => Ok(dest.clone()),
            _ => Err(ManagerError::remote(
                1,
                format!("no unseal job of {} in {id} is taken", piece.text),
            )),
        }
    }

    /// A thread dropped its job.
    pub(super) fn fail_job(&self, id: SectorId, reason: String) -> Result<(), ManagerError> {
        let mut state = self.lock();
        if let Some(job) = taken_job(&mut state.jobs, id) {
            tracing::info!(
                "mock chain: {} job {} of {id} dropped: {reason}",
                kind_name(&job.kind),
                job.id
            );
            job.state = JobState::Failed(reason);
            job.finished_at = Some(unix_now());
            state.save();
        }
        state.commit()
    }
}

/// Why the mock refuses to open a rebuild or unseal job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobRefused {
    /// The chain has no such sector.
    #[error("{0} is not a sector of this chain")]
    UnknownSector(SectorId),
    /// The sector is not finished or upgraded.
    #[error("{id} is {state}: only a finished or upgraded sector has files to rebuild or unseal")]
    NotSealed {
        /// The sector.
        id: SectorId,
        /// Its state on the chain.
        state: String,
    },
    /// The sector's files were never persisted.
    #[error("{0} was never pre-committed and persisted")]
    NotPersisted(SectorId),
    /// A job for the sector is still open.
    #[error("{id} already has {kind} job {job} ({state}): one job per sector at a time")]
    JobOpen {
        /// The sector.
        id: SectorId,
        /// `rebuild` or `unseal`.
        kind: &'static str,
        /// The open job's id.
        job: u64,
        /// Its state.
        state: &'static str,
    },
    /// The job was decided, but the shared records lost it (another manager wrote
    /// meanwhile): nothing was created; ask again.
    #[error("the job was not saved: {0}")]
    NotSaved(String),
    /// The piece came with the sector's upgrade.
    #[error("{piece} was put into {id} by its upgrade: unsealing an upgraded sector's pieces is not supported")]
    UpgradePiece {
        /// The sector.
        id: SectorId,
        /// The piece CID.
        piece: String,
    },
    /// The sector was not sealed with the piece.
    #[error("{piece} is not a piece of {id} (its pieces: {pieces})")]
    NotAPiece {
        /// The sector.
        id: SectorId,
        /// The piece CID asked for.
        piece: String,
        /// The sector's pieces, comma-separated.
        pieces: String,
    },
    /// A destination the worker could not deliver to.
    #[error("{reason}")]
    BadDestination {
        /// The destination.
        url: String,
        /// Why (names the URL).
        reason: String,
    },
}

/// The name of a job's kind, as lists show it.
pub fn kind_name(kind: &JobKind) -> &'static str {
    match kind {
        JobKind::Rebuild => "rebuild",
        JobKind::Unseal { .. } => "unseal",
    }
}

/// What an unseal thread is given for `piece` of `sector`: `None` if the chain lacks what
/// finds it.
fn unseal_info(sector: &ChainSector, piece: &Cid, dest: &[String]) -> Option<SectorUnsealInfo> {
    let pre_commit = sector.pre_commit.as_ref()?;
    let offsets = damocles_core::piece::piece_offsets(sector.deals.iter().map(|d| d.piece.size));
    let (deal, padded_offset) = sector
        .deals
        .iter()
        .zip(offsets)
        .find(|(d, _)| d.piece.cid == *piece)?;
    Some(SectorUnsealInfo {
        sector: AllocatedSector {
            id: sector.id,
            proof_type: sector.proof_type,
        },
        piece_cid: piece.clone(),
        offset: padded_offset / 128 * 127,
        size: damocles_core::piece::unpadded_size(deal.piece.size)?,
        private_info: SectorPrivateInfo {
            access_instance: sector.persisted.clone()?,
        },
        ticket: pre_commit.ticket,
        comm_d: pre_commit.comm_d,
        dest: dest.to_vec(),
        // As the Go manager's allocation sets it.
        state: UnsealState::named(UnsealState::UNSEALING),
        error_info: String::new(),
    })
}

/// What a rebuild thread is given for `sector`: `None` if the chain lacks what re-creates
/// it.
fn rebuild_info(sector: &ChainSector) -> Option<SectorRebuildInfo> {
    let pre_commit = sector.pre_commit.as_ref()?;
    let ticket = pre_commit.ticket;
    let accepted = sector.upgrade.as_ref().filter(|u| u.accepted.is_some());
    let (pieces, upgrade_public) = match accepted {
        // The Go manager's `UpgradePublic`: the sector's public info as it was when the
        // snap-up was allocated, so the CC comm_r (modules/sealer/sealer.go).
        Some(upgrade) => (
            upgrade.deals.clone(),
            Some(SectorPublicInfo {
                comm_r: pre_commit.comm_r,
                sealed_cid: None,
                activation: 0,
                expiration: 0,
            }),
        ),
        None => (sector.deals.clone(), None),
    };
    let mut deals = pieces.iter().filter(|p| !p.is_pledge()).peekable();
    let legacy = upgrade_public.is_none()
        && deals.peek().is_some()
        && deals.all(|p| p.deal_info.is_builtin_market);
    Some(SectorRebuildInfo {
        sector: AllocatedSector {
            id: sector.id,
            proof_type: sector.proof_type,
        },
        ticket,
        // As the Go manager fills them (modules/sealer/sealer_cli.go): a sector sealed
        // with builtin-market deals gets the legacy `Pieces`, an upgraded one its snap-up
        // pieces as `PiecesV2`; a CC sector neither.
        legacy_pieces: legacy.then(|| pieces.clone()),
        pieces: (!legacy && !pieces.is_empty()).then_some(pieces),
        is_snap_up: upgrade_public.is_some(),
        upgrade_public,
    })
}
