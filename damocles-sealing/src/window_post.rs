//! WindowPoSt: proving that stored sectors are still there, as blocking calls into
//! `filecoin-proofs-api`'s `post` module (reference `next-wave-facts.md` §1).
//!
//! [`prove`] first checks every sector on its own (a vanilla proof of its challenged
//! leaves, read from its replica and its cache's tree): a sector that cannot be proven is
//! a **fault**, listed in the result, not a failed job. The checks run in parallel, each
//! on a thread of its own, within the [`CheckLimits`]: a sector that does not answer in
//! time (a file on a dead mount blocks its reader forever) is a fault too, and is not
//! checked again while its last check is still blocked, so that blocked threads never
//! pile up past one per sector. The SNARK then covers the other sectors, from the vanilla
//! proofs already made (their files are not read again), and is verified before it is
//! handed back. [`verify`] is the chain's check (the mock manager's).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use damocles_core::sealer_api::WindowPoStOutput;
use damocles_core::{ActorId, Failure, FailureLevel, Opaque, PoStProof, SectorNumber};
use filecoin_proofs_api::post;
use filecoin_proofs_api::{PrivateReplicaInfo, PublicReplicaInfo, SectorId as ApiSectorId};

pub use crate::options::CheckLimits;
use crate::proofs::tasks::{PoStReplicaInfo, WindowPoSt};
use crate::proofs::{proof_failure, prover_id, registered_post};

/// One sector to prove: its on-chain commitment and where its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvingSector {
    /// The sector number.
    pub number: SectorNumber,
    /// The replica commitment on chain (`comm_r_new` for an upgraded sector).
    pub comm_r: [u8; 32],
    /// The replica (`sealed/<sector>`, or `update/<sector>`).
    pub replica: PathBuf,
    /// Its cache directory (`cache/<sector>/`, or `update-cache/<sector>/`), holding
    /// `p_aux` and the last tree.
    pub cache: PathBuf,
}

/// What a WindowPoSt proves: whose sectors, of which proof type, for which challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoStChallenge {
    /// A WindowPoSt proof type.
    pub proof: PoStProof,
    /// The miner (its prover id is derived from it).
    pub miner: ActorId,
    /// The randomness, its top two bits cleared (`seed[31] &= 0x3f`).
    pub seed: [u8; 32],
}

/// A fault: a sector that could not be proven, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The sector number.
    pub number: SectorNumber,
    /// What the vanilla proof said (a missing file, a tree that does not match).
    pub reason: String,
}

/// A WindowPoSt over some sectors: the output the manager is sent, and why each fault is
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// The proofs over the sectors not faulty, and the faulty sectors' numbers.
    pub output: WindowPoStOutput,
    /// Why each sector in `output.faults` is one.
    pub faults: Vec<Fault>,
}

/// Proves `sectors` (in any order; the proof covers them by number) for `challenge`,
/// checking them within `limits`.
///
/// # Errors
/// A permanent failure when the proof type is not a WindowPoSt type, when challenges or
/// the SNARK cannot be generated (missing parameters), or when the SNARK does not verify.
/// A sector whose files are missing, do not match or do not answer in time is not an
/// error: it is a fault.
pub fn prove(
    challenge: PoStChallenge,
    sectors: &[ProvingSector],
    limits: &CheckLimits,
) -> Result<Proven, Failure> {
    let post_proof = window_type(challenge.proof)?;
    let prover = prover_id(challenge.miner);
    let (vanilla, faults) = checked(challenge, sectors, limits)?;
    let mut output = WindowPoStOutput {
        proofs: Vec::new(),
        faults: faults.iter().map(|f| f.number).collect(),
    };
    if vanilla.is_empty() {
        return Ok(Proven { output, faults });
    }
    let vanilla: Vec<_> = vanilla.into_values().collect();
    let snarks =
        post::generate_window_post_with_vanilla(post_proof, &challenge.seed, prover, &vanilla)
            .map_err(|e| proof_failure(FailureLevel::Permanent, "window PoSt", e))?;
    output.proofs = snarks.into_iter().map(|(_, proof)| Opaque(proof)).collect();
    let proven: Vec<(SectorNumber, [u8; 32])> = sectors
        .iter()
        .filter(|s| !output.faults.contains(&s.number))
        .map(|s| (s.number, s.comm_r))
        .collect();
    if !verify(challenge, &proven, &output)? {
        return Err(Failure::permanent(
            "window PoSt: the proof does not verify over the sectors it covers",
        ));
    }
    Ok(Proven { output, faults })
}

