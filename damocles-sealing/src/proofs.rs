//! The proof backend: every sealing step as a blocking call into `filecoin-proofs-api`,
//! with each error classified into a failure level right where it is called.
//!
//! These functions block for as long as the proof takes (C2 of a 2KiB sector: about a
//! minute on 2 cores). The runtime calls them on blocking threads, never on the async
//! executor.

mod pieces;
pub mod tasks;

#[cfg(test)]
use pieces::pledge_sizes;

pub use pieces::{
    add_pieces, add_pieces_done, add_pieces_task, piece_cid_of, pledge_piece_cid, read_unsealed,
    sector_comm_d, PiecePayload, PieceToWrite,
};

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use damocles_core::piece;
use damocles_core::sealer_api::Cid;
use damocles_core::{
    ActorId, AddedPiece, Failure, FailureLevel, Opaque, PoStProof, PreCommitOutput, SealProof,
    SectorId, UpdateProof,
};
use filecoin_proofs_api::seal::{self, SealPreCommitPhase1Output, SealPreCommitPhase2Output};
use filecoin_proofs_api::{
    PieceInfo, RegisteredPoStProof, RegisteredSealProof, RegisteredUpdateProof,
    SectorId as ApiSectorId, UnpaddedBytesAmount,
};

use crate::paths::SectorPaths;
use tasks::{AddPieces, Piece, PieceFile, ProcessorTask};

/// The prover id of a miner, as Filecoin derives it: the actor id's unsigned LEB128
/// bytes (its id-address payload), zero-padded to 32 bytes.
pub fn prover_id(miner: ActorId) -> [u8; 32] {
    let mut id = [0u8; 32];
    let mut value = miner;
    let mut i = 0;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            id[i] = byte;
            break;
        }
        id[i] = byte | 0x80;
        i += 1;
    }
    id
}

/// The upstream update proof type of ours (same order as go-state-types' abi).
pub fn registered_update(proof: UpdateProof) -> RegisteredUpdateProof {
    use RegisteredUpdateProof as R;
    const ALL: [RegisteredUpdateProof; 5] = [
        R::StackedDrg2KiBV1,
        R::StackedDrg8MiBV1,
        R::StackedDrg512MiBV1,
        R::StackedDrg32GiBV1,
        R::StackedDrg64GiBV1,
    ];
    ALL[proof as usize]
}

/// The upstream PoSt proof type of ours (the same order as filecoin-proofs-api's enum).
pub fn registered_post(proof: PoStProof) -> RegisteredPoStProof {
    use RegisteredPoStProof as R;
    const ALL: [RegisteredPoStProof; 15] = [
        R::StackedDrgWinning2KiBV1,
        R::StackedDrgWinning8MiBV1,
        R::StackedDrgWinning512MiBV1,
        R::StackedDrgWinning32GiBV1,
        R::StackedDrgWinning64GiBV1,
        R::StackedDrgWindow2KiBV1,
        R::StackedDrgWindow8MiBV1,
        R::StackedDrgWindow512MiBV1,
        R::StackedDrgWindow32GiBV1,
        R::StackedDrgWindow64GiBV1,
        R::StackedDrgWindow2KiBV1_2,
        R::StackedDrgWindow8MiBV1_2,
        R::StackedDrgWindow512MiBV1_2,
        R::StackedDrgWindow32GiBV1_2,
        R::StackedDrgWindow64GiBV1_2,
    ];
    ALL[proof as usize]
}

