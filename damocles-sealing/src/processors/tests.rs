//! The unit tests of `processors`.

//! The worker's side against small shell programs that speak (or break) the
//! protocol; the real processor is driven by the external-processor process tests.

use std::time::Duration;

use damocles_core::FailureLevel;
use serde_json::value::RawValue;

use super::*;
use crate::config::WorkerConfig;

/// Processors of `stage` from `[[processors.<stage>]]` entries, each a `/bin/sh -c`
/// script.
fn processors_of(stage: &str, scripts: &[&str], extra: &str) -> Processors {
    let mut text = format!("{extra}\n[[sealing_thread]]\nlocation = \"/tmp/x\"\n");
    for script in scripts {
        text.push_str(&format!(
            "[[processors.{stage}]]\nbin = \"/bin/sh\"\nargs = [\"-c\", {script:?}]\nstable_wait = \"2s\"\n"
        ));
    }
    let config = WorkerConfig::parse(&text, "test").expect("config").config;
    Processors::start(
        &config.processors,
        Path::new("/nonexistent/damocles-worker"),
    )
    .expect("started")
}

const READY_THEN_ERR: &str = r#"echo "c2 processor ready"; while read -r line; do id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo "{\"id\":$id,\"err_msg\":\"no GPU here\",\"output\":null}"; done"#;

/// A task of the c2 stage that the shell scripts answer.
#[derive(serde::Serialize, serde::Deserialize)]
struct Probe {}

impl ProcessorTask for Probe {
    const STAGE: ProofStage = ProofStage::C2;
    type Output = serde_json::Value;

    fn execute(self) -> Result<Self::Output, Failure> {
        Ok(serde_json::Value::Null)
    }
}

/// The c2 children of `processors`.
fn children(processors: &Processors) -> Vec<Arc<ExternalChild>> {
    processors.inner.as_ref().expect("external").stages[&ProofStage::C2].clone()
}

/// The first sealing daemon of `processors`.
fn first_daemon(processors: &Processors) -> Arc<ExternalChild> {
    processors.inner.as_ref().expect("started").daemons[0].clone()
}

