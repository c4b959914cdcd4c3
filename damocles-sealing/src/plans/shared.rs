//! Steps more than one plan runs: taking a job (the idle reason), writing the deal pieces
//! (AddPieces), their data commitment (TreeD) and persisting a replica into an attached
//! store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use damocles_core::sealer_api::Ticket;
use damocles_core::sealer_api::{AllocateSectorSpec, ManagerError, SectorPiece, StoreBasicInfo};
use damocles_core::{Event, Failure, Opaque, PreCommitOutput, ProofStage, SealProof, SectorRecord};

use super::{Outcome, StepResult, Stop};
use crate::control::Activity;
use crate::options::SealingOptions;
use crate::paths::SectorPaths;
use crate::pieces;
use crate::proofs::tasks::{Transfer, TransferItem, TransferRoute, TransferStoreInfo};
use crate::proofs::{self, SealIdentity};
use crate::runner::{required, Runner, IDLE_FLOOR};
use crate::update::{self, is_persisted_cache_file};

/// The sector a step works on, and its files.
pub(super) fn identity(
    runner: &Runner,
    record: &SectorRecord,
) -> Result<(SealIdentity, SectorPaths), Failure> {
    let sector = required(record.sector, "sector")?;
    let id = SealIdentity {
        proof: sector.proof_type,
        sector: sector.id,
    };
    Ok((
        id,
        SectorPaths::new(&runner.ctx.location.data_dir(), sector.id),
    ))
}

/// A record in a state its plan has no step for (a resume at another plan's state): the
/// job is dropped, as the original does.
pub(super) fn unexpected_state(record: &SectorRecord) -> Failure {
    Failure::abort(format!(
        "unexpected state {} in the {} plan",
        record.state, record.plan
    ))
}

/// The abort of a record an operator resumed at `Aborted`: the job is dropped, and the
/// reason the manager is told (and a job listing shows) names the error that stopped it,
/// not only that it was aborted.
pub(super) fn aborted(record: &SectorRecord) -> Failure {
    match &record.last_error {
        Some(error) => Failure::abort(format!("task aborted after {error}")),
        None => Failure::abort("task aborted"),
    }
}

/// Which sectors the thread takes: its allowed miners and the proof types of its allowed
/// sizes (any, when not configured).
pub(super) fn allocate_spec(opts: &SealingOptions) -> AllocateSectorSpec {
    AllocateSectorSpec {
        allowed_miners: opts.allowed_miners.clone(),
        allowed_proof_types: opts.allowed_sizes.as_ref().map(|sizes| {
            sizes
                .iter()
                .flat_map(|size| SealProof::allowed_for_size(*size))
                .collect()
        }),
    }
}

/// Shows why the thread idles after an allocation call (`error`: the call failed, or what
/// it gave could not be taken), in `list` and, once per change, in the log.
pub(super) fn note_idle_reason(runner: &Runner, call: &str, error: Option<&dyn std::fmt::Display>) {
    let reason = error.map(|e| format!("{call}: {e}"));
    if runner.control.set_idle_reason(reason.clone()) {
        match reason {
            Some(reason) => tracing::warn!(
                thread = runner.control.index(),
                "no sector: {reason}; asking again every {}",
                humantime::format_duration(runner.ctx.options.recover_interval.max(IDLE_FLOOR))
            ),
            None => tracing::info!(thread = runner.control.index(), "the manager answers again"),
        }
    }
}

/// Asks the manager for a job with `call` (never interrupted: see `Control::job_call`):
/// the job, or `None` when there is none or the call failed (then shown as the idle
/// reason).
pub(super) async fn take_job<T>(
    runner: &Runner,
    call: &str,
    ask: impl std::future::Future<Output = Result<Option<T>, ManagerError>>,
) -> Result<Option<T>, Stop> {
    let holds_job = |answer: &Result<Option<T>, ManagerError>| matches!(answer, Ok(Some(_)));
    let answer = runner.control.job_call(ask, holds_job).await?;
    note_idle_reason(runner, call, answer.as_ref().err().map(|e| e as _));
    Ok(answer.ok().flatten())
}

