//! The Go wire encodings the sealer API and the record share, leaf of the crate: byte
//! slices as base64 ([`base64_bytes`], [`base64_32`], [`Opaque`]), Go's `null` for an empty
//! map, slice or pointer ([`go_nullable`]) and CIDs as `{"/": …}` ([`Cid`]).

use serde::{Deserialize, Serialize};

/// Serde helpers for byte slices as base64 strings (Go's `[]byte`).
pub mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises bytes as standard base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Deserialises standard base64 into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for 32-byte values as base64 strings (Go's `abi.Randomness`).
pub mod base64_32 {
    use serde::{Deserializer, Serializer};

    /// Serialises 32 bytes as standard base64.
    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        super::base64_bytes::serialize(bytes, serializer)
    }

    /// Deserialises standard base64 of exactly 32 bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let bytes = super::base64_bytes::deserialize(deserializer)?;
        let len = bytes.len();
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom(format!("expected 32 bytes, got {len}")))
    }
}

/// Serde helper for a Go map, slice or pointer field: Go encodes an empty one as `null`,
/// which reads as the default (`#[serde(default)]` alone covers only an absent field).
pub mod go_nullable {
    use serde::{Deserialize, Deserializer};

    /// Reads `null` (or an absent field, with `#[serde(default)]`) as `T::default()`.
    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
    }
}

/// A content identifier in the Go JSON shape `{"/": "baga…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cid {
    /// The CID's string form.
    #[serde(rename = "/")]
    pub text: String,
}

impl Cid {
    /// The CIDv1, in base32, of a 32-byte commitment under multicodec `codec` and
    /// multihash `hash` (Filecoin's `commcid`): a piece CID (`baga6ea4sea…`), a sealed
    /// CID (`bagboea4b5abc…`).
    pub fn of_commitment(codec: u64, hash: u64, digest: &[u8; 32]) -> Cid {
        let hash = cid::multihash::Multihash::<64>::wrap(hash, digest)
            .expect("32 bytes fit a 64-byte multihash");
        Cid {
            text: cid::Cid::new_v1(codec, hash).to_string(),
        }
    }

    /// The 32-byte commitment this CID carries.
    ///
    /// # Errors
    ///
    /// [`CommitmentCidError`], saying why (`codec_name` and `hash_name` name what was
    /// expected): not a CID, another codec or multihash, a digest of another length, or
    /// not written in the canonical base32 form [`Cid::of_commitment`] gives (the text may
    /// name files).
    pub fn commitment(
        &self,
        (codec, codec_name): (u64, &'static str),
        (hash, hash_name): (u64, &str),
    ) -> Result<[u8; 32], CommitmentCidError> {
        let error = |reason: String| CommitmentCidError {
            text: self.text.clone(),
            kind: codec_name,
            reason,
        };
        let parsed = cid::Cid::try_from(self.text.as_str()).map_err(|e| error(e.to_string()))?;
        if parsed.codec() != codec {
            return Err(error(format!(
                "codec {:#x}, not {codec_name} ({codec:#x})",
                parsed.codec()
            )));
        }
        let multihash = parsed.hash();
        if multihash.code() != hash {
            return Err(error(format!(
                "multihash {:#x}, not {hash_name} ({hash:#x})",
                multihash.code()
            )));
        }
        let digest: [u8; 32] = multihash.digest().try_into().map_err(|_| {
            error(format!(
                "a {}-byte digest, not 32",
                multihash.digest().len()
            ))
        })?;
        let canonical = Cid::of_commitment(codec, hash, &digest);
        if canonical != *self {
            return Err(error(format!(
                "not in its canonical form {}",
                canonical.text
            )));
        }
        Ok(digest)
    }
}

/// Why a CID is not the commitment CID asked for ([`Cid::commitment`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {kind} CID: {reason}")]
pub struct CommitmentCidError {
    /// The text given.
    pub text: String,
    /// The codec asked for (`fil-commitment-sealed`, `fil-commitment-unsealed`).
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Bytes whose meaning belongs to the proof backend (PC1 and C1 outputs); serialised as
/// base64.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Opaque(#[serde(with = "base64_bytes")] pub Vec<u8>);
