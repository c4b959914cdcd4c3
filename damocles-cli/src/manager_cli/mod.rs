//! The `damocles-manager` command line: `mock` (the mock chain and the worker registry,
//! optionally with a worker in the same process) and `util worker|sealer …`.

mod dashboard;
mod mock;
mod proving;
pub mod shared_chain;
mod util;

use crate::bad_value::BadValue;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use damocles_core::{SectorId, SectorSize};

use crate::bulk::Action;
use crate::worker_cli::run_async;

/// The damocles manager: stands in for the chain (mock mode), keeps the registry of the
/// workers that report to it, and manages any worker's sealing threads.
#[derive(Debug, Parser)]
#[command(name = "damocles-manager", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the mock chain and the worker registry at /rpc/v0: sectors allocated,
    /// tickets and seeds handed out, every proof verified.
    Mock(MockArgs),
    /// Query and manage the workers and sectors of a running manager.
    Util(UtilArgs),
}

#[derive(Debug, Args)]
struct MockArgs {
    /// The miner actor id sectors are allocated for.
    #[arg(long, default_value_t = 10000)]
    miner: u64,
    /// The sector size sealed.
    #[arg(long, default_value = "2KiB")]
    sector_size: SectorSize,
    /// Where to listen. Loopback by default: without --admin-token, anyone who reaches
    /// the manager can remove workers and register names at other addresses (a warning is
    /// logged when it listens elsewhere without one).
    #[arg(long, default_value = "127.0.0.1:1789")]
    listen: String,
    /// The manager's home: the worker registry lives there (default
    /// ~/.damocles-manager).
    #[arg(long, env = "DAMOCLES_MANAGER_HOME")]
    home: Option<PathBuf>,
    /// Also run, in this process, the worker of this configuration (its locations are
    /// prepared and the sector size's parameters generated first when missing).
    #[arg(long, value_name = "WORKER_CONFIG")]
    with_worker: Option<PathBuf>,
    /// Entries whose last ping is older than this are shown as expired.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    expiration: Duration,
    /// Allocate at most this many sectors, then answer that there is none (for tests and
    /// benchmarks that seal a known number).
    #[arg(long)]
    max_sectors: Option<u64>,
    /// With this token callers may use every method (workers send it as `[sector_manager]
    /// rpc_client.token`).
    #[arg(long, env = "DAMOCLES_MANAGER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// With this token callers may list workers and sectors.
    #[arg(long, env = "DAMOCLES_MANAGER_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// Serve Prometheus metrics at http://<addr>/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Serve no dashboard (by default it is at http://<listen>/dashboard/, with the API's
    /// tokens: the read token sees it, the admin token acts).
    #[arg(long)]
    no_dashboard: bool,
    /// A name (besides IP addresses and localhost) by which browsers may reach the
    /// dashboard and the API, e.g. manager.lan; repeat for several. Requests from a page
    /// under any other name are refused (DNS rebinding).
    #[arg(long, value_name = "NAME")]
    dashboard_host: Vec<String>,
    /// The workers' admin token, which the dashboard sends when it reads or acts on a
    /// worker (as `util --worker-token` does).
    #[arg(long, env = "DAMOCLES_WORKER_TOKEN", hide_env_values = true)]
    worker_token: Option<String>,
    /// Answer each ReportState only after this long, so that every state a worker reaches
    /// stays visible that long (for crash tests).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    report_delay: Duration,
    /// Offer deals to this share of the sectors, 0 to 1: sector n gets deals when n × SHARE
    /// passes a whole number (0.5: the even-numbered sectors; 1: every sector). A deal
    /// sector gets one or two pieces, chosen at random: the first half the sector, the
    /// second a quarter, each of random bytes. The pieces are kept in <home>/pieces and
    /// served at /piecestore/<piece cid>; each deal sector's pre-commit must carry the
    /// comm_d of its pieces. Workers take deals with `[sealing] enable_deals = true`.
    /// Whatever SHARE is, each finished CC sector is handed once to a snap-up thread
    /// (`plan = "snapup"`) with one or two new pieces made the same way (so with SHARE 1
    /// there is nothing to upgrade); the thread needs the sector's store attached under
    /// the name it was persisted to, else it hands the sector back. The update proof is
    /// verified; the sector is then listed as Upgraded.
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    deals: Option<f64>,
    /// A store workers persist sectors to, as NAME=PATH (the name of its `[[attached]]`
    /// entry, and where this machine sees it); repeat for several. A rebuilt sector is
    /// accepted only once the files in its store give the comm_r on chain, which the mock
    /// reads from here. --with-worker adds that worker's attached stores.
    #[arg(long, value_name = "NAME=PATH", value_parser = parse_store)]
    persist_store: Vec<(String, PathBuf)>,
    /// Start a WindowPoSt round this often (e.g. 30s, 1m, 1h; at least 1s) over every
    /// finished and upgraded sector (checked when a wdpost thread asks for a job): one job
    /// per --wdpost-job-sectors sectors, with a fresh seed and a deadline (see
    /// --wdpost-window); a job of the previous round that no thread took is missed. A job
    /// whose heartbeat stops for 15 s is offered again (it is handed out twice at most);
    /// each proof is verified over the sectors not reported faulty (`util sealer wdpost
    /// list`).
    #[arg(long, default_value = "1m", value_parser = parse_interval)]
    wdpost_interval: Duration,
    /// How long each WindowPoSt job's challenge window stays open from its round's start
    /// (a chain's is 30m): a job no thread took by then is missed, and a proof that comes
    /// back after it is recorded as missed, with how late it was and how long proving took
    /// (`util sealer wdpost list`).
    #[arg(long, default_value = "30m", value_name = "DURATION", value_parser = parse_interval)]
    wdpost_window: Duration,
    /// Sectors per WindowPoSt job.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    wdpost_job_sectors: u64,
    /// How long `util sealer proving check` gives one sector's check before the sector is
    /// bad ("no answer within …"; a file on a dead mount blocks its reader), all of them
    /// twice that; 32 sectors are checked at once, as a worker's round does.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_interval)]
    proving_check_timeout: Duration,
    /// Keep the worker registry and the mock chain's records (sector numbers,
    /// pre-commits, proofs, jobs) in this PostgreSQL (or YugabyteDB) database,
    /// postgres://user:password@host:port/database, shared with every manager given the
    /// same URL: each lists and manages every worker that pinged any of them, and a
    /// worker may seal through any of them (`rpc_client.addr` lists them all). The schema
    /// is created on first use. Deal pieces are kept there too (cached in
    /// <home>/pieces). Without it everything lives in <home>. TLS connections are not
    /// supported (sslmode=require fails).
    #[arg(
        long,
        env = "DAMOCLES_MANAGER_DB",
        hide_env_values = true,
        value_name = "URL"
    )]
    db: Option<String>,
}

