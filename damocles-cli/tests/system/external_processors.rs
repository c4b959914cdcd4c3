//! External processors as an operator runs them: `damocles-worker daemon` whose pc1, pc2
//! and c2 run in `damocles-worker processor <stage>` children, against `damocles-manager
//! mock`, which verifies every proof. The children log on the worker's stderr, so their
//! own start and end times of each task are read from there.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{manager, require_params, wait_until, worker, worker_config, worker_list};
use serde_json::Value;

fn wait<T>(what: &str, limit: Duration, probe: impl FnMut() -> Option<T>) -> T {
    wait_until(what, limit, Duration::from_millis(100), probe)
}

/// The pid in `... is ready as ext(pid: N)` lines of `stage`'s child `index`, latest
/// last.
fn ready_pids(logs: &[String], stage: &str, index: usize) -> Vec<u32> {
    let prefix = format!(": {stage} processor {index} is ready as ext(pid: ");
    logs.iter()
        .filter_map(|line| {
            let rest = &line[line.find(&prefix)? + prefix.len()..];
            rest.split(')').next()?.parse().ok()
        })
        .collect()
}

fn cpus_allowed(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the child's status")
        .lines()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|v| v.trim().to_owned())
        })
        .expect("Cpus_allowed_list")
}

fn timestamp(line: &str) -> jiff::Timestamp {
    line.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time stamp: {line}"))
}

/// Each c2 task's (pid, id) → (start, end), from the children's own log lines; a task
/// whose child was killed has no end.
fn c2_tasks(logs: &[String]) -> BTreeMap<(u32, u64), (jiff::Timestamp, Option<jiff::Timestamp>)> {
    let mut tasks = BTreeMap::new();
    for line in logs {
        let Some(rest) = line.split(": c2 processor (pid ").nth(1) else {
            continue;
        };
        let Some((pid, rest)) = rest.split_once("): task ") else {
            continue;
        };
        let pid: u32 = pid.parse().expect("pid");
        let mut words = rest.split_whitespace();
        let id: u64 = words.next().expect("id").parse().expect("task id");
        match words.next() {
            Some("started") => {
                tasks.insert((pid, id), (timestamp(line), None));
            }
            Some("finished") => {
                tasks.get_mut(&(pid, id)).expect("started before").1 = Some(timestamp(line));
            }
            _ => {}
        }
    }
    tasks
}

fn thread_in_c2(threads: &[Value]) -> Option<u32> {
    threads.iter().find_map(|t| {
        let proc = t["thread_state"]["proc"].as_str()?;
        if t["job_stage"] != "C2" {
            return None;
        }
        proc.strip_prefix("ext(pid: ")?
            .strip_suffix(')')?
            .parse()
            .ok()
    })
}

