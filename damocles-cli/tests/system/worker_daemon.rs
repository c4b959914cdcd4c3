//! The real `damocles-worker` binaries on loopback: a daemon sealing for its in-process
//! mock chain (without Groth parameters, so every thread pauses at C1Done as in the seed
//! document), driven by `damocles-worker worker …` commands.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_damocles-worker");

/// A daemon process, killed when dropped.
struct Daemon {
    child: Child,
    address: String,
    _logs: std::thread::JoinHandle<()>,
}

impl Daemon {
    /// Waits at most `limit` for the daemon to exit on its own (after `what`).
    fn wait_exit(&mut self, what: &str, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit after {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, threads: usize) -> PathBuf {
    let mut text = String::from(
        "[worker]\nrpc_server.host = \"127.0.0.1\"\nrpc_server.port = 0\n\
         [sealing]\nallowed_sizes = [\"2KiB\"]\nseal_interval = \"1h\"\nrecover_interval = \"1s\"\nrpc_polling_interval = \"0s\"\n",
    );
    for i in 0..threads {
        let location = dir.join(format!("store{i}"));
        text.push_str(&format!(
            "[[sealing_thread]]\nlocation = \"{}\"\n",
            location.display()
        ));
    }
    text.push_str(&format!(
        "[[attached]]\nname = \"remote\"\nlocation = \"{}\"\n",
        dir.join("remote").display()
    ));
    let path = dir.join("worker.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn start_daemon(dir: &Path, config: &Path) -> Daemon {
    let params = dir.join("no-params");
    std::fs::create_dir_all(&params).expect("param dir");
    let mut child = Command::new(BIN)
        .args(["daemon", "--mock-chain", "10000", "-c"])
        .arg(config)
        .env("FIL_PROOFS_PARAMETER_CACHE", &params)
        .env_remove("DAMOCLES_WORKER_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let logs = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, address)) = line.split_once("admin API listening on ") {
                let _ = tx.send(address.trim().to_owned());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon says where it listens");
    Daemon {
        child,
        address,
        _logs: logs,
    }
}

fn cli(address: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("worker")
        .args(["-H", address])
        .args(args)
        .env_remove("DAMOCLES_WORKER_CONFIG")
        .env_remove("DAMOCLES_WORKER_HOST")
        .output()
        .expect("run the cli")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn list(address: &str) -> Vec<Value> {
    let output = cli(address, &["--json", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice::<Value>(&output.stdout)
        .expect("list --json")
        .as_array()
        .expect("array")
        .clone()
}

/// What may not change while nothing is done to a thread (elapsed does).
fn without_elapsed(threads: &[Value]) -> Vec<Value> {
    threads
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if let Some(state) = t["thread_state"].as_object_mut() {
                state.remove("elapsed");
            }
            t
        })
        .collect()
}

fn wait_until(address: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let threads = list(address);
        if done(&threads) {
            return threads;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {threads:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn paused_at_c1done(t: &Value) -> bool {
    t["thread_state"]["state"] == "Paused" && t["job_state"] == "C1Done"
}

#[test]
fn list_pause_resume_through_the_real_binaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 3);
    let locations: Vec<String> = (0..3)
        .map(|i| dir.path().join(format!("store{i}")).display().to_string())
        .collect();
    let init = Command::new(BIN)
        .args(["store", "sealing-init", "-l"])
        .args(&locations)
        .output()
        .expect("sealing-init");
    assert!(init.status.success(), "{}", stderr(&init));
    assert_eq!(stdout(&init).lines().count(), 3, "{}", stdout(&init));

    let daemon = start_daemon(dir.path(), &config);
    let address = daemon.address.clone();
    let addr = address.as_str();
    let threads = wait_until(addr, "three threads paused at C1Done", |t| {
        t.len() == 3 && t.iter().all(paused_at_c1done)
    });
    for t in &threads {
        let error = t["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("No cached parameters found"), "{error}");
    }

    // The table: header and one line per thread, errors on one line.
    let output = cli(addr, &["list"]);
    assert!(output.status.success());
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("#   location"), "{table}");
    assert!(
        lines[1].contains("C1Done") && lines[1].contains("Paused("),
        "{table}"
    );

    // Bad input changes nothing and exits 2.
    let before = without_elapsed(&list(addr));
    for args in [
        &["resume", "-i", "0", "-s", "Foo"][..],
        &["resume", "-i", "0", "-s", "SnapEncoded"][..],
        &["resume", "-i", "9"][..],
        &["pause", "-i", "9"][..],
        &["pause", "-i", "-1"][..],
        &["pause", "-i", "zero"][..],
    ] {
        let output = cli(addr, args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).is_empty(), "{args:?} says why");
    }
    let output = cli(addr, &["resume", "-i", "0", "-s", "Foo"]);
    assert!(
        stderr(&output).contains("valid states: Allocated"),
        "{}",
        stderr(&output)
    );
    let output = cli(addr, &["resume", "-i", "9"]);
    assert_eq!(stderr(&output).trim(), "error: worker #9 not found");
    assert_eq!(without_elapsed(&list(addr)), before, "nothing changed");

    // Pausing a paused thread is idempotent.
    let output = cli(addr, &["pause", "-i", "0"]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output),
        "thread #0 was already paused; nothing changed\n"
    );

    // Skipping ahead to Finished would leave C2 unrun: refused, exit 2, nothing changed.
    let output = cli(addr, &["resume", "-i", "0", "-s", "Finished"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim(),
        "error: cannot resume thread #0 at Finished: the sector is at C1Done: skipping \
         ahead would leave the step of C1Done unrun; only waits for the chain (PCSubmitted, \
         ProofSubmitted) can be skipped: resume at C1Done or earlier, or without a state"
    );
    assert_eq!(without_elapsed(&list(addr)), before, "nothing changed");

    // Resume at PC1Done (the case): PC2 runs again from the staged copy, so the
    // same comm_r is pre-committed again and C1 (which checks the replica) passes.
    let job = before[0]["job_id"].clone();
    let output = cli(addr, &["resume", "-i", "0", "-s", "PC1Done"]);
    assert_eq!(
        stdout(&output),
        "thread #0 resumed at PC1Done\n",
        "{}",
        stderr(&output)
    );
    let threads = wait_until(addr, "thread 0 at C1Done again", |t| {
        paused_at_c1done(&t[0])
    });
    assert_eq!(threads[0]["job_id"], job);
    assert_eq!(
        threads[0]["last_error"], before[0]["last_error"],
        "C2 again, no mismatch"
    );

    // Drained, then resumed at Aborted: the sector is dropped and the thread idles with
    // no sector.
    assert!(cli(addr, &["drain", "-i", "0"]).status.success());
    let output = cli(addr, &["--json", "resume", "-i", "0", "-s", "Aborted"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        answer,
        serde_json::json!({"index": 0, "outcome": "resumed", "state": "Aborted"})
    );
    let threads = wait_until(addr, "thread 0 between sectors", |t| {
        t[0]["job_id"].is_null() && t[0]["thread_state"]["state"] != "Paused"
    });
    assert_eq!(threads[0]["last_error"], Value::Null);
    let output = cli(addr, &["resume", "-i", "0"]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output),
        "thread #0 is not paused; nothing to resume\n"
    );

    // Pause reaches the idle thread at once, and list shows it.
    let output = cli(addr, &["pause", "-i", "0"]);
    assert_eq!(stdout(&output), "thread #0 paused\n", "{}", stderr(&output));
    let threads = list(addr);
    assert_eq!(threads[0]["thread_state"]["state"], "Paused");
    assert_eq!(threads[0]["last_error"], Value::Null);

    // Resume thread 1 at TreeDBuilt: it re-seals from there and pauses at C2 again, on
    // the same sector.
    let job = threads[1]["job_id"].clone();
    let output = cli(addr, &["resume", "-i", "1", "-s", "TreeDBuilt"]);
    assert_eq!(stdout(&output), "thread #1 resumed at TreeDBuilt\n");
    let threads = wait_until(addr, "thread 1 paused again", |t| paused_at_c1done(&t[1]));
    assert_eq!(threads[1]["job_id"], job);

    // Bulk: every thread, those with errors, those in a state; one line per thread.
    let output = cli(addr, &["pause", "--all"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "thread #0 was already paused; nothing changed\n\
         thread #1 was already paused; nothing changed\n\
         thread #2 was already paused; nothing changed\n"
    );
    let output = cli(addr, &["--json", "resume", "--in-state", "C1Done"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let answers: Value = serde_json::from_slice(&output.stdout).expect("json");
    let resumed: Vec<u64> = answers
        .as_array()
        .expect("one element per thread")
        .iter()
        .map(|a| {
            assert_eq!(a["outcome"], "resumed", "{a}");
            a["index"].as_u64().expect("index")
        })
        .collect();
    assert_eq!(resumed, [1, 2], "the two threads at C1Done");
    let output = cli(addr, &["pause", "--in-state", "Foo"]);
    assert_eq!(output.status.code(), Some(2));
    let output = cli(addr, &["pause", "-i", "0", "--all"]);
    assert_eq!(output.status.code(), Some(2), "one selector at a time");

    // Nobody at the address: exit 3 with an actionable message.
    drop(daemon);
    let output = cli(addr, &["list"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("connection refused — is the daemon running?"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_daemon_stops_on_sigterm_and_keeps_paused_threads_paused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 1);
    let init = Command::new(BIN)
        .args(["store", "sealing-init", "-l"])
        .arg(dir.path().join("store0"))
        .output()
        .expect("sealing-init");
    assert!(init.status.success());
    let mut daemon = start_daemon(dir.path(), &config);
    let threads = wait_until(&daemon.address, "paused at C1Done", |t| {
        paused_at_c1done(&t[0])
    });
    // An operator's action, for the history to keep across the restart.
    let output = cli(&daemon.address, &["drain", "-i", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let kill = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = daemon.wait_exit("SIGTERM", Duration::from_secs(30));
    assert!(status.success(), "{status:?}");

    let again = start_daemon(dir.path(), &config);
    let after = wait_until(&again.address, "paused after restart", |t| {
        paused_at_c1done(&t[0])
    });
    assert_eq!(after[0]["job_id"], threads[0]["job_id"]);
    assert_eq!(after[0]["last_error"], threads[0]["last_error"]);

    // The history survived: the sector's way to C1Done, the C2 failure, the pause it
    // caused, the drain with who asked, and the restart.
    let output = cli(&again.address, &["--json", "events", "-i", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let events: Vec<Value> = serde_json::from_slice(&output.stdout).expect("events --json");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    let tail = ["transition", "failed", "paused", "drain", "started"];
    assert!(kinds.ends_with(&tail), "{kinds:?}");
    assert_eq!(kinds[0], "started");
    assert_eq!(events[kinds.len() - 5]["to"], "C1Done");
    assert_eq!(events[kinds.len() - 4]["level"], "permanent");
    let drain = &events[kinds.len() - 2];
    assert!(
        drain["by"]
            .as_str()
            .is_some_and(|by| by.starts_with("127.0.0.1:")),
        "{drain}"
    );
    assert_eq!(drain["sector"], threads[0]["job_id"]);
    let restarted = &events[kinds.len() - 1];
    assert_eq!(
        (
            &restarted["state"],
            &restarted["paused"],
            &restarted["draining"]
        ),
        (
            &Value::from("C1Done"),
            &Value::from(true),
            &Value::from(true)
        )
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // As a table: local times and ages, the newest last.
    let output = cli(&again.address, &["events", "-i", "0", "-n", "2"]);
    let table = stdout(&output);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("drained by 127.0.0.1:"), "{table}");
    assert!(
        table.contains("thread started at C1Done, paused, draining"),
        "{table}"
    );
    // Bad input: a limit out of range, an unknown thread.
    let output = cli(&again.address, &["events", "-i", "0", "-n", "0"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = cli(&again.address, &["events", "-i", "9"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("worker #9 not found"),
        "{}",
        stderr(&output)
    );

    // set-plan writes the thread's hot config; the sector keeps its plan.
    let output = cli(&again.address, &["set-plan", "-i", "0", "snapup"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stdout(&output);
    let job = threads[0]["job_id"].as_str().expect("job");
    assert!(
        said.contains(&format!("once its current job {job} has finished")),
        "{said}"
    );
    let hot = std::fs::read_to_string(dir.path().join("store0/config.toml")).expect("hot");
    assert_eq!(hot, "plan = \"snapup\"\n");
    let output = cli(&again.address, &["set-plan", "-i", "0", "snapdeals"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    // A stop with every thread at rest (paused) exits at once with the restart code.
    let mut again = again;
    let output = cli(&again.address, &["stop"]);
    assert!(
        stdout(&output).contains("every thread is at rest"),
        "{}",
        stdout(&output)
    );
    let status = again.wait_exit("a stop on request", Duration::from_secs(30));
    assert_eq!(status.code(), Some(75));
}

/// (A missing location is created when its parent exists: `worker_startup.rs`.)
#[test]
fn a_config_with_a_bad_value_is_refused_naming_key_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 1);
    std::fs::write(&config, "[sealing]\nmax_retries = \"x\"\n").expect("write");
    let output = Command::new(BIN)
        .args(["daemon", "-c"])
        .arg(&config)
        .output()
        .expect("daemon");
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("sealing.max_retries"), "{message}");
    assert!(message.contains("worker.toml"), "{message}");
}

/// `--mock-chain` keeps its records beside the config: after a restart, a new sector gets
/// a new number, never one a thread still holds (whose files it would overwrite).
#[test]
fn the_in_process_mock_chain_never_hands_out_a_held_sector_number_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), 2);
    let daemon = start_daemon(dir.path(), &config);
    let threads = wait_until(&daemon.address, "both at C1Done", |t| {
        t.iter().all(paused_at_c1done)
    });
    let mut held: Vec<_> = threads.iter().map(|t| t["job_id"].clone()).collect();
    drop(daemon);

    let daemon = start_daemon(dir.path(), &config);
    wait_until(&daemon.address, "both paused again", |t| {
        t.iter().all(paused_at_c1done)
    });
    let output = cli(&daemon.address, &["resume", "-i", "0", "-s", "Aborted"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let threads = wait_until(&daemon.address, "thread 0 on a new sector", |t| {
        paused_at_c1done(&t[0]) && t[0]["job_id"] != held[0]
    });
    held.sort_by_key(|id| id.to_string());
    assert!(!held.contains(&threads[0]["job_id"]), "{threads:#?}");
    assert_eq!(threads[0]["job_id"], "s-t010000-3");
}