fn parse_store(text: &str) -> Result<(String, PathBuf), BadValue> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(BadValue::NotNamePath(text.to_owned())),
    }
}

fn parse_interval(text: &str) -> Result<Duration, BadValue> {
    match humantime::parse_duration(text) {
        Ok(interval) if interval >= Duration::from_secs(1) => Ok(interval),
        Ok(_) => Err(BadValue::IntervalTooShort(text.to_owned())),
        Err(e) => Err(BadValue::NotADuration(text.to_owned(), e)),
    }
}

fn parse_share(text: &str) -> Result<f64, BadValue> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(BadValue::NotAShare(text.to_owned())),
    }
}

#[derive(Debug, Args)]
struct UtilArgs {
    /// The manager's address.
    #[arg(long, default_value = "127.0.0.1:1789", global = true)]
    listen: String,
    /// The manager's token, when it requires one.
    #[arg(
        long,
        env = "DAMOCLES_MANAGER_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// The workers' admin token, when they require one.
    #[arg(
        long,
        env = "DAMOCLES_WORKER_TOKEN",
        hide_env_values = true,
        global = true
    )]
    worker_token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: UtilCommand,
}

#[derive(Debug, Subcommand)]
enum UtilCommand {
    /// Workers.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Sectors of the mock chain.
    #[command(subcommand)]
    Sealer(SealerCommand),
}

