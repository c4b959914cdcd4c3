//! Deal pieces: piece CIDs and the commitments (commP) they name, piece sizes, and the
//! [`PieceStore`] a worker reads deal bytes from.
//!
//! A piece CID is a CIDv1 with codec `fil-commitment-unsealed` (0xf101) and multihash
//! `sha2-256-trunc254-padded` (0x1012) over the 32-byte commP, written in base32
//! (`baga6ea4sea…`), as Filecoin's `commcid` defines it.

use std::path::Path;

use async_trait::async_trait;

use crate::failure::Failure;
use crate::wire::Cid;

/// The multicodec of an unsealed (piece or data) commitment.
pub const FIL_COMMITMENT_UNSEALED: u64 = 0xf101;

/// The multihash of a piece commitment.
pub const SHA2_256_TRUNC254_PADDED: u64 = 0x1012;

/// The smallest padded piece, in bytes.
pub const MIN_PIECE_SIZE: u64 = 128;

/// Why a string is not a piece CID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a piece CID: {reason}")]
pub struct PieceCidError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The piece CID of a piece commitment (commP).
pub fn piece_cid(comm_p: &[u8; 32]) -> Cid {
    Cid::of_commitment(FIL_COMMITMENT_UNSEALED, SHA2_256_TRUNC254_PADDED, comm_p)
}

/// The piece commitment (commP) a piece CID names.
///
/// # Errors
///
/// [`PieceCidError`] when the text is not a CID, a CID of another codec or hash, or not
/// written in the canonical base32 form [`piece_cid`] gives.
pub fn comm_p(cid: &Cid) -> Result<[u8; 32], PieceCidError> {
    cid.commitment(
        (FIL_COMMITMENT_UNSEALED, "fil-commitment-unsealed"),
        (SHA2_256_TRUNC254_PADDED, "sha2-256-trunc254-padded"),
    )
    .map_err(|e| PieceCidError {
        text: e.text,
        reason: e.reason,
    })
}

/// The multicodec of a sealed (replica) commitment.
pub const FIL_COMMITMENT_SEALED: u64 = 0xf102;

/// The multihash of a replica commitment.
pub const POSEIDON_BLS12_381_A2_FC1: u64 = 0xb401;

/// The sealed CID of a replica commitment (comm_r, `comm_r_new` for an upgraded sector):
/// codec `fil-commitment-sealed` (0xf102), multihash `poseidon-bls12_381-a2-fc1`
/// (0xb401), base32 (`bagboea4b5abc…`), the `SealedCID` of a chain's sector infos.
pub fn sealed_cid(comm_r: &[u8; 32]) -> Cid {
    Cid::of_commitment(FIL_COMMITMENT_SEALED, POSEIDON_BLS12_381_A2_FC1, comm_r)
}

/// The replica commitment (comm_r) a sealed CID names.
///
/// # Errors
///
/// [`crate::wire::CommitmentCidError`]: as [`comm_p`]'s, for a sealed CID.
pub fn comm_r_of(cid: &Cid) -> Result<[u8; 32], crate::wire::CommitmentCidError> {
    cid.commitment(
        (FIL_COMMITMENT_SEALED, "fil-commitment-sealed"),
        (POSEIDON_BLS12_381_A2_FC1, "poseidon-bls12_381-a2-fc1"),
    )
}

/// The unpadded size of a padded piece size: a power of two of at least 128 bytes, of
/// which 127 bytes in every 128 carry data (Fr32 padding). `None` for any other size.
pub fn unpadded_size(padded: u64) -> Option<u64> {
    (padded >= MIN_PIECE_SIZE && padded.is_power_of_two()).then(|| padded - padded / 128)
}

/// The padded offset of each piece in a sector when pieces of these padded sizes are
/// written in order, each aligned to a multiple of its own size (zeros fill the gaps), as
/// filecoin-proofs' `add_piece` places them.
pub fn piece_offsets(padded_sizes: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut end = 0u64;
    padded_sizes
        .into_iter()
        .map(|size| {
            let offset = end.next_multiple_of(size.max(1));
            end = offset + size;
            offset
        })
        .collect()
}

/// Where pieces of these padded sizes, written in order as [`piece_offsets`] places them,
/// end: the padded bytes they take in the sector.
pub fn pieces_end(padded_sizes: impl IntoIterator<Item = u64>) -> u64 {
    let sizes: Vec<u64> = padded_sizes.into_iter().collect();
    piece_offsets(sizes.iter().copied())
        .last()
        .zip(sizes.last())
        .map_or(0, |(offset, size)| offset + size)
}

