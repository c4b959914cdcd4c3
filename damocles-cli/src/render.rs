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

use damocles_core::{PauseOutcome, ResumeOutcome, ThreadInfo};
use damocles_sealing::mock_chain::{
    kind_name, ChainJob, ChainSector, ChainSectorState, JobKind, JobState, WdPostJob,
    WdPostJobState,
};
use serde::Serialize;
use serde_json::{json, Value};
use tabwriter::TabWriter;

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

/// `damocles-worker worker list`: `#  location  Plan  JobID  JobState  JobStage
/// ThreadState  LastErr`, `-` for what is missing, errors kept on one line.
pub fn thread_table(threads: &[ThreadInfo]) -> String {
    threads_with(
        "#\tlocation\tPlan\tJobID\tJobState\tJobStage\tThreadState\tLastErr",
        "-",
        threads,
    )
}

/// `damocles-manager util worker info`: the threads of one worker, `NULL` for what is
/// missing; nothing at all for a worker without threads.
pub fn info_table(threads: &[ThreadInfo]) -> String {
    if threads.is_empty() {
        return String::new();
    }
    threads_with(
        "Index\tLoc\tPlan\tJobID\tJobState\tJobStage\tThreadState\tLastErr",
        "NULL",
        threads,
    )
}

fn threads_with(header: &str, missing: &str, threads: &[ThreadInfo]) -> String {
    let mut lines = vec![header.to_owned()];
    for t in threads {
        let mut state = t.thread_state.to_string();
        if t.pause_requested {
            state = format!("{} (pause requested)", state.trim_end());
        }
        if t.stuck {
            state = format!("{} (stuck)", state.trim_end());
        }
        if t.draining {
            state = if t.job_id.is_none()
                && !matches!(t.thread_state, damocles_core::ThreadState::Paused { .. })
            {
                "idle-drained".to_owned()
            } else {
                format!("{} (draining)", state.trim_end())
            };
        }
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            t.index,
            cell(&t.location),
            cell(t.plan_shown()),
            cell(t.job_id.as_deref().unwrap_or(missing)),
            cell(t.job_state_shown()),
            cell(t.job_stage_shown().unwrap_or(missing)),
            cell(&state),
            cell(t.last_error.as_deref().unwrap_or(missing)),
        ));
    }
    tabulate(&lines)
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
    tabulate(&lines)
}

/// `damocles-manager util sealer sectors list`: one line per sector of the mock chain.
pub fn sectors_table(sectors: &[serde_json::Value]) -> String {
    let mut lines = vec!["Sector\tProofType\tState\tDeals\tCommR\tProof\tRebuilt".to_owned()];
    for s in sectors {
        let text = |key: &str| s[key].as_str().map(str::to_owned);
        let short = |key: &str| {
            text(key).map_or_else(
                || "-".to_owned(),
                |hex| {
                    if hex.chars().count() > 16 {
                        format!("{}…", hex.chars().take(16).collect::<String>())
                    } else {
                        hex
                    }
                },
            )
        };
        let mut state = text("state").unwrap_or_default();
        if let Some(reason) = text("abort_reason") {
            state = format!("{state} ({reason})");
        }
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            cell(&format!("s-t0{}-{}", s["miner"], s["number"])),
            cell(&s["proof_type"].to_string()),
            cell(&state),
            s["pieces"].as_array().map_or(0, Vec::len)
                + s["update"]["pieces"].as_array().map_or(0, Vec::len),
            cell(&short("comm_r")),
            s["proof"]
                .as_str()
                .map_or_else(|| "-".to_owned(), |p| format!("{} bytes", p.len() / 2)),
            match s["rebuilt"].as_u64() {
                Some(0) | None => "-".to_owned(),
                Some(times) => format!("{times}×"),
            },
        ));
    }
    tabulate(&lines)
}

/// `util sealer jobs list`: one line per job, oldest first, with its age at `now` (Unix
/// seconds) and, for a failed or refused one, why.
pub fn jobs_table(jobs: &[Value], now: i64) -> String {
    let mut lines = vec!["ID\tKind\tSector\tPiece\tState\tAge\tWhy".to_owned()];
    for job in jobs {
        let text = |key: &str| job[key].as_str().unwrap_or("-").to_owned();
        let age = job["created_at"].as_i64().map_or_else(
            || "-".to_owned(),
            |at| short_age(now.saturating_sub(at).max(0) as u64),
        );
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            job["id"],
            cell(&text("kind")),
            cell(&text("sector")),
            cell(&text("piece")),
            cell(&text("state")),
            age,
            cell(job["reason"].as_str().unwrap_or("-")),
        ));
    }
    tabulate(&lines)
}

