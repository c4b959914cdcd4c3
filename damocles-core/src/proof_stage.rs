//! The proof and processor stages: what a thread takes a concurrency slot of
//! (`[processors.limitation.concurrent]`), what its proof calls are timed by (metric
//! labels), and what `worker list` shows as the processor of a proof call (`builtin PC1`).
//! The names are the original's stage keys (reference §8).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::state::Stage;

/// A stage whose work is a proof or processor call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProofStage {
    /// Writing the pieces into the staged file (`add_pieces`).
    AddPieces,
    /// The data commitment (`tree_d`).
    TreeD,
    /// Pre-commit phase 1: labels (`pc1`).
    PC1,
    /// Pre-commit phase 2: encoding, tree C and tree R (`pc2`).
    PC2,
    /// Synthetic PoRep proofs (`synth_proof`).
    SynthProof,
    /// Commit phase 1: the vanilla proofs (`c1`).
    C1,
    /// Commit phase 2: the SNARK (`c2`).
    C2,
    /// Snap-up encoding (`snap_encode`).
    SnapEncode,
    /// Snap-up proof (`snap_prove`).
    SnapProve,
    /// Unsealing a piece (`unseal`).
    Unseal,
    /// WindowPoSt (`window_post`).
    WindowPost,
    /// Copying sealed files to a persistent store (`transfer`).
    Transfer,
}

impl ProofStage {
    /// Every stage, in the order of a sector's life.
    pub const ALL: [ProofStage; 12] = [
        ProofStage::AddPieces,
        ProofStage::TreeD,
        ProofStage::PC1,
        ProofStage::PC2,
        ProofStage::SynthProof,
        ProofStage::C1,
        ProofStage::C2,
        ProofStage::SnapEncode,
        ProofStage::SnapProve,
        ProofStage::Unseal,
        ProofStage::WindowPost,
        ProofStage::Transfer,
    ];

    /// The configuration key and metric label (`pc1`, `add_pieces`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ProofStage::AddPieces => "add_pieces",
            ProofStage::TreeD => "tree_d",
            ProofStage::PC1 => "pc1",
            ProofStage::PC2 => "pc2",
            ProofStage::SynthProof => "synth_proof",
            ProofStage::C1 => "c1",
            ProofStage::C2 => "c2",
            ProofStage::SnapEncode => "snap_encode",
            ProofStage::SnapProve => "snap_prove",
            ProofStage::Unseal => "unseal",
            ProofStage::WindowPost => "window_post",
            ProofStage::Transfer => "transfer",
        }
    }

    /// The processor `worker list` shows during the in-process call (`builtin PC1`).
    pub fn builtin_proc(self) -> &'static str {
        match self {
            ProofStage::AddPieces => "builtin AddPieces",
            ProofStage::TreeD => "builtin TreeD",
            ProofStage::PC1 => "builtin PC1",
            ProofStage::PC2 => "builtin PC2",
            ProofStage::SynthProof => "builtin SynthProof",
            ProofStage::C1 => "builtin C1",
            ProofStage::C2 => "builtin C2",
            ProofStage::SnapEncode => "builtin SnapEncode",
            ProofStage::SnapProve => "builtin SnapProve",
            ProofStage::Unseal => "builtin Unseal",
            ProofStage::WindowPost => "builtin window_post",
            ProofStage::Transfer => "builtin Transfer",
        }
    }
}

impl Stage {
    /// The proof stage whose calls this job stage makes, if it makes any.
    pub fn proof_stage(self) -> Option<ProofStage> {
        Some(match self {
            Stage::AddPieces => ProofStage::AddPieces,
            Stage::TreeD => ProofStage::TreeD,
            Stage::PC1 => ProofStage::PC1,
            Stage::PC2 => ProofStage::PC2,
            Stage::SyntheticPoRep => ProofStage::SynthProof,
            Stage::C1 => ProofStage::C1,
            Stage::C2 => ProofStage::C2,
            Stage::SnapEncode => ProofStage::SnapEncode,
            Stage::SnapProve => ProofStage::SnapProve,
            Stage::Unseal => ProofStage::Unseal,
            Stage::Generate => ProofStage::WindowPost,
            Stage::PersistFiles => ProofStage::Transfer,
            _ => return None,
        })
    }
}

impl fmt::Display for ProofStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage name that is not one of [`ProofStage::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage {input:?}; valid stages: add_pieces, tree_d, pc1, pc2, synth_proof, c1, c2, snap_encode, snap_prove, unseal, window_post, transfer")]
pub struct ParseProofStageError {
    /// What was given.
    pub input: String,
}

impl FromStr for ProofStage {
    type Err = ParseProofStageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| ParseProofStageError {
                input: s.to_owned(),
            })
    }
}

impl Serialize for ProofStage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProofStage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_a_bad_one_lists_the_valid_ones() {
        for stage in ProofStage::ALL {
            assert_eq!(stage.as_str().parse(), Ok(stage));
            assert!(stage.builtin_proc().starts_with("builtin "));
        }
        let err = "pc9".parse::<ProofStage>().unwrap_err().to_string();
        let listed = ProofStage::ALL.map(ProofStage::as_str).join(", ");
        assert!(err.ends_with(&listed), "{err}");
    }

    #[test]
    fn every_job_stage_with_a_proof_call_maps_to_its_proof_stage() {
        assert_eq!(Stage::PC1.proof_stage(), Some(ProofStage::PC1));
        assert_eq!(
            Stage::PersistFiles.proof_stage(),
            Some(ProofStage::Transfer)
        );
        assert_eq!(Stage::WaitSeed.proof_stage(), None);
        let mapped: Vec<_> = Stage::ALL.iter().filter_map(|s| s.proof_stage()).collect();
        for stage in ProofStage::ALL {
            assert!(mapped.contains(&stage), "{stage} has a job stage");
        }
    }
}
