//! How `damocles-worker daemon` starts when things around it are not as they should be:
//! the manager is down, a location is missing, another worker holds the locations; and
//! the time zone of its log lines. Real processes on loopback, no Groth parameters (the
//! threads pause at C1Done, which is all these tests need).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_port, manager, wait_until, worker_config, worker_list, Process, WORKER};
use serde_json::Value;

const EVERY: Duration = Duration::from_millis(100);

/// `damocles-worker daemon` on `config`, with an empty parameter cache, plus `env`.
fn daemon(dir: &Path, args: &[&str], config: &Path, env: &[(&str, &str)]) -> Command {
    let params = dir.join("no-params");
    std::fs::create_dir_all(&params).expect("param dir");
    let mut command = Command::new(WORKER);
    command
        .arg("daemon")
        .args(args)
        .arg("-c")
        .arg(config)
        .env("FIL_PROOFS_PARAMETER_CACHE", &params)
        .env_remove("DAMOCLES_WORKER_CONFIG");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn logged(process: &Process, part: &str) -> bool {
    process
        .logs
        .lock()
        .expect("logs")
        .iter()
        .any(|line| line.contains(part))
}

/// With its manager down the worker starts all the same: it serves its admin API, its
/// threads idle showing why (in `worker list` and the log), and they take sectors once
/// the manager comes.
#[test]
fn the_worker_starts_while_the_manager_is_down_and_seals_once_it_comes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manager_addr = format!("127.0.0.1:{}", free_port());
    let config = worker_config(dir.path(), &manager_addr, 2, "recover_interval = \"1s\"");
    let worker = Process::start(
        daemon(dir.path(), &[], &config, &[]),
        "admin API listening on ",
    );
    let threads = wait_until(
        "idle threads saying why",
        Duration::from_secs(30),
        EVERY,
        || {
            let threads = worker_list(&worker.address)?;
            threads
                .iter()
                .all(|t| {
                    t["thread_state"]["state"] == "Idle"
                        && t["last_error"].as_str().is_some_and(|e| {
                            e.starts_with("AllocateSector: ") && e.contains(&manager_addr)
                        })
                })
                .then_some(threads)
        },
    );
    assert_eq!(threads[0]["job_id"], Value::Null);
    assert!(logged(&worker, "starting anyway"), "the log says why");
    assert!(
        logged(&worker, "no sector: AllocateSector: "),
        "the log says why"
    );

    let _manager = manager(&dir.path().join("manager"), &manager_addr, &[]);
    wait_until("sectors taken", Duration::from_secs(60), EVERY, || {
        let threads = worker_list(&worker.address)?;
        threads
            .iter()
            .all(|t| {
                t["job_id"].is_string()
                    && !t["last_error"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("AllocateSector"))
            })
            .then_some(())
    });
    wait_until(
        "the log says it answers",
        Duration::from_secs(10),
        EVERY,
        || logged(&worker, "the manager answers").then_some(()),
    );
}

/// A missing location whose parent exists is created and prepared (and logged); one
/// whose parent is missing too is refused with the fix, as is a directory with other
/// files in it.
#[test]
fn missing_locations_are_created_when_their_parent_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = worker_config(dir.path(), "127.0.0.1:1", 1, "");
    let location = dir.path().join("store0");
    std::fs::remove_dir_all(&location).expect("remove the prepared location");
    let worker = Process::start(
        daemon(dir.path(), &["--mock-chain", "10000"], &config, &[]),
        "admin API listening on ",
    );
    assert!(location.join(".holder").is_file(), "prepared");
    assert!(logged(&worker, "creating sealing location"), "and logged");
    drop(worker);

    let text = std::fs::read_to_string(&config).expect("config");
    let deep = dir.path().join("no/such/parent");
    std::fs::write(
        &config,
        text.replace(&location.display().to_string(), &deep.display().to_string()),
    )
    .expect("config");
    let output = daemon(dir.path(), &["--mock-chain", "10000"], &config, &[])
        .output()
        .expect("daemon");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("sealing_thread[0]"), "{message}");
    assert!(message.contains("store sealing-init"), "{message}");
    assert!(!deep.exists(), "nothing created");

    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).expect("dir");
    std::fs::write(busy.join("someone's file"), b"x").expect("file");
    std::fs::write(
        &config,
        text.replace(&location.display().to_string(), &busy.display().to_string()),
    )
    .expect("config");
    let output = daemon(dir.path(), &["--mock-chain", "10000"], &config, &[])
        .output()
        .expect("daemon");
    assert_eq!(output.status.code(), Some(2));
    assert!(!busy.join(".holder").exists(), "not taken over");

    // A bare relative location is relative to the daemon's directory, which exists.
    std::fs::write(
        &config,
        text.replace(&location.display().to_string(), "relative-loc"),
    )
    .expect("config");
    let mut command = daemon(dir.path(), &["--mock-chain", "10000"], &config, &[]);
    command.current_dir(dir.path());
    let worker = Process::start(command, "admin API listening on ");
    assert!(dir.path().join("relative-loc/.holder").is_file());
    drop(worker);
}

