//! What the command lines print: tab-aligned tables like the original's, one-sentence
//! messages, and the `--json` shapes.
//!
//! JSON shapes (stable):
//! - `worker list --json`: the array of `WorkerInfo` objects exactly as the admin API
//!   answers `VenusWorker.WorkerList` (snake_case, `thread_state` tagged by `state`, plus
//!   `pause_requested`).
//! - `worker pause --json`: `{"index": N, "outcome": "paused" | "requested" |
//!   "already_paused" | "delivered"}`.
//! - `worker resume --json`: `{"index": N, "outcome": "resumed", "state": "S" | null}`,
//!   `{"index": N, "outcome": "pause_called_off"}` or `{"index": N, "outcome":
//!   "not_paused"}`.
//! - `worker events --json`, `util worker events --json`: the array of history entries
//!   as `Damocles.WorkerEvents` answers it, oldest first: `{"seq": N, "at_ms": unix ms,
//!   "sector": id (absent when none), "kind": K, …}`, K one of `started`, `transition`,
//!   `failed`, `paused`, `pause_requested`, `pause_called_off`, `resumed`, `drain`,
//!   `aborted`, `finished`,
//!   with that kind's fields (`from`/`to`/`event`, `level`/`message`/`retry`,
//!   `by`/`reason`, `by`/`state`, `by`/`on`, `reason`).
//! - any command with `--json` that fails: `{"error": {"kind": K, "message": M}}` on
//!   stdout, K one of `bad_input`, `unreachable`, `unauthorized`, `failed`.
//!
//! Text comes from workers and managers that may be anyone's: every table cell and
//! every message printed as text goes through [`cell`], so that no control character
//! reaches the terminal (`ESC` shows as `\x1b`, a newline as `\n`). JSON is printed as
//! received.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;

use damocles_core::listing::{ChainJobRow, SectorRow, WdPostJobRow};
use damocles_core::{PauseOutcome, ResumeOutcome};
use serde::Serialize;
use tabwriter::TabWriter;

mod threads;
pub use threads::{info_lines, info_table, thread_table};

/// `text` safe to print in a table cell or a message: control characters (C0, DEL, C1:
/// `\n`, `\r`, `\t`, `\x1b`, `\u{85}`, …) and the invisible marks that reorder or hide
/// text (bidirectional overrides and isolates, zero-width characters, line and paragraph
/// separators) are written as escapes; everything else, backslashes included, as is.
pub fn cell(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if hidden(c) && u32::from(c) < 0x80 => {
                let _ = write!(escaped, "\\x{:02x}", u32::from(c));
            }
            c if hidden(c) => {
                let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// Whether `c` must not reach a terminal as is.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Aligns tab-separated lines as the original does (minimum width 2, padding 2).
pub fn tabulate(lines: &[String]) -> String {
    let mut writer = TabWriter::new(Vec::new()).minwidth(2).padding(2);
    for line in lines {
        // Writing to a Vec cannot fail.
        let _ = writeln!(writer, "{line}");
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What a pause did, in one sentence.
pub fn pause_message(index: u64, outcome: PauseOutcome) -> String {
    match outcome {
        PauseOutcome::Paused => format!("thread #{index} paused"),
        PauseOutcome::Requested => format!(
            "pause of thread #{index} requested: it is in a proof call and pauses as soon as the call returns and its result is saved"
        ),
        PauseOutcome::AlreadyPaused => {
            format!("thread #{index} was already paused; nothing changed")
        }
        PauseOutcome::Delivered => format!(
            "pause of thread #{index} delivered: the thread pauses at its next step"
        ),
    }
}

/// What a resume did, in one sentence; `asked` is the state the resume asked for.
pub fn resume_message(index: u64, outcome: &ResumeOutcome, asked: Option<&str>) -> String {
    match outcome {
        ResumeOutcome::Resumed { state: Some(state) } => {
            format!("thread #{index} resumed at {state}")
        }
        ResumeOutcome::Resumed { state: None } => {
            format!("thread #{index} resumed: it re-runs its current state")
        }
        ResumeOutcome::PauseCalledOff => format!(
            "pause of thread #{index} called off: it had not paused yet (proof call) and goes on"
        ),
        ResumeOutcome::NotPaused => match asked {
            None => format!("thread #{index} is not paused; nothing to resume"),
            Some(state) => format!(
                "thread #{index} is not paused; nothing to resume (pause it first to resume it at {state})"
            ),
        },
    }
}

/// What a drain or undrain did, in one sentence.
pub fn drain_message(index: u64, outcome: damocles_core::DrainOutcome) -> String {
    use damocles_core::DrainOutcome;
    match outcome {
        DrainOutcome::Draining => {
            format!("thread #{index} draining: it finishes its current sector and takes no new one")
        }
        DrainOutcome::AlreadyDraining => {
            format!("thread #{index} was already draining; nothing changed")
        }
        DrainOutcome::Undrained => format!("thread #{index} undrained: it takes new sectors again"),
        DrainOutcome::NotDraining => {
            format!("thread #{index} was not draining; nothing changed")
        }
    }
}

/// `worker drain --json`.
#[derive(Debug, Serialize)]
pub struct DrainJson {
    /// The thread.
    pub index: u64,
    /// What happened.
    pub outcome: damocles_core::DrainOutcome,
}

/// `worker pause --json`.
#[derive(Debug, Serialize)]
pub struct PauseJson {
    /// The thread.
    pub index: u64,
    /// What happened.
    pub outcome: PauseOutcome,
}

/// `worker resume --json`.
#[derive(Debug, Serialize)]
pub struct ResumeJson<'a> {
    /// The thread.
    pub index: u64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: &'a ResumeOutcome,
}

/// The JSON of a failure.
#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    /// The failure.
    pub error: ErrorBody<'a>,
}

/// Its kind and message.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// `bad_input`, `unreachable`, `unauthorized` or `failed`.
    pub kind: &'a str,
    /// What went wrong.
    pub message: String,
}

/// Prints a failure: JSON on stdout with `json`, else `error: …` on stderr. Returns
/// `code`.
pub fn failure(json_output: bool, error: &crate::exit::CliError) -> u8 {
    if json_output {
        crate::exit::print_out(error_json(error));
    } else {
        eprintln!("error: {}", cell(&error.message));
    }
    error.code()
}

/// The `--json` error object of `error`.
pub fn error_json(error: &crate::exit::CliError) -> String {
    json(&ErrorJson {
        error: ErrorBody {
            kind: error.kind.name(),
            message: error.message.clone(),
        },
    })
}

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{e}"));
    text.push('\n');
    text
}