/// Hands back a job this thread cannot do: tells the manager with `report` and idles,
/// showing `reason` (asked again after `recover_interval`: the manager may offer the same
/// job next).
pub(super) async fn hand_back(
    runner: &Runner,
    call: &str,
    reason: String,
    report: impl std::future::Future<Output = Result<(), ManagerError>>,
) -> StepResult {
    if let Err(e) = report.await {
        tracing::warn!("{call}: handing the job back: {e}");
    }
    note_idle_reason(runner, call, Some(&reason));
    Ok(Outcome::Idle)
}

/// AddPieces: finds the record's deal pieces (local directories, then the manager's piece
/// store) and writes them, with pledge pieces for the rest, into the staged file.
pub(super) async fn add_pieces(runner: &Runner, record: &SectorRecord) -> StepResult {
    add_these_pieces(runner, record, record.deals.clone().unwrap_or_default()).await
}

/// AddPieces of `deals` (none: one CC piece), whatever the record holds.
pub(super) async fn add_these_pieces(
    runner: &Runner,
    record: &SectorRecord,
    deals: Vec<SectorPiece>,
) -> StepResult {
    let (id, paths) = identity(runner, record)?;
    // A pause or shutdown need not wait for a download (its `.part` file is removed by
    // the next run).
    let downloads = runner.ctx.location.data_dir().join("pieces");
    let located = runner
        .control
        .interruptible(runner.ctx.pieces.locate(id.proof, &deals, &downloads))
        .await??;
    let files: Vec<_> = located.iter().map(|p| p.file.clone()).collect();
    let (done_paths, done_files) = (paths.clone(), files.clone());
    let pieces = runner
        .processor_call(
            move || proofs::add_pieces_task(id.proof, &paths, &files),
            move |written| proofs::add_pieces_done(id.proof, &done_paths, &done_files, &written),
        )
        .await;
    pieces::remove_downloads(&located);
    Ok(Outcome::Event(Event::AddPiece(pieces?)))
}

/// TreeD: the data commitment of the added pieces (which checks them).
pub(super) async fn tree_d(runner: &Runner, record: &SectorRecord) -> StepResult {
    let (id, _) = identity(runner, record)?;
    let pieces = record.pieces.clone().unwrap_or_default();
    runner
        .proof_call(ProofStage::TreeD, move || proofs::tree_d(id.proof, &pieces))
        .await?;
    Ok(Outcome::Event(Event::BuildTreeD))
}

/// PC1 with `ticket`: PC1's output.
pub(super) async fn pc1(
    runner: &Runner,
    record: &SectorRecord,
    ticket: Ticket,
) -> Result<Opaque, Stop> {
    let (id, paths) = identity(runner, record)?;
    let pieces = record.pieces.clone().unwrap_or_default();
    let done_paths = paths.clone();
    runner
        .processor_call(
            move || proofs::pc1_task(id, &paths, ticket.ticket, &pieces),
            move |out| proofs::pc1_done(&done_paths, out),
        )
        .await
}

/// PC2: the replica's commitments. A proof type that needs synthetic PoRep is refused
/// (permanent), and so is a comm_r that differs from the record's earlier PC2 run.
pub(super) async fn pc2(runner: &Runner, record: &SectorRecord) -> Result<PreCommitOutput, Stop> {
    let (id, paths) = identity(runner, record)?;
    if id.proof.needs_synthetic_porep() {
        return Err(Failure::permanent(format!(
            "{} needs synthetic PoRep, which this worker does not support yet",
            id.proof
        ))
        .into());
    }
    let pc1 = required(record.pc1_output.clone(), "pc1out")?;
    let out = runner
        .processor_call(
            move || proofs::pc2_task(&pc1, &paths),
            |out| Ok(proofs::pc2_done(out)),
        )
        .await?;
    if let Some(before) = record.pc2_output.filter(|before| *before != out) {
        // Never expected (PC2 restores its input), but a comm_r that changed under a
        // pre-commit (or a rebuild) must stop the sector, not reach the chain.
        return Err(Failure::permanent(format!(
            "PC2 run again gave comm_r {} where the first run gave {}",
            hex::encode(out.comm_r),
            hex::encode(before.comm_r)
        ))
        .into());
    }
    Ok(out)
}

