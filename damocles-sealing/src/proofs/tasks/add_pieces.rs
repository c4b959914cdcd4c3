//! The `add_pieces` task.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::PathBuf;

use damocles_core::{Failure, FailureLevel, ProofStage};
use filecoin_proofs_api::{seal, PieceInfo, RegisteredSealProof, UnpaddedBytesAmount};
use serde::{Deserialize, Serialize};

use super::super::{io_failure, proof_failure};
use super::ProcessorTask;

/// Where a piece's bytes come from: `{"url": "…"}`, `{"local": "/path"}` or `"pledge"`
/// (zeros), as the original writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PieceFile {
    /// A URL to fetch. Not read by this worker's processor (its worker sends local files;
    /// an original worker's URL is refused with a message saying so).
    Url(String),
    /// A local file holding the payload.
    Local(PathBuf),
    /// Zeros.
    Pledge,
}

/// One piece of an [`AddPieces`]: its payload, then zeros up to its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Where its bytes come from.
    pub piece_file: PieceFile,
    /// The payload's length in bytes (at most `piece_size`).
    pub payload_size: u64,
    /// The piece's unpadded size in bytes.
    pub piece_size: UnpaddedBytesAmount,
}

/// AddPieces: the pieces written, in order, into `staged_filepath` (created, or cut to
/// nothing first), each Fr32-padded (`seal::add_piece`; a piece that does not start
/// aligned to its size gets zeros before it); with no piece, the sector's size of zeros
/// (a CC sector). The file is synced. Answers each piece's commitment and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPieces {
    /// The seal proof type.
    pub seal_proof_type: RegisteredSealProof,
    /// The pieces, in order.
    pub pieces: Vec<Piece>,
    /// The staged file to write.
    pub staged_filepath: PathBuf,
}

impl ProcessorTask for AddPieces {
    const STAGE: ProofStage = ProofStage::AddPieces;
    /// `[{"commitment": [32 numbers], "size": N}]`.
    type Output = Vec<PieceInfo>;

    fn execute(self) -> Result<Self::Output, Failure> {
        let target = self.staged_filepath.clone();
        if !target.is_absolute() {
            return Err(Failure::permanent(format!(
                "staged_filepath {} is not an absolute path",
                target.display()
            )));
        }
        let written = self.write();
        if written.is_err() {
            // Nothing half-written is left for a later step to take.
            let _ = std::fs::remove_file(&target);
        }
        written
    }
}

impl AddPieces {
    fn write(self) -> Result<Vec<PieceInfo>, Failure> {
        let target = &self.staged_filepath;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(target)
            .map_err(|e| io_failure("open staged file", target, e))?;
        let mut pieces = self.pieces;
        if pieces.is_empty() {
            let sector = u64::from(self.seal_proof_type.sector_size());
            let unpadded = sector - sector / 128;
            pieces.push(Piece {
                piece_file: PieceFile::Pledge,
                payload_size: unpadded,
                piece_size: UnpaddedBytesAmount(unpadded),
            });
        }
        let mut written: Vec<UnpaddedBytesAmount> = Vec::new();
        let mut infos = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let size = piece.piece_size;
            let source = payload(&piece)?;
            let (info, _) =
                seal::add_piece(self.seal_proof_type, source, &mut file, size, &written)
                    .map_err(|e| proof_failure(FailureLevel::Permanent, "add piece", e))?;
            written.push(info.size);
            infos.push(info);
        }
        file.sync_all()
            .map_err(|e| io_failure("sync staged file", target, e))?;
        Ok(infos)
    }
}

/// A piece's payload followed by zeros, `piece_size` bytes in all.
fn payload(piece: &Piece) -> Result<Box<dyn Read>, Failure> {
    let size = piece.piece_size.0;
    if piece.payload_size > size {
        return Err(Failure::permanent(format!(
            "a payload of {} bytes does not fit a piece of {size}",
            piece.payload_size
        )));
    }
    let bytes: Box<dyn Read> = match &piece.piece_file {
        PieceFile::Pledge => return Ok(Box::new(io::repeat(0).take(size))),
        PieceFile::Local(path) => Box::new(
            File::open(path)
                .map_err(|e| io_failure("read piece", path, e))?
                .take(piece.payload_size),
        ),
        PieceFile::Url(url) => {
            return Err(Failure::permanent(format!(
                "piece {url}: this add_pieces processor reads local files and pledge pieces \
                 only; give the worker the piece in a local pieces directory"
            )))
        }
    };
    Ok(Box::new(bytes.chain(io::repeat(0)).take(size)))
}