/// `damocles-manager util worker list`: one line per registered worker, the time since
/// its last ping at `now`, ` (!)` when older than `expiration`.
pub fn ping_table(
    entries: &[damocles_rpc::registry::PingEntry],
    now: i64,
    expiration: std::time::Duration,
) -> String {
    tabulate(&ping_lines(entries, now, expiration))
}

/// The lines of [`ping_table`], their cells tab-separated, before alignment (the
/// dashboard makes HTML tables of them).
pub fn ping_lines(
    entries: &[damocles_rpc::registry::PingEntry],
    now: i64,
    expiration: std::time::Duration,
) -> Vec<String> {
    let mut lines = vec![
        "Name\tDest\tVersion\tThreads\tEmpty\tPaused\tRunning\tWaiting\tErrors\tLastPing(with ! if expired)"
            .to_owned(),
    ];
    for entry in entries {
        let info = &entry.info;
        let s = &info.summary;
        let age = u64::try_from(now.saturating_sub(entry.last_ping)).unwrap_or(0);
        let expired = damocles_core::Liveness::at(entry.last_ping, now, expiration)
            == damocles_core::Liveness::Expired;
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}{}",
            cell(&info.name),
            cell(&info.dest),
            cell(&info.version),
            s.threads,
            s.empty,
            s.paused,
            s.running,
            s.waiting,
            s.errors,
            humantime::format_duration(std::time::Duration::from_secs(age)),
            if expired { " (!)" } else { "" }
        ));
    }
    lines
}

/// `damocles-manager util sealer sectors list`: one line per sector of the mock chain.
pub fn sectors_table(sectors: &[SectorRow]) -> String {
    tabulate(&sectors_lines(sectors))
}

/// The lines of [`sectors_table`], their cells tab-separated, before alignment (the
/// dashboard makes HTML tables of them).
pub fn sectors_lines(sectors: &[SectorRow]) -> Vec<String> {
    let mut lines = vec!["Sector\tProofType\tState\tDeals\tCommR\tProof\tRebuilt".to_owned()];
    for s in sectors {
        let short = s.comm_r.as_deref().map_or_else(
            || "-".to_owned(),
            |hex| {
                if hex.chars().count() > 16 {
                    format!("{}…", hex.chars().take(16).collect::<String>())
                } else {
                    hex.to_owned()
                }
            },
        );
        let state = match &s.abort_reason {
            Some(reason) => format!("{} ({reason})", s.state),
            None => s.state.clone(),
        };
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            cell(&format!("s-t0{}-{}", s.miner, s.number)),
            s.proof_type,
            cell(&state),
            s.pieces.len() + s.update.as_ref().map_or(0, |u| u.pieces.len()),
            cell(&short),
            s.proof
                .as_deref()
                .map_or_else(|| "-".to_owned(), |p| format!("{} bytes", p.len() / 2)),
            match s.rebuilt {
                0 => "-".to_owned(),
                times => format!("{times}×"),
            },
        ));
    }
    lines
}

