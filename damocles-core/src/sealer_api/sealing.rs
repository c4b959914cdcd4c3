//! The calls of the sealer plan: allocation, deals, ticket, pre-commit, seed, proof.

use serde::{Deserialize, Serialize};

use crate::sector::{ActorId, SealProof, SectorId};
use crate::wire::{base64_32, base64_bytes, go_nullable, Cid};

/// What sectors a worker may take: `None` or an empty list means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateSectorSpec {
    /// Miners the worker seals for.
    pub allowed_miners: Option<Vec<ActorId>>,
    /// Proof types the worker seals.
    pub allowed_proof_types: Option<Vec<SealProof>>,
}

/// A sector the manager allocated to a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatedSector {
    /// The sector.
    #[serde(rename = "ID")]
    pub id: SectorId,
    /// The proof type it is sealed with.
    #[serde(rename = "ProofType")]
    pub proof_type: SealProof,
}

/// Limits on the deals a sector takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AcquireDealsSpec {
    /// At most this many deals.
    pub max_deals: Option<u64>,
    /// Only if the deals fill at least this many bytes.
    pub min_used_space: Option<u64>,
}

/// A piece as the manager describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRef {
    /// Padded size in bytes.
    #[serde(rename = "Size")]
    pub size: u64,
    /// The piece CID.
    #[serde(rename = "PieceCID")]
    pub cid: Cid,
}

/// The deal a piece belongs to. A pledge (CC filler) piece has deal id and allocation id 0.
/// Fields a manager leaves out read as 0 / false; fields it adds are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DealInfo {
    /// The builtin market deal id.
    #[serde(rename = "DealID")]
    pub deal_id: u64,
    /// The direct data onboarding allocation id.
    #[serde(rename = "AllocationID")]
    pub allocation_id: u64,
    /// Unpadded payload size.
    pub payload_size: u64,
    /// Whether the deal is in the builtin market (else DDO). Absent means builtin (older
    /// managers know no other), so that a deal id alone never reads as a pledge.
    #[serde(default = "builtin_market")]
    pub is_builtin_market: bool,
}

/// A deal piece for a sector, in the V2 shape (`{"Piece": {"Size", "PieceCID"},
/// "DealInfo": {…}}`). It also reads the legacy shape older managers answer
/// `Venus.AcquireDeals` with (`{"ID", "PayloadSize", "Piece": {"Size", "Offset",
/// "Cid"}}`), as a builtin-market deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", from = "WirePiece")]
pub struct SectorPiece {
    /// The piece.
    pub piece: PieceRef,
    /// Its deal.
    pub deal_info: DealInfo,
}

fn builtin_market() -> bool {
    true
}

/// A builtin-market deal in the legacy shape (`core.LegacyDealInfo`, damocles-manager
/// `core/types.go`): `{"ID", "PayloadSize", "Piece": {"Size", "Offset", "Cid"}, "Proposal",
/// "IsCompatible"}`. Older managers answer `Venus.AcquireDeals` with it, and the Go
/// manager fills `SectorRebuildInfo.Pieces` with it for sectors sealed with such deals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LegacyDeal {
    /// The deal id (0: a pledge piece).
    #[serde(rename = "ID")]
    pub id: u64,
    /// Unpadded payload size.
    #[serde(default)]
    pub payload_size: u64,
    /// The piece.
    pub piece: LegacyPieceInfo,
    /// The deal proposal (`*market.DealProposal`: `null` for pledge pieces); kept as it
    /// came, never read.
    #[serde(default)]
    pub proposal: Option<serde_json::Value>,
    /// Whether the deal is compatible with the sector (informational).
    #[serde(default)]
    pub is_compatible: bool,
}

/// The piece of a [`LegacyDeal`] (`core.PieceInfo`): padded size, padded offset in the
/// sector, CID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LegacyPieceInfo {
    /// Padded size in bytes.
    pub size: u64,
    /// Padded offset in the sector, in bytes.
    #[serde(default)]
    pub offset: u64,
    /// The piece CID.
    pub cid: Cid,
}

