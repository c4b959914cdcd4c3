//! The Prometheus endpoints of a worker and a manager, scraped over real HTTP while the
//! worker seals (up to C2: no parameters here, so C2 fails as in the seed document):
//! stage durations, failures, thread states, admin and API calls all move.

use crate::common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{manager, wait_until, worker_cli, worker_config, Process};

pub(crate) fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("answer");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// The value of the sample `name` (with its labels) in `text`.
pub(crate) fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

pub(crate) fn metrics_addr(process: &Process) -> String {
    wait_until(
        "the metrics address",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            process.logs.lock().expect("logs").iter().find_map(|line| {
                let rest = line.split_once("metrics on http://")?.1;
                Some(rest.trim_end_matches("/metrics").to_owned())
            })
        },
    )
}

#[test]
fn worker_and_manager_metrics_move_as_sectors_seal() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("worker");
    let manager_process = manager(
        home.path(),
        "127.0.0.1:0",
        &["--max-sectors", "1", "--metrics-listen", "127.0.0.1:0"],
    );
    let m = manager_process.address.clone();
    let manager_metrics = metrics_addr(&manager_process);
    let config = worker_config(
        dir.path(),
        &m,
        2,
        "seal_interval = \"1h\"\nrecover_interval = \"1s\"",
    );
    let text = std::fs::read_to_string(&config).expect("config")
        + "[metrics]\nenable = true\nhttp_listen = \"127.0.0.1:0\"\n";
    std::fs::write(&config, text).expect("config");
    let no_params = dir.path().join("no-params");
    std::fs::create_dir_all(&no_params).expect("dir");
    let mut command = std::process::Command::new(common::WORKER);
    command
        .args(["daemon", "-c"])
        .arg(&config)
        .env("FIL_PROOFS_PARAMETER_CACHE", &no_params);
    let worker_process = Process::start(command, "admin API listening on ");
    let worker_metrics = metrics_addr(&worker_process);
    let w = worker_process.address.clone();

    // One thread takes the one sector and pauses at C2; the other idles. The failure is
    // counted a moment before the thread shows paused: wait for both.
    let worker_text = wait_until(
        "a failure counted and its thread paused",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let text = scrape(&worker_metrics);
            let failed =
                sample(&text, "damocles_worker_failures_total{level=\"permanent\"}") == Some(1.0);
            let paused = sample(&text, "damocles_worker_threads{state=\"paused\"}") == Some(1.0);
            (failed && paused).then_some(text)
        },
    );
    for stage in ["add_pieces", "tree_d", "pc1", "pc2", "c1", "c2"] {
        let name = format!(
            "damocles_worker_stage_duration_seconds_count{{plan=\"sealer\",stage=\"{stage}\"}}"
        );
        assert_eq!(
            sample(&worker_text, &name),
            Some(1.0),
            "{name}\n{worker_text}"
        );
    }
    assert_eq!(
        sample(&worker_text, "damocles_worker_threads{state=\"paused\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&worker_text, "damocles_worker_sectors_finished_total"),
        Some(0.0)
    );
    // Per thread (deploy/prometheus/damocles.rules.yml): the paused one is paused on its
    // C2 failure, its sector in C1Done (stage c2) since then; the idle one has no job.
    let samples = |prefix: &str| -> Vec<(String, f64)> {
        worker_text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    };
    let on_error = samples("damocles_worker_thread_paused_on_error{");
    assert_eq!(on_error.len(), 2, "{worker_text}");
    let paused: Vec<_> = on_error.iter().filter(|(_, v)| *v == 1.0).collect();
    assert_eq!(paused.len(), 1, "{worker_text}");
    let thread = paused[0].0.split('"').nth(1).expect("thread label");
    let in_state = samples("damocles_worker_thread_state_seconds{");
    assert_eq!(
        in_state.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        [format!(
            "damocles_worker_thread_state_seconds{{thread=\"{thread}\",plan=\"sealer\",state=\"C1Done\",stage=\"c2\"}}"
        )],
        "{worker_text}"
    );

    let list = "damocles_worker_admin_calls_total{method=\"VenusWorker.WorkerList\"}";
    let before = sample(&scrape(&worker_metrics), list).unwrap_or(0.0);
    assert!(worker_cli(&w, &["list"]).status.success());
    let after = sample(&scrape(&worker_metrics), list).unwrap_or(0.0);
    assert_eq!(after, before + 1.0, "the admin call was counted");

    // The manager: one live worker whose report shows the paused thread; pings counted.
    let manager_text = wait_until(
        "the paused thread reported",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let text = scrape(&manager_metrics);
            (sample(&text, "damocles_manager_worker_threads{state=\"paused\"}") == Some(1.0))
                .then_some(text)
        },
    );
    assert_eq!(
        sample(&manager_text, "damocles_manager_workers{liveness=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &manager_text,
            "damocles_manager_workers{liveness=\"expired\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &manager_text,
            "damocles_manager_worker_ping_age{age=\"<=60s\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&manager_text, "damocles_manager_database_up"),
        Some(1.0)
    );
    assert!(
        manager_text
            .lines()
            .any(|l| l.starts_with("damocles_manager_worker_last_ping_age_seconds{worker=")),
        "{manager_text}"
    );
    assert_eq!(
        sample(
            &manager_text,
            "damocles_manager_wdpost_jobs{state=\"failed\"}"
        ),
        Some(0.0)
    );
    let pings = "damocles_manager_api_calls_total{method=\"Venus.WorkerPing\"}";
    let first = sample(&manager_text, pings).expect("pings counted");
    let later = wait_until(
        "another ping",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let n = sample(&scrape(&manager_metrics), pings)?;
            (n > first).then_some(n)
        },
    );
    assert!(later > first);
    drop(worker_process);
    drop(manager_process);
}
