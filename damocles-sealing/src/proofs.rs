//! The proof backend: every sealing step as a blocking call into `filecoin-proofs-api`,
//! with each error classified into a failure level right where it is called.
//!
//! These functions block for as long as the proof takes (C2 of a 2KiB sector: about a
//! minute on 2 cores). The runtime calls them on blocking threads, never on the async
//! executor.

pub mod tasks;

use std::fs::{self, File, OpenOptions};
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
use tasks::ProcessorTask;

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

/// A piece to write into a sector, in the order the manager assigned it: a deal's payload
/// in a local file, or a pledge piece (zeros), as the Go manager's deal assignment fills
/// a sector (venus-market `pickAndAlign`: zero pieces align a deal and fill the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceToWrite {
    /// The piece CID the manager names; the bytes must have this commitment (for a pledge
    /// piece, the zero piece's of its size).
    pub cid: Cid,
    /// The piece's padded size in bytes (a power of two, at least 128).
    pub padded_size: u64,
    /// Where its bytes come from.
    pub payload: PiecePayload,
}

/// Where a piece's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PiecePayload {
    /// A deal's payload (at most the piece's unpadded size; zeros fill the rest of the
    /// piece, as the market pads a payload).
    File(PathBuf),
    /// A pledge piece: zeros.
    Zeros,
}

/// A piece whose CID, size and payload passed the cheap checks: its commitment and
/// unpadded size.
struct CheckedPiece<'a> {
    piece: &'a PieceToWrite,
    comm_p: [u8; 32],
    unpadded: u64,
}

/// The payload of a piece followed by zeros, `unpadded` bytes in all.
fn piece_reader(piece: &CheckedPiece<'_>) -> Result<Box<dyn Read>, Failure> {
    let PiecePayload::File(path) = &piece.piece.payload else {
        return Ok(Box::new(io::repeat(0).take(piece.unpadded)));
    };
    let file = File::open(path).map_err(|e| {
        Failure::permanent(format!(
            "piece {}: cannot read {}: {e}",
            piece.piece.cid.text,
            path.display()
        ))
    })?;
    Ok(Box::new(file.chain(io::repeat(0)).take(piece.unpadded)))
}

/// Checks what can be checked without reading a piece: a piece CID, a valid size, a
/// payload that exists and is no larger than the piece, and for a pledge piece the zero
/// piece's commitment (the Go manager's `checkPieces` rule).
fn check_piece(piece: &PieceToWrite) -> Result<CheckedPiece<'_>, Failure> {
    let cid = &piece.cid.text;
    let comm_p = piece::comm_p(&piece.cid).map_err(|e| Failure::permanent(e.to_string()))?;
    let unpadded = piece::unpadded_size(piece.padded_size).ok_or_else(|| {
        Failure::permanent(format!(
            "piece {cid}: size {} is not a padded piece size (a power of two, at least 128 bytes)",
            piece.padded_size
        ))
    })?;
    match &piece.payload {
        PiecePayload::File(path) => {
            let payload = fs::metadata(path)
                .map_err(|e| {
                    Failure::permanent(format!("piece {cid}: not found at {}: {e}", path.display()))
                })?
                .len();
            if payload > unpadded {
                return Err(Failure::permanent(format!(
                    "piece {cid}: {} holds {payload} bytes, more than the piece's {unpadded}",
                    path.display()
                )));
            }
        }
        PiecePayload::Zeros => {
            let zero = zero_piece(unpadded)?;
            if zero.commitment != comm_p {
                return Err(Failure::permanent(format!(
                    "pledge piece {cid}: not the commitment of {} zero bytes",
                    piece.padded_size
                )));
            }
        }
    }
    Ok(CheckedPiece {
        piece,
        comm_p,
        unpadded,
    })
}

/// The piece of `unpadded` zero bytes.
fn zero_piece(unpadded: u64) -> Result<PieceInfo, Failure> {
    filecoin_proofs::pieces::zero_padding(UnpaddedBytesAmount(unpadded))
        .map_err(|e| proof_failure(FailureLevel::Permanent, "pledge piece", e))
}

