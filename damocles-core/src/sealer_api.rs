//! The sealer API the sealer plan calls on the manager (reference §7.2), as types in the
//! Go wire shape (PascalCase, `[32]byte` as arrays of numbers, byte slices as base64, CIDs
//! as `{"/": …}`, enums as integers), and the [`SectorManager`] trait with one method per
//! call.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::failure::{Failure, FailureLevel};
use crate::sector::{ActorId, PoStProof, SealProof, SectorId, SectorNumber};
use crate::wire::Opaque;
pub use crate::wire::{base64_32, base64_bytes, go_nullable, Cid};

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

/// `Venus.AllocateSanpUpSector`'s spec (the original's spelling of the method): which
/// sectors the thread upgrades and which deals it takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateSnapUpSpec {
    /// Which sectors.
    pub sector: AllocateSectorSpec,
    /// Which deals.
    pub deals: AcquireDealsSpec,
}

/// What the chain knows of a sealed sector: its replica commitment (as 32 numbers) and
/// the rest of its on-chain info, which a worker does not need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorPublicInfo {
    /// The replica commitment on chain (the update's `comm_r_old`).
    pub comm_r: [u8; 32],
    /// The same commitment as a CID, when the manager sends it.
    #[serde(rename = "SealedCID", default, skip_serializing_if = "Option::is_none")]
    pub sealed_cid: Option<Cid>,
    /// The activation epoch.
    #[serde(default)]
    pub activation: i64,
    /// The expiration epoch.
    #[serde(default)]
    pub expiration: i64,
}

/// Where a sealed sector's files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorPrivateInfo {
    /// The attached store (instance name) holding `sealed/<sector>` and `cache/<sector>/`.
    pub access_instance: String,
}

/// A sealed CC sector the manager hands a snap-up thread, with the deals to put into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatedSnapUpSector {
    /// The sector.
    pub sector: AllocatedSector,
    /// The deal pieces (none: the job is aborted, "deals required"; Go slice, may be
    /// `null`).
    #[serde(default, deserialize_with = "go_nullable::deserialize")]
    pub pieces: Vec<SectorPiece>,
    /// Its on-chain info.
    pub public: SectorPublicInfo,
    /// Where its files are.
    pub private: SectorPrivateInfo,
}

/// What `Venus.SubmitSnapUpProof` puts on chain: the new commitments, where the updated
/// files are, the deal pieces and the update proof (base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapUpOnChainInfo {
    /// The new replica commitment (`comm_r_new`).
    pub comm_r: [u8; 32],
    /// The new data commitment (`comm_d_new`).
    pub comm_d: [u8; 32],
    /// The store the updated files were persisted to.
    pub access_instance: String,
    /// The CIDs of every piece the sector was assigned, pledge pieces included, in
    /// sector order (the Go manager checks count and order: `modules/sealer/sealer.go`).
    #[serde(default, deserialize_with = "go_nullable::deserialize")]
    pub pieces: Vec<Cid>,
    /// The update proof.
    #[serde(with = "base64_bytes")]
    pub proof: Vec<u8>,
}

