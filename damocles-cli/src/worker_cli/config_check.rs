//! `damocles-worker config check`: the report of [`damocles_sealing::config_check`] as
//! text (what would run, then the warnings and problems) or `--json`.

use std::path::Path;

use damocles_sealing::config_check::{self, CheckReport};

use crate::exit::{self, CliError};
use crate::render::{self, cell, tabulate};

/// Runs the check; exit 0 when the configuration can run here, 2 when it cannot (or the
/// file cannot be read or parsed).
pub fn run(config: &Path, json: bool) -> u8 {
    match config_check::check(config) {
        Ok(mut report) => {
            // As the daemon reads it (the parser lives with the manager's client).
            if let Err(e) = damocles_rpc::sealer::manager_host_ports(&report.manager) {
                report
                    .problems
                    .push(format!("[sector_manager] rpc_client.addr: {e}"));
            }
            let code = if report.problems.is_empty() {
                exit::OK
            } else {
                exit::BAD_INPUT
            };
            let text = if json {
                render::json(&report)
            } else {
                render_report(&report)
            };
            exit::print_out(&text);
            code
        }
        Err(e) => render::failure(json, &CliError::bad_input(e.to_string())),
    }
}

/// The text of a report: a verdict line, then the threads, the external processors, the
/// stage limits and the attached stores, each a table, then warnings and problems.
pub fn render_report(report: &CheckReport) -> String {
    let mut out = String::new();
    let verdict = match report.problems.len() {
        0 => "ok: it can run here".to_owned(),
        n => format!("{n} problem(s): it cannot run here as it is"),
    };
    out.push_str(&format!("config {}: {verdict}\n", cell(&report.file)));
    out.push_str(&format!(
        "manager {}, admin API on {}\n\nThreads\n",
        cell(&report.manager),
        cell(&report.admin)
    ));
    let mut lines = vec!["#\tLocation\tPlan\tHotConfig\tLocationState".to_owned()];
    for t in &report.threads {
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}",
            t.index,
            cell(&t.location),
            t.plan,
            if t.hot_config { "config.toml" } else { "-" },
            t.location_state
        ));
    }
    out.push_str(&tabulate(&lines));
    if !report.processors.is_empty() {
        out.push_str("\nExternal processors\n");
        let mut lines = vec!["Stage\t#\tProgram\tArgs\tCpuset\tConcurrent\tLocks".to_owned()];
        for p in &report.processors {
            lines.push(format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                p.stage,
                p.index,
                cell(p.bin.as_deref().unwrap_or("(this worker)")),
                if p.args.is_empty() {
                    "-".to_owned()
                } else {
                    cell(&p.args.join(" ")).into_owned()
                },
                cell(p.cpuset.as_deref().unwrap_or("-")),
                // A sealing daemon is sent no calls.
                if p.stage == "sealing_daemons" {
                    "-".to_owned()
                } else {
                    p.concurrent.to_string()
                },
                if p.locks.is_empty() {
                    "-".to_owned()
                } else {
                    cell(&p.locks.join(",")).into_owned()
                }
            ));
        }
        out.push_str(&tabulate(&lines));
    }
    if !report.limits.is_empty() {
        out.push_str("\nStage limits\n");
        let mut lines = vec!["Stage\tConcurrent\tStaggered".to_owned()];
        for l in &report.limits {
            lines.push(format!(
                "{}\t{}\t{}",
                l.stage.as_str(),
                l.concurrent.map_or("-".to_owned(), |n| n.to_string()),
                l.staggered.as_deref().unwrap_or("-")
            ));
        }
        out.push_str(&tabulate(&lines));
    }
    out.push_str("\nAttached stores\n");
    let mut lines = vec!["Name\tLocation\tReadOnly".to_owned()];
    for a in &report.attached {
        lines.push(format!(
            "{}\t{}\t{}",
            cell(&a.name),
            cell(&a.location),
            if a.readonly { "yes" } else { "no" }
        ));
    }
    out.push_str(&tabulate(&lines));
    for (title, items) in [
        ("Warnings", &report.warnings),
        ("Problems", &report.problems),
    ] {
        if !items.is_empty() {
            out.push_str(&format!("\n{title}\n"));
            for item in items {
                out.push_str(&format!("  {}\n", cell(item)));
            }
        }
    }
    out
}