/// `util sealer jobs list`: one line per job, oldest first, with its age at `now` (Unix
/// seconds) and, for a failed or refused one, why.
pub fn jobs_table(jobs: &[ChainJobRow], now: i64) -> String {
    tabulate(&jobs_lines(jobs, now))
}

/// The lines of [`jobs_table`], their cells tab-separated, before alignment (the
/// dashboard makes HTML tables of them).
pub fn jobs_lines(jobs: &[ChainJobRow], now: i64) -> Vec<String> {
    let mut lines = vec!["ID\tKind\tSector\tPiece\tState\tAge\tWhy".to_owned()];
    for job in jobs {
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            job.id,
            cell(&job.kind),
            cell(&job.sector),
            cell(job.piece.as_deref().unwrap_or("-")),
            cell(&job.state),
            age_at(now, job.created_at),
            cell(job.reason.as_deref().unwrap_or("-")),
        ));
    }
    lines
}

/// `util sealer wdpost list`: one line per WindowPoSt job, oldest first: its id, round,
/// state, the worker it was handed to, how many sectors it covers, the faulty ones'
/// numbers, whether its proof verified, its tries, its age at `now` (Unix seconds), how
/// long until its deadline (or since it passed), how long its last try has run (or ran,
/// `(done)`), its holder's last heartbeat and its last error.
pub fn wdpost_table(jobs: &[WdPostJobRow], now: i64) -> String {
    tabulate(&wdpost_lines(jobs, now))
}

/// The lines of [`wdpost_table`], their cells tab-separated, before alignment (the
/// dashboard makes HTML tables of them).
pub fn wdpost_lines(jobs: &[WdPostJobRow], now: i64) -> Vec<String> {
    let mut lines = vec![
        "ID\tRound\tState\tWorker\tSectors\tFaultySectors\tVerified\tTries\tAge\tDeadline\tElapsed\tHeartbeat\tError"
            .to_owned(),
    ];
    let now_s = u64::try_from(now).unwrap_or(0);
    for job in jobs {
        let faults: Vec<String> = job.faults.iter().map(ToString::to_string).collect();
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            cell(&job.id),
            job.round,
            cell(&job.state),
            cell(job.worker.as_deref().unwrap_or("-")),
            job.sectors.len(),
            if faults.is_empty() {
                "-".to_owned()
            } else {
                faults.join(",")
            },
            match job.verified {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            },
            job.tries,
            age_at(now, job.created_at),
            job.deadline_at
                .map_or("-".to_owned(), |at| until(now_s, at)),
            elapsed(job, now_s),
            job.heartbeat_at
                .map_or("-".to_owned(), |at| format!("{} ago", age_at(now, at))),
            cell(job.error.as_deref().unwrap_or("-")),
        ));
    }
    lines
}

/// How long from `now` until `at` (`in 29m 50s`), or since it passed (`passed 10s ago`).
fn until(now: u64, at: u64) -> String {
    if now < at {
        format!("in {}", short_age(at - now))
    } else {
        format!("passed {} ago", short_age(now - at))
    }
}

/// How long `job`'s last try has run at `now`, or ran (`12s(done)`, as the original's
/// list); `-` before it was handed out.
fn elapsed(job: &WdPostJobRow, now: u64) -> String {
    match (job.started_at, job.finished_at) {
        (None, _) => "-".to_owned(),
        (Some(started), Some(finished)) => {
            format!("{}(done)", short_age(finished.saturating_sub(started)))
        }
        (Some(started), None) => short_age(now.saturating_sub(started)),
    }
}

/// One sector of `util sealer proving check` (its `--json` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvingCheckRow {
    /// Whether it passed.
    pub good: bool,
    /// The sector number.
    pub sector: u64,
    /// Why it is bad, as the manager's check found it; absent for a good one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `util sealer proving check`: a line per sector checked, `good` or `bad (<reason>)` as
/// the original's `--detail` writes them.
pub fn proving_table(rows: &[ProvingCheckRow]) -> String {
    let mut lines = vec!["Sector\tStatus".to_owned()];
    lines.extend(rows.iter().map(|row| match &row.reason {
        None => format!("{}\tgood", row.sector),
        Some(reason) => format!("{}\tbad ({})", row.sector, cell(reason)),
    }));
    tabulate(&lines)
}

