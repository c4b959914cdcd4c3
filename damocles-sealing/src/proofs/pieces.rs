//! AddPieces: the pieces the manager assigned, deal payloads and zero pieces, written
//! into the staged sector file in their place, their commitments and comm_d; reading
//! pieces back out of an unsealed file.

use super::*;

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
    /// The payload's length (for a pledge piece, the piece's unpadded size).
    payload: u64,
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
    let payload = match &piece.payload {
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
            payload
        }
        PiecePayload::Zeros => {
            let zero = zero_piece(unpadded)?;
            if zero.commitment != comm_p {
                return Err(Failure::permanent(format!(
                    "pledge piece {cid}: not the commitment of {} zero bytes",
                    piece.padded_size
                )));
            }
            unpadded
        }
    };
    Ok(CheckedPiece {
        piece,
        comm_p,
        unpadded,
        payload,
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
pub(super) fn pledge_sizes(end: u64, sector: u64) -> Vec<u64> {
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
    let task = add_pieces_task(proof, paths, pieces)?;
    let part = task.staged_filepath.clone();
    match task.execute() {
        Ok(written) => add_pieces_done(proof, paths, pieces, &written),
        Err(failure) => {
            let _ = fs::remove_file(&part);
            Err(failure)
        }
    }
}

/// The task of [`add_pieces`] (in-process or for a processor), once the pieces passed
/// the checks that need no reading: the assigned pieces (a deal's as its local file,
/// `{"local": …}`), then the pledge pieces that fill the sector, to be written into
/// `<staged>.part`.
pub fn add_pieces_task(
    proof: SealProof,
    paths: &SectorPaths,
    pieces: &[PieceToWrite],
) -> Result<AddPieces, Failure> {
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
    let mut list: Vec<Piece> = checked
        .iter()
        .map(|piece| Piece {
            piece_file: match &piece.piece.payload {
                PiecePayload::File(path) => PieceFile::Local(path.clone()),
                PiecePayload::Zeros => PieceFile::Pledge,
            },
            payload_size: piece.payload,
            piece_size: UnpaddedBytesAmount(piece.unpadded),
        })
        .collect();
    for size in pledge_sizes(end, sector) {
        let unpadded = piece::unpadded_size(size).unwrap_or_default();
        list.push(Piece {
            piece_file: PieceFile::Pledge,
            payload_size: unpadded,
            piece_size: UnpaddedBytesAmount(unpadded),
        });
    }
    Ok(AddPieces {
        seal_proof_type: registered(proof),
        pieces: list,
        staged_filepath: part_of(paths),
    })
}

/// Takes what an AddPieces of `pieces` wrote (`written`: each piece's commitment and
/// size, the pledge pieces after them included) into `<staged>.part`: each assigned
/// piece must have the commitment its CID names, each pledge piece the zero piece's, and
/// the file the sector's size; then it replaces the staged file. Otherwise the part file
/// is removed and the failure is permanent (critical for a file of the wrong size).
pub fn add_pieces_done(
    proof: SealProof,
    paths: &SectorPaths,
    pieces: &[PieceToWrite],
    written: &[PieceInfo],
) -> Result<Vec<AddedPiece>, Failure> {
    let part = part_of(paths);
    let taken = take_written(proof, pieces, written, &part).and_then(|added| {
        fs::rename(&part, &paths.staged).map_err(|e| io_failure("rename", &part, e))?;
        Ok(added)
    });
    if taken.is_err() {
        let _ = fs::remove_file(&part);
    }
    taken
}

fn part_of(paths: &SectorPaths) -> PathBuf {
    paths.staged.with_extension("part")
}

fn take_written(
    proof: SealProof,
    pieces: &[PieceToWrite],
    written: &[PieceInfo],
    part: &Path,
) -> Result<Vec<AddedPiece>, Failure> {
    let sector = proof.sector_size().bytes();
    let end = piece::pieces_end(pieces.iter().map(|d| d.padded_size));
    let fill = pledge_sizes(end, sector);
    if written.len() != pieces.len() + fill.len() {
        return Err(Failure::permanent(format!(
            "add pieces: {} pieces written where {} were sent",
            written.len(),
            pieces.len() + fill.len()
        )));
    }
    for (piece, info) in pieces.iter().zip(written) {
        let checked = check_piece(piece)?;
        if info.commitment != checked.comm_p || info.size.0 != checked.unpadded {
            let source = match &piece.payload {
                PiecePayload::File(path) => path.display().to_string(),
                PiecePayload::Zeros => "its zeros".to_owned(),
            };
            return Err(Failure::permanent(format!(
                "piece {}: the bytes of {source} have commitment {}, not the one the CID names",
                piece.cid.text,
                piece::piece_cid(&info.commitment).text
            )));
        }
    }
    for (size, info) in fill.iter().zip(&written[pieces.len()..]) {
        let zero = zero_piece(piece::unpadded_size(*size).unwrap_or_default())?;
        if info.commitment != zero.commitment || info.size != zero.size {
            return Err(Failure::permanent(format!(
                "the pledge piece of {size} bytes written has commitment {}, not the zero piece's",
                piece::piece_cid(&info.commitment).text
            )));
        }
    }
    let len = fs::metadata(part)
        .map_err(|e| io_failure("stat", part, e))?
        .len();
    if len != sector {
        return Err(Failure::critical(format!(
            "{}: {len} bytes written, not the sector's {sector}",
            part.display()
        )));
    }
    Ok(written
        .iter()
        .map(|info| AddedPiece {
            commitment: info.commitment,
            size: info.size.0,
        })
        .collect())
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