/// The piece CID of a pledge piece of `padded_size` bytes (zeros): what the manager names
/// the zero pieces it assigns to align deals and fill a sector.
pub fn pledge_piece_cid(padded_size: u64) -> Result<Cid, Failure> {
    let unpadded = piece::unpadded_size(padded_size)
        .ok_or_else(|| Failure::permanent(format!("no piece of {padded_size} bytes")))?;
    Ok(piece::piece_cid(&zero_piece(unpadded)?.commitment))
}

/// The piece CID of a deal's payload in a piece of `padded_size` bytes (zeros fill the
/// rest): what a client computes before it makes a deal.
pub fn piece_cid_of(proof: SealProof, payload: &[u8], padded_size: u64) -> Result<Cid, Failure> {
    let unpadded = piece::unpadded_size(padded_size)
        .filter(|unpadded| payload.len() as u64 <= *unpadded)
        .ok_or_else(|| {
            Failure::permanent(format!(
                "{} bytes do not make a piece of {padded_size} bytes",
                payload.len()
            ))
        })?;
    let source = payload.chain(io::repeat(0)).take(unpadded);
    let info =
        seal::generate_piece_commitment(registered(proof), source, UnpaddedBytesAmount(unpadded))
            .map_err(|e| proof_failure(FailureLevel::Permanent, "piece commitment", e))?;
    Ok(piece::piece_cid(&info.commitment))
}

/// The padded sizes of the pledge (zero) pieces that fill a sector from `end` (a padded
/// offset) to `sector` bytes: the powers of two of the remainder, smallest first, so that
/// each starts aligned to its size.
fn pledge_sizes(end: u64, sector: u64) -> Vec<u64> {
    let mut remaining = sector.saturating_sub(end);
    let mut sizes = Vec::new();
    while remaining > 0 {
        let size = 1 << remaining.trailing_zeros();
        sizes.push(size);
        remaining -= size;
    }
    sizes
}

