//! WindowPoSt: proving that stored sectors are still there, as blocking calls into
//! `filecoin-proofs-api`'s `post` module (reference `next-wave-facts.md` §1).
//!
//! [`prove`] first checks every sector on its own (a vanilla proof of its challenged
//! leaves, read from its replica and its cache's tree): a sector that cannot be proven is
//! a **fault**, listed in the result, not a failed job. The SNARK then covers the other
//! sectors, and is verified before it is handed back. [`verify`] is the chain's check (the
//! mock manager's).

use std::collections::BTreeMap;
use std::path::PathBuf;

use damocles_core::sealer_api::WindowPoStOutput;
use damocles_core::{ActorId, Failure, FailureLevel, Opaque, PoStProof, SectorNumber};
use filecoin_proofs_api::post;
use filecoin_proofs_api::{PrivateReplicaInfo, PublicReplicaInfo, SectorId as ApiSectorId};

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

/// Proves `sectors` (in any order; the proof covers them by number) for `challenge`.
///
/// # Errors
/// A permanent failure when the proof type is not a WindowPoSt type, when challenges or
/// the SNARK cannot be generated (missing parameters), or when the SNARK does not verify.
/// A sector whose files are missing or do not match is not an error: it is a fault.
pub fn prove(challenge: PoStChallenge, sectors: &[ProvingSector]) -> Result<Proven, Failure> {
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
    let mut faults = Vec::new();
    let mut replicas = BTreeMap::new();
    for sector in sectors {
        let id = ApiSectorId::from(sector.number);
        let replica = PrivateReplicaInfo::new(
            post_proof,
            sector.comm_r,
            sector.cache.clone(),
            sector.replica.clone(),
        );
        match vanilla_proof(post_proof, id, &replica, &challenges) {
            Ok(()) => {
                replicas.insert(id, replica);
            }
            Err(reason) => faults.push(Fault {
                number: sector.number,
                reason: format!(
                    "{reason} (replica {}, cache {})",
                    sector.replica.display(),
                    sector.cache.display()
                ),
            }),
        }
    }
    faults.sort_by_key(|f| f.number);
    let mut output = WindowPoStOutput {
        proofs: Vec::new(),
        faults: faults.iter().map(|f| f.number).collect(),
    };
    if replicas.is_empty() {
        return Ok(Proven { output, faults });
    }
    let snarks = post::generate_window_post(&challenge.seed, &replicas, prover)
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
}

/// The vanilla proof of one sector: `Err` with why it cannot be proven. A panic in the
/// proof library (a truncated tree it maps) is a fault too.
fn vanilla_proof(
    post_proof: filecoin_proofs_api::RegisteredPoStProof,
    id: ApiSectorId,
    replica: &PrivateReplicaInfo,
    challenges: &BTreeMap<ApiSectorId, Vec<u64>>,
) -> Result<(), SectorFault> {
    let challenged = challenges
        .get(&id)
        .ok_or_else(|| SectorFault::NotChallenged(u64::from(id)))?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        post::generate_single_vanilla_proof(post_proof, id, replica, challenged)
    }));
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(SectorFault::Proof(e)),
        Err(panic) => Err(SectorFault::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|m| (*m).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        )),
    }
}