/// The upstream proof type of ours (both follow the `RegisteredSealProof` numbering).
pub fn registered(proof: SealProof) -> RegisteredSealProof {
    use RegisteredSealProof as R;
    const ALL: [RegisteredSealProof; 20] = [
        R::StackedDrg2KiBV1,
        R::StackedDrg8MiBV1,
        R::StackedDrg512MiBV1,
        R::StackedDrg32GiBV1,
        R::StackedDrg64GiBV1,
        R::StackedDrg2KiBV1_1,
        R::StackedDrg8MiBV1_1,
        R::StackedDrg512MiBV1_1,
        R::StackedDrg32GiBV1_1,
        R::StackedDrg64GiBV1_1,
        R::StackedDrg2KiBV1_1_Feat_SyntheticPoRep,
        R::StackedDrg8MiBV1_1_Feat_SyntheticPoRep,
        R::StackedDrg512MiBV1_1_Feat_SyntheticPoRep,
        R::StackedDrg32GiBV1_1_Feat_SyntheticPoRep,
        R::StackedDrg64GiBV1_1_Feat_SyntheticPoRep,
        R::StackedDrg2KiBV1_2_Feat_NonInteractivePoRep,
        R::StackedDrg8MiBV1_2_Feat_NonInteractivePoRep,
        R::StackedDrg512MiBV1_2_Feat_NonInteractivePoRep,
        R::StackedDrg32GiBV1_2_Feat_NonInteractivePoRep,
        R::StackedDrg64GiBV1_2_Feat_NonInteractivePoRep,
    ];
    ALL[proof as usize]
}

/// A proof-library error (anyhow, with its causes) as a failure of `level`.
pub(crate) fn proof_failure(
    level: FailureLevel,
    step: &str,
    error: impl std::fmt::Display,
) -> Failure {
    // `{:#}` prints anyhow's whole cause chain on one line.
    Failure::new(level, format!("{error:#}")).context(step)
}

/// A local file-system error: the machine, not the proof, is at fault.
pub(crate) fn io_failure(what: &str, path: &Path, error: io::Error) -> Failure {
    Failure::critical(format!("{what} {}: {error}", path.display()))
}

fn encode<T: serde::Serialize>(step: &str, value: &T) -> Result<Opaque, Failure> {
    bincode::serialize(value)
        .map(Opaque)
        .map_err(|e| Failure::critical(format!("{step}: encode output: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(step: &str, bytes: &Opaque) -> Result<T, Failure> {
    bincode::deserialize(&bytes.0).map_err(|e| {
        Failure::abort(format!(
            "{step}: the persisted output of the previous step is unreadable: {e}"
        ))
    })
}

pub(crate) fn piece_infos(pieces: &[AddedPiece]) -> Vec<PieceInfo> {
    pieces
        .iter()
        .map(|p| PieceInfo {
            commitment: p.commitment,
            size: UnpaddedBytesAmount(p.size),
        })
        .collect()
}

pub(crate) fn create_parent(path: &Path) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_failure("create", parent, e))?;
    }
    Ok(())
}

/// TreeD: the data commitment of the pieces (the tree itself is built by PC1).
pub fn tree_d(proof: SealProof, pieces: &[AddedPiece]) -> Result<[u8; 32], Failure> {
    seal::compute_comm_d(registered(proof), &piece_infos(pieces))
        .map_err(|e| proof_failure(FailureLevel::Permanent, "tree d", e))
}

/// The identity of a sector as the proofs need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealIdentity {
    /// The proof type.
    pub proof: SealProof,
    /// The sector.
    pub sector: SectorId,
}

impl SealIdentity {
    fn prover_id(&self) -> [u8; 32] {
        prover_id(self.sector.miner)
    }

    fn sector_id(&self) -> ApiSectorId {
        ApiSectorId::from(self.sector.number)
    }
}

/// PC1: wipes and recreates the cache directory, creates an empty sealed file, then runs
/// `seal_pre_commit_phase1` (labels and tree D in the cache; the sealed file becomes a
/// copy of the staged one), and marks the sealed file as unencoded. Safe to re-run.
pub fn pc1(
    id: SealIdentity,
    paths: &SectorPaths,
    ticket: [u8; 32],
    pieces: &[AddedPiece],
) -> Result<Opaque, Failure> {
    pc1_done(paths, pc1_task(id, paths, ticket, pieces)?.execute()?)
}

