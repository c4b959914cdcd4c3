//! `damocles-bench`: the figures of BENCHMARKS.md, each against a baseline taken in the
//! same run. `--smoke` runs everything small and without C2, in seconds (CI keeps it
//! building and running that way).

mod admin;
mod ingest;
mod listing;
mod memory;
mod pipeline;
mod priority;
mod processors;
mod records;
pub mod seal;
mod snapup;
mod stats;
mod wdpost;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Measure the system against its limits; print the figures.
#[derive(Debug, Parser)]
#[command(name = "damocles-bench", version)]
pub struct Args {
    /// Small sizes, no C2: checks that every figure still runs (seconds).
    #[arg(long)]
    pub smoke: bool,
    /// Which figures (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Figure>,
    /// Sizes for figures 2–4, as multiples of the base size (64 threads, 10,000 workers,
    /// 10,000 entries).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub scale: Vec<usize>,
    /// Sectors for figures 1, 7 and 8; timed calls on each side for figure 9.
    #[arg(long, default_value_t = 3)]
    pub sectors: u64,
    /// Figures 3 and 4 also against the worker registry in this PostgreSQL database
    /// (a scratch one: it must be empty, and is emptied afterwards), side by side with
    /// redb.
    #[arg(
        long,
        env = "DAMOCLES_BENCH_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub db: Option<String>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A figure of BENCHMARKS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Figure {
    /// 1: pipeline throughput against back-to-back proof calls.
    Pipeline,
    /// 2: admin API latency against a bare hyper server.
    Admin,
    /// 3: manager ping ingest.
    Ingest,
    /// 4: `util worker list` end to end.
    Listing,
    /// 5: resident memory.
    Memory,
    /// 7: snap-up throughput against back-to-back update proof calls (6 is the growth of
    /// 2–4 with `--scale`).
    Snapup,
    /// 8: one WindowPoSt over N sectors against the bare `generate_window_post` call.
    Wdpost,
    /// 9: C2 in an external processor against the same C2 in-process.
    Processors,
    /// 10: sector allocations per second through two managers sharing PostgreSQL records
    /// that hold 100 and 10,000 sectors (needs `--db`).
    Records,
    /// 11: an 8-sector WindowPoSt job while sealing threads run C2 in an external
    /// processor, against the same job alone (`[worker] wdpost_priority`).
    Priority,
}

impl Args {
    /// Whether `figure` is to be measured (`--only`, or every figure).
    fn wants(&self, figure: Figure) -> bool {
        self.only.is_empty() || self.only.contains(&figure)
    }
}

/// Everything measured.
#[derive(Debug, Default, Serialize)]
pub struct Figures {
    /// Machine: CPU cores.
    pub cpus: usize,
    /// Smoke mode.
    pub smoke: bool,
    /// Figure 1.
    pub pipeline: Option<pipeline::PipelineFigures>,
    /// Figure 2, per size.
    pub admin: Vec<admin::AdminFigures>,
    /// Figure 3, per size.
    pub ingest: Vec<ingest::IngestFigures>,
    /// Figure 4, per size.
    pub listing: Vec<listing::ListingFigures>,
    /// Figure 5.
    pub memory: Option<memory::MemoryFigures>,
    /// Figure 7.
    pub snapup: Option<snapup::SnapupFigures>,
    /// Figure 8.
    pub wdpost: Option<wdpost::WdPostFigures>,
    /// Figure 9.
    pub processors: Option<processors::ProcessorFigures>,
    /// Figure 10, per size.
    pub records: Vec<records::RecordsFigures>,
    /// Figure 11.
    pub priority: Option<priority::PriorityFigures>,
}

/// The binary `name` beside this program (cargo builds them into one directory).
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        path.is_file(),
        "{} not found: build it first (cargo build --workspace)",
        path.display()
    );
    Ok(path)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

async fn run(args: &Args) -> anyhow::Result<Figures> {
    let scales: Vec<usize> = if args.smoke {
        vec![1]
    } else {
        args.scale.clone()
    };
    let mut figures = Figures {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        smoke: args.smoke,
        ..Figures::default()
    };
    if args.wants(Figure::Pipeline) {
        figures.pipeline = Some(pipeline_figure(args).await?);
    }
    if args.wants(Figure::Snapup) {
        figures.snapup = Some(snapup_figure(args).await?);
    }
    if args.wants(Figure::Wdpost) {
        figures.wdpost = Some(wdpost_figure(args).await?);
    }
    if args.wants(Figure::Processors) {
        figures.processors = Some(processors_figure(args).await?);
    }
    if args.wants(Figure::Records) {
        figures.records = records_figure(args).await?;
    }
    if args.wants(Figure::Priority) {
        figures.priority = Some(priority_figure(args).await?);
    }
    for &scale in &scales {
        scaled_figures(args, scale, &mut figures).await?;
    }
    if args.wants(Figure::Memory) {
        figures.memory = Some(memory_figure(args).await?);
    }
    Ok(figures)
}