/// What `Venus.AllocateRebuildSector` hands a rebuild thread: a sealed sector whose files
/// were lost, with what re-creates them bit for bit (the ticket it was sealed with and its
/// deal pieces) and, for an upgraded sector, its on-chain info after the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorRebuildInfo {
    /// The sector.
    pub sector: AllocatedSector,
    /// The ticket the sector was sealed with.
    pub ticket: Ticket,
    /// The legacy builtin-market deals (`Pieces`, `core.Deals`): filled by the Go
    /// manager for sectors sealed with such deals, `null` otherwise. Read before
    /// [`SectorRebuildInfo::pieces`], as the original worker reads them
    /// ([`SectorRebuildInfo::deal_pieces`]).
    #[serde(rename = "Pieces", default, with = "legacy_deals")]
    pub legacy_pieces: Option<Vec<SectorPiece>>,
    /// The deal pieces in the V2 shape (`PiecesV2`): those of the seal, or of the snap-up
    /// for an upgraded sector; `null` when there are none (CC) or they are legacy.
    #[serde(rename = "PiecesV2", default)]
    pub pieces: Option<Vec<SectorPiece>>,
    /// Whether the sector was upgraded (snap-up): the sealed replica is rebuilt as CC and
    /// the deal pieces encoded into it again.
    #[serde(rename = "IsSnapUp", default)]
    pub is_snap_up: bool,
    /// An upgraded sector's public info from before its upgrade, as the Go manager kept it
    /// when it allocated the snap-up (`SectorState.UpgradePublic` =
    /// `candidateSector.Public`, damocles-manager `modules/sealer/sealer.go`): its `CommR`
    /// is the sector key's, the update proof's `comm_r_old` (the original worker proves
    /// with it, `planner/common/sealing.rs` `snap_prove`). `None` for a sector never
    /// upgraded.
    #[serde(default)]
    pub upgrade_public: Option<SectorPublicInfo>,
}

impl SectorRebuildInfo {
    /// The sector's pieces as the original worker takes them
    /// (`planner/common/event.rs`, `AllocatedRebuildSector`): the legacy `Pieces` when
    /// present (even empty), else `PiecesV2`; `None` for a CC sector.
    pub fn deal_pieces(&self) -> Option<&Vec<SectorPiece>> {
        self.legacy_pieces.as_ref().or(self.pieces.as_ref())
    }
}

/// What `Venus.AllocateUnsealSector` hands an unseal thread: one deal piece to read back
/// out of a sealed sector, where the sector's files are, and what unsealing needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorUnsealInfo {
    /// The sector.
    pub sector: AllocatedSector,
    /// The piece to recover.
    pub piece_cid: Cid,
    /// Where the piece starts in the sector, in unpadded bytes.
    pub offset: u64,
    /// The piece's unpadded size in bytes.
    pub size: u64,
    /// Where the sector's files are.
    pub private_info: SectorPrivateInfo,
    /// The ticket the sector was sealed with.
    pub ticket: Ticket,
    /// The sector's data commitment.
    pub comm_d: [u8; 32],
    /// Where the piece goes (the manager is asked again with `AcquireUnsealDest`; Go
    /// slice, may be `null`).
    #[serde(default, deserialize_with = "go_nullable::deserialize")]
    pub dest: Vec<String>,
    /// The job's state on the manager (informational; venus-shared `UnsealState`, a
    /// string).
    #[serde(default)]
    pub state: UnsealState,
    /// The job's last error on the manager (informational).
    #[serde(default)]
    pub error_info: String,
}

/// An unseal job's state on the manager: venus-shared's `UnsealState`, a Go string
/// (`"set_up"`, `"unsealing"`, `"uploading"`, `"finished"`, `"failed"`; allocation sets
/// `"unsealing"`: damocles-manager `modules/impl/sectors/unseal.go`). Kept as it came, so
/// that a value a newer manager adds still reads; a number (this project's mock before it
/// spoke the Go form) reads as its decimal text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UnsealState(pub String);

impl UnsealState {
    /// `"set_up"`: the job is known, not yet handed out.
    pub const SET_UP: &str = "set_up";
    /// `"unsealing"`: handed to a worker.
    pub const UNSEALING: &str = "unsealing";
    /// `"uploading"`: the piece is being delivered.
    pub const UPLOADING: &str = "uploading";
    /// `"finished"`.
    pub const FINISHED: &str = "finished";
    /// `"failed"`.
    pub const FAILED: &str = "failed";

    /// The state named `name`.
    pub fn named(name: &str) -> Self {
        Self(name.to_owned())
    }
}

impl<'de> Deserialize<'de> for UnsealState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Number(i64),
        }
        Ok(match Option::<Wire>::deserialize(deserializer)? {
            Some(Wire::Text(text)) => Self(text),
            Some(Wire::Number(n)) => Self(n.to_string()),
            None => Self::default(),
        })
    }
}