#[derive(Debug, Subcommand)]
enum WorkerCommand {
    /// Every worker that reported, with its thread counts and the time since its last
    /// ping (` (!)` once older than --expiration).
    List {
        /// When a worker counts as expired.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        expiration: Duration,
    },
    /// The sealing threads of a worker, by its name or its address (host[:port]).
    Info {
        /// A registered worker name, or host[:port] (port 17890 by default).
        worker: String,
    },
    /// Pause a thread of a worker, or every thread a selector picks.
    Pause(util::Threads),
    /// Resume a paused thread of a worker (at its current state or the state given), or
    /// every thread a selector picks (at their current states).
    Resume {
        #[command(flatten)]
        threads: util::Threads,
        /// The state to resume at (one of its plan's states; `Aborted` drops the sector).
        state: Option<String>,
        /// The same as the positional STATE, spelled as `damocles-worker worker resume`
        /// spells it.
        #[arg(
            short = 's',
            long = "state",
            value_name = "STATE",
            conflicts_with = "state"
        )]
        state_flag: Option<String>,
    },
    /// Drain a thread of a worker (or every thread a selector picks, e.g. `--all` for the
    /// whole worker): each finishes its current sector and takes no new one.
    Drain(util::Threads),
    /// Lift a drain.
    Undrain(util::Threads),
    /// A thread's history, oldest first: transitions, failures, aborts, and pauses,
    /// resumes and drains with who asked. Times are in the local time zone, with ages.
    Events {
        /// A registered worker name, or host[:port] (port 17890 by default).
        worker: String,
        /// The thread's index.
        index: u64,
        #[command(flatten)]
        flags: crate::events::EventsFlags,
    },
    /// Set a thread's plan without a restart: the worker writes it into the thread's
    /// config.toml (keeping its other keys and comments); the thread finishes its current
    /// job, then takes new jobs under this plan.
    SetPlan {
        /// A registered worker name, or host[:port] (port 17890 by default).
        worker: String,
        /// The thread's index.
        index: u64,
        /// The plan: sealer, snapup, rebuild, unseal or wdpost.
        plan: damocles_core::Plan,
    },
    /// Stop a worker on request: every thread stops after its current step (no proof call
    /// thrown away; a held WindowPoSt job finished), then the worker exits with code 75 so
    /// that its service manager restarts it.
    Stop {
        /// A registered worker name, or host[:port] (port 17890 by default).
        worker: String,
        #[command(flatten)]
        flags: crate::worker_ops::StopFlags,
    },
    /// Forget a worker (it is registered again at its next ping).
    Remove {
        /// The worker's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum SealerCommand {
    /// Sectors.
    #[command(subcommand)]
    Sectors(SectorsCommand),
    /// Jobs the manager hands to rebuild and unseal threads.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// WindowPoSt jobs the manager hands to wdpost threads.
    #[command(subcommand)]
    Wdpost(WdpostCommand),
    /// Whether the proven sectors' files would pass a WindowPoSt round.
    #[command(subcommand)]
    Proving(ProvingCommand),
}