/// Figure 1: the sealing pipeline, back to back and through the system, printed.
async fn pipeline_figure(args: &Args) -> anyhow::Result<pipeline::PipelineFigures> {
    let sectors = if args.smoke { 1 } else { args.sectors };
    eprintln!("figure 1: {sectors} sectors back to back, then through the system …");
    let f = pipeline::run(sectors, !args.smoke).await?;
    if args.smoke {
        println!(
            "1 pipeline (smoke, no C2: not a figure): back to back {:.3} s, system {:.3} s",
            f.limit_s, f.system_s
        );
    } else {
        println!(
        "1 pipeline: limit {:.1} s ({:.1} sectors/h), system {:.1} s ({:.1} sectors/h), ratio {:.3} (≥ 0.95: {}), non-proof overhead {:.2} % (< 1 %: {})",
        f.limit_s,
        f.limit_sectors_per_hour,
        f.system_s,
        f.system_sectors_per_hour,
        f.ratio,
        verdict(f.ratio >= 0.95),
        f.non_proof_overhead * 100.0,
        verdict(f.non_proof_overhead < 0.01),
        );
    }
    Ok(f)
}

/// Figure 7: snap-ups, back to back and through the system, printed.
async fn snapup_figure(args: &Args) -> anyhow::Result<snapup::SnapupFigures> {
    let sectors = if args.smoke { 1 } else { args.sectors };
    eprintln!("figure 7: {sectors} snap-ups back to back, then through the system …");
    let f = snapup::run(sectors, !args.smoke).await?;
    if args.smoke {
        println!(
            "7 snap-up (smoke, no snap prove: not a figure): back to back {:.3} s, system {:.3} s",
            f.limit_s, f.system_s
        );
    } else {
        println!(
            "7 snap-up: limit {:.1} s ({:.1} sectors/h), system {:.1} s ({:.1} sectors/h), ratio {:.3} (≥ 0.95: {})",
            f.limit_s,
            f.limit_sectors_per_hour,
            f.system_s,
            f.system_sectors_per_hour,
            f.ratio,
            verdict(f.ratio >= 0.95),
        );
    }
    Ok(f)
}

/// Figure 8: a WindowPoSt, bare and through the system, printed.
async fn wdpost_figure(args: &Args) -> anyhow::Result<wdpost::WdPostFigures> {
    let sectors = if args.smoke { 1 } else { args.sectors };
    eprintln!("figure 8: a WindowPoSt over {sectors} sectors, bare, then through the system …");
    let f = wdpost::run(sectors, !args.smoke).await?;
    if args.smoke {
        println!(
            "8 window PoSt (smoke, no proof: not a figure): the job taken in {:.3} s",
            f.system_s
        );
    } else {
        println!(
            "8 window PoSt over {sectors} sectors: bare generate_window_post {:.2} s, system {:.2} s (verified: {}), ratio {:.3}",
            f.bare_s, f.system_s, f.verified, f.ratio,
        );
    }
    Ok(f)
}

/// Figure 9: C2 in-process and in an external processor, printed.
async fn processors_figure(args: &Args) -> anyhow::Result<processors::ProcessorFigures> {
    let reps = if args.smoke { 1 } else { args.sectors };
    eprintln!("figure 9: {reps} C2 calls in-process and in an external processor …");
    let f = processors::run(reps, !args.smoke).await?;
    println!(
        "9 external processor{}: {} in-process {:.3} s, external {:.3} s (median of {}), ratio {:.3}",
        if args.smoke { " (smoke, PC2 for C2: not a figure)" } else { "" },
        f.stage,
        f.builtin_s,
        f.external_s,
        f.reps,
        f.ratio,
    );
    Ok(f)
}

/// Figure 11: a WindowPoSt job alone and during C2, printed.
async fn priority_figure(args: &Args) -> anyhow::Result<priority::PriorityFigures> {
    let (sectors, reps) = if args.smoke { (1, 1) } else { (8, 5) };
    eprintln!("figure 11: {reps} WindowPoSt jobs over {sectors} sectors alone, then {reps} while C2 runs …");
    let f = priority::run(sectors, reps, !args.smoke).await?;
    if args.smoke {
        println!(
            "11 WindowPoSt priority (smoke, no proof: not a figure): a job taken in {:.3} s alone, {:.3} s beside sealing",
            f.alone_s, f.during_c2_s
        );
    } else {
        println!(
            "11 WindowPoSt priority: a job over {sectors} sectors alone {:.2} s, during C2 {:.2} s (medians of {reps}; verified: {}), ratio {:.3} (≤ 1.5: {}); the priority off, during C2 {:.2} s, ratio {:.3}",
            f.alone_s,
            f.during_c2_s,
            f.verified,
            f.ratio,
            verdict(f.ratio <= 1.5),
            f.during_c2_off_s,
            f.ratio_off,
        );
    }
    Ok(f)
}

/// Figure 5: the resident memory of a worker and a manager, printed.
async fn memory_figure(args: &Args) -> anyhow::Result<memory::MemoryFigures> {
    let (threads, entries) = if args.smoke { (8, 1_000) } else { (64, 10_000) };
    let f = memory::run(threads, entries).await?;
    println!(
        "5 memory: worker with {threads} idle threads {:.1} MiB (< 50: {}), manager with {entries} entries {:.1} MiB (< 200: {})",
        f.worker_rss_mib,
        verdict(f.worker_rss_mib < 50.0),
        f.manager_rss_mib,
        verdict(f.manager_rss_mib < 200.0),
    );
    Ok(f)
}