/// What a wdpost thread may prove (`Venus.WdPoStAllocateJobs`' first parameter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatePoStSpec {
    /// The miners it proves for (`None`: any).
    pub allowed_miners: Option<Vec<ActorId>>,
    /// The PoSt proof types it proves, by name (`None`: any).
    pub allowed_proof_types: Option<Vec<PoStProof>>,
}

/// The store instances holding a sector's replica and cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorAccessStores {
    /// The store holding the replica (`sealed/<sector>`, or `update/<sector>` when upgraded).
    pub sealed_file: String,
    /// The store holding its cache (`cache/<sector>/`, or `update-cache/<sector>/`).
    pub cache_dir: String,
}

/// One sector of a WindowPoSt job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WdPoStSector {
    /// The sector number (the job names the miner).
    pub sector_id: SectorNumber,
    /// The replica commitment on chain (`comm_r_new` for an upgraded sector).
    pub comm_r: [u8; 32],
    /// Whether the sector was upgraded (snap-up): its replica is `update/<sector>`.
    pub upgrade: bool,
    /// Where its files are.
    pub accesses: SectorAccessStores,
}

/// What a WindowPoSt job proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WdPoStInput {
    /// The sectors, in the order the proof covers them (Go slice, may be `null`).
    #[serde(default, deserialize_with = "go_nullable::deserialize")]
    pub sectors: Vec<WdPoStSector>,
    /// The miner.
    pub miner_id: ActorId,
    /// The PoSt proof type, by name.
    pub proof_type: PoStProof,
    /// The challenge randomness (its top two bits cleared: `seed[31] & 0x3f`).
    pub seed: [u8; 32],
}

/// A WindowPoSt job (`Venus.WdPoStAllocateJobs` answers a list of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WdPoStJob {
    /// The manager's job id.
    pub id: String,
    /// What to prove.
    pub input: WdPoStInput,
}

/// What a wdpost thread sends back (`Venus.WdPoStFinishJob`): the proof over the sectors
/// not listed as faults (none when every sector is faulty), and the faulty sectors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPoStOutput {
    /// The SNARK proofs (one for all partitions with filecoin-proofs-api 19), base64.
    #[serde(default, deserialize_with = "go_nullable::deserialize")]
    pub proofs: Vec<Opaque>,
    /// The sector numbers whose replica or cache could not be read or proven.
    #[serde(default, deserialize_with = "go_nullable::deserialize")]
    pub faults: Vec<SectorNumber>,
}

macro_rules! int_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $num:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant = $num),+ }

        impl $name {
            /// The wire integer.
            pub fn as_i64(self) -> i64 { self as i64 }

            /// The value of a wire integer, if it is one.
            pub fn from_i64(value: i64) -> Option<Self> {
                match value { $($num => Some($name::$variant),)+ _ => None }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_i64(self.as_i64())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = i64::deserialize(deserializer)?;
                Self::from_i64(value).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", stringify!($name), " {}"), value))
                })
            }
        }
    };
}

int_enum! {
    /// The manager's answer to a submission.
    SubmitResult {
        /// Not known.
        Unknown = 0,
        /// Accepted.
        Accepted = 1,
        /// Already submitted with the same content.
        DuplicateSubmit = 2,
        /// Already submitted with other content.
        MismatchedSubmission = 3,
        /// Refused.
        Rejected = 4,
        /// The sector's files are missing.
        FilesMissed = 5,
    }
}

int_enum! {
    /// Where a submitted message stands on chain.
    OnChainState {
        /// Not known.
        Unknown = 0,
        /// Waiting to be sent.
        Pending = 1,
        /// Sent, not yet landed.
        Packed = 2,
        /// On chain.
        Landed = 3,
        /// The manager has no record of it.
        NotFound = 4,
        /// Failed; may be resubmitted.
        Failed = 5,
        /// Failed for good.
        PermFailed = 6,
        /// The sector should be aborted.
        ShouldAbort = 7,
    }
}

