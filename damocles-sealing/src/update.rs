//! The snap-up (SnapDeals) proof calls: bring a sealed CC sector's files (the "sector
//! key") next to the staged deal data, encode the data into a new replica, prove the
//! update, and, for verifiers and tests, check and decode it. Blocking, like
//! [`crate::proofs`], with each error classified where it is called: proof errors are
//! permanent, local I/O critical, a sector key missing from its store permanent (an
//! operator must bring it back).

use std::fs;
use std::path::Path;

use damocles_core::{AddedPiece, Failure, FailureLevel, SealProof, SnapEncodeOutput, UpdateProof};
use filecoin_proofs_api::update;

use crate::paths::SectorPaths;
use crate::proofs::tasks::{ProcessorTask, SnapEncode, SnapProve};
use crate::proofs::{create_parent, io_failure, piece_infos, proof_failure, registered_update};

/// Whether a cache file is one a proof over the replica reads (`p_aux`, `t_aux`, the
/// `tree-r-last` files); the rest (labels, tree-c, tree-d) is not persisted.
pub fn is_persisted_cache_file(name: &str) -> bool {
    name == "p_aux" || name == "t_aux" || name.contains("tree-r-last")
}

/// Hard-links `from` to `to` (replacing `to`), copying where the file system cannot link
/// (another device).
fn link_or_copy(from: &Path, to: &Path) -> Result<(), Failure> {
    match fs::remove_file(to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_failure("remove", to, e)),
    }
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| io_failure("copy to", to, e))
}

/// Brings the sector key of `name` (`sealed/<name>` and the persisted files of
/// `cache/<name>/` in the attached store at `store`) into `paths.sealed` and
/// `paths.cache_dir`, hard-linked where the file system allows, copied otherwise. The
/// snap-up steps only read them. A file missing from the store is permanent: the thread
/// pauses naming it.
pub fn fetch_sector_key(store: &Path, name: &str, paths: &SectorPaths) -> Result<(), Failure> {
    let sealed = store.join("sealed").join(name);
    let cache = store.join("cache").join(name);
    let missing = |path: &Path, e: std::io::Error| {
        Failure::permanent(format!(
            "cannot read the sector key in its store: {}: {e}",
            path.display()
        ))
    };
    fs::metadata(&sealed).map_err(|e| missing(&sealed, e))?;
    let entries = fs::read_dir(&cache).map_err(|e| missing(&cache, e))?;
    create_parent(&paths.sealed)?;
    fs::create_dir_all(&paths.cache_dir).map_err(|e| io_failure("create", &paths.cache_dir, e))?;
    link_or_copy(&sealed, &paths.sealed)?;
    let mut found = (false, false);
    for entry in entries {
        let entry = entry.map_err(|e| io_failure("read", &cache, e))?;
        let file = entry.file_name();
        let Some(file) = file.to_str().filter(|f| is_persisted_cache_file(f)) else {
            continue;
        };
        found.0 |= file == "p_aux";
        found.1 |= file == "t_aux";
        link_or_copy(&entry.path(), &paths.cache_dir.join(file))?;
    }
    if found != (true, true) {
        return Err(Failure::permanent(format!(
            "the sector key's cache {} lacks p_aux or t_aux",
            cache.display()
        )));
    }
    Ok(())
}

/// Snap encode: writes the staged deal data (`paths.staged`, pieces as AddPieces wrote
/// them) into a new replica `paths.update` over the sector key, building its trees in
/// `paths.update_cache`. Both are made anew each time, so a crash mid-encode is repaired
/// by running it again.
pub fn snap_encode(
    proof: SealProof,
    paths: &SectorPaths,
    pieces: &[AddedPiece],
) -> Result<SnapEncodeOutput, Failure> {
    snap_encode_task(proof, paths, pieces)?.execute()
}

/// Snap encode's task (in-process or for a processor), once the new replica file (the
/// sector's size) and an empty cache directory are made.
pub fn snap_encode_task(
    proof: SealProof,
    paths: &SectorPaths,
    pieces: &[AddedPiece],
) -> Result<SnapEncode, Failure> {
    create_parent(&paths.update)?;
    if paths.update_cache.exists() {
        fs::remove_dir_all(&paths.update_cache)
            .map_err(|e| io_failure("remove", &paths.update_cache, e))?;
    }
    fs::create_dir_all(&paths.update_cache)
        .map_err(|e| io_failure("create", &paths.update_cache, e))?;
    let file =
        fs::File::create(&paths.update).map_err(|e| io_failure("create", &paths.update, e))?;
    file.set_len(proof.sector_size().bytes())
        .map_err(|e| io_failure("size", &paths.update, e))?;
    Ok(SnapEncode {
        registered_proof: registered_update(proof.update_proof()),
        new_replica_path: paths.update.clone(),
        new_cache_path: paths.update_cache.clone(),
        sector_path: paths.sealed.clone(),
        sector_cache_path: paths.cache_dir.clone(),
        staged_data_path: paths.staged.clone(),
        piece_infos: piece_infos(pieces),
    })
}