/// PC1's preparation (the cache directory wiped and recreated, an empty sealed file) and
/// its task.
pub fn pc1_task(
    id: SealIdentity,
    paths: &SectorPaths,
    ticket: [u8; 32],
    pieces: &[AddedPiece],
) -> Result<tasks::PC1, Failure> {
    if paths.cache_dir.exists() {
        fs::remove_dir_all(&paths.cache_dir)
            .map_err(|e| io_failure("clear cache dir", &paths.cache_dir, e))?;
    }
    fs::create_dir_all(&paths.cache_dir)
        .map_err(|e| io_failure("create cache dir", &paths.cache_dir, e))?;
    create_parent(&paths.sealed)?;
    File::create(&paths.sealed).map_err(|e| io_failure("create sealed file", &paths.sealed, e))?;
    Ok(tasks::PC1 {
        registered_proof: registered(id.proof),
        cache_path: paths.cache_dir.clone(),
        in_path: paths.staged.clone(),
        out_path: paths.sealed.clone(),
        prover_id: id.prover_id(),
        sector_id: id.sector_id(),
        ticket,
        piece_infos: piece_infos(pieces),
    })
}

/// After PC1's task: its output as persisted, and the sealed file marked unencoded.
pub fn pc1_done(paths: &SectorPaths, out: SealPreCommitPhase1Output) -> Result<Opaque, Failure> {
    let encoded = encode("pc1", &out)?;
    let marker = paths.unencoded_marker();
    File::create(&marker).map_err(|e| io_failure("create", &marker, e))?;
    Ok(encoded)
}

/// PC2: encodes the replica in place and builds tree C and tree R. Unless PC1's marker
/// says the sealed file is still the unencoded copy, the file is restored from the staged
/// copy first (after a crash mid-PC2, or a resume at `PC1Done` once PC2 had run), so the
/// same inputs always give the same comm_r. Safe to re-run.
pub fn pc2(pc1_output: &Opaque, paths: &SectorPaths) -> Result<PreCommitOutput, Failure> {
    Ok(pc2_done(pc2_task(pc1_output, paths)?.execute()?))
}

/// PC2's preparation (the replica restored where needed, the outputs of an interrupted
/// run removed) and its task.
pub fn pc2_task(pc1_output: &Opaque, paths: &SectorPaths) -> Result<tasks::PC2, Failure> {
    let pc1out: SealPreCommitPhase1Output = decode("pc2", pc1_output)?;
    let marker = paths.unencoded_marker();
    if marker.exists() {
        // From here on the file is being encoded: a run that stops halfway restores it.
        fs::remove_file(&marker).map_err(|e| io_failure("remove", &marker, e))?;
    } else {
        fs::copy(&paths.staged, &paths.sealed)
            .map_err(|e| io_failure("restore sealed file from", &paths.staged, e))?;
    }
    // Outputs of an interrupted run are rebuilt from scratch.
    remove_matching(&paths.cache_dir, |name| {
        name == "p_aux"
            || name == "t_aux"
            || name.contains("tree-c")
            || name.contains("tree-r-last")
    })?;
    Ok(tasks::PC2 {
        pc1out,
        cache_dir: paths.cache_dir.clone(),
        sealed_file: paths.sealed.clone(),
    })
}

/// PC2's commitments.
pub fn pc2_done(out: SealPreCommitPhase2Output) -> PreCommitOutput {
    PreCommitOutput {
        comm_r: out.comm_r,
        comm_d: out.comm_d,
    }
}

fn remove_matching(dir: &Path, matches: impl Fn(&str) -> bool) -> Result<(), Failure> {
    let entries = fs::read_dir(dir).map_err(|e| io_failure("read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_failure("read", dir, e))?;
        if entry.file_name().to_str().is_some_and(&matches) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| io_failure("remove", &path, e))?;
        }
    }
    Ok(())
}

/// C1: the vanilla proofs for the seed's challenges.
pub fn c1(
    id: SealIdentity,
    paths: &SectorPaths,
    ticket: [u8; 32],
    seed: [u8; 32],
    commitments: PreCommitOutput,
    pieces: &[AddedPiece],
) -> Result<Opaque, Failure> {
    let pre_commit = SealPreCommitPhase2Output {
        registered_proof: registered(id.proof),
        comm_r: commitments.comm_r,
        comm_d: commitments.comm_d,
    };
    let out = seal::seal_commit_phase1(
        &paths.cache_dir,
        &paths.sealed,
        id.prover_id(),
        id.sector_id(),
        ticket,
        seed,
        pre_commit,
        &piece_infos(pieces),
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "c1", e))?;
    encode("c1", &out)
}