#[derive(Debug, Subcommand)]
enum ProvingCommand {
    /// Check the given (or every) proven sector where the manager sees its files (its
    /// --persist-store stores), as a WindowPoSt round checks them, and list each as `good`
    /// or `bad (<reason>)` before a round finds it faulty. Without --slow: the files'
    /// presence and sizes (`t_aux` too, as the original's), without reading them; with
    /// --slow, also a vanilla proof of each sector's challenged leaves, as a round makes. Each sector is checked on its own,
    /// 32 at once, within the manager's --proving-check-timeout (a file on a dead mount is
    /// bad, "no answer within …", instead of hanging the check). Exit 0 whatever it finds
    /// (as the original); 2 for a sector the manager does not have or has not proven.
    Check {
        /// Read the files as a round does (a vanilla proof of each sector).
        #[arg(long)]
        slow: bool,
        /// List only the bad sectors.
        #[arg(long)]
        only_bad: bool,
        /// Sector numbers (default: every proven sector).
        #[arg(value_name = "SECTOR")]
        sectors: Vec<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum WdpostCommand {
    /// Every WindowPoSt job, oldest first: its round, state (pending, proving, finished,
    /// missed: its proof came after the deadline, failed), worker, sectors, faulty
    /// sectors, whether its proof verified, its deadline, how long its last try ran and
    /// its holder's last heartbeat. With
    /// --json, what an independent verifier needs (miner, proof type, seed, comm_rs,
    /// proofs).
    List,
    /// Offer WindowPoSt jobs of the current round again from the start, as if new
    /// (pending, no tries, no result): for a job stuck with a worker, or to prove it again.
    /// A job of a round that is over is refused (its deadline has passed). A thread still
    /// proving one is told at its next heartbeat and drops it when its proof call returns.
    /// A line per id; exit 2 when any was refused.
    Reset {
        /// Job ids, as `util sealer wdpost list` shows them (e.g. 3-0).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Forget WindowPoSt jobs (an id the manager does not list prints `not found` and is
    /// not an error). A thread still proving one is told at its next heartbeat and drops
    /// it when its proof call returns.
    Remove {
        /// Job ids, as `util sealer wdpost list` shows them (e.g. 3-0).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Forget every WindowPoSt job. Refused (exit 2, nothing changed) without
    /// --really-do-it.
    RemoveAll {
        /// Really remove them all.
        #[arg(long)]
        really_do_it: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SectorsCommand {
    /// Every sector the mock chain knows, with what verifies its proof independently.
    List,
    /// Re-create a finished (or upgraded) sector's lost sealed files: a job that a worker
    /// thread with `plan = "rebuild"` takes. It re-seals the sector with its ticket and
    /// deals, checks the replica, persists it into an attached store, and the manager
    /// accepts it only if the files give the comm_r on chain (`util sealer jobs list`).
    Rebuild {
        /// The sector, as s-t0<miner>-<number> (e.g. s-t010000-2).
        sector: SectorId,
    },
    /// Read a deal piece back out of a finished sector: a job that a worker thread with
    /// `plan = "unseal"` takes. It unseals the piece from the sector's replica in its
    /// store, checks its piece CID, and delivers it to every --dest; the manager accepts
    /// it only if what it can read there gives the piece CID.
    Unseal {
        /// The sector, as s-t0<miner>-<number> (e.g. s-t010000-2).
        sector: SectorId,
        /// The piece CID (baga6ea4sea…), one the sector was sealed with.
        piece: String,
        /// Where the piece goes; repeat for several: file:///<path> (a copy on the
        /// worker's machine), store://<store name>/<path> (into the worker's attached
        /// store of that name), http(s)://… (a PUT), market://<store>/<piece
        /// cid>?host=&scheme=&token= (venus-market's upload), store:///<piece cid> (a PUT
        /// to this manager's piece store, kept in <home>/pieces/unsealed/; the default).
        #[arg(long, value_name = "URL")]
        dest: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Every job, oldest first: pending, taken by a thread, done, or failed with why.
    List,
}

/// The binary's entry point.
pub fn main_impl() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Util(_));
    crate::logging::init(if quiet { "warn" } else { "info" });
    let code = match cli.command {
        Command::Mock(args) => run_async(mock::run(mock::MockOptions {
            miner: args.miner,
            sector_size: args.sector_size,
            listen: args.listen,
            home: args.home,
            with_worker: args.with_worker,
            expiration: args.expiration,
            max_sectors: args.max_sectors,
            deals: args.deals,
            persist_stores: args.persist_store,
            wdpost_interval: args.wdpost_interval,
            wdpost_window: args.wdpost_window,
            wdpost_job_sectors: args.wdpost_job_sectors as usize,
            proving_check_timeout: args.proving_check_timeout,
            db: args.db,
            report_delay: args.report_delay,
            admin_token: args.admin_token,
            read_token: args.read_token,
            metrics_listen: args.metrics_listen,
            dashboard: !args.no_dashboard,
            dashboard_hosts: args.dashboard_host,
            worker_token: args.worker_token,
        })),
        Command::Util(args) => {
            let ctx = util::Context {
                manager: args.listen,
                token: args.token,
                worker_token: args.worker_token,
                json: args.json,
            };
            run_async(async move { run_util(&ctx, args.command).await })
        }
    };
    ExitCode::from(code)
}

/// Runs one `util` command.
async fn run_util(ctx: &util::Context, command: UtilCommand) -> u8 {
    match command {
        UtilCommand::Worker(WorkerCommand::List { expiration }) => {
            util::worker_list(ctx, expiration).await
        }
        UtilCommand::Worker(WorkerCommand::Info { worker }) => {
            util::worker_info(ctx, &worker).await
        }
        UtilCommand::Worker(WorkerCommand::Pause(threads)) => {
            util::worker_act(ctx, &threads, Action::Pause).await
        }
        UtilCommand::Worker(WorkerCommand::Resume {
            threads,
            state,
            state_flag,
        }) => {
            let state = state.or(state_flag).filter(|s| !s.is_empty());
            util::worker_act(ctx, &threads, Action::Resume(state)).await
        }
        UtilCommand::Worker(WorkerCommand::Drain(threads)) => {
            util::worker_act(ctx, &threads, Action::Drain(true)).await
        }
        UtilCommand::Worker(WorkerCommand::Undrain(threads)) => {
            util::worker_act(ctx, &threads, Action::Drain(false)).await
        }
        UtilCommand::Worker(WorkerCommand::Events {
            worker,
            index,
            flags,
        }) => util::worker_events(ctx, &worker, index, &flags).await,
        UtilCommand::Worker(WorkerCommand::SetPlan {
            worker,
            index,
            plan,
        }) => util::worker_set_plan(ctx, &worker, index, plan).await,
        UtilCommand::Worker(WorkerCommand::Stop { worker, flags }) => {
            util::worker_stop(ctx, &worker, flags.mode()).await
        }
        UtilCommand::Worker(WorkerCommand::Remove { name }) => {
            util::worker_remove(ctx, &name).await
        }
        UtilCommand::Sealer(SealerCommand::Sectors(SectorsCommand::List)) => {
            util::sectors_list(ctx).await
        }
        UtilCommand::Sealer(SealerCommand::Sectors(SectorsCommand::Rebuild { sector })) => {
            util::sector_rebuild(ctx, sector).await
        }
        UtilCommand::Sealer(SealerCommand::Sectors(SectorsCommand::Unseal {
            sector,
            piece,
            dest,
        })) => util::sector_unseal(ctx, sector, &piece, &dest).await,
        UtilCommand::Sealer(SealerCommand::Jobs(JobsCommand::List)) => util::jobs_list(ctx).await,
        UtilCommand::Sealer(SealerCommand::Wdpost(WdpostCommand::List)) => {
            util::wdpost_list(ctx).await
        }
        UtilCommand::Sealer(SealerCommand::Wdpost(WdpostCommand::Reset { ids })) => {
            util::wdpost_act(ctx, util::WdPostAction::Reset, &ids).await
        }
        UtilCommand::Sealer(SealerCommand::Wdpost(WdpostCommand::Remove { ids })) => {
            util::wdpost_act(ctx, util::WdPostAction::Remove, &ids).await
        }
        UtilCommand::Sealer(SealerCommand::Wdpost(WdpostCommand::RemoveAll { really_do_it })) => {
            util::wdpost_remove_all(ctx, really_do_it).await
        }
        UtilCommand::Sealer(SealerCommand::Proving(ProvingCommand::Check {
            slow,
            only_bad,
            sectors,
        })) => proving::check(ctx, slow, only_bad, &sectors).await,
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
