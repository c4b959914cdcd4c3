//! The `damocles-worker` command line (so far: `params generate`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use damocles_core::SectorSize;
use damocles_sealing::params::{self, Generated};

/// A damocles sealing worker.
#[derive(Debug, Parser)]
#[command(name = "damocles-worker", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Groth parameters for sealing.
    #[command(subcommand)]
    Params(ParamsCommand),
}

#[derive(Debug, Subcommand)]
enum ParamsCommand {
    /// Generate the parameters of a test sector size (2KiB, 8MiB or 512MiB) into the
    /// parameter cache ($FIL_PROOFS_PARAMETER_CACHE, default
    /// /var/tmp/filecoin-proof-parameters), unless they are there. 2KiB takes about 14
    /// minutes on 2 cores and 1.1 GB of disk. Production sizes are refused: they need the
    /// official files.
    Generate {
        /// The sector size.
        #[arg(long, short = 's')]
        sector_size: SectorSize,
    },
}

/// Exit code for bad input or a refused request.
pub const EXIT_BAD_INPUT: u8 = 2;

/// The binary's entry point.
pub fn main_impl() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Params(ParamsCommand::Generate { sector_size }) => {
            eprintln!(
                "generating {sector_size} parameters into {}",
                params::cache_dir().display()
            );
            let result = params::ensure(sector_size, Duration::from_secs(30), |elapsed| {
                eprintln!(
                    "  still generating: {} elapsed (2KiB takes about 14 min on 2 cores)",
                    humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
                );
            });
            match result {
                Ok(Generated::AlreadyPresent) => {
                    println!("{sector_size} parameters already present");
                    ExitCode::SUCCESS
                }
                Ok(Generated::Generated(took)) => {
                    println!(
                        "{sector_size} parameters generated in {:.0} s",
                        took.as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(e @ params::ParamsError::ProductionSize { .. }) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_BAD_INPUT)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
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