/// A round for a `window_post` processor: the checks of [`prove`] here, then the task
/// over the sectors that passed them (the processor reads their challenged leaves again
/// and makes the SNARK). `None` when every sector is faulty.
///
/// # Errors
/// As [`prove`]'s checks.
pub fn round_task(
    challenge: PoStChallenge,
    sectors: &[ProvingSector],
    limits: &CheckLimits,
) -> Result<(Option<WindowPoSt>, Vec<Fault>), Failure> {
    let proof_type = window_type(challenge.proof)?;
    let (_, faults) = checked(challenge, sectors, limits)?;
    let replicas: Vec<PoStReplicaInfo> = sectors
        .iter()
        .filter(|s| !faults.iter().any(|f| f.number == s.number))
        .map(|s| PoStReplicaInfo {
            sector_id: ApiSectorId::from(s.number),
            comm_r: s.comm_r,
            cache_dir: s.cache.clone(),
            sealed_file: s.replica.clone(),
        })
        .collect();
    let task = (!replicas.is_empty()).then_some(WindowPoSt {
        miner_id: challenge.miner,
        proof_type,
        replicas,
        seed: challenge.seed,
    });
    Ok((task, faults))
}

/// A `window_post` processor's answer, taken.
#[derive(Debug)]
pub enum Answered {
    /// The round is proven (or every sector is faulty).
    Proven(Proven),
    /// The processor named faults that the checks here had passed: the task without
    /// them, for the processor to try again.
    Again(WindowPoSt),
}

/// What a `window_post` processor answered for `task`, verified here over the sectors
/// it covers; `faults` (the checks' faults) gains those it names.
///
/// # Errors
/// A permanent failure when the proof does not verify.
pub fn processor_answer(
    challenge: PoStChallenge,
    mut task: WindowPoSt,
    faults: &mut Vec<Fault>,
    output: WindowPoStOutput,
) -> Result<Answered, Failure> {
    if !output.faults.is_empty() {
        task.replicas
            .retain(|r| !output.faults.contains(&u64::from(r.sector_id)));
        faults.extend(output.faults.iter().map(|&number| Fault {
            number,
            reason: "the window_post processor could not prove it".into(),
        }));
        return Ok(if task.replicas.is_empty() {
            Answered::Proven(all_faulty(std::mem::take(faults)))
        } else {
            Answered::Again(task)
        });
    }
    let proven: Vec<(SectorNumber, [u8; 32])> = task
        .replicas
        .iter()
        .map(|r| (u64::from(r.sector_id), r.comm_r))
        .collect();
    if !verify(challenge, &proven, &output)? {
        return Err(Failure::permanent(
            "window PoSt: the processor's proof does not verify over the sectors it covers",
        ));
    }
    let faults = std::mem::take(faults);
    Ok(Answered::Proven(Proven {
        output: WindowPoStOutput {
            proofs: output.proofs,
            faults: faults.iter().map(|f| f.number).collect(),
        },
        faults,
    }))
}

/// A round in which no sector can be proven: no proof, every sector a fault.
pub fn all_faulty(faults: Vec<Fault>) -> Proven {
    Proven {
        output: WindowPoStOutput {
            proofs: Vec::new(),
            faults: faults.iter().map(|f| f.number).collect(),
        },
        faults,
    }
}

/// Checks `sectors` as a round for `challenge` does (a vanilla proof of each sector's
/// challenged leaves, within `limits`), without the SNARK: the faults, by sector number,
/// each with why. What `util sealer proving check` runs. Needs no parameters.
///
/// # Errors
/// An abort for no sectors; a permanent failure when the proof type is not a WindowPoSt
/// type or the challenges cannot be drawn.
pub fn check(
    challenge: PoStChallenge,
    sectors: &[ProvingSector],
    limits: &CheckLimits,
) -> Result<Vec<Fault>, Failure> {
    Ok(checked(challenge, sectors, limits)?.1)
}

