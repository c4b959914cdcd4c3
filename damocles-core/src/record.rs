//! The persisted sector record of a thread, and the events that move it.
//!
//! The record is what survives a crash: it is written after every transition, so a
//! restarted thread re-runs the step of its persisted state.

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::sealer_api::{
    AllocatedSector, AllocatedSnapUpSector, Cid, SectorPiece, SectorRebuildInfo, SectorUnsealInfo,
    Seed, Ticket,
};
use crate::state::{EventKind, State};
pub use crate::wire::Opaque;

/// How many transitions a record keeps in its history.
pub const HISTORY_LIMIT: usize = 64;

/// The current record format.
pub const RECORD_VERSION: u32 = 1;

/// A piece written into the staged sector file: its commitment and padded size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedPiece {
    /// The piece commitment (comm_p).
    pub commitment: [u8; 32],
    /// The unpadded size in bytes.
    pub size: u64,
}

/// The commitments PC2 produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreCommitOutput {
    /// The replica commitment.
    pub comm_r: [u8; 32],
    /// The data commitment.
    pub comm_d: [u8; 32],
}

/// The sealed CC sector a snap-up job upgrades: the "sector key" replica's commitment on
/// chain and the store that holds its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorKey {
    /// The replica commitment on chain (`comm_r_old` of the update proof).
    pub comm_r: [u8; 32],
    /// The attached store holding `sealed/<sector>` and `cache/<sector>/`.
    pub store: String,
}

/// The commitments of a snap encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapEncodeOutput {
    /// The updated replica's commitment.
    pub comm_r_new: [u8; 32],
    /// The root of its last tree (`comm_r_last`).
    pub comm_r_last_new: [u8; 32],
    /// The data commitment of the deal pieces.
    pub comm_d_new: [u8; 32],
}

/// The piece an unseal job recovers, and where the sector's files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsealTarget {
    /// The piece.
    pub piece_cid: Cid,
    /// Where it starts in the sector, in unpadded bytes.
    pub offset: u64,
    /// Its unpadded size in bytes.
    pub size: u64,
    /// The sector's data commitment.
    pub comm_d: [u8; 32],
    /// The attached store holding `sealed/<sector>` and `cache/<sector>/`.
    pub store: String,
}

/// An event: the result of a step, carrying what the step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the event of the same name in EventKind
#[non_exhaustive]
pub enum Event {
    /// Set the state directly (`resume --state`), without a table lookup.
    SetState(State),
    Allocate(AllocatedSector),
    AcquireDeals(Option<Vec<SectorPiece>>),
    AddPiece(Vec<AddedPiece>),
    BuildTreeD,
    AssignTicket(Option<Ticket>),
    PC1(Ticket, Opaque),
    PC2(PreCommitOutput),
    PC2NeedSyntheticProof(PreCommitOutput),
    SyntheticPoRep,
    SubmitPC,
    CheckPC,
    ReSubmitPC,
    Persist(String),
    SubmitPersistance,
    AssignSeed(Seed),
    C1(Opaque),
    C2(Vec<u8>),
    SubmitProof,
    ReSubmitProof,
    Finish,
    AllocatedSnapUpSector(AllocatedSnapUpSector),
    SnapEncode(SnapEncodeOutput),
    SnapProve(Vec<u8>),
    RePersist,
    AllocatedRebuildSector(SectorRebuildInfo),
    CheckSealed,
    SkipSnap,
    AllocatedUnsealSector(SectorUnsealInfo),
    /// The piece was unsealed: how many bytes.
    UnsealDone(u64),
    UploadPieceDone,
}

