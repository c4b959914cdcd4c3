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