/// Checks that `sectors`' files are there without reading them (the fast check of `util
/// sealer proving check`): the replica a regular file of `sector_bytes`, the cache a
/// directory holding `p_aux`, `t_aux` and the last tree. Within `limits`, as a round's
/// checks (a `stat` on a dead mount blocks too): the faults, by sector number.
pub fn check_files(
    sectors: &[ProvingSector],
    sector_bytes: u64,
    limits: &CheckLimits,
) -> Vec<Fault> {
    let check_of = |sector: &ProvingSector| -> SectorCheck {
        let (replica, cache) = (sector.replica.clone(), sector.cache.clone());
        Box::new(move || files_present(&replica, &cache, sector_bytes).map(|()| Vec::new()))
    };
    check_sectors(sectors, check_of, limits).1
}

/// Whether `replica` and `cache` look like a sealed sector's files of `sector_bytes`.
fn files_present(
    replica: &std::path::Path,
    cache: &std::path::Path,
    sector_bytes: u64,
) -> Result<(), SectorFault> {
    let missing = |what: &str, e: std::io::Error| SectorFault::Files(format!("{what}: {e}"));
    let meta = std::fs::metadata(replica).map_err(|e| missing("the replica", e))?;
    if !meta.is_file() {
        return Err(SectorFault::Files(
            "the replica is not a regular file".into(),
        ));
    }
    if meta.len() != sector_bytes {
        return Err(SectorFault::Files(format!(
            "the replica holds {} bytes, not {sector_bytes}",
            meta.len()
        )));
    }
    for name in ["p_aux", "t_aux"] {
        let meta = std::fs::metadata(cache.join(name)).map_err(|e| missing(name, e))?;
        if !meta.is_file() || meta.len() == 0 {
            return Err(SectorFault::Files(format!(
                "{name} is not a file with content"
            )));
        }
    }
    let trees = std::fs::read_dir(cache).map_err(|e| missing("the cache", e))?;
    let has_tree = trees.flatten().any(|entry| {
        entry.file_name().to_string_lossy().contains("tree-r-last")
            && entry.metadata().is_ok_and(|m| m.is_file() && m.len() > 0)
    });
    if !has_tree {
        return Err(SectorFault::Files(
            "no tree-r-last file in the cache".into(),
        ));
    }
    Ok(())
}

/// The vanilla proofs of the sectors that passed their checks, by sector id, and the
/// faults of the others, by sector number.
type Checked = (BTreeMap<ApiSectorId, Vec<u8>>, Vec<Fault>);

/// The checks of a round for `challenge` over `sectors`.
fn checked(
    challenge: PoStChallenge,
    sectors: &[ProvingSector],
    limits: &CheckLimits,
) -> Result<Checked, Failure> {
    let post_proof = window_type(challenge.proof)?;
    let prover = prover_id(challenge.miner);
    let ids: Vec<ApiSectorId> = sectors
        .iter()
        .map(|s| ApiSectorId::from(s.number))
        .collect();
    if ids.is_empty() {
        return Err(Failure::abort("a WindowPoSt job without sectors"));
    }
    let challenges =
        post::generate_fallback_sector_challenges(post_proof, &challenge.seed, &ids, prover)
            .map_err(|e| proof_failure(FailureLevel::Permanent, "window PoSt challenges", e))?;
    let check_of = |sector: &ProvingSector| {
        let id = ApiSectorId::from(sector.number);
        vanilla_check(post_proof, sector, challenges.get(&id).cloned())
    };
    Ok(check_sectors(sectors, check_of, limits))
}

