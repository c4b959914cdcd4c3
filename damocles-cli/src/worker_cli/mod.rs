//! The `damocles-worker` command line: `daemon`, `worker
//! list|pause|resume|drain|undrain|events`, `store sealing-init` and `params generate`.

pub mod config_check;
pub mod daemon;
mod target;

use crate::bad_value::BadValue;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use damocles_core::{AdminTransport, ProofStage, SectorSize};
use damocles_rpc::{HttpAdminClient, Timeouts};
use damocles_sealing::params::{self, Generated};
use damocles_sealing::store::Location;

use crate::bulk::{self, Action, Selector, SelectorFlags};
use crate::events::{self, EventsFlags};
use crate::exit::{self, CliError, ErrorKind};
use crate::render;

/// A damocles sealing worker: runs sealing threads that seal sectors with real proofs, and
/// manages the threads of a running worker.
#[derive(Debug, Parser)]
#[command(name = "damocles-worker", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the worker: its sealing threads and its admin API. Stops cleanly on Ctrl-C or
    /// SIGTERM (after the proof calls in flight return; a second signal exits at once,
    /// and the interrupted steps re-run at the next start).
    Daemon(DaemonArgs),
    /// Manage the sealing threads of a running worker through its admin API.
    Worker(WorkerArgs),
    /// Prepare sealing locations.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Groth parameters for sealing.
    #[command(subcommand)]
    Params(ParamsCommand),
    /// Check a configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Serve one stage's proof calls as an external processor: the child a worker starts
    /// for `[[processors.<stage>]]` (add_pieces, pc1, pc2, c2, snap_encode, snap_prove,
    /// unseal, window_post or transfer). Prints "<stage> processor ready", then answers
    /// JSON-lines requests from stdin on stdout (the original's protocol); logs go to
    /// stderr. Binds itself to VC_CG_CPUSET and VENUS_WORKER_NUMA_PREFERRED
    /// when set. Exits when stdin closes.
    Processor {
        /// The stage: add_pieces, pc1, pc2, c2, snap_encode, snap_prove, unseal,
        /// window_post or transfer.
        #[arg(value_parser = parse_stage)]
        stage: ProofStage,
    },
}

fn parse_stage(text: &str) -> Result<ProofStage, BadValue> {
    let stage: ProofStage = text.parse()?;
    if damocles_sealing::processors::EXTERNAL.contains(&stage) {
        Ok(stage)
    } else {
        Err(BadValue::InProcess(stage))
    }
}

#[derive(Debug, Args)]
struct DaemonArgs {
    /// The worker's configuration file (TOML).
    #[arg(short = 'c', long, env = "DAMOCLES_WORKER_CONFIG")]
    config: PathBuf,
    /// Seal for an in-process mock chain of this miner instead of the manager: for
    /// trying a worker on its own. Proofs are real and verified; nothing is reported.
    /// Sectors are persisted to the config's first writable `[[attached]]` store.
    #[arg(long, value_name = "MINER")]
    mock_chain: Option<u64>,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// The worker's admin API, host:port (default 127.0.0.1:17890; port 17890 when left
    /// out).
    #[arg(short = 'H', long, env = "DAMOCLES_WORKER_HOST")]
    host: Option<String>,
    /// Take the address (and the admin token) from this worker configuration; wins over
    /// --host.
    #[arg(short = 'c', long, env = "DAMOCLES_WORKER_CONFIG")]
    config: Option<PathBuf>,
    /// The bearer token, when the worker requires one.
    #[arg(long, env = "DAMOCLES_WORKER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Print JSON instead of text (schemas in the README).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: WorkerAction,
}