/// Why a piece's bytes could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PieceFetchError {
    /// No store has the piece.
    #[error("piece {cid}: not found ({detail})")]
    NotFound {
        /// The piece.
        cid: String,
        /// Where it was looked for.
        detail: String,
    },
    /// The piece store sent more bytes than the piece holds.
    #[error("piece {cid}: the piece store sent more than the piece's {limit} bytes")]
    TooLarge {
        /// The piece.
        cid: String,
        /// The piece's unpadded size.
        limit: u64,
    },
    /// The piece store could not be reached, or the transfer broke off: worth another
    /// try.
    #[error("piece {cid}: {reason}")]
    Unavailable {
        /// The piece.
        cid: String,
        /// What happened.
        reason: String,
    },
    /// The copy could not be written on this machine.
    #[error("piece {cid}: {reason}")]
    Local {
        /// The piece.
        cid: String,
        /// What happened.
        reason: String,
    },
}

impl PieceFetchError {
    /// The failure of a sealing step that needed the piece: a missing or oversized piece
    /// is permanent (no retry brings it back), an unreachable store temporary, a local
    /// write critical (the machine is at fault).
    pub fn into_failure(self) -> Failure {
        match self {
            PieceFetchError::Unavailable { .. } => Failure::temporary(self.to_string()),
            PieceFetchError::Local { .. } => Failure::critical(self.to_string()),
            PieceFetchError::NotFound { .. } | PieceFetchError::TooLarge { .. } => {
                Failure::permanent(self.to_string())
            }
        }
    }
}

/// Where a worker fetches the bytes of deal pieces it has no local copy of: the manager's
/// piece store (`GET {manager origin}/piecestore/{cid}`), or an in-process stand-in.
#[async_trait]
pub trait PieceStore: Send + Sync {
    /// Writes the bytes of piece `cid` into the file `dest` (created or truncated) and
    /// returns how many were written: the deal's payload, at most `limit` bytes (the
    /// piece's unpadded size).
    ///
    /// # Errors
    ///
    /// [`PieceFetchError::NotFound`] when the store has no such piece,
    /// [`PieceFetchError::TooLarge`] past `limit`, [`PieceFetchError::Unavailable`] when
    /// the store cannot be reached, [`PieceFetchError::Local`] when the file cannot be
    /// written.
    async fn fetch(&self, cid: &Cid, dest: &Path, limit: u64) -> Result<u64, PieceFetchError>;

    /// Stores the bytes of the file `src` as piece `cid` in this store (an unseal job's
    /// `store:///<piece cid>` destination).
    ///
    /// # Errors
    ///
    /// [`PieceUploadError`] by cause; a store that takes no pieces answers
    /// [`PieceUploadError::Unsupported`] (the default).
    async fn upload(&self, cid: &Cid, src: &Path) -> Result<(), PieceUploadError> {
        let _ = src;
        Err(PieceUploadError::Unsupported {
            target: format!("store:///{}", cid.text),
            detail: "this piece store takes no uploads".into(),
        })
    }

    /// Sends the bytes of the file `src` to `url` with an HTTP PUT (an unseal job's
    /// `http(s)://` destination), through the same HTTP client as the store.
    ///
    /// # Errors
    ///
    /// As [`PieceStore::upload`]; the default answers [`PieceUploadError::Unsupported`].
    async fn put(&self, url: &str, src: &Path) -> Result<(), PieceUploadError> {
        let _ = src;
        Err(PieceUploadError::Unsupported {
            target: url.to_owned(),
            detail: "this worker has no HTTP client for pieces".into(),
        })
    }

    /// Sends the bytes of the file `src` to venus-market's piece store: `PUT resource`
    /// (`{scheme}://{host}/resource?resource-id=<piece cid>&store=<store>`) with
    /// `Authorization: Bearer <token>`, where only HTTP 200 is success (an unseal job's
    /// `market://` destination, as the original worker sends it).
    ///
    /// # Errors
    ///
    /// As [`PieceStore::put`]; any status but 200 is [`PieceUploadError::Refused`].
    async fn put_market(
        &self,
        resource: &str,
        src: &Path,
        token: &str,
    ) -> Result<(), PieceUploadError> {
        let _ = (src, token);
        Err(PieceUploadError::Unsupported {
            target: resource.to_owned(),
            detail: "this worker has no HTTP client for pieces".into(),
        })
    }
}

/// What a piece store accepts under a piece CID, asked before an upload is stored: the
/// manager knows the piece of every deal it made, so bytes that are not that piece are
/// refused rather than kept where an unseal job would find them.
pub trait PieceCheck: Send + Sync {
    /// The most bytes an upload of piece `cid` may hold (the piece's unpadded size), or
    /// `None` when this store expects no piece of that CID (the upload is refused).
    fn max_bytes(&self, cid: &Cid) -> Option<u64>;