/// The answer to `SubmitPreCommit` and `SubmitProof`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubmitResp {
    /// The result.
    pub res: SubmitResult,
    /// Why, when not accepted.
    pub desc: Option<String>,
}

/// The answer to `PollPreCommitState` and `PollProofState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PollStateResp {
    /// The state.
    pub state: OnChainState,
    /// Details.
    pub desc: Option<String>,
}

/// Which worker thread a report comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerIdentifier {
    /// The worker's instance name.
    pub instance: String,
    /// The thread's location.
    pub location: String,
}

/// A state change in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateChange {
    /// The state before.
    pub prev: String,
    /// The state after.
    pub next: String,
    /// The event, or `None`.
    pub event: String,
}

/// A failure in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportFailure {
    /// `Temporary`, `Permanent`, `Critical` or `Abort`.
    pub level: String,
    /// The message.
    pub desc: String,
}

impl From<&Failure> for ReportFailure {
    fn from(failure: &Failure) -> Self {
        Self {
            level: failure.level.report_name().to_owned(),
            desc: failure.message.clone(),
        }
    }
}

/// The body of `ReportState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportStateReq {
    /// Who reports.
    pub worker: WorkerIdentifier,
    /// What changed.
    pub state_change: StateChange,
    /// What failed, if anything.
    pub failure: Option<ReportFailure>,
}

/// The answer to `ReportState`: whether the manager has already finalized the sector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorStateResp {
    /// The sector.
    #[serde(rename = "Id")]
    pub id: SectorId,
    /// Whether the manager finalized or aborted it; the worker then drops it.
    #[serde(rename = "Finalized")]
    pub finalized: bool,
    /// Why it was aborted, if it was.
    #[serde(rename = "AbortReason")]
    pub abort_reason: Option<String>,
}

/// A persistent store the manager knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoreBasicInfo {
    /// The store's instance name.
    pub name: String,
    /// Its path.
    pub path: String,
    /// Whether the store takes only sectors it was chosen for (informational).
    #[serde(default)]
    pub strict: bool,
    /// Whether the store is read-only (informational).
    #[serde(default)]
    pub read_only: bool,
    /// Its weight in the manager's choice of a store (informational).
    #[serde(default)]
    pub weight: u64,
    /// Free-form metadata (Go `map[string]string`: `null` for a store configured without
    /// any, and written so when empty, as the Go manager does).
    #[serde(
        default,
        deserialize_with = "go_nullable::deserialize",
        serialize_with = "empty_map_as_null"
    )]
    pub meta: BTreeMap<String, String>,
}

impl StoreBasicInfo {
    /// A store named `name` at the path `name`, with no metadata (what the mock answers).
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            path: name.clone(),
            name,
            strict: false,
            read_only: false,
            weight: 1,
            meta: BTreeMap::new(),
        }
    }
}

fn empty_map_as_null<S: serde::Serializer>(
    map: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if map.is_empty() {
        serializer.serialize_none()
    } else {
        map.serialize(serializer)
    }
}

/// What went wrong calling the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagerErrorKind {
    /// The manager does not know the sector (JSON-RPC code 11001): abort it.
    SectorStateNotFound,
    /// The manager could not be reached or answered garbage: retry.
    Transport,
    /// The manager answered with another error code: retry.
    Remote {
        /// The JSON-RPC error code.
        code: i64,
    },
}

/// An error from a [`SectorManager`] call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ManagerError {
    /// What kind of error.
    pub kind: ManagerErrorKind,
    /// What happened.
    pub message: String,
}

/// The JSON-RPC error code the manager uses for an unknown sector.
pub const SECTOR_STATE_NOT_FOUND_CODE: i64 = 11001;

impl ManagerError {
    /// A sector-state-not-found error.
    pub fn sector_not_found(message: impl Into<String>) -> Self {
        Self {
            kind: ManagerErrorKind::SectorStateNotFound,
            message: message.into(),
        }
    }