fn task() -> Box<RawValue> {
    RawValue::from_string("{}".into()).expect("raw")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_error_is_permanent_and_names_the_child() {
    let processors = processors_of("c2", &[READY_THEN_ERR], "");
    let lease = processors.lease(ProofStage::C2).await.expect("ready");
    assert!(
        lease.proc_name().starts_with("ext(pid: "),
        "{}",
        lease.proc_name()
    );
    let answer = lease.live.call(&task()).await.expect("an answer");
    assert_eq!(answer.err_msg.as_deref(), Some("no GPU here"));
    let status = &processors.status()[0];
    assert_eq!((status.stage, status.index), (Some(ProofStage::C2), 0));
    assert_eq!(status.pid, Some(lease.live.pid));
    assert_eq!(status.restarts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_restarts_are_counted_per_child_in_the_workers_metrics() {
    let processors = processors_of("c2", &[READY_THEN_ERR], "");
    let lease = processors.lease(ProofStage::C2).await.expect("ready");
    // `run` counts the call; its task is no C2 task, which the script answers anyway.
    let failure = lease
        .run(&Probe {})
        .await
        .expect_err("the script answers an error");
    assert!(
        failure
            .to_string()
            .starts_with("permanent: c2 processor ext(pid: "),
        "{failure}"
    );
    assert!(failure.to_string().ends_with("): no GPU here"), "{failure}");
    let mut registry = Registry::with_prefix("damocles_worker");
    processors.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("damocles_worker_processor_calls_total{stage=\"c2\",child=\"0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("damocles_worker_processor_restarts_total{stage=\"c2\",child=\"0\"} 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_fails_naming_its_command_line() {
    let text = "[[sealing_thread]]\nlocation = \"/tmp/x\"\n[[processors.pc1]]\nbin = \"/nonexistent/pc1-prover\"\n";
    let config = WorkerConfig::parse(text, "test").expect("config").config;
    let processors = Processors::start(&config.processors, Path::new("/unused")).expect("started");
    let Err(failure) = processors.lease(ProofStage::PC1).await else {
        panic!("a child that cannot start is no lease")
    };
    assert_eq!(failure.level, FailureLevel::Permanent);
    assert!(
        failure
            .to_string()
            .contains("cannot start the pc1 processor `/nonexistent/pc1-prover processor pc1`"),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_is_never_ready_or_prints_something_else_is_named() {
    for (script, expected) in [
        (
            "exec sleep 30",
            "did not print \"c2 processor ready\" within 2s",
        ),
        (
            "echo hello; exec sleep 30",
            "printed \"hello\" where \"c2 processor ready\" was expected",
        ),
        ("exit 3", "exited before it was ready (exit status: 3)"),
    ] {
        let processors = processors_of("c2", &[script], "");
        let Err(failure) = processors.lease(ProofStage::C2).await else {
            panic!("{script}: no lease expected")
        };
        let text = failure.to_string();
        assert!(text.contains(expected), "{script}: {text}");
        assert!(text.contains("`/bin/sh -c"), "{script}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_dying_mid_call_fails_it_as_temporary_and_is_started_again() {
    // Ready, then exits as soon as it reads a request.
    let processors = processors_of(
        "c2",
        &["echo 'c2 processor ready'; read -r line; exit 9"],
        "",
    );
    let lease = processors.lease(ProofStage::C2).await.expect("ready");
    let first_pid = lease.live.pid;
    let failure = lease.live.call(&task()).await.expect_err("it died");
    assert_eq!(failure.level, FailureLevel::Temporary, "{failure}");
    assert!(
        failure.to_string().contains("exited (exit status: 9)"),
        "{failure}"
    );
    drop(lease);
    let again = tokio::time::timeout(
        Duration::from_secs(10),
        children(&processors)[0].ready_other_than(Some(first_pid)),
    )
    .await
    .expect("restarted within 10 s");
    assert_ne!(again, first_pid);
    assert_eq!(processors.status()[0].restarts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_breaking_the_protocol_is_killed_and_its_call_retried() {
    for (answer, expected) in [
        (
            "echo garbage",
            "was killed: it printed a line that is not an answer",
        ),
        (
            r#"echo '{"id":1000,"err_msg":null,"output":1}'"#,
            "was killed: it answered request 1000, which was never sent",
        ),
        (
            // 32 MiB without a newline: cut off at the line bound, never held whole.
            "head -c 33554432 /dev/zero | tr '\\0' a",
            "was killed: it printed a line longer than 16777216 bytes",
        ),
    ] {
        let script = format!("echo 'c2 processor ready'; read -r line; {answer}; exec sleep 30");
        let processors = processors_of("c2", &[&script], "");
        let lease = processors.lease(ProofStage::C2).await.expect("ready");
        let failure = tokio::time::timeout(Duration::from_secs(10), lease.live.call(&task()))
            .await
            .expect("the call ends instead of waiting for ever")
            .expect_err("no answer");
        assert_eq!(failure.level, FailureLevel::Temporary, "{failure}");
        assert!(failure.to_string().contains(expected), "{failure}");
    }
    // The 32 MiB line is never held whole: the worker's side stays far below it
    // (RELIABILITY.md reports the figure).
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    eprintln!("peak RSS through a 32 MiB line: {} MiB", peak_kib / 1024);
    assert!(peak_kib < 200 * 1024, "{peak_kib} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpuset_beyond_the_online_cpus_is_refused_before_anything_starts() {
    let text = "[[sealing_thread]]\nlocation = \"/tmp/x\"\n[[processors.c2]]\ncgroup.cpuset = \"0,8000-8100,8190\"\n";
    let config = WorkerConfig::parse(text, "test").expect("config").config;
    let e = Processors::start(&config.processors, Path::new("/unused")).expect_err("CPU 8000");
    assert!(
        e.to_string().starts_with(
            "processors.c2[0].cgroup.cpuset: CPU 8000-8100,8190 not online on this machine (online: 0"
        ),
        "as ranges: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_with_more_spare_capacity_is_chosen_and_a_shared_lock_admits_one() {
    let processors = processors_of(
        "c2",
        &[READY_THEN_ERR, READY_THEN_ERR],
        "[processors.ext_locks]\ngpu = 1",
    );
    // Without locks: two leases held at once go to different children, once both
    // are ready (a ready child is chosen over one still starting).
    tokio::time::timeout(Duration::from_secs(10), async {
        for child in children(&processors) {
            child.ready_other_than(None).await;
        }
    })
    .await
    .expect("both ready");
    let first = processors.lease(ProofStage::C2).await.expect("ready");
    let second = processors.lease(ProofStage::C2).await.expect("ready");
    assert_ne!(first.live.pid, second.live.pid);
    drop((first, second));

    let text = format!(
        "[processors.ext_locks]\ngpu = 1\n[[sealing_thread]]\nlocation = \"/tmp/x\"\n{}",
        [0, 1]
            .map(|_| format!(
                "[[processors.c2]]\nbin = \"/bin/sh\"\nargs = [\"-c\", {READY_THEN_ERR:?}]\nlocks = [\"gpu\"]\n"
            ))
            .join("")
    );
    let config = WorkerConfig::parse(&text, "test").expect("config").config;
    let locked = Processors::start(&config.processors, Path::new("/unused")).expect("started");
    let held = locked.lease(ProofStage::C2).await.expect("ready");
    let waiting =
        tokio::time::timeout(Duration::from_millis(300), locked.lease(ProofStage::C2)).await;
    assert!(waiting.is_err(), "the second child waits for the lock");
    drop(held);
    let next = tokio::time::timeout(Duration::from_secs(5), locked.lease(ProofStage::C2))
        .await
        .expect("the lock is free")
        .expect("ready");
    drop(next);
}

/// The states (`R`, `S`, `T`…) of every process in the group `pgid` (from `/proc`).
fn group_states(pgid: u32) -> Vec<char> {
    let mut states = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …: the name may hold spaces, so split after it.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            states.extend(fields[0].chars().next());
        }
    }
    states
}

/// Held back for WindowPoSt, a child and what it started are stopped, and a call it was
/// running is answered once they continue: held, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_child_stops_with_its_own_children_and_answers_once_continued() {
    const SLOW: &str = r#"echo "c2 processor ready"; while read -r line; do id=$(echo "$line" | sed 's/.*"id":\([0-9]*\).*/\1/'); sleep 1; echo "{\"id\":$id,\"err_msg\":\"answered\",\"output\":null}"; done"#;
    let processors = processors_of("c2", &[SLOW], "");
    let lease = processors.lease(ProofStage::C2).await.expect("ready");
    let pid = lease.live.pid;
    let call = tokio::spawn(async move { lease.live.call(&task()).await });
    // The script has started its `sleep`: two processes in the child's group.
    for _ in 0..50 {
        if group_states(pid).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(processors.hold_back(&[ProofStage::C2], true), 1);
    // The stop reaches every process of the group (within 2 s).
    let mut states = group_states(pid);
    for _ in 0..100 {
        if states.len() >= 2 && states.iter().all(|s| *s == 'T') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        states = group_states(pid);
    }
    assert!(
        states.len() >= 2 && states.iter().all(|s| *s == 'T'),
        "{states:?}"
    );
    // A window in which the call would have been answered (the script answers after 1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!call.is_finished(), "a stopped child does not answer");
    assert_eq!(
        processors.hold_back(&[ProofStage::PC1], true),
        0,
        "no pc1 child"
    );
    assert_eq!(processors.hold_back(&[ProofStage::C2], false), 1);
    let answer = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("answered once continued")
        .expect("joined")
        .expect("an answer");
    assert_eq!(answer.err_msg.as_deref(), Some("answered"));
    assert!(group_states(pid).iter().all(|s| *s != 'T'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealing_daemon_is_started_its_output_logged_and_restarted_when_it_exits() {
    // Ready, prints lines that are not answers (logged, not a broken protocol), exits
    // after its first second; then started again.
    let processors = processors_of(
        "sealing_daemons",
        &["echo 'EMPTY processor ready'; echo 'serving on :9000'; sleep 1; exit 3"],
        "",
    );
    let daemon = first_daemon(&processors);
    let first = tokio::time::timeout(Duration::from_secs(10), daemon.ready_other_than(None))
        .await
        .expect("ready within 10 s");
    let status = &processors.status()[0];
    assert_eq!((status.stage, status.pid), (None, Some(first)));
    assert!(
        !processors.is_external(ProofStage::C2),
        "a daemon runs no stage"
    );
    let again = tokio::time::timeout(
        Duration::from_secs(15),
        daemon.ready_other_than(Some(first)),
    )
    .await
    .expect("started again within 15 s");
    assert_ne!(again, first);
    assert!(processors.status()[0].restarts >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealing_daemon_must_say_empty_processor_ready() {
    let processors = processors_of(
        "sealing_daemons",
        &["echo 'c2 processor ready'; sleep 30"],
        "",
    );
    let daemon = first_daemon(&processors);
    let Err(failure) = tokio::time::timeout(Duration::from_secs(10), daemon.ready())
        .await
        .expect("answered within 10 s")
    else {
        panic!("ready, though its line was not EMPTY's");
    };
    let message = failure.to_string();
    assert!(
        message.contains("sealing daemon `/bin/sh -c")
            && message.contains("where \"EMPTY processor ready\" was expected"),
        "{message}"
    );
    // Nothing asks for a daemon: it is tried again by itself, each try counted.
    tokio::time::timeout(Duration::from_secs(10), async {
        while processors.status()[0].restarts < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("tried again within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_exits_while_what_it_started_holds_its_stdout_is_noticed_at_its_exit() {
    // The `sleep` it leaves behind keeps the stdout pipe open for 30 s.
    let processors = processors_of(
        "c2",
        &["echo 'c2 processor ready'; sleep 30 & read -r line; exit 9"],
        "",
    );
    let lease = processors.lease(ProofStage::C2).await.expect("ready");
    let first_pid = lease.live.pid;
    let started = std::time::Instant::now();
    let failure = tokio::time::timeout(Duration::from_secs(10), lease.live.call(&task()))
        .await
        .expect("answered within 10 s, not when the sleep ends")
        .expect_err("it exited");
    assert_eq!(failure.level, FailureLevel::Temporary, "{failure}");
    assert!(
        failure.to_string().contains("exited (exit status: 9)"),
        "{failure}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(lease);
    let again = tokio::time::timeout(
        Duration::from_secs(10),
        children(&processors)[0].ready_other_than(Some(first_pid)),
    )
    .await
    .expect("restarted within 10 s");
    assert_ne!(again, first_pid);
}