/// Checks of this process still running, by replica (those past their limit: blocked): a sector here
/// is a fault without a new check until its check returns.
static BLOCKED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn blocked() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    BLOCKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The vanilla proofs of the sectors that answered in time, by sector id, and a fault
/// for each of the others (by sector number): `check_of` each, at most `limits.parallel`
/// at once, each given `limits.sector`, all of them `limits.partition`.
fn check_sectors(
    sectors: &[ProvingSector],
    check_of: impl Fn(&ProvingSector) -> SectorCheck,
    limits: &CheckLimits,
) -> Checked {
    let started = Instant::now();
    let (sent, answers) = mpsc::channel();
    let mut waiting = sectors.iter();
    let mut running: BTreeMap<SectorNumber, (Instant, &ProvingSector)> = BTreeMap::new();
    let mut vanilla = BTreeMap::new();
    let mut faults = Vec::new();
    loop {
        while running.len() < limits.parallel.max(1) {
            let Some(sector) = waiting.next() else { break };
            if !blocked().insert(sector.replica.clone()) {
                faults.push(fault_of(sector, SectorFault::StillBlocked.to_string()));
                continue;
            }
            let spawned = spawn_check(sector, check_of(sector), &sent);
            match spawned {
                Ok(_) => {
                    running.insert(sector.number, (Instant::now() + limits.sector, sector));
                }
                Err(e) => {
                    blocked().remove(&sector.replica);
                    faults.push(fault_of(sector, format!("cannot start its check: {e}")));
                }
            }
        }
        let Some(next) = running.values().map(|(at, _)| *at).min() else {
            break;
        };
        let partition_ends = started + limits.partition;
        let wait = next
            .min(partition_ends)
            .saturating_duration_since(Instant::now());
        match answers.recv_timeout(wait) {
            Ok((id, result)) => {
                let Some((_, sector)) = running.remove(&u64::from(id)) else {
                    continue; // already counted as timed out
                };
                match result {
                    Ok(proof) => {
                        vanilla.insert(id, proof);
                    }
                    Err(reason) => faults.push(fault_of(sector, reason.to_string())),
                }
            }
            Err(_) => {
                let now = Instant::now();
                let over = now >= partition_ends;
                let late: Vec<SectorNumber> = running
                    .iter()
                    .filter(|(_, (at, _))| over || *at <= now)
                    .map(|(n, _)| *n)
                    .collect();
                for number in late {
                    let (_, sector) = running.remove(&number).expect("running");
                    let why = match over {
                        true => SectorFault::PartitionTimedOut(limits.partition),
                        false => SectorFault::TimedOut(limits.sector),
                    };
                    faults.push(fault_of(sector, why.to_string()));
                }
                if over {
                    for sector in waiting.by_ref() {
                        let why = SectorFault::PartitionTimedOut(limits.partition);
                        faults.push(fault_of(sector, format!("not checked: {why}")));
                    }
                }
            }
        }
    }
    faults.sort_by_key(|f| f.number);
    (vanilla, faults)
}

/// A fault of `sector`, its reason followed by where its files are.
fn fault_of(sector: &ProvingSector, reason: String) -> Fault {
    Fault {
        number: sector.number,
        reason: format!(
            "{reason} (replica {}, cache {})",
            sector.replica.display(),
            sector.cache.display()
        ),
    }
}

/// One sector's check, run on a thread of its own: its vanilla proof (empty for a check
/// that makes none), or why the sector is a fault.
type SectorCheck = Box<dyn FnOnce() -> Result<Vec<u8>, SectorFault> + Send>;

/// The check of a round: the vanilla proof of `sector`'s challenged leaves.
fn vanilla_check(
    post_proof: filecoin_proofs_api::RegisteredPoStProof,
    sector: &ProvingSector,
    challenged: Option<Vec<u64>>,
) -> SectorCheck {
    let id = ApiSectorId::from(sector.number);
    let replica = PrivateReplicaInfo::new(
        post_proof,
        sector.comm_r,
        sector.cache.clone(),
        sector.replica.clone(),
    );
    Box::new(move || vanilla_proof(post_proof, id, &replica, challenged))
}

