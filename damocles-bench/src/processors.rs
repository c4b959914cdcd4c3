//! Figure 9: the cost of running a proof call in an external processor
//! (`damocles-worker processor c2`, the JSON-lines protocol over pipes) against the same
//! call in-process, on the same C1 output in the same run. Each side is warmed up once
//! (its process loads the parameters), then timed `reps` times, alternating; every proof
//! is verified. In smoke mode PC2 stands in for C2 (no parameters needed).

use std::time::{Duration, Instant};

use damocles_core::{SealProof, SectorSize};
use damocles_sealing::config::WorkerConfig;
use damocles_sealing::params;
use damocles_sealing::processors::{ProcessorTask, Processors};
use damocles_sealing::proofs::{self, SealedSector};
use serde::Serialize;

use crate::seal::{prepare, Prepared};

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessorFigures {
    /// The stage timed: `c2` (`pc2` in smoke mode).
    pub stage: String,
    /// Timed calls on each side.
    pub reps: u64,
    /// In-process, median seconds.
    pub builtin_s: f64,
    /// External processor, median seconds.
    pub external_s: f64,
    /// external / builtin.
    pub ratio: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// One call of the stage on each side: (builtin, external).
async fn once(
    processors: &Processors,
    sector: &Prepared,
    with_c2: bool,
    external_first: bool,
) -> anyhow::Result<(Duration, Duration)> {
    let mut builtin = Duration::ZERO;
    let mut external = Duration::ZERO;
    for external_turn in [external_first, !external_first] {
        let took = if with_c2 {
            let task = proofs::c2_task(sector.id, &sector.c1)?;
            let (proof, took) = call(processors, task, external_turn).await?;
            let sealed = SealedSector {
                id: sector.id,
                ticket: sector.ticket,
                seed: sector.seed,
                commitments: sector.commitments,
                proof: proof.proof,
            };
            anyhow::ensure!(proofs::verify(&sealed)?, "the C2 proof does not verify");
            took
        } else {
            // PC2 again over the replica it restores first: the same comm_r every time.
            let task = proofs::pc2_task(&sector.pc1, &sector.paths)?;
            let (out, took) = call(processors, task, external_turn).await?;
            anyhow::ensure!(
                proofs::pc2_done(out) == sector.commitments,
                "PC2 gave another comm_r"
            );
            took
        };
        if external_turn {
            external = took;
        } else {
            builtin = took;
        }
    }
    Ok((builtin, external))
}

async fn call<P: ProcessorTask>(
    processors: &Processors,
    task: P,
    external: bool,
) -> anyhow::Result<(P::Output, Duration)> {
    let start = Instant::now();
    let output = if external {
        processors.run(&task).await?
    } else {
        tokio::task::spawn_blocking(move || task.execute()).await??
    };
    Ok((output, start.elapsed()))
}

/// Runs figure 9: C2 (`with_c2`) or PC2, `reps` timed calls on each side.
pub async fn run(reps: u64, with_c2: bool) -> anyhow::Result<ProcessorFigures> {
    anyhow::ensure!(
        !with_c2 || params::all_present(SectorSize::KIB_2),
        "the 2KiB parameters are missing: run `damocles-worker params generate --sector-size 2KiB`"
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_path_buf();
    let sector =
        tokio::task::spawn_blocking(move || prepare(SealProof::StackedDrg2KiBV1_1, 1000, &path, 1))
            .await??;
    let stage = if with_c2 { "c2" } else { "pc2" };
    let config = WorkerConfig::parse(
        &format!("[[sealing_thread]]\nlocation = \"unused\"\n[[processors.{stage}]]\n"),
        "figure 9",
    )?
    .config;
    let processors = Processors::start(
        &config.processors,
        &crate::sibling_binary("damocles-worker")?,
    )
    .map_err(anyhow::Error::msg)?;
    // Warm-up: each side's process loads what it caches.
    once(&processors, &sector, with_c2, false).await?;
    let mut builtin = Vec::new();
    let mut external = Vec::new();
    for rep in 0..reps {
        let (b, e) = once(&processors, &sector, with_c2, rep % 2 == 1).await?;
        builtin.push(b.as_secs_f64());
        external.push(e.as_secs_f64());
    }
    let builtin_s = median(builtin);
    let external_s = median(external);
    Ok(ProcessorFigures {
        stage: stage.into(),
        reps,
        builtin_s,
        external_s,
        ratio: external_s / builtin_s,
    })
}
