//! The chain's records as the rows of its listings (`damocles_core::listing`): what
//! `util sealer sectors|jobs|wdpost list` show and `--json` prints.

use damocles_core::listing::{
    ChainJobRow, PieceRow, SectorRow, UpdateRow, WdPostJobRow, WdPostSectorRow,
};
use damocles_core::sealer_api::SectorPiece;

use super::jobs::{kind_name, ChainJob, JobKind, JobState};
use super::wdpost_job::{WdPostJob, WdPostJobState};
use super::{ChainSector, ChainSectorState};
use crate::unseal::redacted;

/// The deal pieces of an assignment; zero pieces, which no listing shows, left out.
fn deal_rows(pieces: &[SectorPiece]) -> Vec<PieceRow> {
    pieces
        .iter()
        .filter(|p| !p.is_pledge())
        .map(|p| PieceRow {
            cid: p.piece.cid.text.clone(),
            deal_id: p.deal_info.deal_id,
            size: p.piece.size,
        })
        .collect()
}

impl ChainSector {
    /// Its row in `util sealer sectors list`.
    pub fn row(&self) -> SectorRow {
        let (state, abort_reason) = match &self.state {
            ChainSectorState::Allocated => ("Allocated", None),
            ChainSectorState::PreCommitted => ("PreCommitted", None),
            ChainSectorState::Proven => ("Proven", None),
            ChainSectorState::Finished => ("Finished", None),
            ChainSectorState::Upgrading => ("Upgrading", None),
            ChainSectorState::Upgraded => ("Upgraded", None),
            ChainSectorState::Aborted(reason) => ("Aborted", Some(reason.clone())),
        };
        let update = self.upgrade.as_ref().and_then(|upgrade| {
            upgrade.accepted.as_ref().map(|accepted| UpdateRow {
                comm_d_new: hex::encode(accepted.comm_d_new),
                comm_r_new: hex::encode(accepted.comm_r_new),
                pieces: deal_rows(&upgrade.deals),
                proof: hex::encode(&accepted.proof),
                proof_type: accepted.proof_type.as_i64(),
            })
        });
        SectorRow {
            abort_reason,
            comm_d: self.pre_commit.as_ref().map(|p| hex::encode(p.comm_d)),
            comm_r: self.pre_commit.as_ref().map(|p| hex::encode(p.comm_r)),
            miner: self.id.miner,
            number: self.id.number,
            pieces: deal_rows(&self.deals),
            proof: self.proof.as_ref().map(hex::encode),
            proof_type: self.proof_type.as_i64(),
            rebuilt: self.rebuilt,
            seed: self.seed.as_ref().map(|s| hex::encode(s.seed)),
            state: state.to_owned(),
            ticket: self
                .pre_commit
                .as_ref()
                .map(|p| hex::encode(p.ticket.ticket))
                .or_else(|| self.ticket.as_ref().map(|t| hex::encode(t.ticket))),
            update,
        }
    }
}

impl ChainJob {
    /// Its row in `util sealer jobs list`; a market destination's token redacted.
    pub fn row(&self) -> ChainJobRow {
        let (piece, dest) = match &self.kind {
            JobKind::Unseal { piece, dest } => (
                Some(piece.text.clone()),
                dest.iter().map(|url| redacted(url)).collect(),
            ),
            JobKind::Rebuild => (None, Vec::new()),
        };
        let state = match &self.state {
            JobState::Taken if self.accepted => "accepted",
            other => other.name(),
        };
        let failed = match &self.state {
            JobState::Failed(reason) => Some(reason.clone()),
            _ => None,
        };
        ChainJobRow {
            created_at: self.created_at,
            dest,
            finished_at: self.finished_at,
            id: self.id,
            kind: kind_name(&self.kind).to_owned(),
            miner: self.sector.miner,
            number: self.sector.number,
            piece,
            reason: failed
                .or_else(|| self.refused.clone())
                .or_else(|| self.failure.clone()),
            sector: self.sector.to_string(),
            state: state.to_owned(),
        }
    }
}

impl WdPostJob {
    /// Its row in `util sealer wdpost list`: what an independent verifier needs.
    pub fn row(&self) -> WdPostJobRow {
        let error = match &self.state {
            WdPostJobState::Failed(reason) => Some(reason.clone()),
            _ => self.error.clone(),
        };
        WdPostJobRow {
            created_at: self.created_at,
            error,
            faults: self.faults.clone(),
            finished_at: self.finished_at,
            deadline_at: (self.deadline_at != 0).then_some(self.deadline_at),
            started_at: self.started_at,
            heartbeat_at: self.heartbeat_at,
            id: self.id.clone(),
            miner: self.miner,
            proof_type: self.proof_type.as_i64(),
            proofs: self.proofs.iter().map(hex::encode).collect(),
            round: self.round,
            seed: hex::encode(self.seed),
            sectors: self
                .sectors
                .iter()
                .map(|s| WdPostSectorRow {
                    comm_r: hex::encode(s.comm_r),
                    number: s.number,
                    store: s.store.clone(),
                    upgrade: s.upgrade,
                })
                .collect(),
            state: self.state.name().to_owned(),
            tries: self.tries,
            verified: self.verified,
            worker: self.worker.clone(),
        }
    }
}
