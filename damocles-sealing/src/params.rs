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

use damocles_core::{PoStProof, SealProof, SectorSize, UpdateProof};
use filecoin_proofs::constants::{
    SectorShape2KiB, SectorShape32GiB, SectorShape512MiB, SectorShape64GiB, SectorShape8MiB,
};
use filecoin_proofs::parameters::{public_params, window_post_public_params};
use filecoin_proofs::{DefaultPieceHasher, PoRepConfig, PoStConfig};
use storage_proofs_core::compound_proof::CompoundProof;
use storage_proofs_core::merkle::MerkleTreeTrait;
use storage_proofs_core::parameter_cache::{
    parameter_cache_params_path, parameter_cache_verifying_key_path, CacheableParameters,
};
use storage_proofs_porep::stacked::{StackedCompound, StackedDrg};
use storage_proofs_post::fallback::{FallbackPoSt, FallbackPoStCircuit, FallbackPoStCompound};
use storage_proofs_update::circuit::EmptySectorUpdateCircuit;
use storage_proofs_update::compound::EmptySectorUpdateCompound;
use storage_proofs_update::constants::TreeRHasher;
use storage_proofs_update::EmptySectorUpdate;

use crate::proofs::{registered, registered_post};

/// The environment variable upstream reads the parameter directory from.
pub const CACHE_ENV: &str = "FIL_PROOFS_PARAMETER_CACHE";

/// Upstream's default parameter directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/tmp/filecoin-proof-parameters";

/// Why parameters could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

/// A circuit whose Groth parameters (a `.params` and a `.vk` file) a plan needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Circuit {
    /// PoRep C2 (the sealer plan).
    Seal(SealProof),
    /// The SnapDeals update proof (the snapup plan).
    SectorUpdate(UpdateProof),
    /// The WindowPoSt SNARK (the wdpost plan).
    WindowPoSt(PoStProof),
}

impl Circuit {
    /// Every circuit the plans need for sectors of `size`, in the order they are generated.
    pub fn all_for(size: SectorSize) -> Result<Vec<Circuit>, ParamsError> {
        let seal = proof_for(size)?;
        let post = PoStProof::window_for(size).ok_or(ParamsError::UnknownSize(size))?;
        Ok(vec![
            Circuit::Seal(seal),
            Circuit::SectorUpdate(seal.update_proof()),
            Circuit::WindowPoSt(post),
        ])
    }

    /// The size of the sectors it proves.
    pub fn sector_size(self) -> SectorSize {
        match self {
            Circuit::Seal(proof) => proof.sector_size(),
            Circuit::SectorUpdate(proof) => proof.sector_size(),
            Circuit::WindowPoSt(proof) => proof.sector_size(),
        }
    }

    /// The `.params` and `.vk` files.
    pub fn files(self) -> Result<(PathBuf, PathBuf), ParamsError> {
        let to_err = |e: &dyn std::fmt::Display| ParamsError::Generation {
            size: self.sector_size(),
            message: format!("{e:#}"),
        };
        let (params, vk) = match self {
            Circuit::Seal(proof) => {
                let api = registered(proof);
                (api.cache_params_path(), api.cache_verifying_key_path())
            }
            Circuit::WindowPoSt(proof) => {
                let api = registered_post(proof);
                (api.cache_params_path(), api.cache_verifying_key_path())
            }
            // Not `RegisteredUpdateProof::cache_params_path`: filecoin-proofs-api 19.1 answers
            // it with the PoRep file's path.
            Circuit::SectorUpdate(proof) => {
                let id = update_identifier(proof.sector_size())
                    .ok_or(ParamsError::UnknownSize(proof.sector_size()))?;
                (
                    Ok(parameter_cache_params_path(&id)),
                    Ok(parameter_cache_verifying_key_path(&id)),
                )
            }
        };
        Ok((params.map_err(|e| to_err(&e))?, vk.map_err(|e| to_err(&e))?))
    }

    /// The lock file its generation holds, in the cache directory.
    pub fn lock_path(self) -> PathBuf {
        let (kind, size) = match self {
            Circuit::Seal(proof) => ("porep", proof.sector_size()),
            Circuit::SectorUpdate(proof) => ("update", proof.sector_size()),
            Circuit::WindowPoSt(proof) => ("window-post", proof.sector_size()),
        };
        cache_dir().join(format!(".damocles-generate-{kind}-{size}.lock"))
    }