#[test]
fn pc1_pc2_and_c2_in_children_seal_verifying_sectors_through_a_killed_c2_and_a_shared_lock() {
    require_params();
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("manager");
    let m = manager(&home, "127.0.0.1:0", &["--max-sectors", "2"]);
    let config = worker_config(
        dir.path(),
        &m.address,
        2,
        "recover_interval = \"1s\"\nseal_interval = \"1s\"",
    );
    // Both threads may be in C2 at once; only the shared lock keeps the children apart.
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("c2 = 1\n", "c2 = 2\n")
        + "[processors.ext_locks]\ngpu = 1\n\
           [[processors.pc1]]\ncgroup.cpuset = \"0\"\n\
           [[processors.pc2]]\n\
           [[processors.c2]]\nlocks = [\"gpu\"]\n\
           [[processors.c2]]\nlocks = [\"gpu\"]\n";
    std::fs::write(&config, text).expect("config");
    let w = worker(&config);
    let logs = || w.logs.lock().expect("logs").clone();

    // The pc1 child is bound to CPU 0 (by its cgroup, or by affinity where cgroups are
    // out of reach); killed, it comes back bound the same way (damocles#667).
    let pc1 = wait("the pc1 child", Duration::from_secs(30), || {
        ready_pids(&logs(), "pc1", 0).pop()
    });
    assert_eq!(cpus_allowed(pc1), "0");
    assert!(std::process::Command::new("kill")
        .args(["-9", &pc1.to_string()])
        .status()
        .expect("kill")
        .success());
    let pc1_again = wait(
        "the pc1 child started again",
        Duration::from_secs(30),
        || {
            ready_pids(&logs(), "pc1", 0)
                .into_iter()
                .find(|p| *p != pc1)
        },
    );
    assert_eq!(cpus_allowed(pc1_again), "0");

    // kill -9 of the c2 child mid-call: the call fails as temporary and is retried.
    // Ten minutes: beside the other slow tests on 2 cores, reaching C2 took over five.
    let c2 = wait(
        "a thread in C2 on a child",
        Duration::from_secs(10 * 60),
        || thread_in_c2(&worker_list(&w.address)?),
    );
    let killed_at = jiff::Timestamp::try_from(SystemTime::now()).expect("now");
    assert!(std::process::Command::new("kill")
        .args(["-9", &c2.to_string()])
        .status()
        .expect("kill")
        .success());

    let finished = common::finished_sectors(&m.address, 2, Duration::from_secs(10 * 60));
    assert_eq!(finished.len(), 2);
    let logs = logs();
    assert!(
        logs.iter().any(|l| l.contains(&format!(
            "the c2 processor ext(pid: {c2}) exited (signal: 9"
        ))),
        "the worker names the killed child"
    );
    let threads = worker_list(&w.address).expect("list");
    for thread in &threads {
        assert_eq!(thread["last_error"], Value::Null, "{thread}");
    }

    // The c2 children's own times: no two tasks overlap, the killed one ending no later
    // than the kill; both configured children ran tasks.
    let tasks = c2_tasks(&logs);
    let mut intervals: Vec<(jiff::Timestamp, jiff::Timestamp, u32)> = tasks
        .iter()
        .map(|((pid, _), (start, end))| {
            let end = end.unwrap_or_else(|| {
                assert_eq!(*pid, c2, "only the killed child left a task unfinished");
                killed_at
            });
            (*start, end, *pid)
        })
        .collect();
    intervals.sort();
    assert!(
        intervals.len() >= 3,
        "the killed task and two finished ones: {intervals:?}"
    );
    for pair in intervals.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "c2 tasks overlap under one lock: {pair:?}"
        );
    }
    let pids: std::collections::BTreeSet<u32> = intervals.iter().map(|i| i.2).collect();
    assert!(pids.len() >= 2, "both children ran c2 tasks: {intervals:?}");

    // kill -9 of the worker takes its children with it (their parent-death signal).
    let children: Vec<u32> = ["pc1", "pc2", "c2"]
        .iter()
        .flat_map(|stage| (0..2).filter_map(|i| ready_pids(&logs, stage, i).pop()))
        .collect();
    assert_eq!(
        children.len(),
        4,
        "pc1, pc2 and two c2 children: {children:?}"
    );
    w.kill_9();
    wait(
        "the children gone with the worker",
        Duration::from_secs(10),
        || {
            children
                .iter()
                .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
                .then_some(())
        },
    );
}

