//! Groth parameters: where they are, whether they are there, and generating our own for
//! test sizes.
//!
//! Parameters live in `FIL_PROOFS_PARAMETER_CACHE` (default
//! `/var/tmp/filecoin-proof-parameters`), as upstream reads them. For sector sizes up to
//! 512MiB the project can generate them itself; production sizes need the official files.

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use damocles_core::{SealProof, SectorSize};
use filecoin_proofs::constants::{SectorShape2KiB, SectorShape512MiB, SectorShape8MiB};
use filecoin_proofs::parameters::public_params;
use filecoin_proofs::{DefaultPieceHasher, PoRepConfig};
use storage_proofs_core::compound_proof::CompoundProof;
use storage_proofs_core::merkle::MerkleTreeTrait;
use storage_proofs_porep::stacked::{StackedCompound, StackedDrg};

use crate::proofs::registered;

/// The environment variable upstream reads the parameter directory from.
pub const CACHE_ENV: &str = "FIL_PROOFS_PARAMETER_CACHE";

/// Upstream's default parameter directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/tmp/filecoin-proof-parameters";

/// Why parameters could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// Production sizes need the official, ceremony-made parameters.
    #[error(
        "refusing to generate parameters for {size} sectors: production sizes need the official files from the trusted setup; \
         download them into {dir} with `lotus fetch-params {size}` or `curio fetch-params {size}` (or set {CACHE_ENV} to where they are)"
    )]
    ProductionSize {
        /// The size asked for.
        size: SectorSize,
        /// The cache directory.
        dir: String,
    },
    /// Not a size Filecoin seals.
    #[error("no seal proof type for sector size {0}")]
    UnknownSize(SectorSize),
    /// The proof library failed.
    #[error("generating parameters for {size}: {message}")]
    Generation {
        /// The size.
        size: SectorSize,
        /// The library's error.
        message: String,
    },
    /// The cache directory is not usable.
    #[error("parameter cache {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The parameter directory upstream will read.
pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
}

/// The seal proof type whose parameters a size needs (the interactive V1_1 PoRep that the
/// sealer plan uses).
pub fn proof_for(size: SectorSize) -> Result<SealProof, ParamsError> {
    SealProof::of(damocles_core::sector::SealProofFamily::V1_1, size)
        .ok_or(ParamsError::UnknownSize(size))
}

/// The `.params` and `.vk` files a proof type needs.
pub fn files(proof: SealProof) -> Result<(PathBuf, PathBuf), ParamsError> {
    let api = registered(proof);
    let to_err = |e: &dyn std::fmt::Display| ParamsError::Generation {
        size: proof.sector_size(),
        message: format!("{e:#}"),
    };
    let params = api.cache_params_path().map_err(|e| to_err(&e))?;
    let vk = api.cache_verifying_key_path().map_err(|e| to_err(&e))?;
    Ok((params, vk))
}

/// Whether both parameter files of a proof type are present.
pub fn present(proof: SealProof) -> bool {
    files(proof).is_ok_and(|(params, vk)| params.is_file() && vk.is_file())
}

/// What a generation run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generated {
    /// The files were already there.
    AlreadyPresent,
    /// They were generated, in this long.
    Generated(Duration),
}

/// Generates the parameters of sector `size` into the cache unless they are there,
/// calling `progress` with the elapsed time about every `tick` while it works (2KiB takes
/// about 14 minutes on 2 cores). Processes that call this at once wait for each other on
/// a lock file instead of writing the same file twice. Refuses production sizes.
pub fn ensure(
    size: SectorSize,
    tick: Duration,
    mut progress: impl FnMut(Duration),
) -> Result<Generated, ParamsError> {
    if size > SectorSize::MIB_512 {
        return Err(ParamsError::ProductionSize {
            size,
            dir: cache_dir().display().to_string(),
        });
    }
    let proof = proof_for(size)?;
    let dir = cache_dir();
    let io_err = |path: &PathBuf| {
        let path = path.display().to_string();
        move |source| ParamsError::Io { path, source }
    };
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let lock_path = dir.join(format!(".damocles-generate-{size}.lock"));
    let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;
    if present(proof) {
        return Ok(Generated::AlreadyPresent);
    }
    let started = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let result = generate(proof);
        let _ = done_tx.send(());
        result
    });
    while done_rx.recv_timeout(tick).is_err() {
        progress(started.elapsed());
    }
    let result = worker.join().unwrap_or_else(|_| {
        Err(ParamsError::Generation {
            size,
            message: "the generator thread panicked".into(),
        })
    });
    drop(lock);
    result.map(|()| Generated::Generated(started.elapsed()))
}

fn generate(proof: SealProof) -> Result<(), ParamsError> {
    let config = registered(proof).as_v1_config();
    let size = proof.sector_size();
    let result = match size {
        SectorSize::KIB_2 => generate_shape::<SectorShape2KiB>(&config),
        SectorSize::MIB_8 => generate_shape::<SectorShape8MiB>(&config),
        SectorSize::MIB_512 => generate_shape::<SectorShape512MiB>(&config),
        _ => return Err(ParamsError::UnknownSize(size)),
    };
    result.map_err(|message| ParamsError::Generation { size, message })
}

fn generate_shape<Tree: 'static + MerkleTreeTrait>(config: &PoRepConfig) -> Result<(), String> {
    let public = public_params::<Tree>(config).map_err(|e| format!("{e:#}"))?;
    let mut rng = rand::rngs::OsRng;
    // Generates and writes the `.params` file, then derives and writes the `.vk` file.
    <StackedCompound<Tree, DefaultPieceHasher> as CompoundProof<
        StackedDrg<'_, Tree, DefaultPieceHasher>,
        _,
    >>::groth_params(Some(&mut rng), &public)
    .map_err(|e| format!("{e:#}"))?;
    <StackedCompound<Tree, DefaultPieceHasher> as CompoundProof<
        StackedDrg<'_, Tree, DefaultPieceHasher>,
        _,
    >>::verifying_key(Some(&mut rng), &public)
    .map_err(|e| format!("{e:#}"))?;
    Ok(())
}