    /// Whether its files are being generated now (by this process or another): its
    /// generation lock is held.
    pub fn being_generated(self) -> bool {
        File::open(self.lock_path())
            .is_ok_and(|file| matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
    }

    /// Whether both files are present.
    pub fn present(self) -> bool {
        self.files()
            .is_ok_and(|(params, vk)| params.is_file() && vk.is_file())
    }
}

impl std::fmt::Display for Circuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Circuit::Seal(proof) => write!(f, "PoRep ({proof})"),
            Circuit::SectorUpdate(proof) => write!(f, "empty-sector-update ({proof})"),
            Circuit::WindowPoSt(proof) => write!(f, "window-PoSt ({proof})"),
        }
    }
}

/// The `.params` and `.vk` files a seal proof type needs.
pub fn files(proof: SealProof) -> Result<(PathBuf, PathBuf), ParamsError> {
    Circuit::Seal(proof).files()
}

/// Whether both parameter files of a seal proof type are present.
pub fn present(proof: SealProof) -> bool {
    Circuit::Seal(proof).present()
}

/// Whether every circuit of sectors of `size` has its files (see [`Circuit::all_for`]).
pub fn all_present(size: SectorSize) -> bool {
    Circuit::all_for(size).is_ok_and(|all| all.into_iter().all(Circuit::present))
}

/// What a generation run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generated {
    /// The files were already there.
    AlreadyPresent,
    /// They were generated, in this long.
    Generated(Duration),
}

/// Generates the parameters of every circuit of sector `size` ([`Circuit::all_for`]) into
/// the cache unless they are there, calling `progress` with the circuit and the elapsed
/// time about every `tick` while it works (2KiB on 2 cores: PoRep about 14 minutes, the
/// update circuit about 4 more, window PoSt 7 seconds). Refuses production sizes. See
/// [`ensure_circuits`].
pub fn ensure(
    size: SectorSize,
    tick: Duration,
    progress: impl FnMut(Circuit, Duration),
) -> Result<Generated, ParamsError> {
    ensure_circuits(&Circuit::all_for(size)?, tick, progress)
}

/// Generates the parameters of `circuits`, in order, unless they are there. Each circuit
/// is generated under a lock file of its own, so that processes that call this at once
/// wait for each other instead of writing the same file twice, and so that a thread that
/// needs a circuit can tell it is on its way ([`Circuit::being_generated`]). Refuses
/// production sizes.
pub fn ensure_circuits(
    circuits: &[Circuit],
    tick: Duration,
    mut progress: impl FnMut(Circuit, Duration),
) -> Result<Generated, ParamsError> {
    let dir = cache_dir();
    if let Some(size) = circuits
        .iter()
        .map(|c| c.sector_size())
        .find(|size| *size > SectorSize::MIB_512)
    {
        return Err(ParamsError::ProductionSize {
            size,
            dir: dir.display().to_string(),
        });
    }
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let started = Instant::now();
    let mut generated = false;
    for &circuit in circuits {
        let lock_path = circuit.lock_path();
        let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        if circuit.present() {
            continue;
        }
        let (done_tx, done_rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            let result = generate(circuit);
            let _ = done_tx.send(());
            result
        });
        while done_rx.recv_timeout(tick).is_err() {
            progress(circuit, started.elapsed());
        }
        worker.join().unwrap_or_else(|_| {
            Err(ParamsError::Generation {
                size: circuit.sector_size(),
                message: format!("the generator thread of the {circuit} parameters panicked"),
            })
        })?;
        generated = true;
    }
    Ok(if generated {
        Generated::Generated(started.elapsed())
    } else {
        Generated::AlreadyPresent
    })
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ParamsError {
    let path = path.display().to_string();
    move |source| ParamsError::Io { path, source }
}

fn generate(circuit: Circuit) -> Result<(), ParamsError> {
    let size = circuit.sector_size();
    let result = match circuit {
        Circuit::Seal(proof) => {
            let config = registered(proof).as_v1_config();
            match size {
                SectorSize::KIB_2 => generate_seal::<SectorShape2KiB>(&config),
                SectorSize::MIB_8 => generate_seal::<SectorShape8MiB>(&config),
                SectorSize::MIB_512 => generate_seal::<SectorShape512MiB>(&config),
                _ => return Err(ParamsError::UnknownSize(size)),
            }
        }
        Circuit::SectorUpdate(_) => match size {
            SectorSize::KIB_2 => generate_update::<SectorShape2KiB>(size),
            SectorSize::MIB_8 => generate_update::<SectorShape8MiB>(size),
            SectorSize::MIB_512 => generate_update::<SectorShape512MiB>(size),
            _ => return Err(ParamsError::UnknownSize(size)),
        },
        Circuit::WindowPoSt(proof) => {
            let config = registered_post(proof).as_v1_config();
            match size {
                SectorSize::KIB_2 => generate_window_post::<SectorShape2KiB>(&config),
                SectorSize::MIB_8 => generate_window_post::<SectorShape8MiB>(&config),
                SectorSize::MIB_512 => generate_window_post::<SectorShape512MiB>(&config),
                _ => return Err(ParamsError::UnknownSize(size)),
            }
        }
    };
    result.map_err(|e| ParamsError::Generation {
        size,
        message: format!("{e:#}"),
    })
}