#[test]
fn the_processor_command_answers_what_is_piped_into_it_then_exits() {
    use std::io::Write;
    let mut child = std::process::Command::new(common::WORKER)
        .args(["processor", "c2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"{\"id\":2,\"task\":{}}\n")
        .expect("write");
    let output = child.wait_with_output().expect("exit");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("c2 processor ready"));
    let answer: Value = serde_json::from_str(lines.next().expect("an answer")).expect("json");
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["output"], Value::Null);
    assert!(
        answer["err_msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("not a c2 task: missing field `c1out`")),
        "{answer}"
    );
    let refused = std::process::Command::new(common::WORKER)
        .args(["processor", "tree_d"])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("tree_d runs in-process in this worker; processors: add_pieces, pc1, pc2, c2, snap_encode, snap_prove, unseal, window_post, transfer"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn a_processor_command_that_does_not_exist_pauses_the_thread_naming_it_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("manager");
    let m = manager(&home, "127.0.0.1:0", &["--max-sectors", "1"]);
    let config = worker_config(dir.path(), &m.address, 1, "");
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!("{good}[[processors.pc1]]\nbin = \"/nonexistent/pc1-prover\"\n"),
    )
    .expect("config");
    let w = worker(&config);
    let paused = wait("the thread paused at PC1", Duration::from_secs(60), || {
        let threads = worker_list(&w.address)?;
        let thread = threads.first()?.clone();
        (thread["thread_state"]["state"] == "Paused").then_some(thread)
    });
    let error = paused["last_error"].as_str().expect("an error");
    assert!(
        error.contains("cannot start the pc1 processor `/nonexistent/pc1-prover processor pc1`"),
        "{error}"
    );
    assert_eq!(paused["job_stage"], "PC1", "{paused}");
    let job = paused["job_id"].clone();
    drop(w);

    // The same sector carries on once the configuration is mended.
    std::fs::write(&config, good).expect("config");
    let w = worker(&config);
    let threads = worker_list(&w.address).expect("list");
    assert_eq!(threads[0]["job_id"], job);
    if threads[0]["thread_state"]["state"] == "Paused" {
        let resumed = common::worker_cli(&w.address, &["resume", "-i", "0"]);
        assert!(resumed.status.success(), "{}", common::text(&resumed));
    }
    wait("the sector past PC1", Duration::from_secs(60), || {
        let thread = worker_list(&w.address)?.first()?.clone();
        assert_eq!(thread["job_id"], job);
        [
            "PC1Done",
            "PC2Done",
            "PreCommitSent",
            "PCLanded",
            "Persisted",
            "PersistanceSubmitted",
            "SeedAssigned",
            "C1Done",
        ]
        .contains(&thread["job_state"].as_str()?)
        .then_some(())
    });
}

/// A SIGTERM while an external call hangs: the worker names the child it waits for, its
/// admin API keeps answering (`worker list` shows the pid), and killing that child lets
/// the worker stop cleanly.
#[test]
fn a_stop_waiting_on_a_hung_processor_names_it_and_keeps_the_admin_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = manager(
        &dir.path().join("manager"),
        "127.0.0.1:0",
        &["--max-sectors", "1"],
    );
    let config = worker_config(dir.path(), &m.address, 1, "");
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{good}[[processors.pc1]]\nbin = \"/bin/sh\"\nargs = [\"-c\", \"echo 'pc1 processor ready'; exec sleep 600\"]\n"
        ),
    )
    .expect("config");
    let w = worker(&config);
    let proc = wait("the PC1 call in the child", Duration::from_secs(60), || {
        let thread = worker_list(&w.address)?.first()?.clone();
        let proc = thread["thread_state"]["proc"].as_str()?.to_owned();
        proc.starts_with("ext(pid: ").then_some(proc)
    });
    let pid: u32 = proc
        .trim_start_matches("ext(pid: ")
        .trim_end_matches(')')
        .parse()
        .expect("pid");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &w.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    wait("the stop names the child", Duration::from_secs(10), || {
        let logs = w.logs.lock().expect("logs");
        logs.iter()
            .any(|l| l.contains(&format!("waits for ext(pid: {pid})")))
            .then_some(())
    });
    let threads = worker_list(&w.address).expect("the admin API answers while stopping");
    assert_eq!(threads[0]["thread_state"]["proc"], proc.as_str());
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut w = w;
    let status = wait("the worker exits", Duration::from_secs(60), || {
        w.child.try_wait().expect("wait")
    });
    assert!(status.success(), "{status}");
}