#[derive(Debug, Subcommand)]
enum WorkerAction {
    /// List the sealing threads.
    List,
    /// Pause a thread, or every thread a selector picks (one line per thread). A thread
    /// in a proof call pauses as soon as the call returns.
    Pause {
        /// The thread's index, as `list` prints it.
        #[arg(short = 'i', long)]
        index: Option<u64>,
        #[command(flatten)]
        select: SelectorFlags,
    },
    /// Drain a thread (or every thread a selector picks): it finishes its current sector
    /// and takes no new one. Kept across restarts.
    Drain {
        /// The thread's index, as `list` prints it.
        #[arg(short = 'i', long)]
        index: Option<u64>,
        #[command(flatten)]
        select: SelectorFlags,
    },
    /// Lift a drain: the thread takes new sectors again.
    Undrain {
        /// The thread's index, as `list` prints it.
        #[arg(short = 'i', long)]
        index: Option<u64>,
        #[command(flatten)]
        select: SelectorFlags,
    },
    /// Resume a paused thread (or every thread a selector picks), re-running its current
    /// state or at the state given.
    Resume {
        /// The thread's index, as `list` prints it.
        #[arg(short = 'i', long)]
        index: Option<u64>,
        #[command(flatten)]
        select: SelectorFlags,
        /// The state to resume at (one of its plan's states; `Aborted` drops the sector).
        #[arg(short = 's', long)]
        state: Option<String>,
    },
    /// Set a thread's plan: writes `plan` into the thread's config.toml (its hot config,
    /// keeping the file's other keys and comments); the thread finishes its current job
    /// under the plan it started with, then takes new jobs under this one. No restart.
    SetPlan {
        /// The thread's index, as `list` prints it.
        #[arg(short = 'i', long)]
        index: u64,
        /// The plan: sealer, snapup, rebuild, unseal or wdpost.
        plan: damocles_core::Plan,
    },
    /// Stop the worker on request: every thread takes no new step and stops after its
    /// current one (a proof call runs to its end and is saved; a held WindowPoSt job is
    /// finished), then the daemon exits with code 75, "restart me" (systemd:
    /// RestartForceExitStatus=75). Ctrl-C and SIGTERM keep their meaning (exit 0).
    Stop {
        #[command(flatten)]
        flags: crate::worker_ops::StopFlags,
    },
    /// A thread's history, oldest first: transitions, failures, aborts, and pauses,
    /// resumes and drains with who asked (the token used and the caller's address). Times
    /// are in the local time zone (TZ), with ages.
    Events {
        /// The thread's index, as `list` prints it.
        #[arg(short = 'i', long)]
        index: u64,
        #[command(flatten)]
        flags: EventsFlags,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Prepare directories as sealing locations (creating them); prepared ones are left
    /// as they are.
    SealingInit {
        /// The locations.
        #[arg(short = 'l', long = "loc", required = true, num_args = 1..)]
        locations: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a worker configuration against this machine without starting anything (no
    /// location created or locked, no processor spawned, nothing sent to the manager):
    /// prints what would run (threads and their plans, hot configs included; external
    /// processors; stage limits; attached stores), then the warnings and problems. Exit
    /// 0 when it can run here, 2 when it cannot.
    Check {
        /// The configuration file (TOML).
        #[arg(short = 'c', long, env = "DAMOCLES_WORKER_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ParamsCommand {
    /// Generate the parameters of a test sector size (2KiB, 8MiB or 512MiB) into the
    /// parameter cache ($FIL_PROOFS_PARAMETER_CACHE, default
    /// /var/tmp/filecoin-proof-parameters), unless they are there: PoRep (the sealer plan)
    /// and the empty-sector-update circuit (the snapup plan). 2KiB takes about 21 minutes
    /// on 2 cores and 1.8 GB of disk. Production sizes are refused: they need the official
    /// files.
    Generate {
        /// The sector size.
        #[arg(long, short = 's')]
        sector_size: SectorSize,
    },
}

/// The binary's entry point.
pub fn main_impl() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Worker(_));
    crate::logging::init(if quiet { "warn" } else { "info" });
    let code = match cli.command {
        Command::Daemon(args) => {
            let choice = match args.mock_chain {
                Some(miner) => daemon::ManagerChoice::MockChain(miner),
                None => daemon::ManagerChoice::FromConfig,
            };
            run_async(daemon::run(&args.config, choice))
        }
        Command::Worker(args) => run_async(worker(args)),
        Command::Store(StoreCommand::SealingInit { locations }) => sealing_init(&locations),
        Command::Params(ParamsCommand::Generate { sector_size }) => generate_params(sector_size),
        Command::Config(ConfigCommand::Check { config, json }) => config_check::run(&config, json),
        Command::Processor { stage } => match damocles_sealing::processors::serve_stage(stage) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("{e}");
                1
            }
        },
    };
    ExitCode::from(code)
}

