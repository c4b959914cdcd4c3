//! The monitoring files of `deploy/` name only metrics our binaries export: every metric in
//! an `expr` of the alert rules (`deploy/prometheus/damocles.rules.yml`) and in a query of
//! the Grafana dashboard (`deploy/grafana/damocles.json`, its panels and its variables) is
//! one the worker's or the manager's `/metrics` serves, as rendered in process here, or a
//! recording rule the rules file defines. (scripts/check-deploy.sh checks that they parse
//! and that the rules behave, with promtool.)

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use damocles_core::{
    FailureLevel, Plan, PlanState, ProofStage, State, ThreadInfo, ThreadState, WorkerReport,
    WorkerSummary,
};
use damocles_rpc::metrics::{ManagerMetrics, RecordFacts};
use damocles_rpc::registry::PingEntry;
use damocles_sealing::metrics::{ThreadSample, WorkerMetrics};

fn repo_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The worker's and the manager's expositions, every family with samples.
fn expositions() -> [String; 2] {
    let worker = WorkerMetrics::default();
    worker.record_stage(Plan::Sealer, ProofStage::PC1, Duration::from_secs(3));
    worker.record_slot_wait(ProofStage::PC1, Duration::from_secs(1));
    worker.record_failure(FailureLevel::Permanent);
    worker.sector_finished();
    worker.sector_aborted();
    worker.record_admin_call("VenusWorker.WorkerList", Duration::from_millis(2));
    let thread = ThreadInfo {
        index: 0,
        location: "/s0".into(),
        plan: Plan::Sealer,
        job_id: Some("s-t01000-1".into()),
        job_state: Some(PlanState::Sector(State::TicketAssigned)),
        job_stage: Some(PlanState::Sector(State::TicketAssigned).stage(Plan::Sealer)),
        thread_state: ThreadState::Paused { elapsed: 5 },
        last_error: Some("permanent: x".into()),
        pause_requested: false,
        draining: false,
        stuck: false,
        pending_plan: None,
        config_error: None,
        stopping: false,
        as_sent: Default::default(),
    };
    let worker_text = worker.render(&[ThreadSample {
        info: thread,
        in_state: Some(Duration::from_secs(60)),
    }]);

    let manager = ManagerMetrics::default();
    manager.record_call("Venus.WorkerPing", Duration::from_millis(1));
    let entry = PingEntry {
        info: WorkerReport {
            name: "w".into(),
            dest: "127.0.0.1:17890".into(),
            version: "v".into(),
            summary: WorkerSummary::default(),
        },
        last_ping: 100,
        liveness: None,
    };
    let records = RecordFacts::tally(
        ["pending", "proving", "finished", "failed", "missed"]
            .into_iter()
            .map(|state| (state, Some(90))),
    );
    let manager_text = manager.render(Some(&[entry]), Duration::from_secs(600), 120, &records);
    [worker_text, manager_text]
}

/// The names of the series an exposition serves, by each family's `# TYPE`: a counter's
/// samples are `<name>_total`, a histogram's `<name>_bucket`, `_sum` and `_count`.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            if let Some(name) = line.split(['{', ' ']).next().filter(|n| !n.is_empty()) {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// The `expr` values of a rules file (inline, quoted, or `|`/`>` blocks), and the names
/// its recording rules define.
fn rule_exprs(yaml: &str) -> (Vec<String>, BTreeSet<String>) {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    let mut records = BTreeSet::new();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let body = line.trim_start().trim_start_matches("- ");
        if let Some(name) = body.strip_prefix("record:") {
            records.insert(name.trim().trim_matches(['"', '\'']).to_owned());
        }
        if let Some(value) = body.strip_prefix("expr:") {
            let value = value.trim();
            if value.starts_with('|') || value.starts_with('>') {
                let mut block = String::new();
                while i + 1 < lines.len()
                    && (lines[i + 1].trim().is_empty() || indent(lines[i + 1]) > indent(line))
                {
                    i += 1;
                    block.push_str(lines[i].trim());
                    block.push('\n');
                }
                exprs.push(block);
            } else if let Some(quoted) = value.strip_prefix('"') {
                exprs.push(
                    quoted
                        .rsplit_once('"')
                        .map_or(quoted, |(q, _)| q)
                        .replace("\\\"", "\""),
                );
            } else if let Some(quoted) = value.strip_prefix('\'') {
                exprs.push(
                    quoted
                        .rsplit_once('\'')
                        .map_or(quoted, |(q, _)| q)
                        .replace("''", "'"),
                );
            } else {
                // A plain scalar ends at a comment.
                exprs.push(value.split(" #").next().unwrap_or(value).to_owned());
            }
        }
        i += 1;
    }
    (exprs, records)
}