/// SubmitPersistedEx: tells the manager where the persisted files are; `refused` is the
/// permanent failure when it does not take them.
pub(super) async fn submit_persisted(
    runner: &Runner,
    record: &SectorRecord,
    is_upgrade: bool,
    refused: &str,
) -> StepResult {
    let (id, _) = identity(runner, record)?;
    let instance = required(record.persist_instance.clone(), "persist_instance")?;
    let ok = runner
        .manager_call(
            "SubmitPersistedEx",
            runner
                .ctx
                .manager
                .submit_persisted(id.sector, instance, is_upgrade),
        )
        .await?;
    if !ok {
        return Err(Failure::permanent(refused).into());
    }
    Ok(Outcome::Event(Event::SubmitPersistance))
}

/// Which replica of a sector a persist copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replica {
    /// The sealed replica: `sealed/<sector>` and `cache/<sector>/`.
    Sealed,
    /// A snap-up's updated replica: `update/<sector>` and `update-cache/<sector>/`.
    Updated,
}

/// Persist: reserves room in an attached store through the manager, then copies the
/// replicas and the cache files a proof needs into it (and, for a deal sector, the
/// unsealed copy, which a retrieval reads the deals' bytes from).
pub(super) async fn persist(
    runner: &Runner,
    record: &SectorRecord,
    replicas: &'static [Replica],
) -> StepResult {
    let (id, paths) = identity(runner, record)?;
    let candidates: Vec<String> = runner
        .ctx
        .attached
        .iter()
        .filter(|s| !s.readonly)
        .map(|s| s.name.clone())
        .collect();
    if candidates.is_empty() {
        return Err(Failure::permanent("no available persist store candidate").into());
    }
    let size = id.proof.sector_size().bytes();
    let per_replica = if size < (32 << 30) {
        size * 2
    } else {
        size + size / 50
    };
    let mut required = per_replica * replicas.len() as u64;
    let has_deals = record.has_deals();
    if has_deals {
        // The unsealed copy goes along.
        required += size;
    }
    let store = loop {
        let reserved = runner
            .manager_call(
                "StoreReserveSpace",
                runner
                    .ctx
                    .manager
                    .store_reserve_space(id.sector, required, candidates.clone()),
            )
            .await?;
        if let Some(store) = reserved {
            break store;
        }
        runner.control.set_activity(Activity::Idle);
        runner
            .control
            .sleep(
                runner
                    .ctx
                    .options
                    .rpc_polling_interval
                    .max(Duration::from_millis(100)),
            )
            .await?;
    };
    let target = runner
        .ctx
        .attached
        .iter()
        .find(|s| s.name == store.name)
        .cloned()
        .ok_or_else(|| {
            Failure::permanent(format!(
                "the manager chose store {}, which is not attached",
                store.name
            ))
        })?;
    let (name, store_name) = (id.sector.to_string(), store.name.clone());
    runner
        .processor_call(
            move || persist_task(&paths, &target.location, &store, &name, replicas, has_deals),
            |done| {
                done.then_some(()).ok_or_else(|| {
                    Failure::permanent("persist: the transfer processor answered false")
                })
            },
        )
        .await?;
    Ok(Outcome::Event(Event::Persist(store_name)))
}

/// The transfer of a sector's files into the attached `store` at `location`: each
/// replica (`sealed/<sector>` and `cache/<sector>/`, or `update/<sector>` and
/// `update-cache/<sector>/`, the cache's persisted files only) and, for a sector with
/// deals, the staged file as `unsealed/<sector>`.
fn persist_task(
    paths: &SectorPaths,
    location: &Path,
    store: &StoreBasicInfo,
    name: &str,
    replicas: &[Replica],
    has_deals: bool,
) -> Result<Transfer, Failure> {
    // A relative store location (`./remote`) is the worker's working directory's: the
    // routes name it absolutely, as a processor needs.
    let location = &std::path::absolute(location)
        .map_err(|e| persist_io(&format!("resolve {}", location.display()), e))?;
    let mut routes = Vec::new();
    let mut route = |from: &Path, to: PathBuf| {
        routes.push(TransferRoute {
            src: TransferItem {
                store_name: None,
                uri: from.to_path_buf(),
            },
            dest: TransferItem {
                store_name: Some(store.name.clone()),
                uri: to,
            },
            opt: None,
        });
    };
    for replica in replicas {
        let (file, cache, file_dir, cache_dir) = match replica {
            Replica::Sealed => (&paths.sealed, &paths.cache_dir, "sealed", "cache"),
            Replica::Updated => (&paths.update, &paths.update_cache, "update", "update-cache"),
        };
        route(file, location.join(file_dir).join(name));
        let read = |e| persist_io(&format!("read cache {}", cache.display()), e);
        for entry in std::fs::read_dir(cache).map_err(read)? {
            let entry = entry.map_err(read)?;
            let file = entry.file_name();
            if is_persisted_cache_file(&file.to_string_lossy()) {
                route(
                    &entry.path(),
                    location.join(cache_dir).join(name).join(&file),
                );
            }
        }
    }
    if has_deals {
        route(&paths.staged, location.join("unsealed").join(name));
    }
    let meta = (!store.meta.is_empty()).then(|| store.meta.clone().into_iter().collect());
    let info = TransferStoreInfo {
        name: store.name.clone(),
        meta,
    };
    Ok(Transfer {
        stores: [(store.name.clone(), info)].into(),
        routes,
    })
}

