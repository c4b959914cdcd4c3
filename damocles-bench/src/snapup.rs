//! Figure 7: N sealed 2KiB CC sectors upgraded with deals through the whole system (a
//! worker of 3 snap-up threads talking HTTP on loopback to the mock manager, zero
//! intervals, one snap prove at a time) against the same proof calls made back to back in
//! one process: AddPieces with the deal piece, snap encode, snap prove. The sector keys
//! are sealed first (PC1, PC2: not timed, no C2).

use std::path::Path;
use std::time::{Duration, Instant};

use damocles_core::sealer_api::{AllocateSectorSpec, PreCommitOnChainInfo};
use damocles_core::{SealProof, SectorId, SectorManager, SectorSize, State};
use damocles_sealing::mock_chain::{ChainSectorState, MockChain};
use damocles_sealing::params;
use damocles_sealing::paths::SectorPaths;
use damocles_sealing::proofs::{self, PiecePayload, PieceToWrite, SealIdentity};
use damocles_sealing::update;
use serde::Serialize;

use damocles_cli::worker_cli::daemon::{self, ManagerChoice};

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct SnapupFigures {
    /// Sectors upgraded by each side.
    pub sectors: u64,
    /// Whether the snap prove ran (false in smoke mode: both sides stop after the encode).
    pub with_prove: bool,
    /// The proof calls back to back, seconds.
    pub limit_s: f64,
    /// The whole system, seconds.
    pub system_s: f64,
    /// Upgrades per hour, back to back.
    pub limit_sectors_per_hour: f64,
    /// Upgrades per hour, whole system.
    pub system_sectors_per_hour: f64,
    /// system / limit throughput.
    pub ratio: f64,
}

fn fail(e: damocles_core::Failure) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Seals `count` CC sector keys through `chain` (PC1, PC2, pre-commit, persisted to
/// `<dir>/persist`, finalized), ready for snap-up jobs.
pub(crate) async fn seal_sector_keys(
    chain: &MockChain,
    dir: &Path,
    count: u64,
) -> anyhow::Result<()> {
    let store = dir.join("persist");
    for _ in 0..count {
        let sector = chain
            .allocate_sector(AllocateSectorSpec::default())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the mock allocated no sector"))?;
        let ticket = chain.assign_ticket(sector.id).await?;
        let (work, keys) = (dir.join("keys"), store.clone());
        let id = SealIdentity {
            proof: sector.proof_type,
            sector: sector.id,
        };
        let sealed = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let paths = SectorPaths::new(&work, id.sector);
            let pieces = proofs::add_pieces(id.proof, &paths, &[]).map_err(fail)?;
            let pc1 = proofs::pc1(id, &paths, ticket.ticket, &pieces).map_err(fail)?;
            let pc2 = proofs::pc2(&pc1, &paths).map_err(fail)?;
            let name = id.sector.to_string();
            std::fs::create_dir_all(keys.join("sealed"))?;
            std::fs::create_dir_all(keys.join("cache").join(&name))?;
            std::fs::rename(&paths.sealed, keys.join("sealed").join(&name))?;
            for entry in std::fs::read_dir(&paths.cache_dir)? {
                let entry = entry?;
                let file = entry.file_name();
                if update::is_persisted_cache_file(&file.to_string_lossy()) {
                    std::fs::rename(entry.path(), keys.join("cache").join(&name).join(&file))?;
                }
            }
            std::fs::remove_dir_all(&work)?;
            Ok(pc2)
        })
        .await??;
        let info = PreCommitOnChainInfo {
            comm_r: sealed.comm_r,
            comm_d: sealed.comm_d,
            ticket,
        };
        chain.submit_pre_commit(sector, info, false).await?;
        chain
            .submit_persisted(sector.id, "persist".into(), false)
            .await?;
        chain.report_finalized(sector.id).await?;
    }
    Ok(())
}

