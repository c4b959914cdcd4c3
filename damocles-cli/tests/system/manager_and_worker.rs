//! The whole system as separate processes on loopback: `damocles-manager mock` and a
//! `damocles-worker daemon` sealing one real 2KiB sector for it over HTTP and proving it
//! in a WindowPoSt round, managed through `damocles-manager util …`.
//!
//! Needs the 2KiB parameters in the parameter cache (`scripts/test.sh` generates them
//! before the tests run).

use crate::common;

use std::time::Duration;

use common::{manager, require_params, text, util, util_json, worker, worker_config};

fn wait_until<T>(what: &str, limit: Duration, probe: impl FnMut() -> Option<T>) -> T {
    common::wait_until(what, limit, Duration::from_millis(250), probe)
}

#[test]
fn a_worker_seals_for_the_mock_manager_and_is_managed_through_it() {
    require_params();
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("worker dir");
    // A deal sector: its pieces come from the manager's /piecestore over HTTP.
    // A WindowPoSt round every second, once there is a sector to prove.
    let manager_process = manager(
        home.path(),
        "127.0.0.1:0",
        &[
            "--max-sectors",
            "1",
            "--deals",
            "1",
            "--wdpost-interval",
            "1s",
        ],
    );
    let m = manager_process.address.clone();
    let config = worker_config(
        dir.path(),
        &m,
        3,
        "seal_interval = \"1h\"\nrecover_interval = \"1s\"\nenable_deals = true",
    );
    // A fourth thread proves the manager's WindowPoSt jobs (its location is made on start).
    // WindowPoSt, AddPieces and the persist transfer run in processors (the worker's own
    // `processor <stage>`), beside a sealing daemon of the operator's.
    let mut toml = std::fs::read_to_string(&config).expect("config");
    toml.push_str(&format!(
        "[[sealing_thread]]\nlocation = \"{}\"\nplan = \"wdpost\"\n\
         [[processors.window_post]]\n[[processors.add_pieces]]\n[[processors.transfer]]\n\
         [[processors.sealing_daemons]]\nbin = \"/bin/sh\"\n\
         args = [\"-c\", \"echo 'EMPTY processor ready'; exec sleep 3600\"]\n",
        dir.path().join("store3").display()
    ));
    std::fs::write(&config, toml).expect("config");
    let worker_process = worker(&config);

    // Bulk, through the manager, while the worker seals: every thread pauses (the one in
    // a proof call once the call returns), then every thread resumes.
    let w = worker_process.address.clone();
    wait_until("sector 1 under way", Duration::from_secs(120), || {
        let threads = common::worker_list(&w)?;
        threads
            .iter()
            .any(|t| t["job_id"] == "s-t010000-1")
            .then_some(())
    });
    let output = util(&m, &["worker", "pause", &w, "--all"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = text(&output);
    assert_eq!(lines.lines().count(), 4, "{lines}");
    for (i, line) in lines.lines().enumerate() {
        assert!(
            line.ends_with(&format!("thread #{i} paused"))
                || line.contains(&format!("pause of thread #{i} requested")),
            "{lines}"
        );
    }
    let threads = common::worker_list(&w).expect("list");
    assert!(
        threads
            .iter()
            .all(|t| t["thread_state"]["state"] == "Paused" || t["pause_requested"] == true),
        "{threads:#?}"
    );
    let output = util(&m, &["--json", "worker", "resume", &w, "--all"]);
    let answers = serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("json");
    let answers = answers.as_array().expect("one per thread");
    assert_eq!(answers.len(), 4);
    for answer in answers {
        // A thread still in its proof call had not paused: its pause is called off.
        assert!(
            answer["outcome"] == "resumed" || answer["outcome"] == "pause_called_off",
            "{answer}"
        );
    }

    // One sector, sealed over HTTP, its proof verified by the mock chain.
    let sector = wait_until("a finished sector", Duration::from_secs(15 * 60), || {
        let sectors = util_json(&m, &["sealer", "sectors", "list"]);
        sectors
            .as_array()?
            .iter()
            .find(|s| s["state"] == "Finished")
            .cloned()
    });
    assert_eq!(sector["miner"], 10000);
    assert_eq!(sector["number"], 1);
    assert_eq!(sector["proof_type"], 5, "StackedDrg2KiBV1_1");
    for key in ["ticket", "seed", "comm_r", "comm_d"] {
        assert_eq!(sector[key].as_str().map(str::len), Some(64), "{key}");
    }
    assert_eq!(
        sector["proof"].as_str().map(str::len),
        Some(384),
        "a 192-byte proof"
    );
    common::check_unsealed_copy(home.path(), &dir.path().join("persist"), &sector);
    let table = text(&util(&m, &["sealer", "sectors", "list"]));
    assert!(
        table.lines().next().is_some_and(|h| h.contains("Deals")),
        "{table}"
    );

    // The wdpost thread proves the sector in a round over HTTP; the mock verifies it.
    let job = wait_until("a verified WindowPoSt", Duration::from_secs(5 * 60), || {
        let jobs = util_json(&m, &["sealer", "wdpost", "list"]);
        jobs.as_array()?
            .iter()
            .find(|j| j["state"] == "finished")
            .cloned()
    });
    assert_eq!(job["verified"], true, "{job}");
    assert_eq!(job["proof_type"], 10, "StackedDrgWindow2KiBV1_2");
    assert_eq!(job["sectors"][0]["number"], 1);
    assert_eq!(job["sectors"][0]["comm_r"], sector["comm_r"]);
    assert_eq!(job["faults"], serde_json::json!([]));
    assert_eq!(job["worker"], "it-worker");
    assert_eq!(
        job["proofs"][0].as_str().map(str::len),
        Some(384),
        "one 192-byte partition proof"
    );
    let table = text(&util(&m, &["sealer", "wdpost", "list"]));
    assert!(table.starts_with("ID  "), "{table}");
    let logs = worker_process.logs.lock().expect("logs").join("\n");
    for said in [
        "sealing daemon 0 is ready as ext(pid: ",
        "window_post processor 0 is ready as ext(pid: ",
    ] {
        assert!(logs.contains(said), "{said}: {logs}");
    }
    for stage in ["window_post", "add_pieces", "transfer"] {
        let done = format!("{stage} processor (pid ");
        assert!(
            logs.lines()
                .any(|l| l.contains(&done) && l.contains(" finished in ")),
            "{stage} ran in its processor: {logs}"
        );
    }

    // The operator's WindowPoSt commands: a reset job is offered again as new, a removed
    // one is gone, remove-all needs --really-do-it, an unknown id is refused by name.
    let id = job["id"].as_str().expect("an id").to_owned();
    // Rounds start every second here: the job's round may be over by now, and then the
    // reset is refused (both branches are unit-tested in the mock chain).
    let reset = util(&m, &["sealer", "wdpost", "reset", &id]);
    let said = text(&reset);
    match reset.status.code() {
        Some(0) => assert_eq!(said, format!("wdpost job {id} reset\n")),
        Some(2) => assert!(
            said.starts_with(&format!(
                "wdpost job {id}: cannot reset it: job '{id}' belongs to round"
            )) && said.ends_with("its deadline has passed\n"),
            "{said}"
        ),
        other => panic!(
            "{other:?}: {said} {}",
            String::from_utf8_lossy(&reset.stderr)
        ),
    }
    // (What a reset leaves is checked in the mock chain's unit test: the wdpost thread
    // may take the job again and prove it before a listing here.)
    let unknown = util(&m, &["sealer", "wdpost", "reset", "99-9"]);
    assert_eq!(unknown.status.code(), Some(2), "refused");
    assert_eq!(
        text(&unknown),
        "wdpost job 99-9: cannot reset it: job '99-9' does not exist\n"
    );
    let typo = util_json(&m, &["sealer", "wdpost", "remove", "99-9"]);
    assert_eq!(
        typo,
        serde_json::json!([{"id": "99-9", "done": "not found"}])
    );
    let not_really = util(&m, &["sealer", "wdpost", "remove-all"]);
    assert_eq!(not_really.status.code(), Some(2));
    let removed = util_json(&m, &["sealer", "wdpost", "remove", &id]);
    assert_eq!(removed, serde_json::json!([{"id": id, "done": "removed"}]));
    let left = util_json(&m, &["sealer", "wdpost", "list"]);
    assert!(
        left.as_array()
            .is_some_and(|jobs| jobs.iter().all(|j| j["id"] != id.as_str())),
        "{left}"
    );

    // The worker reported itself.
    let workers = wait_until("the worker registered", Duration::from_secs(30), || {
        let list = util_json(&m, &["worker", "list"]);
        (list.as_array()?.len() == 1).then_some(list)
    });
    let info = &workers[0]["Info"];
    assert_eq!(info["Name"], "it-worker");
    assert_eq!(info["Dest"], worker_process.address.as_str());
    assert_eq!(info["Summary"]["Threads"], 4);
    assert_eq!(workers[0]["Liveness"], "ok");
    let table = text(&util(&m, &["worker", "list"]));
    assert!(table.starts_with("Name "), "{table}");
    assert!(
        table.contains("it-worker") && !table.contains("(!)"),
        "{table}"
    );

    // Pause an idle thread by the worker's name; info shows it; resume runs it again.
    let output = util(&m, &["worker", "pause", "it-worker", "1"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        text(&output),
        format!(
            "worker 'it-worker' ({}): thread #1 paused\n",
            worker_process.address
        )
    );
    let threads = util_json(&m, &["worker", "info", "it-worker"]);
    assert_eq!(threads[1]["thread_state"]["state"], "Paused");
    let table = text(&util(&m, &["worker", "info", &worker_process.address]));
    assert!(table.starts_with("Index  Loc"), "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");
    let output = util(&m, &["worker", "resume", "it-worker", "1"]);
    assert!(
        text(&output).contains("thread #1 resumed"),
        "{}",
        text(&output)
    );
    let threads = util_json(&m, &["worker", "info", "it-worker"]);
    assert_ne!(threads[1]["thread_state"]["state"], "Paused");

    // Bad input through the manager: clear, exit 2, nothing changed.
    let output = util(&m, &["worker", "resume", "it-worker", "1", "Foo"]);
    assert_eq!(output.status.code(), Some(2));
    let output = util(&m, &["worker", "pause", "it-worker", "7"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("worker #7 not found"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The worker stops; with a short expiration it is marked.
    assert!(worker_process.terminate().success());
    let table = wait_until("marked expired", Duration::from_secs(15), || {
        let table = text(&util(&m, &["worker", "list", "--expiration", "1s"]));
        table.contains("(!)").then_some(table)
    });
    assert!(table.contains("it-worker"), "{table}");
    let output = util(&m, &["worker", "info", "it-worker"]);
    assert_eq!(output.status.code(), Some(3), "unreachable");

    // A manager restart keeps the registry; remove deletes the entry.
    assert!(manager_process.terminate().success());
    let manager_process = manager(home.path(), "127.0.0.1:0", &["--max-sectors", "1"]);
    let m = manager_process.address.clone();
    let workers = util_json(&m, &["worker", "list"]);
    assert_eq!(workers[0]["Info"]["Name"], "it-worker");
    let output = util(&m, &["worker", "remove", "it-worker"]);
    assert_eq!(text(&output), "'it-worker' removed\n");
    assert_eq!(util_json(&m, &["worker", "list"]), serde_json::json!([]));
    let output = util(&m, &["worker", "remove", "it-worker"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_thread_drained_mid_sector_finishes_it_and_takes_no_other_until_undrained() {
    require_params();
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("worker dir");
    let manager_process = manager(
        home.path(),
        "127.0.0.1:0",
        &["--max-sectors", "2", "--report-delay", "300ms"],
    );
    let m = manager_process.address.clone();
    let worker_process = worker(&worker_config(
        dir.path(),
        &m,
        1,
        "seal_interval = \"0s\"\nrecover_interval = \"1s\"",
    ));
    let w = worker_process.address.clone();
    // Mid-sector: drain through the manager.
    wait_until("sector 1 under way", Duration::from_secs(120), || {
        let threads = common::worker_list(&w)?;
        (threads[0]["job_id"] == "s-t010000-1").then_some(())
    });
    let output = util(&m, &["worker", "drain", "it-worker", "0"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text(&output).contains("thread #0 draining"),
        "{}",
        text(&output)
    );
    // It finishes the sector (verified by the chain) and shows idle-drained.
    wait_until("sector 1 finished", Duration::from_secs(15 * 60), || {
        let sectors = util_json(&m, &["sealer", "sectors", "list"]);
        sectors
            .as_array()?
            .iter()
            .find(|s| s["number"] == 1 && s["state"] == "Finished" && s["proof"].is_string())
            .cloned()
    });
    let threads = wait_until("idle and drained", Duration::from_secs(30), || {
        let threads = common::worker_list(&w)?;
        (threads[0]["job_id"].is_null() && threads[0]["draining"] == true).then_some(threads)
    });
    assert_eq!(threads[0]["last_error"], serde_json::Value::Null);
    let table = text(&common::worker_cli(&w, &["list"]));
    assert!(table.contains("idle-drained"), "{table}");
    // It takes no other sector, though the manager has one more: an absence, so time is
    // the condition (three of its 1 s idle rounds).
    std::thread::sleep(Duration::from_secs(3));
    let sectors = util_json(&m, &["sealer", "sectors", "list"]);
    assert_eq!(sectors.as_array().map(Vec::len), Some(1), "{sectors}");
    // Undrained, it takes sector 2.
    let output = common::worker_cli(&w, &["undrain", "-i", "0"]);
    assert_eq!(
        text(&output),
        "thread #0 undrained: it takes new sectors again\n"
    );
    wait_until("sector 2 taken", Duration::from_secs(60), || {
        let threads = common::worker_list(&w)?;
        (threads[0]["job_id"] == "s-t010000-2").then_some(())
    });

    // The thread's history, through the manager: sector 1 from allocation to finish,
    // the drain and the undrain with who asked (the CLIs ran here, on loopback).
    let events = util_json(&m, &["worker", "events", "it-worker", "0", "-n", "1000"]);
    let events = events.as_array().expect("an array of entries");
    let sector_1: Vec<&str> = events
        .iter()
        .filter(|e| e["sector"] == "s-t010000-1")
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(sector_1.first(), Some(&"transition"), "{events:#?}");
    assert_eq!(
        sector_1.iter().filter(|k| **k == "transition").count(),
        16,
        "Empty -> Allocated ... -> Finished: {events:#?}"
    );
    assert!(sector_1.contains(&"drain") && sector_1.ends_with(&["finished"]));
    let undrain = events
        .iter()
        .find(|e| e["kind"] == "drain" && e["on"] == false)
        .expect("the undrain");
    assert!(
        undrain["by"]
            .as_str()
            .is_some_and(|by| by.starts_with("127.0.0.1:")),
        "{undrain}"
    );
    let table = text(&util(&m, &["worker", "events", "it-worker", "0"]));
    assert!(table.starts_with("#  "), "{table}");
    assert!(table.contains("sector finished"), "{table}");
    assert!(table.contains("undrained by 127.0.0.1:"), "{table}");
    drop(worker_process);
    drop(manager_process);
}