    /// A transport error.
    pub fn transport(message: impl Into<String>) -> Self {
        Self {
            kind: ManagerErrorKind::Transport,
            message: message.into(),
        }
    }

    /// A remote error with a code.
    pub fn remote(code: i64, message: impl Into<String>) -> Self {
        Self {
            kind: ManagerErrorKind::Remote { code },
            message: message.into(),
        }
    }

    /// Whether the manager said it does not know the sector.
    pub fn is_sector_not_found(&self) -> bool {
        self.kind == ManagerErrorKind::SectorStateNotFound
    }

    /// The failure level of this error in a sealing step: abort for an unknown sector,
    /// temporary for everything else (an outage is retried, not fatal).
    pub fn level(&self) -> FailureLevel {
        match self.kind {
            ManagerErrorKind::SectorStateNotFound => FailureLevel::Abort,
            ManagerErrorKind::Transport | ManagerErrorKind::Remote { .. } => {
                FailureLevel::Temporary
            }
        }
    }

    /// This error as a classified failure, with the call's name as context.
    pub fn into_failure(self, call: impl fmt::Display) -> Failure {
        let context = match self.kind {
            ManagerErrorKind::SectorStateNotFound => {
                format!("{call}: from error code: sector state not found, with msg")
            }
            _ => format!("{call}: rpc error"),
        };
        Failure::new(self.level(), self.message).context(context)
    }
}

/// The manager as the sealer plan sees it: one method per sealer API call.
#[async_trait]
pub trait SectorManager: Send + Sync {
    /// `Venus.AllocateSector`: a new sector, or `None` when there is none to seal.
    async fn allocate_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<AllocatedSector>, ManagerError>;