/// The same proof calls back to back, over copies of the sector keys: AddPieces with one
/// half-sector deal piece, snap encode (and snap prove).
fn back_to_back(dir: &Path, chain: &MockChain, with_prove: bool) -> anyhow::Result<Duration> {
    let proof = SealProof::StackedDrg2KiBV1_1;
    let keys: Vec<_> = chain.sectors();
    let pieces = dir.join("limit-pieces");
    std::fs::create_dir_all(&pieces)?;
    let start = Instant::now();
    for (i, key) in keys.iter().enumerate() {
        let comm_r_old = key
            .pre_commit
            .as_ref()
            .map(|p| p.comm_r)
            .unwrap_or_default();
        let sector = SectorId::new(20000, i as u64 + 1);
        let paths = SectorPaths::new(&dir.join("limit"), sector);
        update::fetch_sector_key(&dir.join("persist"), &key.id.to_string(), &paths)
            .map_err(fail)?;
        let padded = proof.sector_size().bytes() / 2;
        let payload: Vec<u8> = (0..padded * 127 / 128)
            .map(|b| (b * 31 + i as u64) as u8)
            .collect();
        let cid = proofs::piece_cid_of(proof, &payload, padded).map_err(fail)?;
        let path = pieces.join(&cid.text);
        std::fs::write(&path, &payload)?;
        let files = [PieceToWrite {
            cid,
            padded_size: padded,
            payload: PiecePayload::File(path),
        }];
        let added = proofs::add_pieces(proof, &paths, &files).map_err(fail)?;
        let encoded = update::snap_encode(proof, &paths, &added).map_err(fail)?;
        if with_prove {
            update::snap_prove(proof, &paths, comm_r_old, encoded).map_err(fail)?;
        }
    }
    Ok(start.elapsed())
}

/// Runs figure 7 with `sectors` sector keys; without the snap prove in smoke mode.
pub async fn run(sectors: u64, with_prove: bool) -> anyhow::Result<SnapupFigures> {
    anyhow::ensure!(
        !with_prove || params::all_present(SectorSize::KIB_2),
        "the 2KiB parameters are missing: run `damocles-worker params generate --sector-size 2KiB`"
    );
    let dir = tempfile::tempdir()?;
    let chain = MockChain::new(10000, SealProof::StackedDrg2KiBV1_1);
    chain.offer_deals(0.0, &dir.path().join("pieces"))?;
    seal_sector_keys(&chain, dir.path(), sectors).await?;
    let limit = {
        let (path, chain) = (dir.path().to_path_buf(), chain.clone());
        tokio::task::spawn_blocking(move || back_to_back(&path, &chain, with_prove)).await??
    };

    let server = super::pipeline::serve_chain(&chain).await?;
    let pieces = format!(
        "local_pieces_dir = \"{}\"\n",
        dir.path().join("pieces").display()
    );
    let config = super::pipeline::worker_config(
        dir.path(),
        &server.local_addr().to_string(),
        "snapup",
        "snap_prove",
        &pieces,
    )?;
    let start = Instant::now();
    let running = daemon::start(&config, ManagerChoice::FromConfig).await?;
    let mut changes = running.worker().subscribe();
    let mut encoded = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let upgraded = chain
            .sectors()
            .iter()
            .filter(|s| s.state == ChainSectorState::Upgraded)
            .count() as u64;
        if with_prove && upgraded >= sectors {
            break;
        }
        // The encode is the last step without the update parameters' SNARK.
        for thread in running.worker().list() {
            if thread.job_state.map(|s| s.as_str()) == Some(State::SnapEncoded.as_str()) {
                encoded.extend(thread.job_id);
            }
        }
        if !with_prove && encoded.len() as u64 >= sectors {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the system did not finish in an hour"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
    let system = start.elapsed();
    running.stop().await;
    server.shutdown().await;
    let per_hour = |d: Duration| sectors as f64 * 3600.0 / d.as_secs_f64();
    Ok(SnapupFigures {
        sectors,
        with_prove,
        limit_s: limit.as_secs_f64(),
        system_s: system.as_secs_f64(),
        limit_sectors_per_hour: per_hour(limit),
        system_sectors_per_hour: per_hour(system),
        ratio: limit.as_secs_f64() / system.as_secs_f64(),
    })
}