/// Starts `check` of `sector` on a thread of its own, which sends its sector id and
/// result on `sent` and takes its replica out of [`BLOCKED`] when it returns.
fn spawn_check(
    sector: &ProvingSector,
    check: SectorCheck,
    sent: &mpsc::Sender<(ApiSectorId, Result<Vec<u8>, SectorFault>)>,
) -> std::io::Result<()> {
    let id = ApiSectorId::from(sector.number);
    let (sent, key) = (sent.clone(), sector.replica.clone());
    std::thread::Builder::new()
        .name("wdpost-check".into())
        .spawn(move || {
            let result = check();
            blocked().remove(&key);
            let _ = sent.send((id, result));
        })
        .map(drop)
}

/// Whether `output` proves `sectors` (number and comm_r, the ones not listed as faults)
/// for `challenge`: `verify_window_post` over them, as the chain checks it. An output
/// with no proof verifies only when there is no sector to prove.
///
/// # Errors
/// A permanent failure when the proof type is not a WindowPoSt type, or the verifier
/// cannot run (a missing verifying key) or refuses the proof (one of the wrong length).
pub fn verify(
    challenge: PoStChallenge,
    sectors: &[(SectorNumber, [u8; 32])],
    output: &WindowPoStOutput,
) -> Result<bool, Failure> {
    let post_proof = window_type(challenge.proof)?;
    if sectors.is_empty() || output.proofs.is_empty() {
        return Ok(sectors.is_empty() && output.proofs.is_empty());
    }
    if output.proofs.len() != 1 {
        return Ok(false);
    }
    let replicas: BTreeMap<ApiSectorId, PublicReplicaInfo> = sectors
        .iter()
        .map(|(number, comm_r)| {
            (
                ApiSectorId::from(*number),
                PublicReplicaInfo::new(post_proof, *comm_r),
            )
        })
        .collect();
    let proof = output.proofs[0].0.as_slice();
    post::verify_window_post(
        &challenge.seed,
        &[(post_proof, proof)],
        &replicas,
        prover_id(challenge.miner),
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "verify window PoSt", e))
}

fn window_type(proof: PoStProof) -> Result<filecoin_proofs_api::RegisteredPoStProof, Failure> {
    if proof.is_window() {
        Ok(registered_post(proof))
    } else {
        Err(Failure::abort(format!(
            "{proof} is not a WindowPoSt proof type"
        )))
    }
}

/// Why one sector cannot be proven (a fault).
#[derive(Debug, thiserror::Error)]
enum SectorFault {
    /// The challenges name no such sector.
    #[error("no challenge for sector {0}")]
    NotChallenged(u64),
    /// The proof library's error.
    #[error("{0:#}")]
    Proof(anyhow::Error),
    /// The proof library panicked.
    #[error("the proof library panicked reading the sector's files (a tree that does not match its replica?): {0}")]
    Panicked(String),
    /// The check did not answer in time.
    #[error("no answer within {} (its files blocked, a dead mount?)", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The partition's checks ran out of time.
    #[error("the partition's checks took over {}", humantime::format_duration(*.0))]
    PartitionTimedOut(Duration),
    /// A file of the sector is missing or not what it should be (the fast check).
    #[error("{0}")]
    Files(String),
    /// An earlier check of the sector is still blocked.
    #[error("an earlier check of this sector is still blocked reading its files; not checked again until it returns")]
    StillBlocked,
}

/// The vanilla proof of one sector: `Err` with why it cannot be proven. A panic in the
/// proof library (a truncated tree it maps) is a fault too.
fn vanilla_proof(
    post_proof: filecoin_proofs_api::RegisteredPoStProof,
    id: ApiSectorId,
    replica: &PrivateReplicaInfo,
    challenged: Option<Vec<u64>>,
) -> Result<Vec<u8>, SectorFault> {
    let challenged = challenged.ok_or_else(|| SectorFault::NotChallenged(u64::from(id)))?;
    match crate::panics::contain(|| {
        post::generate_single_vanilla_proof(post_proof, id, replica, &challenged)
    }) {
        Ok(Ok(proof)) => Ok(proof),
        Ok(Err(e)) => Err(SectorFault::Proof(e)),
        Err(panic) => Err(SectorFault::Panicked(panic.message)),
    }
}
