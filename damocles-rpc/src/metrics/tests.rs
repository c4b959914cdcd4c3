//! The manager metrics' text, line by line.
use super::*;
use damocles_core::{WorkerReport, WorkerSummary};

fn entry(name: &str, last_ping: i64) -> PingEntry {
    PingEntry {
        info: WorkerReport {
            name: name.into(),
            dest: "127.0.0.1:17890".into(),
            version: "v".into(),
            summary: WorkerSummary::default(),
        },
        last_ping,
        liveness: None,
    }
}

fn has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
}

#[test]
fn a_worker_name_with_quotes_and_backslashes_is_escaped_so_the_scrape_parses() {
    let metrics = ManagerMetrics::default();
    let now = 1_000_000;
    let entries = [entry("a\"b\\c\nd", now - 3)];
    let text = metrics.render(
        Some(&entries),
        Duration::from_secs(600),
        now,
        &RecordFacts::default(),
    );
    has(
        &text,
        r#"damocles_manager_worker_last_ping_age_seconds{worker="a\"b\\c\nd"} 3"#,
    );
}

#[test]
fn each_workers_last_ping_age_is_by_name() {
    let metrics = ManagerMetrics::default();
    let now = 1_000_000;
    let entries = [
        entry("w-a", now - 12),
        entry("w-b", now - 900),
        entry("w-c", now + 5),
    ];
    let text = metrics.render(
        Some(&entries),
        Duration::from_secs(600),
        now,
        &RecordFacts::default(),
    );
    has(
        &text,
        r#"damocles_manager_worker_last_ping_age_seconds{worker="w-a"} 12"#,
    );
    has(
        &text,
        r#"damocles_manager_worker_last_ping_age_seconds{worker="w-b"} 900"#,
    );
    // A clock ahead of the manager's: no negative age.
    has(
        &text,
        r#"damocles_manager_worker_last_ping_age_seconds{worker="w-c"} 0"#,
    );
    has(&text, r#"damocles_manager_workers{liveness="expired"} 1"#);
    has(&text, "damocles_manager_database_up 1");
    // A removed worker leaves no series behind.
    let text = metrics.render(
        Some(&entries[..1]),
        Duration::from_secs(600),
        now,
        &RecordFacts::default(),
    );
    assert!(!text.contains("w-b"), "{text}");
}

#[test]
fn wdpost_jobs_are_counted_by_state_with_the_last_end_of_each() {
    let metrics = ManagerMetrics::default();
    let facts = RecordFacts::tally([
        ("finished", Some(100)),
        ("finished", Some(300)),
        ("failed", Some(200)),
        ("proving", None),
    ]);
    let text = metrics.render(Some(&[]), Duration::from_secs(600), 0, &facts);
    has(&text, r#"damocles_manager_wdpost_jobs{state="finished"} 2"#);
    has(&text, r#"damocles_manager_wdpost_jobs{state="failed"} 1"#);
    has(&text, r#"damocles_manager_wdpost_jobs{state="proving"} 1"#);
    has(&text, r#"damocles_manager_wdpost_jobs{state="pending"} 0"#);
    has(&text, r#"damocles_manager_wdpost_jobs{state="missed"} 0"#);
    has(
        &text,
        r#"damocles_manager_wdpost_last_end_timestamp_seconds{state="finished"} 300"#,
    );
    has(
        &text,
        r#"damocles_manager_wdpost_last_end_timestamp_seconds{state="failed"} 200"#,
    );
    assert!(
        !text.contains(r#"last_end_timestamp_seconds{state="proving"}"#),
        "none ended:\n{text}"
    );
    // The failed job was reset: it is counted where it is now.
    let facts = RecordFacts::tally([("pending", None)]);
    let text = metrics.render(Some(&[]), Duration::from_secs(600), 0, &facts);
    has(&text, r#"damocles_manager_wdpost_jobs{state="failed"} 0"#);
    has(&text, r#"damocles_manager_wdpost_jobs{state="pending"} 1"#);
    assert!(!text.contains("last_end_timestamp_seconds{"), "{text}");
}

#[test]
fn the_database_is_down_while_the_records_or_the_registry_cannot_be_read() {
    let metrics = ManagerMetrics::default();
    let entries = [entry("w-a", 10)];
    let down = RecordFacts {
        unreadable: Some("the shared records cannot be read since …".into()),
        ..RecordFacts::default()
    };
    let text = metrics.render(Some(&entries), Duration::from_secs(600), 10, &down);
    has(&text, "damocles_manager_database_up 0");
    // What the manager holds of the chain may be stale: left out, as listings do.
    assert!(!text.contains("damocles_manager_wdpost_jobs{"), "{text}");
    has(
        &text,
        r#"damocles_manager_worker_last_ping_age_seconds{worker="w-a"} 0"#,
    );
    // The registry unreadable: its gauges are left out rather than shown as zeros.
    let text = metrics.render(None, Duration::from_secs(600), 10, &RecordFacts::default());
    has(&text, "damocles_manager_database_up 0");
    assert!(!text.contains("damocles_manager_workers{"), "{text}");
    assert!(!text.contains("w-a"), "{text}");
    let text = metrics.render(
        Some(&entries),
        Duration::from_secs(600),
        10,
        &RecordFacts::default(),
    );
    has(&text, "damocles_manager_database_up 1");
    has(&text, r#"damocles_manager_workers{liveness="ok"} 1"#);
}