impl Event {
    /// The event's kind, the key of the transition tables.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::SetState(_) => EventKind::SetState,
            Event::Allocate(_) => EventKind::Allocate,
            Event::AcquireDeals(_) => EventKind::AcquireDeals,
            Event::AddPiece(_) => EventKind::AddPiece,
            Event::BuildTreeD => EventKind::BuildTreeD,
            Event::AssignTicket(_) => EventKind::AssignTicket,
            Event::PC1(..) => EventKind::PC1,
            Event::PC2(_) => EventKind::PC2,
            Event::PC2NeedSyntheticProof(_) => EventKind::PC2NeedSyntheticProof,
            Event::SyntheticPoRep => EventKind::SyntheticPoRep,
            Event::SubmitPC => EventKind::SubmitPC,
            Event::CheckPC => EventKind::CheckPC,
            Event::ReSubmitPC => EventKind::ReSubmitPC,
            Event::Persist(_) => EventKind::Persist,
            Event::SubmitPersistance => EventKind::SubmitPersistance,
            Event::AssignSeed(_) => EventKind::AssignSeed,
            Event::C1(_) => EventKind::C1,
            Event::C2(_) => EventKind::C2,
            Event::SubmitProof => EventKind::SubmitProof,
            Event::ReSubmitProof => EventKind::ReSubmitProof,
            Event::Finish => EventKind::Finish,
            Event::AllocatedSnapUpSector(_) => EventKind::AllocatedSnapUpSector,
            Event::SnapEncode(_) => EventKind::SnapEncode,
            Event::SnapProve(_) => EventKind::SnapProve,
            Event::RePersist => EventKind::RePersist,
            Event::AllocatedRebuildSector(_) => EventKind::AllocatedRebuildSector,
            Event::CheckSealed => EventKind::CheckSealed,
            Event::SkipSnap => EventKind::SkipSnap,
            Event::AllocatedUnsealSector(_) => EventKind::AllocatedUnsealSector,
            Event::UnsealDone(_) => EventKind::UnsealDone,
            Event::UploadPieceDone => EventKind::UploadPieceDone,
        }
    }
}

/// One transition in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, in Unix seconds.
    pub at: u64,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The event.
    pub event: EventKind,
}

/// An event the record's plan has no row for in its current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected event {event:?} for state {state} in plan {plan}")]
pub struct TransitionError {
    /// The record's plan.
    pub plan: Plan,
    /// The record's state.
    pub state: State,
    /// The event.
    pub event: EventKind,
}

/// A thread's sector record: the job's state and everything its steps produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorRecord {
    /// The record format.
    pub version: u32,
    /// The plan the sector was created under; it finishes under it.
    pub plan: Plan,
    /// The current state.
    pub state: State,
    /// The state before.
    pub prev_state: Option<State>,
    /// Temporary failures so far (per sector, cumulative across states).
    pub retry: u32,
    /// The allocated sector.
    pub sector: Option<AllocatedSector>,
    /// The deals (`None` or empty: CC).
    pub deals: Option<Vec<SectorPiece>>,
    /// The pieces written into the staged file.
    pub pieces: Option<Vec<AddedPiece>>,
    /// The ticket.
    pub ticket: Option<Ticket>,
    /// PC1's output.
    pub pc1_output: Option<Opaque>,
    /// PC2's commitments.
    pub pc2_output: Option<PreCommitOutput>,
    /// Whether the next pre-commit submission replaces an earlier one.
    pub pc_resubmit: bool,
    /// The store the sealed files were persisted to.
    pub persist_instance: Option<String>,
    /// The interactive seed.
    pub seed: Option<Seed>,
    /// C1's output.
    pub c1_output: Option<Opaque>,
    /// C2's output: the proof.
    #[serde(with = "opt_base64", default)]
    pub proof: Option<Vec<u8>>,
    /// Whether the next proof submission replaces an earlier one.
    pub proof_resubmit: bool,
    /// The thread was paused on this record (kept across restarts).
    pub paused: bool,
    /// The failure that paused it.
    pub last_error: Option<String>,
    /// The last transitions, oldest first, at most [`HISTORY_LIMIT`].
    pub history: Vec<HistoryEntry>,
    /// The thread is draining: it takes no new sector (kept across sectors and restarts).
    #[serde(default)]
    pub draining: bool,
    /// Snap-up: the sealed sector being upgraded.
    #[serde(default)]
    pub sector_key: Option<SectorKey>,
    /// Snap-up: the encode's commitments.
    #[serde(default)]
    pub snap_encode_output: Option<SnapEncodeOutput>,
    /// Snap-up: the update proof.
    #[serde(with = "opt_base64", default)]
    pub update_proof: Option<Vec<u8>>,
    /// Rebuild of an upgraded (snap-up) sector: the comm_r of its sector key, on chain
    /// before the upgrade (the job's `UpgradePublic.CommR`; `None`: never upgraded). Its
    /// sealed replica is rebuilt as CC and must give this comm_r; `deals` are then encoded
    /// into it again (the manager checks the new replica's comm_r when it is persisted).
    #[serde(default)]
    pub comm_r_before_upgrade: Option<[u8; 32]>,
    /// Unseal: the piece to recover.
    #[serde(default)]
    pub unseal: Option<UnsealTarget>,
}

mod opt_base64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::record::Opaque;

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        bytes.clone().map(Opaque).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Opaque>::deserialize(d)?.map(|o| o.0))
    }
}