    /// Whether the file `file` holds piece `cid` (its bytes, zero-padded to the piece's
    /// size, give that piece CID). Blocking: reads the whole file.
    ///
    /// # Errors
    ///
    /// [`NotThePiece`]: why not (the CID the bytes give, or why the file cannot be read).
    fn check(&self, cid: &Cid, file: &Path) -> Result<(), NotThePiece>;
}

/// Why a file is not the piece its CID names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NotThePiece {
    /// Why, in words.
    pub reason: String,
}

impl NotThePiece {
    /// The reason `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Why an unsealed piece could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PieceUploadError {
    /// The receiver answered that it does not take it (HTTP 4xx): no retry helps.
    #[error("{target} refused the piece: {detail}")]
    Refused {
        /// Where it was sent.
        target: String,
        /// What the receiver said.
        detail: String,
    },
    /// The receiver could not be reached, or failed (HTTP 5xx): worth another try.
    #[error("{target}: {reason}")]
    Unavailable {
        /// Where it was sent.
        target: String,
        /// What happened.
        reason: String,
    },
    /// The file could not be read on this machine.
    #[error("{target}: {reason}")]
    Local {
        /// Where it was to go.
        target: String,
        /// What happened.
        reason: String,
    },
    /// This worker cannot send there (an `https` URL, a store that takes no uploads).
    #[error("{target}: {detail}")]
    Unsupported {
        /// Where it was to go.
        target: String,
        /// Why not.
        detail: String,
    },
}

impl PieceUploadError {
    /// The failure of the unseal step that delivered the piece: refused and unsupported
    /// are permanent, unavailable temporary, a local read critical.
    pub fn into_failure(self) -> Failure {
        let message = format!("deliver the unsealed piece: {self}");
        match self {
            PieceUploadError::Refused { .. } | PieceUploadError::Unsupported { .. } => {
                Failure::permanent(message)
            }
            PieceUploadError::Unavailable { .. } => Failure::temporary(message),
            PieceUploadError::Local { .. } => Failure::critical(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_cids_round_trip_and_look_like_filecoins() {
        let commitment = [7u8; 32];
        let cid = piece_cid(&commitment);
        assert!(cid.text.starts_with("baga6ea4sea"), "{}", cid.text);
        assert_eq!(comm_p(&cid), Ok(commitment));
        // A piece CID as lotus prints it.
        let zero_2k = Cid {
            text: "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy".into(),
        };
        let bytes = comm_p(&zero_2k).expect("a piece cid");
        assert_eq!(piece_cid(&bytes), zero_2k);
    }

    #[test]
    fn sealed_cids_round_trip_and_look_like_filecoins() {
        let comm_r = [9u8; 32];
        let cid = sealed_cid(&comm_r);
        assert!(cid.text.starts_with("bagboea4b5abc"), "{}", cid.text);
        assert_eq!(comm_r_of(&cid), Ok(comm_r));
        let err = comm_r_of(&piece_cid(&comm_r)).expect_err("a piece cid");
        assert!(
            err.reason.contains("not fil-commitment-sealed (0xf102)"),
            "{err}"
        );
        assert_eq!(err.kind, "fil-commitment-sealed");
    }

    #[test]
    fn other_cids_are_refused_with_the_reason() {
        let dag = Cid {
            text: "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".into(),
        };
        let err = comm_p(&dag).expect_err("a dag-cbor cid");
        assert!(err.reason.contains("not fil-commitment-unsealed"), "{err}");
        let junk = Cid {
            text: "../etc/passwd".into(),
        };
        assert!(comm_p(&junk).is_err());
        // The same CID in base32 upper case: refused, naming the one spelling accepted.
        let lower = piece_cid(&[5; 32]);
        let upper = Cid {
            text: format!("B{}", lower.text[1..].to_uppercase()),
        };
        let err = comm_p(&upper).expect_err("not canonical");
        assert!(err.reason.contains(&lower.text), "{err}");
    }

    #[test]
    fn pieces_are_aligned_to_their_own_size() {
        assert_eq!(piece_offsets([1024, 512]), vec![0, 1024]);
        assert_eq!(piece_offsets([512, 1024, 128]), vec![0, 1024, 2048]);
        assert_eq!(piece_offsets([128, 128, 256]), vec![0, 128, 256]);
        assert_eq!(pieces_end([512, 1024, 128]), 2176);
        assert_eq!(pieces_end([]), 0);
    }

    #[test]
    fn unpadded_sizes_of_valid_pieces_only() {
        assert_eq!(unpadded_size(128), Some(127));
        assert_eq!(unpadded_size(2048), Some(2032));
        assert_eq!(unpadded_size(64), None);
        assert_eq!(unpadded_size(1000), None);
    }
}