/// The check `[sealing] verify_after_pc2` asks for, as the original makes it: C1 with a
/// zero seed over the replica PC2 just made. Its vanilla proofs are verified against
/// `commitments`, so a replica or trees that do not give this comm_r fail here, before the
/// pre-commit, as a permanent failure.
pub fn verify_after_pc2(
    id: SealIdentity,
    paths: &SectorPaths,
    ticket: [u8; 32],
    commitments: PreCommitOutput,
    pieces: &[AddedPiece],
) -> Result<(), Failure> {
    c1(id, paths, ticket, [0; 32], commitments, pieces)
        .map(drop)
        .map_err(|e| e.context("verify after pc2"))
}

/// C2: the SNARK. On the GPU when built with `cuda`/`opencl` and one is present. A
/// missing parameter file fails with the upstream text ("No cached parameters found
/// for …").
pub fn c2(id: SealIdentity, c1_output: &Opaque) -> Result<Vec<u8>, Failure> {
    Ok(c2_task(id, c1_output)?.execute()?.proof)
}

/// C2's task: C1's persisted output, decoded.
pub fn c2_task(id: SealIdentity, c1_output: &Opaque) -> Result<tasks::C2, Failure> {
    Ok(tasks::C2 {
        c1out: decode("c2", c1_output)?,
        prover_id: id.prover_id(),
        sector_id: id.sector_id(),
        miner_id: id.sector.miner,
    })
}

/// What anyone needs to verify a sector's proof independently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSector {
    /// The sector and its proof type.
    pub id: SealIdentity,
    /// The ticket.
    pub ticket: [u8; 32],
    /// The seed.
    pub seed: [u8; 32],
    /// The commitments.
    pub commitments: PreCommitOutput,
    /// The proof.
    pub proof: Vec<u8>,
}

/// Verifies a seal proof. `Ok(false)` is an invalid proof; `Err` means it could not be
/// checked (e.g. the verifying key is missing).
pub fn verify(sealed: &SealedSector) -> Result<bool, Failure> {
    seal::verify_seal(
        registered(sealed.id.proof),
        sealed.commitments.comm_r,
        sealed.commitments.comm_d,
        sealed.id.prover_id(),
        sealed.id.sector_id(),
        sealed.ticket,
        sealed.seed,
        &sealed.proof,
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "verify seal", e))
}

/// Drops the cache files a finished sector no longer needs.
pub fn clear_cache(paths: &SectorPaths) -> Result<(), Failure> {
    seal::clear_cache(&paths.cache_dir)
        .map_err(|e| proof_failure(FailureLevel::Temporary, "clear cache", e))
}

/// A cache's `p_aux` that cannot be read or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct PAuxError {
    /// The file.
    pub path: std::path::PathBuf,
    /// The I/O or decoding error.
    pub reason: String,
}

/// The replica commitment a cache directory's `p_aux` gives: `comm_r = H(comm_c,
/// comm_r_last)` (Poseidon), as PC2 and snap encode compute it. A verifier that can read a
/// store checks persisted files against the chain's comm_r with it (the rebuild check of
/// the mock chain).
///
/// # Errors
/// [`PAuxError`], naming the file, when `p_aux` cannot be read or decoded.
pub fn comm_r_of_cache(cache_dir: &Path) -> Result<[u8; 32], PAuxError> {
    use filecoin_hashers::poseidon::{PoseidonDomain, PoseidonFunction};
    use filecoin_hashers::HashFunction;
    use storage_proofs_porep::stacked::PersistentAux;

    let path = cache_dir.join("p_aux");
    let bytes = fs::read(&path).map_err(|e| PAuxError {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let p_aux: PersistentAux<PoseidonDomain> =
        bincode::deserialize(&bytes).map_err(|e| PAuxError {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let comm_r = PoseidonFunction::hash2(&p_aux.comm_c, &p_aux.comm_r_last);
    Ok(comm_r.into())
}

#[cfg(test)]
mod tests;
