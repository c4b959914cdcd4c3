//! The rows of the manager's listings as they cross the wire (`Venus.ChainSectors`,
//! `Venus.ChainJobs`, `Venus.WdPoStJobs`) and as `util sealer … list --json` prints them:
//! what anyone needs to check the chain's work independently. Commitments, tickets, seeds
//! and proofs are lowercase hex; times are Unix seconds. Fields are declared in
//! alphabetical order, the order the JSON has always had.

use serde::{Deserialize, Serialize};

use crate::sector::{ActorId, SectorNumber};

/// A sector of the (mock) chain: `util sealer sectors list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorRow {
    /// Why it was aborted; present only for an `Aborted` sector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// The pre-committed data commitment (hex), once pre-committed.
    pub comm_d: Option<String>,
    /// The pre-committed replica commitment (hex), once pre-committed.
    pub comm_r: Option<String>,
    /// The miner.
    pub miner: ActorId,
    /// The sector number.
    pub number: SectorNumber,
    /// The deal pieces it was sealed with (empty for a CC sector; zero pieces left out).
    pub pieces: Vec<PieceRow>,
    /// The accepted (verified) seal proof (hex).
    pub proof: Option<String>,
    /// The seal proof type as its `RegisteredSealProof` integer (5: 2KiB V1_1).
    pub proof_type: i64,
    /// How many times its files were rebuilt and accepted.
    pub rebuilt: u32,
    /// The interactive seed (hex), once handed out.
    pub seed: Option<String>,
    /// `Allocated`, `PreCommitted`, `Proven`, `Finished`, `Upgrading`, `Upgraded`,
    /// `Aborted` (or `Unknown` for a state this build does not name).
    pub state: String,
    /// The ticket (hex): the pre-committed one, else the one handed out.
    pub ticket: Option<String>,
    /// Its accepted snap-up, which with `comm_r` verifies the upgrade.
    pub update: Option<UpdateRow>,
}

/// A deal piece of a [`SectorRow`] or an [`UpdateRow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRow {
    /// The piece CID (`baga…`).
    pub cid: String,
    /// Its deal id.
    pub deal_id: u64,
    /// Its padded size in bytes.
    pub size: u64,
}

/// An accepted snap-up of a [`SectorRow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRow {
    /// The new data commitment (hex), of `pieces`.
    pub comm_d_new: String,
    /// The new replica commitment (hex).
    pub comm_r_new: String,
    /// The deal pieces the upgrade put in.
    pub pieces: Vec<PieceRow>,
    /// The update proof (hex).
    pub proof: String,
    /// The update proof type as its `RegisteredUpdateProof` integer.
    pub proof_type: i64,
}

/// A rebuild or unseal job of the manager: `util sealer jobs list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainJobRow {
    /// When it was asked for.
    pub created_at: u64,
    /// An unseal's destination URLs (a market token redacted); empty for a rebuild.
    pub dest: Vec<String>,
    /// When it was done or dropped.
    pub finished_at: Option<u64>,
    /// Numbered from 1.
    pub id: u64,
    /// `rebuild` or `unseal`.
    pub kind: String,
    /// The sector's miner.
    pub miner: ActorId,
    /// The sector's number.
    pub number: SectorNumber,
    /// An unseal's piece CID.
    pub piece: Option<String>,
    /// Why it failed, or why the files last sent back were refused, or the failure its
    /// thread last reported (`"<level>: <message>"`).
    pub reason: Option<String>,
    /// The sector, `s-t0<miner>-<number>`.
    pub sector: String,
    /// `pending`, `taken`, `accepted` (the files were; the thread has yet to finish),
    /// `done` or `failed`.
    pub state: String,
}

/// A WindowPoSt job of the manager: `util sealer wdpost list`. Its proof covers
/// `sectors` less `faults`, verified with `verify_window_post`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WdPostJobRow {
    /// When it was made, in Unix seconds (as every time of this row).
    pub created_at: u64,
    /// When its challenge window closes (`None`: a job made before deadlines were kept):
    /// a proof after it is missed.
    pub deadline_at: Option<u64>,
    /// The last error: a try that failed, a lost heartbeat, why the proof was refused,
    /// or why the job was given up.
    pub error: Option<String>,
    /// The numbers of the sectors the worker reported faulty.
    pub faults: Vec<SectorNumber>,
    /// When it finished or was given up.
    pub finished_at: Option<u64>,
    /// Its holder's last heartbeat, while it is being proven.
    pub heartbeat_at: Option<u64>,
    /// `<round>-<index>`.
    pub id: String,
    /// The miner.
    pub miner: ActorId,
    /// The WindowPoSt proof type as its `RegisteredPoStProof` integer (10:
    /// StackedDrgWindow2KiBV1_2).
    pub proof_type: i64,
    /// The proofs sent back (hex).
    pub proofs: Vec<String>,
    /// The round (deadline), numbered from 1.
    pub round: u64,
    /// The sectors it proves.
    pub sectors: Vec<WdPostSectorRow>,
    /// The challenge randomness (hex).
    pub seed: String,
    /// When its last try was handed out.
    pub started_at: Option<u64>,
    /// `pending`, `proving`, `finished`, `missed` (its proof came back after the
    /// deadline) or `failed`.
    pub state: String,
    /// How many times it was handed out.
    pub tries: u32,
    /// Whether the proofs verified (`None`: not checked yet).
    pub verified: Option<bool>,
    /// The worker it was last handed to.
    pub worker: Option<String>,
}

/// A sector of a [`WdPostJobRow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WdPostSectorRow {
    /// Its replica commitment on chain (hex; the update's for an upgraded sector).
    pub comm_r: String,
    /// The sector number.
    pub number: SectorNumber,
    /// The store holding its files.
    pub store: String,
    /// Whether it was upgraded (its replica is `update/<sector>`).
    pub upgrade: bool,
}
