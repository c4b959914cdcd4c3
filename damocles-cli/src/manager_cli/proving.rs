//! `util sealer proving check`: the manager's proven sectors checked where the manager
//! sees their files, as a WindowPoSt round checks them (`Damocles.CheckProvable`, the
//! original's call), before a round finds them bad.

use std::time::Duration;

use damocles_core::listing::SectorRow;
use damocles_core::piece::sealed_cid;
use damocles_core::sealer_api::ExtendedSectorInfo;
use damocles_core::{PoStProof, SealProof, SectorNumber};
use damocles_rpc::Timeouts;

use super::util::Context;
use crate::exit::CliError;
use crate::render::{self, ProvingCheckRow};

/// How long the answer may take: beyond the manager's own limits (by default 10 min a
/// sector, 20 min in all).
const CHECK_WAIT: Duration = Duration::from_secs(60 * 60);

/// The sector as a round proves it: the update's replica for an upgraded one, else the
/// sealed one; `None` for a sector not proven (yet, or any more).
fn provable(row: &SectorRow) -> Option<ExtendedSectorInfo> {
    let seal_proof = SealProof::from_i64(row.proof_type)?;
    let comm_r = hex_32(row.comm_r.as_deref()?)?;
    let (sealed, key) = match (row.state.as_str(), &row.update) {
        ("Upgraded", Some(update)) => (
            sealed_cid(&hex_32(&update.comm_r_new)?),
            Some(sealed_cid(&comm_r)),
        ),
        ("Finished" | "Upgrading", _) => (sealed_cid(&comm_r), None),
        _ => return None,
    };
    Some(ExtendedSectorInfo {
        seal_proof,
        sector_number: row.number,
        sector_key: key,
        sealed_cid: sealed,
    })
}

fn hex_32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// `util sealer proving check [--slow] [--only-bad] [sectors…]`.
pub async fn check(ctx: &Context, slow: bool, only_bad: bool, numbers: &[SectorNumber]) -> u8 {
    let timeouts = Timeouts {
        request: CHECK_WAIT,
        ..Timeouts::default()
    };
    let manager = match ctx.manager_with(timeouts) {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    let rows = match manager.chain_sectors().await {
        Ok(rows) => rows,
        Err(e) => return ctx.manager_failed("rpc Damocles.ChainSectors", e),
    };
    let mut infos = Vec::new();
    for row in &rows {
        if numbers.is_empty() || numbers.contains(&row.number) {
            match provable(row) {
                Some(info) => infos.push(info),
                None if numbers.is_empty() => {}
                None => {
                    return ctx.fail(CliError::bad_input(format!(
                        "sector {} is {}, not proven: nothing to check",
                        row.number, row.state
                    )))
                }
            }
        }
    }
    if let Some(unknown) = numbers
        .iter()
        .find(|n| !rows.iter().any(|r| r.number == **n))
    {
        return ctx.fail(CliError::bad_input(format!(
            "the manager has no sector {unknown} (util sealer sectors list)"
        )));
    }
    let Some(first) = rows.first() else {
        return ctx.print(&Vec::<ProvingCheckRow>::new(), || {
            "no sector to check\n".to_owned()
        });
    };
    let proof =
        SealProof::from_i64(first.proof_type).and_then(|p| PoStProof::window_for(p.sector_size()));
    let Some(proof) = proof else {
        return ctx.fail(CliError::failed(format!(
            "the manager's sectors are of proof type {}, which has no WindowPoSt",
            first.proof_type
        )));
    };
    if infos.is_empty() {
        return ctx.print(&Vec::<ProvingCheckRow>::new(), || {
            "no proven sector to check (util sealer sectors list)\n".to_owned()
        });
    }
    eprintln!(
        "checking {} sector(s) where the manager sees their files ({}) …",
        infos.len(),
        if slow {
            "their presence and sizes, then a vanilla proof of each, as a round makes"
        } else {
            "their presence and sizes; --slow reads them as a round does"
        }
    );
    let checked: Vec<_> = infos.iter().map(|i| i.sector_number).collect();
    let bad = match manager
        .check_provable(first.miner, proof, infos, slow)
        .await
    {
        Ok(bad) => bad,
        Err(e) => return ctx.manager_failed("rpc Damocles.CheckProvable", e),
    };
    let rows: Vec<ProvingCheckRow> = checked
        .into_iter()
        .map(|sector| ProvingCheckRow {
            good: !bad.contains_key(&sector),
            sector,
            reason: bad.get(&sector).cloned(),
        })
        .filter(|row| !only_bad || row.reason.is_some())
        .collect();
    ctx.print(&rows, || render::proving_table(&rows))
}
