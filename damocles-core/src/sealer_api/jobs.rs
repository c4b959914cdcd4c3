//! The calls of the other plans: snap-up, rebuild, unseal and WindowPoSt jobs.

use serde::{Deserialize, Serialize};

use super::*;
use crate::sector::{ActorId, PoStProof, SectorNumber};
use crate::wire::{base64_bytes, go_nullable, Cid, Opaque};

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

/// A sector as a chain's WindowPoSt sees it (go-state-types' `builtin.ExtendedSectorInfo`):
/// what `Damocles.CheckProvable` (`util sealer proving check`) checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExtendedSectorInfo {
    /// Its seal proof type (a `RegisteredSealProof` integer).
    pub seal_proof: crate::sector::SealProof,
    /// The sector number.
    pub sector_number: SectorNumber,
    /// For an upgraded sector, the sealed CID of its sector key (the CC replica): its
    /// files are then `update/` and `update-cache/`. `null` otherwise.
    #[serde(default)]
    pub sector_key: Option<Cid>,
    /// Its replica commitment on chain as a sealed CID (`bagboea4b5abc…`; the update's
    /// for an upgraded sector).
    #[serde(rename = "SealedCID")]
    pub sealed_cid: Cid,
}