/// `util sealer wdpost list`: one line per WindowPoSt job, oldest first: its id, round,
/// state, the worker it was handed to, how many sectors it covers, the faulty ones' numbers, whether
/// its proof verified, its age at `now` (Unix seconds) and its last error.
pub fn wdpost_table(jobs: &[Value], now: i64) -> String {
    let mut lines = vec![
        "ID\tRound\tState\tWorker\tSectors\tFaultySectors\tVerified\tTries\tAge\tError".to_owned(),
    ];
    for job in jobs {
        let text = |key: &str| job[key].as_str().unwrap_or("-").to_owned();
        let count = |key: &str| job[key].as_array().map_or(0, Vec::len);
        let faults: Vec<String> = job["faults"]
            .as_array()
            .map(|f| f.iter().map(Value::to_string).collect())
            .unwrap_or_default();
        let age = job["created_at"].as_i64().map_or_else(
            || "-".to_owned(),
            |at| short_age(now.saturating_sub(at).max(0) as u64),
        );
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            cell(&text("id")),
            job["round"],
            cell(&text("state")),
            cell(&text("worker")),
            count("sectors"),
            if faults.is_empty() {
                "-".to_owned()
            } else {
                faults.join(",")
            },
            match job["verified"].as_bool() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            },
            job["tries"],
            age,
            cell(job["error"].as_str().unwrap_or("-")),
        ));
    }
    tabulate(&lines)
}

/// A WindowPoSt job in the JSON of `util sealer wdpost list --json`, what an independent
/// verifier needs: `{"id", "round", "miner", "proof_type": RegisteredPoStProof as its
/// integer (10: StackedDrgWindow2KiBV1_2), "seed": hex, "sectors": [{"number", "comm_r":
/// hex, "upgrade", "store"}], "faults": [numbers], "proofs": [hex], "state": "pending" |
/// "proving" | "finished" | "failed", "verified": bool | null (not checked yet), "worker",
/// "tries", "error", "created_at", "finished_at"}` (Unix seconds or null). The proof
/// covers `sectors` less `faults`, verified with `verify_window_post`.
pub fn wdpost_job_json(job: &WdPostJob) -> Value {
    let error = match &job.state {
        WdPostJobState::Failed(reason) => Some(reason.clone()),
        _ => job.error.clone(),
    };
    json!({
        "id": job.id,
        "round": job.round,
        "miner": job.miner,
        "proof_type": job.proof_type.as_i64(),
        "seed": hex::encode(job.seed),
        "sectors": job.sectors.iter().map(|s| json!({
            "number": s.number,
            "comm_r": hex::encode(s.comm_r),
            "upgrade": s.upgrade,
            "store": s.store,
        })).collect::<Vec<_>>(),
        "faults": job.faults,
        "proofs": job.proofs.iter().map(hex::encode).collect::<Vec<_>>(),
        "state": job.state.name(),
        "verified": job.verified,
        "worker": job.worker,
        "tries": job.tries,
        "error": error,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    })
}

/// What `util sealer sectors rebuild|unseal` says once the job is created.
pub fn job_requested(job: &Value) -> String {
    let kind = job["kind"].as_str().unwrap_or("-");
    let what = match job["piece"].as_str() {
        Some(piece) => format!(
            "{} of {}",
            cell(piece),
            cell(job["sector"].as_str().unwrap_or("-"))
        ),
        None => cell(job["sector"].as_str().unwrap_or("-")).into_owned(),
    };
    format!(
        "{kind} job {} created for {what}: a worker thread with plan = \"{kind}\" takes it; \
         follow it with `util sealer jobs list`\n",
        job["id"],
    )
}