/// A second daemon on the same locations is refused, naming the process that holds
/// them; once that one has exited, a daemon starts there again.
#[test]
fn a_second_daemon_on_the_same_locations_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = worker_config(dir.path(), "127.0.0.1:1", 2, "");
    let first = Process::start(
        daemon(dir.path(), &["--mock-chain", "10000"], &config, &[]),
        "admin API listening on ",
    );
    let pid = first.child.id();
    let output = daemon(dir.path(), &["--mock-chain", "10000"], &config, &[])
        .output()
        .expect("second daemon");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("is in use by another process"),
        "{message}"
    );
    assert!(
        message.contains(&format!("damocles-worker pid {pid}")),
        "{message}"
    );
    let threads = worker_list(&first.address).expect("the first still answers");
    assert_eq!(threads.len(), 2);
    assert!(threads.iter().all(|t| t["last_error"].is_null()
        || !t["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("Database already open")));

    let status = first.terminate();
    assert!(status.success(), "{status:?}");
    let again = Process::start(
        daemon(dir.path(), &["--mock-chain", "10000"], &config, &[]),
        "admin API listening on ",
    );
    assert!(worker_list(&again.address).is_some());
}

/// Log lines carry the local time and its offset (`TZ`), as `worker events` does.
#[test]
fn log_lines_are_stamped_in_the_local_time_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = worker_config(dir.path(), "127.0.0.1:1", 1, "");
    std::fs::remove_dir_all(dir.path().join("store0")).expect("remove");
    let worker = Process::start(
        daemon(
            dir.path(),
            &["--mock-chain", "10000"],
            &config,
            &[("TZ", "Asia/Shanghai")],
        ),
        "admin API listening on ",
    );
    let logs = worker.logs.lock().expect("logs").clone();
    let line = logs
        .iter()
        .find(|line| line.contains("creating sealing location"))
        .unwrap_or_else(|| panic!("no log line: {logs:#?}"));
    let stamp = line.split_whitespace().next().unwrap_or_default();
    assert!(stamp.ends_with("+08:00"), "{line}");
    assert_eq!(
        stamp.len(),
        "2026-12-01T01:20:13.123456+08:00".len(),
        "{line}"
    );
}

/// `params generate`: a size Filecoin does not seal and a production size are bad input
/// (exit 2) with a message saying why; an empty cache of a test size is not touched when
/// the answer is a refusal.
#[test]
fn params_generate_refuses_unknown_and_production_sizes_as_bad_input() {
    let cache = tempfile::tempdir().expect("cache");
    let run = |size: &str| {
        std::process::Command::new(common::WORKER)
            .args(["params", "generate", "--sector-size", size])
            .env("FIL_PROOFS_PARAMETER_CACHE", cache.path())
            .output()
            .expect("params generate")
    };
    let unknown = run("3KiB");
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no seal proof type for sector size 3KiB"),
        "{unknown:?}"
    );
    let production = run("32GiB");
    assert_eq!(production.status.code(), Some(2), "{production:?}");
    let text = String::from_utf8_lossy(&production.stderr);
    assert!(
        text.contains("refusing to generate parameters for 32GiB"),
        "{text}"
    );
    assert!(text.contains("fetch-params"), "{text}");
    assert_eq!(std::fs::read_dir(cache.path()).expect("cache").count(), 0);
}