/// Every query of a dashboard: each `expr` (panel targets), and the metric of each
/// variable's `label_values(<metric>, <label>)`.
fn dashboard_exprs(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    ("query" | "definition", serde_json::Value::String(query)) => {
                        if let Some(args) = query.trim().strip_prefix("label_values(") {
                            let metric = args.split([',', ')']).next().unwrap_or_default();
                            out.push(metric.trim().to_owned());
                        }
                    }
                    _ => dashboard_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// The metric names a PromQL expression selects: its identifiers outside strings, label
/// matchers (`{…}`), ranges (`[…]`), grouping lists (`by (…)`, `on (…)`, …), function
/// names, keywords and Grafana variables (`$name`).
fn metric_names(expr: &str) -> Vec<String> {
    // The operators, and the aggregations (`sum by (…) (…)`: not followed by a bracket).
    const KEYWORDS: [&str; 22] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    // Past the string whose quote is at `i`.
    let skip_string = |mut i: usize| {
        let quote = chars[i];
        i += 1;
        while i < chars.len() && chars[i] != quote {
            i += if chars[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    // Past the bracket closing the one at `i`, strings within skipped.
    let skip_group = |mut i: usize, open: char, close: char| {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => {
                    i = skip_string(i);
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(i),
            '{' => i = skip_group(i, '{', '}'),
            '[' => i = skip_group(i, '[', ']'),
            '#' => {
                // A comment, to the end of the line.
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration (5m, 1e3, 0x1f).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let call = chars.get(next) == Some(&'(');
                if GROUPING.contains(&word.as_str()) {
                    if call {
                        i = skip_group(next, '(', ')');
                    }
                } else if !call && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Series Prometheus itself writes for every scrape (the scrape-failure alert reads `up`).
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

/// The names of `exprs` that are neither exported nor recorded, with the expression.
fn unknown_names(
    exprs: &[String],
    exported: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    let mut unknown = Vec::new();
    for expr in exprs {
        for name in metric_names(expr) {
            let known = if name.contains(':') {
                recorded.contains(&name)
            } else {
                exported.contains(&name) || PROMETHEUS_SERIES.contains(&name.as_str())
            };
            if !known {
                unknown.push(format!("{name} (in `{}`)", expr.trim()));
            }
        }
    }
    unknown
}

#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_one_the_binaries_export() {
    let exported: BTreeSet<String> = expositions()
        .iter()
        .flat_map(|t| exported_names(t))
        .collect();
    for name in [
        "damocles_worker_thread_state_seconds",
        "damocles_worker_stage_duration_seconds_bucket",
        "damocles_worker_sectors_finished_total",
        "damocles_manager_database_up",
    ] {
        assert!(exported.contains(name), "{name} in {exported:?}");
    }

    let (rule_exprs, recorded) = rule_exprs(&repo_file("deploy/prometheus/damocles.rules.yml"));
    assert!(rule_exprs.len() >= 6, "{rule_exprs:?}");
    assert!(
        recorded.contains("damocles:stage_limit_seconds"),
        "{recorded:?}"
    );
    let unknown = unknown_names(&rule_exprs, &exported, &recorded);
    assert!(
        unknown.is_empty(),
        "the rules name metrics the binaries do not export:\n{}\nexported: {exported:?}",
        unknown.join("\n")
    );

    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/damocles.json"))
            .expect("the dashboard's JSON");
    assert_eq!(dashboard["schemaVersion"], 39);
    let mut queries = Vec::new();
    dashboard_exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    let unknown = unknown_names(&queries, &exported, &recorded);
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics the binaries do not export:\n{}\nexported: {exported:?}",
        unknown.join("\n")
    );
}

#[test]
fn the_metric_names_of_a_query_are_those_it_selects() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.9, sum by (le, stage) (rate(a_bucket{instance=~"$worker", x="y z"}[$__rate_interval])))
               / on (stage) group_left () b:limit offset 5m > bool 1e3 unless c == 1 # d"#
        ),
        ["a_bucket", "b:limit", "c"]
    );
    assert_eq!(
        metric_names("sum(x) without (a) or vector(1) and time() - y"),
        ["x", "y"]
    );
    let exported = BTreeSet::from(["good_total".to_owned()]);
    let recorded = BTreeSet::from(["job:good:rate".to_owned()]);
    // A misspelt metric, a counter without its _total, a rule nobody records.
    let exprs = ["good_total + goood_total + good + job:bad:rate + job:good:rate".to_owned()];
    let unknown = unknown_names(&exprs, &exported, &recorded);
    let names: Vec<&str> = unknown
        .iter()
        .map(|u| u.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(names, ["goood_total", "good", "job:bad:rate"]);
    let (exprs, records) = rule_exprs(
        "groups:\n  - name: g\n    rules:\n      - record: r:x\n        expr: vector(1) # c\n      - alert: A\n        expr: |\n          a\n            > b\n        for: 1m\n      - alert: B\n        expr: \"c{x=\\\"1\\\"}\"\n",
    );
    assert_eq!(exprs, ["vector(1)", "a\n> b\n", "c{x=\"1\"}"]);
    assert_eq!(records, BTreeSet::from(["r:x".to_owned()]));
}