/// The parameter-cache identifier of the update circuit of a size, as upstream's loader
/// names its files (`empty-sector-update-<tree>-<hash of the public parameters>`).
fn update_identifier(size: SectorSize) -> Option<String> {
    fn of<Tree: 'static + MerkleTreeTrait<Hasher = TreeRHasher>>(size: SectorSize) -> String {
        let public = storage_proofs_update::PublicParams::from_sector_size(size.bytes());
        <EmptySectorUpdateCompound<Tree> as CacheableParameters<
            EmptySectorUpdateCircuit<Tree>,
            _,
        >>::cache_identifier(&public)
    }
    Some(match size {
        SectorSize::KIB_2 => of::<SectorShape2KiB>(size),
        SectorSize::MIB_8 => of::<SectorShape8MiB>(size),
        SectorSize::MIB_512 => of::<SectorShape512MiB>(size),
        SectorSize::GIB_32 => of::<SectorShape32GiB>(size),
        SectorSize::GIB_64 => of::<SectorShape64GiB>(size),
        _ => return None,
    })
}

fn generate_update<Tree>(size: SectorSize) -> anyhow::Result<()>
where
    Tree: 'static + MerkleTreeTrait<Hasher = TreeRHasher>,
{
    let public = storage_proofs_update::PublicParams::from_sector_size(size.bytes());
    let mut rng = rand::rngs::OsRng;
    // As for PoRep: writes the `.params` file, then derives and writes the `.vk` file.
    <EmptySectorUpdateCompound<Tree> as CompoundProof<
        EmptySectorUpdate<Tree>,
        EmptySectorUpdateCircuit<Tree>,
    >>::groth_params(Some(&mut rng), &public)?;
    <EmptySectorUpdateCompound<Tree> as CompoundProof<
        EmptySectorUpdate<Tree>,
        EmptySectorUpdateCircuit<Tree>,
    >>::verifying_key(Some(&mut rng), &public)?;
    Ok(())
}

fn generate_window_post<Tree: 'static + MerkleTreeTrait>(
    config: &PoStConfig,
) -> anyhow::Result<()> {
    let public = window_post_public_params::<Tree>(config)?;
    let mut rng = rand::rngs::OsRng;
    <FallbackPoStCompound<Tree> as CompoundProof<
        FallbackPoSt<'_, Tree>,
        FallbackPoStCircuit<Tree>,
    >>::groth_params(Some(&mut rng), &public)?;
    <FallbackPoStCompound<Tree> as CompoundProof<
        FallbackPoSt<'_, Tree>,
        FallbackPoStCircuit<Tree>,
    >>::verifying_key(Some(&mut rng), &public)?;
    Ok(())
}

fn generate_seal<Tree: 'static + MerkleTreeTrait>(config: &PoRepConfig) -> anyhow::Result<()> {
    let public = public_params::<Tree>(config)?;
    let mut rng = rand::rngs::OsRng;
    // Generates and writes the `.params` file, then derives and writes the `.vk` file.
    <StackedCompound<Tree, DefaultPieceHasher> as CompoundProof<
        StackedDrg<'_, Tree, DefaultPieceHasher>,
        _,
    >>::groth_params(Some(&mut rng), &public)?;
    <StackedCompound<Tree, DefaultPieceHasher> as CompoundProof<
        StackedDrg<'_, Tree, DefaultPieceHasher>,
        _,
    >>::verifying_key(Some(&mut rng), &public)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_circuit_of_a_size_names_its_own_files() {
        let circuits = Circuit::all_for(SectorSize::KIB_2).expect("2KiB");
        let files: Vec<_> = circuits.iter().map(|c| c.files().expect("files")).collect();
        assert_eq!(circuits.len(), 3);
        assert_ne!(files[0], files[1]);
        assert_ne!(files[1], files[2]);
        let post = files[2].0.display().to_string();
        assert!(
            post.contains("proof-of-spacetime-fallback-merkletree-poseidon_hasher-8-0-0"),
            "{post}"
        );
        let update = files[1].0.display().to_string();
        assert!(
            update.contains("empty-sector-update-merkletree-poseidon_hasher-8-0-0"),
            "{update}"
        );
        assert!(Circuit::all_for(SectorSize(4096)).is_err());
    }
}