/// Runs `work` on a multi-threaded runtime.
pub(crate) fn run_async(work: impl std::future::Future<Output = u8>) -> u8 {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => render::failure(
            false,
            &CliError::failed(format!("cannot start the async runtime: {e}")),
        ),
    }
}

async fn worker(args: WorkerArgs) -> u8 {
    let json = args.json;
    let fail = |error: CliError| render::failure(json, &error);
    let target = match target::resolve(
        args.host.as_deref(),
        args.config.as_deref(),
        args.token,
        args.token_file.as_deref(),
    ) {
        Ok(target) => target,
        Err(unusable) => return fail(CliError::bad_input(unusable.to_string())),
    };
    let client = match HttpAdminClient::new(&target.address, target.token, Timeouts::default()) {
        Ok(client) => client,
        Err(e) => return fail(CliError::bad_input(e.to_string())),
    };
    let (selector, action) = match args.action {
        WorkerAction::List => {
            let listed = client.list().await.map(|threads| {
                if json {
                    render::json(&threads)
                } else {
                    render::thread_table(&threads)
                }
            });
            return match listed {
                Ok(text) => {
                    crate::exit::print_out(&text);
                    exit::OK
                }
                Err(e) => fail(e.into()),
            };
        }
        WorkerAction::Events { index, flags } => {
            return events::show(&client, index, &flags, json, &|m| m.to_owned()).await;
        }
        WorkerAction::SetPlan { index, plan } => {
            let (text, code) =
                crate::worker_ops::set_plan(&client, index, plan, json, &|m| m.to_owned()).await;
            crate::exit::print_out(&text);
            return code;
        }
        WorkerAction::Stop { flags } => {
            let (text, code) =
                crate::worker_ops::stop(&client, flags.mode(), json, &|m| m.to_owned()).await;
            crate::exit::print_out(&text);
            return code;
        }
        WorkerAction::Pause { index, select } => {
            (Selector::from_parts(index, &select), Action::Pause)
        }
        WorkerAction::Resume {
            index,
            select,
            state,
        } => (Selector::from_parts(index, &select), Action::Resume(state)),
        WorkerAction::Drain { index, select } => {
            (Selector::from_parts(index, &select), Action::Drain(true))
        }
        WorkerAction::Undrain { index, select } => {
            (Selector::from_parts(index, &select), Action::Drain(false))
        }
    };
    let selector = match selector {
        Ok(selector) => selector,
        Err(unchosen) => return fail(CliError::bad_input(unchosen.to_string())),
    };
    let (text, code) = bulk::run(&client, &selector, &action, json, &|m| m.to_owned()).await;
    crate::exit::print_out(&text);
    code
}

fn sealing_init(locations: &[PathBuf]) -> u8 {
    let mut code = exit::OK;
    for path in locations {
        match Location::init(path) {
            Ok(location) => println!("{} ready", location.root().display()),
            Err(e) => code = render::failure(false, &CliError::failed(e.to_string())),
        }
    }
    code
}

fn generate_params(sector_size: SectorSize) -> u8 {
    if params::all_present(sector_size) {
        println!(
            "{sector_size} parameters already present in {}",
            params::cache_dir().display()
        );
        return exit::OK;
    }
    eprintln!(
        "generating {sector_size} parameters into {}",
        params::cache_dir().display()
    );
    let result = params::ensure(sector_size, Duration::from_secs(30), |circuit, elapsed| {
        eprintln!(
            "  still generating the {circuit} parameters: {} elapsed (2KiB takes about 21 min on 2 cores)",
            humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
        );
    });
    match result {
        Ok(Generated::AlreadyPresent) => {
            println!("{sector_size} parameters already present");
            exit::OK
        }
        Ok(Generated::Generated(took)) => {
            println!(
                "{sector_size} parameters generated in {:.0} s",
                took.as_secs_f64()
            );
            exit::OK
        }
        Err(e) => {
            let kind = match e {
                params::ParamsError::ProductionSize { .. }
                | params::ParamsError::UnknownSize(_) => ErrorKind::BadInput,
                _ => ErrorKind::Failed,
            };
            render::failure(false, &CliError::new(kind, e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