/// Either shape of a deal piece on the wire. A V2 piece's `DealInfo` is a Go pointer:
/// `null` (a pledge piece of a sector imported from lotus) reads as a pledge piece.
#[derive(Deserialize)]
#[serde(untagged)]
enum WirePiece {
    V2 {
        #[serde(rename = "Piece")]
        piece: PieceRef,
        #[serde(
            rename = "DealInfo",
            default,
            deserialize_with = "go_nullable::deserialize"
        )]
        deal_info: DealInfo,
    },
    Legacy(LegacyDeal),
}

impl From<WirePiece> for SectorPiece {
    fn from(wire: WirePiece) -> Self {
        match wire {
            WirePiece::V2 { piece, deal_info } => Self { piece, deal_info },
            WirePiece::Legacy(deal) => Self::from(deal),
        }
    }
}

impl From<LegacyDeal> for SectorPiece {
    fn from(deal: LegacyDeal) -> Self {
        Self {
            piece: PieceRef {
                size: deal.piece.size,
                cid: deal.piece.cid,
            },
            deal_info: DealInfo {
                deal_id: deal.id,
                allocation_id: 0,
                payload_size: deal.payload_size,
                is_builtin_market: true,
            },
        }
    }
}

/// Serde helper for `SectorRebuildInfo.Pieces`: a Go `core.Deals` (legacy deals, `null`
/// when absent) read into and written from [`SectorPiece`]s, each piece's offset where
/// [`crate::piece::piece_offsets`] places it.
pub mod legacy_deals {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{LegacyDeal, LegacyPieceInfo, SectorPiece};

    /// Writes the pieces as legacy deals (`None`: `null`).
    pub fn serialize<S: Serializer>(
        pieces: &Option<Vec<SectorPiece>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let deals = pieces.as_ref().map(|pieces| {
            let offsets = crate::piece::piece_offsets(pieces.iter().map(|p| p.piece.size));
            pieces
                .iter()
                .zip(offsets)
                .map(|(p, offset)| LegacyDeal {
                    id: p.deal_info.deal_id,
                    payload_size: p.deal_info.payload_size,
                    piece: LegacyPieceInfo {
                        size: p.piece.size,
                        offset,
                        cid: p.piece.cid.clone(),
                    },
                    proposal: None,
                    is_compatible: false,
                })
                .collect::<Vec<_>>()
        });
        deals.serialize(serializer)
    }

    /// Reads legacy deals (`null` or absent: `None`).
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<SectorPiece>>, D::Error> {
        let deals = Option::<Vec<LegacyDeal>>::deserialize(deserializer)?;
        Ok(deals.map(|deals| deals.into_iter().map(SectorPiece::from).collect()))
    }
}

impl SectorPiece {
    /// Whether this is a pledge piece rather than a deal's.
    pub fn is_pledge(&self) -> bool {
        if self.deal_info.is_builtin_market {
            self.deal_info.deal_id == 0
        } else {
            self.deal_info.allocation_id == 0
        }
    }
}

/// The sealing ticket: chain randomness at an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The randomness.
    #[serde(rename = "Ticket", with = "base64_32")]
    pub ticket: [u8; 32],
    /// The epoch it was drawn at.
    #[serde(rename = "Epoch")]
    pub epoch: i64,
}

/// The interactive seed: chain randomness after the pre-commit landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// The randomness.
    #[serde(rename = "Seed", with = "base64_32")]
    pub seed: [u8; 32],
    /// The epoch it was drawn at.
    #[serde(rename = "Epoch")]
    pub epoch: i64,
}

/// The answer to `WaitSeed`: a seed, or how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitSeedResp {
    /// Whether the seed is not yet available and the worker should wait.
    pub should_wait: bool,
    /// Seconds to wait.
    pub delay: i64,
    /// The seed, once available.
    pub seed: Option<Seed>,
}

/// What a pre-commit puts on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreCommitOnChainInfo {
    /// The replica commitment.
    pub comm_r: [u8; 32],
    /// The data commitment.
    pub comm_d: [u8; 32],
    /// The ticket the replica was sealed with.
    pub ticket: Ticket,
}

/// What a prove-commit puts on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofOnChainInfo {
    /// The SNARK proof bytes.
    #[serde(rename = "Proof", with = "base64_bytes")]
    pub proof: Vec<u8>,
}
