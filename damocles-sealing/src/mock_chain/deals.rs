//! Deals: the pieces a sector is given, laid out as the Go manager assigns them, and
//! their comm_d.

use super::*;

impl MockChain {
    /// One or two deal pieces of random bytes (half and a quarter of the sector) kept in
    /// `dir`, within `spec`; `None` when `spec` allows none.
    pub(super) async fn make_deals(
        &self,
        dir: &Path,
        spec: &AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError> {
        let proof = self.proof_type;
        let count = if rand::random::<bool>() { 2 } else { 1 };
        let count = spec.max_deals.map_or(count, |max| count.min(max));
        let sizes: Vec<u64> = (1..=count)
            .map(|i| proof.sector_size().bytes() >> i)
            .collect();
        if count == 0
            || spec
                .min_used_space
                .is_some_and(|min| sizes.iter().sum::<u64>() < min)
        {
            return Ok(None);
        }
        let made_in = dir.to_path_buf();
        let pieces = tokio::task::spawn_blocking(move || make_pieces(proof, &sizes, &made_in))
            .await
            .map_err(|e| ManagerError::remote(1, format!("piece maker panicked: {e}")))?
            .map_err(|e| ManagerError::remote(1, format!("make deal pieces: {e}")))?;
        let shared = self.settings().shared.clone();
        if let Some(shared) = shared {
            // Kept where every manager reads them before any worker hears of them.
            for (cid, _, _) in &pieces {
                let path = dir.join(&cid.text);
                let payload = tokio::fs::read(&path).await.map_err(|e| {
                    ManagerError::remote(1, format!("read {}: {e}", path.display()))
                })?;
                shared.keep_piece(cid, &payload).await.map_err(|e| {
                    ManagerError::transport(format!("keep deal piece {}: {e}", cid.text))
                })?;
            }
        }
        let sector_size = proof.sector_size().bytes();
        let mut state = self.lock();
        let deals = pieces
            .into_iter()
            .map(|(cid, padded, payload)| {
                state.last_deal_id += 1;
                SectorPiece {
                    piece: PieceRef { size: padded, cid },
                    deal_info: DealInfo {
                        deal_id: state.last_deal_id,
                        allocation_id: 0,
                        payload_size: payload,
                        is_builtin_market: true,
                    },
                }
            })
            .collect();
        let assigned = lay_out(sector_size, deals)
            .map_err(|e| ManagerError::remote(1, format!("lay out deal pieces: {e}")))?;
        state.save();
        state.commit()?;
        Ok(Some(assigned))
    }
}

/// The comm_d a sector with these deals must have.
pub(super) fn deals_comm_d(proof: SealProof, deals: &[SectorPiece]) -> Result<[u8; 32], Failure> {
    let pieces = deals
        .iter()
        .map(|d| {
            piece::comm_p(&d.piece.cid)
                .map(|comm_p| (comm_p, d.piece.size))
                .map_err(|e| Failure::permanent(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    proofs::sector_comm_d(proof, &pieces)
}

/// The pieces a sector is assigned, laid out as the Go manager's deal assignment does
/// (venus-market `pickAndAlign`): the deals by size, smallest first, each after the zero
/// pieces that align it, then zero pieces filling the rest, smallest first. Zero pieces are
/// pledge pieces as the Go manager sends them: deal and allocation ID 0, no publish message
/// (`IsBuiltinMarket` false). Deals that no longer fit are dropped.
fn lay_out(sector_size: u64, mut deals: Vec<SectorPiece>) -> Result<Vec<SectorPiece>, Failure> {
    let pledge = |size: u64| {
        Ok::<_, Failure>(SectorPiece {
            piece: PieceRef {
                size,
                cid: proofs::pledge_piece_cid(size)?,
            },
            deal_info: DealInfo {
                deal_id: 0,
                allocation_id: 0,
                payload_size: 0,
                is_builtin_market: false,
            },
        })
    };
    // The largest piece that starts aligned where `space` bytes are left.
    let aligned = |space: u64| 1u64 << space.trailing_zeros();
    deals.sort_by_key(|d| d.piece.size);
    let mut space = sector_size;
    let mut assigned = Vec::new();
    for deal in deals {
        if deal.piece.size > space {
            break;
        }
        while deal.piece.size > aligned(space) {
            let pad = aligned(space);
            assigned.push(pledge(pad)?);
            space -= pad;
        }
        space -= deal.piece.size;
        assigned.push(deal);
    }
    while space > 0 {
        let pad = aligned(space);
        assigned.push(pledge(pad)?);
        space -= pad;
    }
    Ok(assigned)
}

/// Random deal payloads for pieces of these padded sizes, kept in `dir` by piece CID:
/// (CID, padded size, payload size) each.
fn make_pieces(
    proof: SealProof,
    sizes: &[u64],
    dir: &Path,
) -> Result<Vec<(Cid, u64, u64)>, Failure> {
    sizes
        .iter()
        .map(|&padded| {
            let unpadded = piece::unpadded_size(padded)
                .ok_or_else(|| Failure::permanent(format!("no piece of {padded} bytes")))?;
            // Payloads shorter than the piece, as real deals are: zeros fill the rest.
            let len = rand::thread_rng().gen_range(unpadded / 2..=unpadded) as usize;
            let mut payload = vec![0u8; len];
            rand::thread_rng().fill(payload.as_mut_slice());
            let cid = proofs::piece_cid_of(proof, &payload, padded)?;
            let path = dir.join(&cid.text);
            let tmp = path.with_extension("part");
            std::fs::write(&tmp, &payload)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| Failure::critical(format!("write {}: {e}", path.display())))?;
            Ok((cid, padded, len as u64))
        })
        .collect()
}