/// What anyone needs to verify an update proof independently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradedSector {
    /// The update proof type.
    pub proof_type: UpdateProof,
    /// The sector key's replica commitment (on chain before the upgrade).
    pub comm_r_old: [u8; 32],
    /// The updated replica's commitment.
    pub comm_r_new: [u8; 32],
    /// The deal data's commitment.
    pub comm_d_new: [u8; 32],
    /// The proof.
    pub proof: Vec<u8>,
}

/// Snap prove: the vanilla partition proofs over the sector key and the updated replica,
/// then the SNARK (on the GPU when built with `cuda`/`opencl`), then a self-check: an
/// invalid proof is permanent ("generated an invalid update proof"). A missing parameter
/// file fails with the upstream text ("No cached parameters found for …").
pub fn snap_prove(
    proof: SealProof,
    paths: &SectorPaths,
    comm_r_old: [u8; 32],
    encoded: SnapEncodeOutput,
) -> Result<Vec<u8>, Failure> {
    let snark = snap_prove_task(proof, paths, comm_r_old, encoded)?.execute()?;
    snap_prove_done(proof, comm_r_old, encoded, snark)
}

/// Snap prove's task (in-process or for a processor): the vanilla partition proofs, read
/// from the sector key and the updated replica.
pub fn snap_prove_task(
    proof: SealProof,
    paths: &SectorPaths,
    comm_r_old: [u8; 32],
    encoded: SnapEncodeOutput,
) -> Result<SnapProve, Failure> {
    let registered = registered_update(proof.update_proof());
    let vanilla = update::generate_partition_proofs(
        registered,
        comm_r_old,
        encoded.comm_r_new,
        encoded.comm_d_new,
        &paths.sealed,
        &paths.cache_dir,
        &paths.update,
        &paths.update_cache,
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "snap prove (vanilla)", e))?;
    Ok(SnapProve {
        registered_proof: registered,
        vannilla_proofs: vanilla.into_iter().map(|p| p.0).collect(),
        comm_r_old,
        comm_r_new: encoded.comm_r_new,
        comm_d_new: encoded.comm_d_new,
    })
}

/// The SNARK of a snap prove, verified here (where it was made does not matter): an
/// invalid proof is permanent.
pub fn snap_prove_done(
    proof: SealProof,
    comm_r_old: [u8; 32],
    encoded: SnapEncodeOutput,
    snark: Vec<u8>,
) -> Result<Vec<u8>, Failure> {
    let upgraded = UpgradedSector {
        proof_type: proof.update_proof(),
        comm_r_old,
        comm_r_new: encoded.comm_r_new,
        comm_d_new: encoded.comm_d_new,
        proof: snark,
    };
    if !verify_update(&upgraded)? {
        return Err(Failure::permanent(
            "snap prove: generated an invalid update proof",
        ));
    }
    Ok(upgraded.proof)
}

/// Verifies an update proof. `Ok(false)` is an invalid proof; `Err` means it could not be
/// checked (e.g. the verifying key is missing).
pub fn verify_update(upgraded: &UpgradedSector) -> Result<bool, Failure> {
    update::verify_empty_sector_update_proof(
        registered_update(upgraded.proof_type),
        &upgraded.proof,
        upgraded.comm_r_old,
        upgraded.comm_r_new,
        upgraded.comm_d_new,
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "verify update", e))
}

/// Decodes an updated replica back into the sector's unsealed bytes (`out`, the sector's
/// size): what a retrieval of a snapped sector reads deals from.
pub fn decode_update(
    proof: UpdateProof,
    out: &Path,
    replica: &Path,
    sector_key: &Path,
    sector_key_cache: &Path,
    comm_d_new: [u8; 32],
) -> Result<(), Failure> {
    create_parent(out)?;
    let file = fs::File::create(out).map_err(|e| io_failure("create", out, e))?;
    file.set_len(proof.sector_size().bytes())
        .map_err(|e| io_failure("size", out, e))?;
    drop(file);
    update::empty_sector_update_decode_from(
        registered_update(proof),
        out,
        replica,
        sector_key,
        sector_key_cache,
        comm_d_new,
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "snap decode", e))
}