/// Figure 10: allocations through shared PostgreSQL records of 100 and of 10,000 sectors
/// (10 and 100 with `--smoke`), side by side, printed; nothing without `--db`.
async fn records_figure(args: &Args) -> anyhow::Result<Vec<records::RecordsFigures>> {
    let Some(url) = args.db.as_deref() else {
        println!("10 records: skipped (needs --db, a PostgreSQL database)");
        return Ok(Vec::new());
    };
    let (sizes, allocations) = if args.smoke {
        ([10, 100], 50)
    } else {
        ([100, 10_000], 1_000)
    };
    eprintln!("figure 10: records of {sizes:?} sectors, {allocations} allocations each …");
    let mut figures = Vec::new();
    for sectors in sizes {
        figures.push(records::run(url, sectors, allocations).await?);
    }
    let [small, large] = [&figures[0], &figures[1]];
    println!(
        "10 records (postgres, 2 managers, {} in flight): {} allocations/s at {} sectors, {} at {} (ratio {:.2}; ≥ 0.8: {}); filling to {} took {:.1} s",
        small.in_flight,
        small.allocations_per_s.round(),
        small.sectors_before,
        large.allocations_per_s.round(),
        large.sectors_before,
        large.allocations_per_s / small.allocations_per_s,
        verdict(large.allocations_per_s >= 0.8 * small.allocations_per_s),
        large.sectors_before,
        large.fill_s,
    );
    Ok(figures)
}

/// Figures 2, 3 and 4 at `scale`, printed.
async fn scaled_figures(args: &Args, scale: usize, figures: &mut Figures) -> anyhow::Result<()> {
    if args.wants(Figure::Admin) {
        let threads = if args.smoke { 8 } else { 64 * scale };
        let calls = if args.smoke {
            200
        } else {
            (10_000 / scale).max(200)
        };
        let f = admin::run(threads, calls).await?;
        println!(
            "2 admin ×{scale}: {threads} threads, {} B, {calls} calls: ours p50 {:.0} µs p99 {:.0} µs; bare p50 {:.0} µs p99 {:.0} µs; p99 ratio {:.2} (≤ 1.5: {})",
            f.answer_bytes,
            f.ours.p50_us,
            f.ours.p99_us,
            f.bare.p50_us,
            f.bare.p99_us,
            f.p99_ratio,
            verdict(f.p99_ratio <= 1.5),
        );
        figures.admin.push(f);
    }
    if args.wants(Figure::Ingest) {
        let workers = if args.smoke { 1_000 } else { 10_000 * scale };
        let rounds = if args.smoke || scale > 1 { 1 } else { 3 };
        let stores = std::iter::once(None).chain(args.db.as_deref().map(Some));
        for db in stores {
            let f = ingest::run(workers, rounds, 64, db).await?;
            println!(
                "3 ingest ×{scale} ({}): {} pings from {workers} workers over {} connections: {:.0} pings/s (≥ 20,000: {}), p50 {:.0} µs p99 {:.0} µs; {} entries",
                f.store,
                f.pings,
                f.connections,
                f.pings_per_s,
                verdict(f.pings_per_s >= 20_000.0),
                f.latency.p50_us,
                f.latency.p99_us,
                f.entries,
            );
            figures.ingest.push(f);
        }
    }
    if args.wants(Figure::Listing) {
        let entries = if args.smoke { 1_000 } else { 10_000 * scale };
        let runs = if args.smoke || scale > 10 { 1 } else { 5 };
        let stores = std::iter::once(None).chain(args.db.as_deref().map(Some));
        for db in stores {
            let f = listing::run(entries, runs, db).await?;
            println!(
                "4 listing ×{scale} ({}): {entries} entries: table {:.0} ms ({} B; < 200 ms: {}), --json {:.0} ms ({} B)",
                f.store,
                f.table_ms,
                f.table_bytes,
                verdict(f.table_ms < 200.0),
                f.json_ms,
                f.json_bytes,
            );
            figures.listing.push(f);
        }
    }
    Ok(())
}

/// The binary's entry point.
pub fn main_impl() -> ExitCode {
    let args = Args::parse();
    damocles_cli::logging::init("warn");
    if args.smoke {
        // Without parameters C2 fails at once; nothing here may wait for one.
        // One empty directory for every smoke run (nothing writes into it), so that runs
        // leave one behind, not one per process.
        let empty = std::env::temp_dir().join("damocles-bench-no-params");
        if std::fs::create_dir_all(&empty).is_ok() {
            std::env::set_var("FIL_PROOFS_PARAMETER_CACHE", &empty);
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(figures) => {
            if let Some(path) = &args.json {
                if let Err(e) = std::fs::write(path, damocles_cli::render::json(&figures)) {
                    eprintln!("error: {}: {e}", path.display());
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