fn persist_io(what: &str, e: std::io::Error) -> Failure {
    Failure::critical(format!("persist {what}: {e}"))
}

/// Snap encode: the record's pieces encoded into the sector key (the replica in
/// `data/sealed`, `data/cache`) as the updated replica.
pub(super) async fn snap_encode(runner: &Runner, record: &SectorRecord) -> StepResult {
    let (id, paths) = identity(runner, record)?;
    let pieces = required(record.pieces.clone(), "pieces")?;
    let out = runner
        .processor_call(
            move || update::snap_encode_task(id.proof, &paths, &pieces),
            Ok,
        )
        .await?;
    Ok(Outcome::Event(Event::SnapEncode(out)))
}

/// Snap prove: the update proof of the encoded replica against the sector key's
/// `comm_r_old`.
pub(super) async fn snap_prove(
    runner: &Runner,
    record: &SectorRecord,
    comm_r_old: [u8; 32],
) -> StepResult {
    let (id, paths) = identity(runner, record)?;
    let encoded = required(record.snap_encode_output, "snap encode output")?;
    let circuit = crate::params::Circuit::SectorUpdate(id.proof.update_proof());
    runner.wait_for_params(circuit).await?;
    let proof = runner
        .processor_call(
            move || update::snap_prove_task(id.proof, &paths, comm_r_old, encoded),
            move |snark| update::snap_prove_done(id.proof, comm_r_old, encoded, snark),
        )
        .await?;
    Ok(Outcome::Event(Event::SnapProve(proof)))
}

#[cfg(test)]
mod tests {
    use damocles_core::SectorId;

    use super::*;

    #[test]
    fn a_persist_names_every_file_absolutely_even_in_a_store_at_a_relative_location() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = SectorPaths::new(dir.path(), SectorId::new(1000, 7));
        std::fs::create_dir_all(&paths.cache_dir).expect("cache");
        for file in [
            "p_aux",
            "t_aux",
            "sc-02-data-tree-r-last.dat",
            "sc-02-data-layer-1.dat",
        ] {
            std::fs::write(paths.cache_dir.join(file), b"x").expect("cache file");
        }
        let mut store = StoreBasicInfo::named("persist");
        store.meta.insert("region".into(), "a".into());
        let task = persist_task(
            &paths,
            Path::new("./remote"),
            &store,
            "s-t01000-7",
            &[Replica::Sealed],
            true,
        )
        .expect("task");
        let here = std::env::current_dir().expect("cwd");
        let mut dests: Vec<PathBuf> = task.routes.iter().map(|r| r.dest.uri.clone()).collect();
        dests.sort();
        let store_dir = here.join("remote");
        assert_eq!(
            dests,
            [
                store_dir.join("cache/s-t01000-7/p_aux"),
                store_dir.join("cache/s-t01000-7/sc-02-data-tree-r-last.dat"),
                store_dir.join("cache/s-t01000-7/t_aux"),
                store_dir.join("sealed/s-t01000-7"),
                store_dir.join("unsealed/s-t01000-7"),
            ],
            "the labels stay behind; the deal data goes along"
        );
        assert!(task
            .routes
            .iter()
            .all(|r| r.dest.store_name.as_deref() == Some("persist") && r.src.uri.is_absolute()));
        let meta = task.stores["persist"].meta.clone().expect("meta");
        assert_eq!(meta.get("region").map(String::as_str), Some("a"));
    }
}