/// AddPieces: writes the pieces the manager assigned, in order (each aligned to its size;
/// a pledge piece as zeros), into the staged file, then pledge (zero) pieces up to the
/// sector's size; with no piece, one zero piece fills the sector (a CC sector).
///
/// The pieces are written into `<staged>.part`, which replaces the staged file only once
/// every piece's bytes have proven to have the commitment its CID names (computed while
/// writing, so each piece is read once) and the file is synced at the sector's size. A
/// missing piece, a payload larger than the piece, a pledge piece whose CID is not the
/// zero piece's, pieces that do not fit the sector, or bytes of another commitment are
/// permanent failures naming the CID, and leave the staged file as it was. Safe to re-run.
pub fn add_pieces(
    proof: SealProof,
    paths: &SectorPaths,
    pieces: &[PieceToWrite],
) -> Result<Vec<AddedPiece>, Failure> {
    let checked = pieces
        .iter()
        .map(check_piece)
        .collect::<Result<Vec<_>, _>>()?;
    let sector = proof.sector_size().bytes();
    let end = piece::pieces_end(pieces.iter().map(|d| d.padded_size));
    if end > sector {
        return Err(Failure::permanent(format!(
            "pieces {} take {end} bytes, more than the sector's {sector}",
            pieces
                .iter()
                .map(|d| d.cid.text.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    create_parent(&paths.staged)?;
    let part = paths.staged.with_extension("part");
    let written = write_pieces(proof, &part, &checked, end);
    let added = written.and_then(|added| {
        let len = fs::metadata(&part)
            .map_err(|e| io_failure("stat", &part, e))?
            .len();
        if len != sector {
            return Err(Failure::critical(format!(
                "{}: {len} bytes written, not the sector's {sector}",
                part.display()
            )));
        }
        fs::rename(&part, &paths.staged).map_err(|e| io_failure("rename", &part, e))?;
        Ok(added)
    });
    if added.is_err() {
        let _ = fs::remove_file(&part);
    }
    added
}

/// Writes the checked pieces and the pledge pieces after them into `target`, and syncs it.
fn write_pieces(
    proof: SealProof,
    target: &Path,
    pieces: &[CheckedPiece<'_>],
    end: u64,
) -> Result<Vec<AddedPiece>, Failure> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(target)
        .map_err(|e| io_failure("open staged file", target, e))?;
    let mut written: Vec<UnpaddedBytesAmount> = Vec::new();
    let mut add = |source: &mut dyn Read, unpadded: u64, step: &str| {
        let (info, _) = seal::add_piece(
            registered(proof),
            source,
            &mut file,
            UnpaddedBytesAmount(unpadded),
            &written,
        )
        .map_err(|e| proof_failure(FailureLevel::Permanent, step, e))?;
        written.push(info.size);
        Ok::<_, Failure>(AddedPiece {
            commitment: info.commitment,
            size: info.size.0,
        })
    };
    let mut added = Vec::new();
    for piece in pieces {
        let cid = &piece.piece.cid.text;
        let one = add(
            &mut piece_reader(piece)?,
            piece.unpadded,
            &format!("add piece {cid}"),
        )?;
        if one.commitment != piece.comm_p {
            let source = match &piece.piece.payload {
                PiecePayload::File(path) => path.display().to_string(),
                PiecePayload::Zeros => "its zeros".to_owned(),
            };
            return Err(Failure::permanent(format!(
                "piece {cid}: the bytes of {source} have commitment {}, not the one the CID names",
                piece::piece_cid(&one.commitment).text
            )));
        }
        added.push(one);
    }
    for size in pledge_sizes(end, proof.sector_size().bytes()) {
        let unpadded = piece::unpadded_size(size).unwrap_or_default();
        added.push(add(
            &mut io::repeat(0).take(unpadded),
            unpadded,
            "add pledge piece",
        )?);
    }
    file.sync_all()
        .map_err(|e| io_failure("sync staged file", target, e))?;
    Ok(added)
}

/// The data commitment (comm_d) of a sector whose assigned pieces are these (commitment,
/// padded size), in order, pledge pieces included, and whose rest is pledge pieces as
/// [`add_pieces`] writes them: what a chain checks a deal sector's pre-commit against.
pub fn sector_comm_d(proof: SealProof, pieces: &[([u8; 32], u64)]) -> Result<[u8; 32], Failure> {
    let end = piece::pieces_end(pieces.iter().map(|(_, size)| *size));
    let unpadded = |size: u64| piece::unpadded_size(size).unwrap_or_default();
    let mut infos = pieces
        .iter()
        .map(|(commitment, size)| PieceInfo {
            commitment: *commitment,
            size: UnpaddedBytesAmount(unpadded(*size)),
        })
        .collect::<Vec<_>>();
    for size in pledge_sizes(end, proof.sector_size().bytes()) {
        infos.push(zero_piece(unpadded(size))?);
    }
    seal::compute_comm_d(registered(proof), &infos)
        .map_err(|e| proof_failure(FailureLevel::Permanent, "comm_d", e))
}

/// Reads the first `len` data bytes of the piece at `padded_offset` (a multiple of 128,
/// as every piece offset is; see [`piece::piece_offsets`]) out of an unsealed, Fr32-padded
/// sector file such as the staged copy. Reads only that range.
pub fn read_unsealed(path: &Path, padded_offset: u64, len: u64) -> Result<Vec<u8>, Failure> {
    use std::io::{Seek, SeekFrom};
    if !padded_offset.is_multiple_of(128) {
        return Err(Failure::permanent(format!(
            "read {}: offset {padded_offset} is not a piece offset (a multiple of 128)",
            path.display()
        )));
    }
    // 127 data bytes in every 128, rounded up to whole 128-byte blocks.
    let padded_len = len.div_ceil(127) * 128;
    let mut file = File::open(path).map_err(|e| io_failure("read", path, e))?;
    file.seek(SeekFrom::Start(padded_offset))
        .map_err(|e| io_failure("seek", path, e))?;
    let mut padded = Vec::new();
    file.take(padded_len)
        .read_to_end(&mut padded)
        .map_err(|e| io_failure("read", path, e))?;
    let mut out = Vec::with_capacity(len as usize);
    fr32::write_unpadded(&padded, &mut out, 0, len as usize)
        .map_err(|e| io_failure("unpad", path, e))?;
    Ok(out)
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
