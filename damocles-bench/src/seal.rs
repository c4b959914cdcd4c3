//! `damocles-seal-bench`: seals N sectors through the project's proof backend and reports
//! the time of every step, C2 on the GPU and on the CPU side by side in one run, with
//! every proof verified.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use damocles_core::{SealProof, SectorId, SectorSize};
use damocles_sealing::params::{self, Generated};
use damocles_sealing::paths::SectorPaths;
use damocles_sealing::proofs::{self, SealIdentity, SealedSector};
use serde::Serialize;

/// Seal sectors for real and time each step; C2 runs on the GPU and on the CPU.
#[derive(Debug, Parser)]
#[command(name = "damocles-seal-bench", version)]
pub struct Args {
    /// How many sectors to seal.
    #[arg(long, short = 'n', default_value_t = 3)]
    pub sectors: u64,
    /// Sector size (2KiB, 8MiB or 512MiB; parameters are generated when missing).
    #[arg(long, default_value = "2KiB")]
    pub sector_size: SectorSize,
    /// Miner actor id the sectors belong to.
    #[arg(long, default_value_t = 1000)]
    pub miner: u64,
    /// Working directory for sector files (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Skip the CPU C2 (only meaningful in a GPU build).
    #[arg(long)]
    pub skip_cpu: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The times of one sector.
#[derive(Debug, Clone, Serialize)]
pub struct SectorTimes {
    /// The sector.
    pub sector: String,
    /// AddPiece (CC piece), ms.
    pub add_piece_ms: f64,
    /// TreeD (comm_d), ms.
    pub tree_d_ms: f64,
    /// PC1, ms.
    pub pc1_ms: f64,
    /// PC2, ms.
    pub pc2_ms: f64,
    /// C1, ms.
    pub c1_ms: f64,
    /// C2 on the GPU, ms (GPU builds only).
    pub c2_gpu_ms: Option<f64>,
    /// C2 on the CPU, ms.
    pub c2_cpu_ms: Option<f64>,
    /// Verification of each proof, ms.
    pub verify_ms: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Sector size.
    pub sector_size: String,
    /// Whether this binary was built with a GPU feature.
    pub gpu_build: bool,
    /// CPU cores.
    pub cpus: usize,
    /// Parameter generation, seconds (`None` when they were already there).
    pub params_generation_s: Option<f64>,
    /// The first C2, which also loads the parameters, ms.
    pub warmup_c2_ms: f64,
    /// Per sector.
    pub sectors: Vec<SectorTimes>,
    /// Median C2 on the GPU, ms.
    pub c2_gpu_median_ms: Option<f64>,
    /// Median C2 on the CPU, ms.
    pub c2_cpu_median_ms: Option<f64>,
    /// CPU median over GPU median.
    pub c2_speedup: Option<f64>,
    /// Proofs verified (each must be valid, or the run fails).
    pub proofs_verified: usize,
}

const GPU_BUILD: bool = cfg!(any(feature = "cuda", feature = "opencl"));

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn set_gpu(enabled: bool) {
    // bellperson reads BELLMAN_NO_GPU at every GPU call; nothing else runs meanwhile.
    if enabled {
        std::env::remove_var("BELLMAN_NO_GPU");
    } else {
        std::env::set_var("BELLMAN_NO_GPU", "1");
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// A CC sector sealed up to C1, with the times of its steps.
pub(crate) struct Prepared {
    pub id: SealIdentity,
    pub ticket: [u8; 32],
    pub seed: [u8; 32],
    pub commitments: damocles_core::PreCommitOutput,
    pub c1: damocles_core::Opaque,
    pub pc1: damocles_core::Opaque,
    pub paths: SectorPaths,
    times: SectorTimes,
}

/// Seals CC sector `number` of `miner` under `dir` up to C1, with a random ticket and seed.
pub(crate) fn prepare(
    proof: SealProof,
    miner: u64,
    dir: &std::path::Path,
    number: u64,
) -> Result<Prepared> {
    let id = SealIdentity {
        proof,
        sector: SectorId::new(miner, number),
    };
    let paths = SectorPaths::new(dir, id.sector);
    let ticket: [u8; 32] = rand::random();
    let mut seed: [u8; 32] = rand::random();
    // Randomness must be a valid field element: clear the top bits as the chain does.
    seed[31] &= 0x3f;
    let mut ticket = ticket;
    ticket[31] &= 0x3f;
    let (pieces, add_piece) = timed(|| proofs::add_pieces(proof, &paths, &[]));
    let pieces = pieces?;
    let (comm_d, tree_d) = timed(|| proofs::tree_d(proof, &pieces));
    let comm_d = comm_d?;
    let (pc1, pc1_time) = timed(|| proofs::pc1(id, &paths, ticket, &pieces));
    let pc1 = pc1?;
    let (commitments, pc2_time) = timed(|| proofs::pc2(&pc1, &paths));
    let commitments = commitments?;
    if commitments.comm_d != comm_d {
        bail!("{}: PC2's comm_d differs from TreeD's", id.sector);
    }
    let (c1, c1_time) = timed(|| proofs::c1(id, &paths, ticket, seed, commitments, &pieces));
    Ok(Prepared {
        id,
        ticket,
        seed,
        commitments,
        c1: c1?,
        pc1,
        paths,
        times: SectorTimes {
            sector: id.sector.to_string(),
            add_piece_ms: ms(add_piece),
            tree_d_ms: ms(tree_d),
            pc1_ms: ms(pc1_time),
            pc2_ms: ms(pc2_time),
            c1_ms: ms(c1_time),
            c2_gpu_ms: None,
            c2_cpu_ms: None,
            verify_ms: 0.0,
        },
    })
}

fn prove_and_verify(p: &Prepared, gpu: bool, verify_total: &mut Duration) -> Result<Duration> {
    set_gpu(gpu);
    let (proof, took) = timed(|| proofs::c2(p.id, &p.c1));
    let sealed = SealedSector {
        id: p.id,
        ticket: p.ticket,
        seed: p.seed,
        commitments: p.commitments,
        proof: proof?,
    };
    let (valid, verify) = timed(|| proofs::verify(&sealed));
    *verify_total += verify;
    if !valid? {
        bail!("{}: the C2 proof (gpu: {gpu}) does not verify", p.id.sector);
    }
    Ok(took)
}

/// The parameters of `args.sector_size`, generated when missing: how long that took
/// (seconds), or `None` when they were there.
fn ensure_params(args: &Args) -> Result<Option<f64>> {
    let generated = params::ensure(
        args.sector_size,
        Duration::from_secs(30),
        |circuit, elapsed| {
            eprintln!(
            "  generating the {circuit} parameters: {} elapsed (2KiB takes about 21 min on 2 cores)",
            humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
        );
        },
    )?;
    Ok(match generated {
        Generated::AlreadyPresent => {
            eprintln!("  parameters present");
            None
        }
        Generated::Generated(took) => {
            eprintln!("  parameters generated in {:.1} s", took.as_secs_f64());
            Some(took.as_secs_f64())
        }
    })
}

/// Runs the bench.
pub fn run(args: &Args) -> Result<Report> {
    eprintln!(
        "damocles-seal-bench: {} sectors of {}, {} build, {} cpus, parameters in {}",
        args.sectors,
        args.sector_size,
        if GPU_BUILD { "GPU" } else { "CPU-only" },
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        params::cache_dir().display()
    );
    let params_generation_s = ensure_params(args)?;
    let tempdir;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            tempdir = tempdir_path()?;
            tempdir.clone()
        }
    };
    let proof = params::proof_for(args.sector_size)?;
    let mut verify_total = Duration::ZERO;
    let mut proofs_verified = 0;
    let mut sectors = Vec::new();
    let mut warmup_c2_ms = 0.0;
    for number in 1..=args.sectors {
        let mut prepared = prepare(proof, args.miner, &dir, number)
            .with_context(|| format!("sealing sector {number}"))?;
        if number == 1 {
            let took = prove_and_verify(&prepared, GPU_BUILD, &mut verify_total)?;
            proofs_verified += 1;
            warmup_c2_ms = ms(took);
            eprintln!("  warm-up C2 (loads the parameters): {warmup_c2_ms:.0} ms");
        }
        verify_total = Duration::ZERO;
        if GPU_BUILD {
            let took = prove_and_verify(&prepared, true, &mut verify_total)?;
            proofs_verified += 1;
            prepared.times.c2_gpu_ms = Some(ms(took));
        }
        if !GPU_BUILD || !args.skip_cpu {
            let took = prove_and_verify(&prepared, false, &mut verify_total)?;
            proofs_verified += 1;
            prepared.times.c2_cpu_ms = Some(ms(took));
        }
        prepared.times.verify_ms = ms(verify_total);
        let t = &prepared.times;
        eprintln!(
            "  {}: add_piece {:.1} ms, tree_d {:.1} ms, pc1 {:.1} ms, pc2 {:.1} ms, c1 {:.1} ms, c2 gpu {}, c2 cpu {}, verify {:.1} ms",
            t.sector,
            t.add_piece_ms,
            t.tree_d_ms,
            t.pc1_ms,
            t.pc2_ms,
            t.c1_ms,
            t.c2_gpu_ms.map_or("-".into(), |v| format!("{v:.0} ms")),
            t.c2_cpu_ms.map_or("-".into(), |v| format!("{v:.0} ms")),
            t.verify_ms
        );
        sectors.push(prepared.times);
    }
    set_gpu(true);
    let c2_gpu_median_ms = median(sectors.iter().filter_map(|s| s.c2_gpu_ms).collect());
    let c2_cpu_median_ms = median(sectors.iter().filter_map(|s| s.c2_cpu_ms).collect());
    let c2_speedup = c2_cpu_median_ms.zip(c2_gpu_median_ms).map(|(c, g)| c / g);
    Ok(Report {
        sector_size: args.sector_size.to_string(),
        gpu_build: GPU_BUILD,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        params_generation_s,
        warmup_c2_ms,
        sectors,
        c2_gpu_median_ms,
        c2_cpu_median_ms,
        c2_speedup,
        proofs_verified,
    })
}

fn tempdir_path() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("damocles-seal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// The binary's entry point.
pub fn main_impl() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            println!(
                "C2 median: gpu {} ms, cpu {} ms, speedup {}; {} proofs verified",
                report
                    .c2_gpu_median_ms
                    .map_or("-".into(), |v| format!("{v:.0}")),
                report
                    .c2_cpu_median_ms
                    .map_or("-".into(), |v| format!("{v:.0}")),
                report.c2_speedup.map_or("-".into(), |v| format!("{v:.1}x")),
                report.proofs_verified
            );
            if let Some(path) = &args.json {
                let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(e) = std::fs::write(path, json) {
                    eprintln!("error: write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