/// What `util sealer wdpost reset|remove|remove-all` did to one job (its `--json` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WdPostJobDone {
    /// The job.
    pub id: String,
    /// What became of it.
    pub done: WdPostJobOutcome,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of one job named to `util sealer wdpost reset|remove`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WdPostJobOutcome {
    /// Offered again from the start.
    #[serde(rename = "reset")]
    Reset,
    /// Forgotten.
    #[serde(rename = "removed")]
    Removed,
    /// The manager lists no such job: nothing changed (not an error).
    #[serde(rename = "not found")]
    NotFound,
    /// Refused: see the row's `error`.
    #[serde(rename = "refused")]
    Refused,
}

/// The lines of `util sealer wdpost reset|remove|remove-all`: one per job.
pub fn wdpost_jobs_done(done: &[WdPostJobDone]) -> String {
    if done.is_empty() {
        return "no WindowPoSt job; nothing changed\n".to_owned();
    }
    done.iter()
        .map(|d| {
            let id = cell(&d.id);
            match d.done {
                WdPostJobOutcome::Reset => format!("wdpost job {id} reset\n"),
                WdPostJobOutcome::Removed => format!("wdpost job {id} removed\n"),
                WdPostJobOutcome::NotFound => {
                    format!("wdpost job {id}: not found; nothing removed\n")
                }
                WdPostJobOutcome::Refused => {
                    format!(
                        "wdpost job {id}: {}\n",
                        cell(d.error.as_deref().unwrap_or("-"))
                    )
                }
            }
        })
        .collect()
}

/// What `util sealer sectors rebuild|unseal` says once the job is created.
pub fn job_requested(job: &ChainJobRow) -> String {
    let kind = cell(&job.kind);
    let what = match &job.piece {
        Some(piece) => format!("{} of {}", cell(piece), cell(&job.sector)),
        None => cell(&job.sector).into_owned(),
    };
    format!(
        "{kind} job {} created for {what}: a worker thread with plan = \"{kind}\" takes it; \
         follow it with `util sealer jobs list`\n",
        job.id,
    )
}

/// The age at `now` of something made at `at` (Unix seconds), as [`short_age`] writes it.
fn age_at(now: i64, at: u64) -> String {
    short_age(u64::try_from(now).unwrap_or(0).saturating_sub(at))
}

/// `worker events` / `util worker events`: one line per history entry, oldest first: its
/// number, when it happened in `zone` (the operator's time zone, named in the header), how
/// long before `now_ms`, the sector and what happened.
pub fn events_table(
    entries: &[damocles_core::JournalEntry],
    now_ms: u64,
    zone: &jiff::tz::TimeZone,
) -> String {
    tabulate(&events_lines(entries, now_ms, zone))
}

/// The lines of [`events_table`], their cells tab-separated, before alignment (the
/// dashboard makes HTML tables of them).
pub fn events_lines(
    entries: &[damocles_core::JournalEntry],
    now_ms: u64,
    zone: &jiff::tz::TimeZone,
) -> Vec<String> {
    let zone_name = zone.iana_name().unwrap_or("local");
    let mut lines = vec![format!("#\tTime ({zone_name})\tAge\tSector\tEvent")];
    for entry in entries {
        let event = &entry.event;
        let time = i64::try_from(event.at_ms)
            .ok()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map_or_else(
                || "-".to_owned(),
                |at| {
                    at.to_zoned_datetime(zone.clone())
                        .strftime("%Y-%m-%d %H:%M:%S")
                        .to_string()
                },
            );
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}",
            entry.seq,
            time,
            short_age(now_ms.saturating_sub(event.at_ms) / 1000),
            cell(event.sector.as_deref().unwrap_or("-")),
            cell(&event.what.describe()),
        ));
    }
    lines
}

/// An age in its two largest units: `42s`, `5m 3s`, `2h 5m`, `3d 4h`.
pub fn short_age(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(first) = UNITS.iter().position(|(size, _)| seconds >= *size) else {
        return "0s".into();
    };
    let mut text = String::new();
    let mut left = seconds;
    for (size, unit) in &UNITS[first..(first + 2).min(UNITS.len())] {
        let count = left / size;
        left %= size;
        if count > 0 {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("{count}{unit}"));
        }
    }
    text
}

/// A message about worker `name` at `dest`, for `util worker pause|resume`.
pub fn remote_message(name: &str, dest: &str, message: &str) -> String {
    let (name, dest, message) = (cell(name), cell(dest), cell(message));
    if name == dest {
        format!("worker {dest}: {message}")
    } else {
        format!("worker '{name}' ({dest}): {message}")
    }
}
