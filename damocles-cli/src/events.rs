//! `worker events` and `util worker events`: a thread's history, as a table in the
//! operator's time zone with ages, or as JSON.

use clap::Args;
use damocles_core::AdminTransport;

use crate::exit::{self, CliError};
use crate::render;

/// Which history, and how much of it.
#[derive(Debug, Clone, Args)]
pub struct EventsFlags {
    /// Show the newest this many entries (a thread keeps its last 1,000).
    #[arg(short = 'n', long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
}

/// Prints thread `index`'s history from `client`; `prefix` words a failure (it names the
/// worker for `util`). Returns the exit code.
pub async fn show(
    client: &dyn AdminTransport,
    index: u64,
    flags: &EventsFlags,
    json: bool,
    prefix: &dyn Fn(&str) -> String,
) -> u8 {
    match client.events(index, usize::from(flags.limit)).await {
        Ok(entries) if json => {
            crate::exit::print_out(render::json(&entries));
            exit::OK
        }
        Ok(entries) => {
            let now = damocles_core::journal::unix_ms();
            let zone = jiff::tz::TimeZone::system();
            crate::exit::print_out(render::events_table(&entries, now, &zone));
            exit::OK
        }
        Err(e) => render::failure(json, &CliError::admin(&e, prefix)),
    }
}