/// A mock-manager job in the JSON of `util sealer jobs list --json`: `{"id", "kind":
/// "rebuild" | "unseal", "piece" (an unseal's piece CID, else null), "dest" (an unseal's
/// destination URLs, else empty), "sector": "s-t0<miner>-<number>", "miner", "number", "state": "pending" |
/// "taken" | "accepted" (the files were, the thread has yet to finish) | "done" |
/// "failed", "created_at", "finished_at" (Unix seconds or null),
/// "reason"}` (`reason`: why it failed, or why the files last sent back were refused, or
/// the failure its thread last reported, `"<level>: <message>"`).
pub fn chain_job_json(job: &ChainJob) -> Value {
    let (piece, dest) = match &job.kind {
        JobKind::Unseal { piece, dest } => (
            Some(piece.text.clone()),
            // A market URL carries a token: never shown.
            dest.iter()
                .map(|url| damocles_sealing::unseal::redacted(url))
                .collect(),
        ),
        _ => (None, Vec::new()),
    };
    let state = match &job.state {
        JobState::Taken if job.accepted => "accepted",
        other => other.name(),
    };
    let failed = match &job.state {
        JobState::Failed(reason) => Some(reason.clone()),
        _ => None,
    };
    json!({
        "id": job.id,
        "kind": kind_name(&job.kind),
        "piece": piece,
        "dest": dest,
        "sector": job.sector.to_string(),
        "miner": job.sector.miner,
        "number": job.sector.number,
        "state": state,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "reason": failed
            .or_else(|| job.refused.clone())
            .or_else(|| job.failure.clone()),
    })
}

/// `worker events` / `util worker events`: one line per history entry, oldest first: its
/// number, when it happened in `zone` (the operator's time zone, named in the header), how
/// long before `now_ms`, the sector and what happened.
pub fn events_table(
    entries: &[damocles_core::JournalEntry],
    now_ms: u64,
    zone: &jiff::tz::TimeZone,
) -> String {
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
    tabulate(&lines)
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

/// A mock-chain sector in the JSON of `util sealer sectors list --json`: what anyone needs
/// to verify its proof independently (hex commitments, ticket, seed and proof; the proof
/// type as its `RegisteredSealProof` integer), the deal pieces it was sealed with (`cid`,
/// padded `size`, `deal_id`; empty for a CC sector), and `update`: `null`, or for an
/// upgraded sector `{"proof_type": <RegisteredUpdateProof integer>, "comm_r_new",
/// "comm_d_new", "proof"}` (hex), which with `comm_r` verifies the upgrade, and the
/// `pieces` the upgrade put in (whose comm_d is `comm_d_new`).
pub fn chain_sector_json(sector: &ChainSector) -> Value {
    let (state, reason) = match &sector.state {
        ChainSectorState::Allocated => ("Allocated", None),
        ChainSectorState::PreCommitted => ("PreCommitted", None),
        ChainSectorState::Proven => ("Proven", None),
        ChainSectorState::Finished => ("Finished", None),
        ChainSectorState::Upgrading => ("Upgrading", None),
        ChainSectorState::Upgraded => ("Upgraded", None),
        ChainSectorState::Aborted(reason) => ("Aborted", Some(reason.clone())),
        _ => ("Unknown", None),
    };
    let pieces = |deals: &[damocles_core::sealer_api::SectorPiece]| {
        deals
            .iter()
            .filter(|d| !d.is_pledge())
            .map(|d| {
                json!({
                    "cid": d.piece.cid.text,
                    "size": d.piece.size,
                    "deal_id": d.deal_info.deal_id,
                })
            })
            .collect::<Vec<_>>()
    };
    let update = sector.upgrade.as_ref().and_then(|upgrade| {
        upgrade.accepted.as_ref().map(|accepted| {
            json!({
                "proof_type": accepted.proof_type.as_i64(),
                "comm_r_new": hex::encode(accepted.comm_r_new),
                "comm_d_new": hex::encode(accepted.comm_d_new),
                "proof": hex::encode(&accepted.proof),
                "pieces": pieces(&upgrade.deals),
            })
        })
    });
    let mut value = json!({
        "miner": sector.id.miner,
        "number": sector.id.number,
        "proof_type": sector.proof_type.as_i64(),
        "ticket": sector.pre_commit.as_ref().map(|p| hex::encode(p.ticket.ticket))
            .or_else(|| sector.ticket.as_ref().map(|t| hex::encode(t.ticket))),
        "seed": sector.seed.as_ref().map(|s| hex::encode(s.seed)),
        "comm_r": sector.pre_commit.as_ref().map(|p| hex::encode(p.comm_r)),
        "comm_d": sector.pre_commit.as_ref().map(|p| hex::encode(p.comm_d)),
        "proof": sector.proof.as_ref().map(hex::encode),
        "state": state,
        "pieces": pieces(&sector.deals),
        "update": update,
        "rebuilt": sector.rebuilt,
    });
    if let (Some(reason), Some(object)) = (reason, value.as_object_mut()) {
        object.insert("abort_reason".into(), Value::String(reason));
    }
    value
}