    /// `Venus.AcquireDeals`: the sector's deal pieces (`None`: CC).
    async fn acquire_deals(
        &self,
        id: SectorId,
        spec: AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError>;

    /// `Venus.AssignTicket`.
    async fn assign_ticket(&self, id: SectorId) -> Result<Ticket, ManagerError>;

    /// `Venus.SubmitPreCommit`; `reset` replaces an earlier submission.
    async fn submit_pre_commit(
        &self,
        sector: AllocatedSector,
        info: PreCommitOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError>;

    /// `Venus.PollPreCommitState`.
    async fn poll_pre_commit_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError>;

    /// `Venus.StoreReserveSpace`: a store among `candidates` with `size` bytes reserved.
    async fn store_reserve_space(
        &self,
        id: SectorId,
        size: u64,
        candidates: Vec<String>,
    ) -> Result<Option<StoreBasicInfo>, ManagerError>;

    /// `Venus.StoreBasicInfo`: what the manager knows of a store.
    async fn store_basic_info(
        &self,
        instance: String,
    ) -> Result<Option<StoreBasicInfo>, ManagerError>;

    /// `Venus.SubmitPersistedEx`: whether the files are provable in that store.
    async fn submit_persisted(
        &self,
        id: SectorId,
        instance: String,
        is_upgrade: bool,
    ) -> Result<bool, ManagerError>;

    /// `Venus.WaitSeed`.
    async fn wait_seed(
        &self,
        id: SectorId,
        proof_type: SealProof,
    ) -> Result<WaitSeedResp, ManagerError>;

    /// `Venus.SubmitProof`; `reset` replaces an earlier submission.
    async fn submit_proof(
        &self,
        id: SectorId,
        info: ProofOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError>;

    /// `Venus.PollProofState`.
    async fn poll_proof_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError>;

    /// `Venus.AllocateSanpUpSector` (sic): a sealed CC sector to upgrade with deals, or
    /// `None` when there is none. A manager without snap-up jobs answers `None`, as the
    /// original's mock does.
    async fn allocate_snapup_sector(
        &self,
        _spec: AllocateSnapUpSpec,
    ) -> Result<Option<AllocatedSnapUpSector>, ManagerError> {
        Ok(None)
    }

    /// `Venus.SubmitSnapUpProof`.
    async fn submit_snapup_proof(
        &self,
        _id: SectorId,
        _info: SnapUpOnChainInfo,
    ) -> Result<SubmitResp, ManagerError> {
        Err(ManagerError::remote(
            1,
            "this manager takes no snap-up proofs (Venus.SubmitSnapUpProof)",
        ))
    }

    /// `Venus.AllocateRebuildSector`: a sealed sector whose files must be re-created, or
    /// `None` when there is none (as a manager without rebuild jobs answers).
    async fn allocate_rebuild_sector(
        &self,
        _spec: AllocateSectorSpec,
    ) -> Result<Option<SectorRebuildInfo>, ManagerError> {
        Ok(None)
    }

    /// `Venus.AllocateUnsealSector`: a piece to read back out of a sealed sector, or `None`
    /// when there is none (as a manager without unseal jobs answers).
    async fn allocate_unseal_sector(
        &self,
        _spec: AllocateSectorSpec,
    ) -> Result<Option<SectorUnsealInfo>, ManagerError> {
        Ok(None)
    }

    /// `Venus.AcquireUnsealDest`: the URLs the unsealed piece goes to (`file:///…`,
    /// `http(s)://…`, `store://<instance>/<path>`, `store:///<piece cid>`).
    async fn acquire_unseal_dest(
        &self,
        _id: SectorId,
        _piece_cid: Cid,
    ) -> Result<Vec<String>, ManagerError> {
        Ok(Vec::new())
    }

    /// `Venus.AchieveUnsealSector`: the piece was delivered (`error` empty) or could not be.
    async fn achieve_unseal_sector(
        &self,
        _id: SectorId,
        _piece_cid: Cid,
        _error: String,
    ) -> Result<(), ManagerError> {
        Err(ManagerError::remote(
            1,
            "this manager has no unseal jobs (Venus.AchieveUnsealSector)",
        ))
    }

    /// `Venus.WdPoStAllocateJobs`: at most `num` WindowPoSt jobs for worker `worker`. A
    /// manager without WindowPoSt jobs fails (the original's answers "method not found"
    /// unless started with `--worker-prover`).
    async fn wdpost_allocate_jobs(
        &self,
        _spec: AllocatePoStSpec,
        _num: u32,
        _worker: String,
    ) -> Result<Vec<WdPoStJob>, ManagerError> {
        Err(ManagerError::remote(
            -32601,
            "this manager has no WindowPoSt jobs (Venus.WdPoStAllocateJobs)",
        ))
    }

    /// `Venus.WdPoStHeartbeatJobs`: `worker` is still proving `ids`. A job whose heartbeat
    /// stops is given to another worker.
    async fn wdpost_heartbeat_jobs(
        &self,
        _ids: Vec<String>,
        _worker: String,
    ) -> Result<(), ManagerError> {
        Err(ManagerError::remote(
            -32601,
            "this manager has no WindowPoSt jobs (Venus.WdPoStHeartbeatJobs)",
        ))
    }

    /// `Venus.WdPoStFinishJob`: the job's proof and faults, or (`output` `None`) why it
    /// could not be proven.
    async fn wdpost_finish_job(
        &self,
        _id: String,
        _output: Option<WindowPoStOutput>,
        _error: String,
    ) -> Result<(), ManagerError> {
        Err(ManagerError::remote(
            -32601,
            "this manager has no WindowPoSt jobs (Venus.WdPoStFinishJob)",
        ))
    }

    /// `Venus.ReportState`.
    async fn report_state(
        &self,
        id: SectorId,
        req: ReportStateReq,
    ) -> Result<SectorStateResp, ManagerError>;

    /// `Venus.ReportFinalized`.
    async fn report_finalized(&self, id: SectorId) -> Result<(), ManagerError>;

    /// `Venus.ReportAborted`.
    async fn report_aborted(&self, id: SectorId, reason: String) -> Result<(), ManagerError>;
}
