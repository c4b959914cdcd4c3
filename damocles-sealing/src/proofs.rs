//! The proof backend: every sealing step as a blocking call into `filecoin-proofs-api`,
//! with each error classified into a failure level right where it is called.
//!
//! These functions block for as long as the proof takes (C2 of a 2KiB sector: about a
//! minute on 2 cores). The runtime calls them on blocking threads, never on the async
//! executor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use damocles_core::{
    ActorId, AddedPiece, Failure, FailureLevel, Opaque, PreCommitOutput, SealProof, SectorId,
};
use filecoin_proofs_api::seal::{
    self, SealCommitPhase1Output, SealPreCommitPhase1Output, SealPreCommitPhase2Output,
};
use filecoin_proofs_api::{
    PieceInfo, RegisteredSealProof, SectorId as ApiSectorId, UnpaddedBytesAmount,
};

use crate::paths::SectorPaths;

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
fn proof_failure(level: FailureLevel, step: &str, error: impl std::fmt::Display) -> Failure {
    // `{:#}` prints anyhow's whole cause chain on one line.
    Failure::new(level, format!("{error:#}")).context(step)
}

/// A local file-system error: the machine, not the proof, is at fault.
fn io_failure(what: &str, path: &Path, error: io::Error) -> Failure {
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

fn piece_infos(pieces: &[AddedPiece]) -> Vec<PieceInfo> {
    pieces
        .iter()
        .map(|p| PieceInfo {
            commitment: p.commitment,
            size: UnpaddedBytesAmount(p.size),
        })
        .collect()
}

fn create_parent(path: &Path) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_failure("create", parent, e))?;
    }
    Ok(())
}

/// AddPieces for a CC sector: writes one zero piece filling the whole sector into the
/// staged file (truncated first, so the step is safe to re-run).
pub fn add_cc_piece(proof: SealProof, paths: &SectorPaths) -> Result<Vec<AddedPiece>, Failure> {
    create_parent(&paths.staged)?;
    let staged = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&paths.staged)
        .map_err(|e| io_failure("open staged file", &paths.staged, e))?;
    let padded = proof.sector_size().bytes();
    let unpadded = padded - padded / 128;
    let zeros = io::repeat(0).take(unpadded);
    let (info, _written) = seal::write_and_preprocess(
        registered(proof),
        zeros,
        staged,
        UnpaddedBytesAmount(unpadded),
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "add piece", e))?;
    Ok(vec![AddedPiece {
        commitment: info.commitment,
        size: info.size.0,
    }])
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
    if paths.cache_dir.exists() {
        fs::remove_dir_all(&paths.cache_dir)
            .map_err(|e| io_failure("clear cache dir", &paths.cache_dir, e))?;
    }
    fs::create_dir_all(&paths.cache_dir)
        .map_err(|e| io_failure("create cache dir", &paths.cache_dir, e))?;
    create_parent(&paths.sealed)?;
    File::create(&paths.sealed).map_err(|e| io_failure("create sealed file", &paths.sealed, e))?;
    let out = seal::seal_pre_commit_phase1(
        registered(id.proof),
        &paths.cache_dir,
        &paths.staged,
        &paths.sealed,
        id.prover_id(),
        id.sector_id(),
        ticket,
        &piece_infos(pieces),
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "pc1", e))?;
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
    let out: SealPreCommitPhase1Output = decode("pc2", pc1_output)?;
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
    let SealPreCommitPhase2Output { comm_r, comm_d, .. } =
        seal::seal_pre_commit_phase2(out, &paths.cache_dir, &paths.sealed)
            .map_err(|e| proof_failure(FailureLevel::Permanent, "pc2", e))?;
    Ok(PreCommitOutput { comm_r, comm_d })
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

/// C2: the SNARK. On the GPU when built with `cuda`/`opencl` and one is present. A
/// missing parameter file fails with the upstream text ("No cached parameters found
/// for …").
pub fn c2(id: SealIdentity, c1_output: &Opaque) -> Result<Vec<u8>, Failure> {
    let out: SealCommitPhase1Output = decode("c2", c1_output)?;
    seal::seal_commit_phase2(out, id.prover_id(), id.sector_id())
        .map(|out| out.proof)
        .map_err(|e| proof_failure(FailureLevel::Permanent, "c2", e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prover_id_is_the_leb128_of_the_actor_id() {
        let id = prover_id(10000);
        assert_eq!(&id[..3], &[0x90, 0x4e, 0x00]);
        assert!(id[2..].iter().all(|b| *b == 0));
        assert_eq!(prover_id(0), [0; 32]);
        assert_eq!(prover_id(127)[..2], [0x7f, 0]);
        assert_eq!(prover_id(128)[..3], [0x80, 0x01, 0]);
        assert_eq!(
            prover_id(u64::MAX)[..11],
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0]
        );
    }

    #[test]
    fn proof_types_map_one_to_one() {
        for proof in SealProof::ALL {
            let upstream = registered(proof);
            assert_eq!(
                u64::from(upstream.sector_size()),
                proof.sector_size().bytes()
            );
        }
    }

    #[test]
    fn cc_sector_steps_run_for_real() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = SealIdentity {
            proof: SealProof::StackedDrg2KiBV1_1,
            sector: SectorId::new(1000, 1),
        };
        let paths = SectorPaths::new(dir.path(), id.sector);
        let pieces = add_cc_piece(id.proof, &paths).expect("add piece");
        assert_eq!(pieces.len(), 1);
        assert_eq!(fs::metadata(&paths.staged).expect("staged").len(), 2048);
        let comm_d = tree_d(id.proof, &pieces).expect("tree d");
        let pc1_out = pc1(id, &paths, [3; 32], &pieces).expect("pc1");
        assert!(paths.unencoded_marker().exists(), "PC1 marks the copy");
        let commitments = pc2(&pc1_out, &paths).expect("pc2");
        assert_eq!(commitments.comm_d, comm_d);
        assert!(
            !paths.unencoded_marker().exists(),
            "PC2 takes the mark away"
        );
        // PC2 again over the encoded file, as after a crash mid-PC2 or a resume at
        // PC1Done: the file is restored first, so the same commitments.
        assert_eq!(pc2(&pc1_out, &paths).expect("pc2 again"), commitments);
        let c1_out = c1(id, &paths, [3; 32], [4; 32], commitments, &pieces).expect("c1");
        assert!(!c1_out.0.is_empty());
    }
}