impl SectorRecord {
    /// An empty record under `plan`.
    pub fn new(plan: Plan) -> Self {
        Self {
            version: RECORD_VERSION,
            plan,
            state: State::Empty,
            prev_state: None,
            retry: 0,
            sector: None,
            deals: None,
            pieces: None,
            ticket: None,
            pc1_output: None,
            pc2_output: None,
            pc_resubmit: false,
            persist_instance: None,
            seed: None,
            c1_output: None,
            proof: None,
            proof_resubmit: false,
            paused: false,
            last_error: None,
            history: Vec::new(),
            draining: false,
            sector_key: None,
            snap_encode_output: None,
            update_proof: None,
            comm_r_before_upgrade: None,
            unseal: None,
        }
    }

    /// Whether this is the rebuild of an upgraded sector.
    pub fn rebuilds_upgrade(&self) -> bool {
        self.comm_r_before_upgrade.is_some()
    }

    /// Whether the sector holds deal pieces (not only pledge pieces).
    pub fn has_deals(&self) -> bool {
        self.deals
            .as_ref()
            .is_some_and(|deals| deals.iter().any(|d| !d.is_pledge()))
    }

    /// Applies an event at `at` (Unix seconds): looks the next state up in the plan's table
    /// (`SetState` sets it directly), stores what the event carries, and records the
    /// transition in the history. An event the table has no row for changes nothing.
    pub fn apply(&mut self, event: Event, at: u64) -> Result<State, TransitionError> {
        let kind = event.kind();
        let next = match event {
            Event::SetState(state) => state,
            _ => self
                .plan
                .next_state(self.state, kind)
                .ok_or(TransitionError {
                    plan: self.plan,
                    state: self.state,
                    event: kind,
                })?,
        };
        self.keep(event);
        self.history.push(HistoryEntry {
            at,
            from: self.state,
            to: next,
            event: kind,
        });
        if self.history.len() > HISTORY_LIMIT {
            let excess = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..excess);
        }
        self.prev_state = Some(self.state);
        self.state = next;
        Ok(next)
    }

    /// Stores what `event` carries in the record's fields.
    fn keep(&mut self, event: Event) {
        match event {
            Event::Allocate(sector) => self.sector = Some(sector),
            Event::AcquireDeals(deals) => self.deals = deals,
            Event::AddPiece(pieces) => self.pieces = Some(pieces),
            Event::AssignTicket(ticket) => self.ticket = ticket,
            Event::PC1(ticket, out) => {
                self.ticket = Some(ticket);
                self.pc1_output = Some(out);
            }
            Event::PC2(out) | Event::PC2NeedSyntheticProof(out) => self.pc2_output = Some(out),
            Event::SubmitPC => self.pc_resubmit = false,
            Event::ReSubmitPC => self.pc_resubmit = true,
            Event::Persist(instance) => self.persist_instance = Some(instance),
            Event::AssignSeed(seed) => self.seed = Some(seed),
            Event::C1(out) => self.c1_output = Some(out),
            Event::C2(proof) => self.proof = Some(proof),
            Event::SubmitProof => self.proof_resubmit = false,
            Event::ReSubmitProof => self.proof_resubmit = true,
            Event::AllocatedSnapUpSector(allocated) => {
                self.sector = Some(allocated.sector);
                self.deals = Some(allocated.pieces);
                self.sector_key = Some(SectorKey {
                    comm_r: allocated.public.comm_r,
                    store: allocated.private.access_instance,
                });
            }
            Event::SnapEncode(out) => self.snap_encode_output = Some(out),
            Event::SnapProve(proof) => self.update_proof = Some(proof),
            Event::AllocatedUnsealSector(info) => {
                self.sector = Some(info.sector);
                self.ticket = Some(info.ticket);
                self.unseal = Some(UnsealTarget {
                    piece_cid: info.piece_cid,
                    offset: info.offset,
                    size: info.size,
                    comm_d: info.comm_d,
                    store: info.private_info.access_instance,
                });
            }
            Event::AllocatedRebuildSector(info) => {
                self.sector = Some(info.sector);
                self.deals = info.legacy_pieces.or(info.pieces);
                self.ticket = Some(info.ticket);
                self.comm_r_before_upgrade = info
                    .upgrade_public
                    .filter(|_| info.is_snap_up)
                    .map(|p| p.comm_r);
            }
            Event::SetState(_)
            | Event::RePersist
            | Event::CheckSealed
            | Event::SkipSnap
            | Event::UnsealDone(_)
            | Event::UploadPieceDone
            | Event::BuildTreeD
            | Event::SyntheticPoRep
            | Event::CheckPC
            | Event::SubmitPersistance
            | Event::Finish => {}
        }
    }
}
