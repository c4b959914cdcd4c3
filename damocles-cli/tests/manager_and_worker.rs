//! The whole system as separate processes on loopback: `damocles-manager mock` and a
//! `damocles-worker daemon` sealing one real 2KiB sector for it over HTTP, managed
//! through `damocles-manager util …`.
//!
//! Needs the 2KiB parameters in the parameter cache (`scripts/test.sh` generates them
//! before the tests run).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const MANAGER: &str = env!("CARGO_BIN_EXE_damocles-manager");
const WORKER: &str = env!("CARGO_BIN_EXE_damocles-worker");

/// A child process, killed when dropped; `address` is what it said it listens on.
struct Process {
    child: Child,
    address: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(mut command: Command, marker: &'static str) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once(marker) {
                    let address = rest.trim().trim_start_matches("http://");
                    let address = address.split('/').next().unwrap_or_default();
                    let _ = tx.send(address.to_owned());
                }
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the process says where it listens");
        Self { child, address }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn manager(home: &Path) -> Process {
    let mut command = Command::new(MANAGER);
    command
        .args([
            "mock",
            "--miner",
            "10000",
            "--sector-size",
            "2KiB",
            "--listen",
            "127.0.0.1:0",
            "--max-sectors",
            "1",
            "--home",
        ])
        .arg(home);
    Process::start(command, "listening on ")
}

fn worker(dir: &Path, manager: &str) -> Process {
    let mut text = format!(
        "[worker]\nname = \"it-worker\"\nrpc_server.host = \"127.0.0.1\"\nrpc_server.port = 0\nping_interval = \"1s\"\n\
         [sector_manager]\nrpc_client.addr = \"http://{manager}\"\n\
         [sealing]\nallowed_sizes = [\"2KiB\"]\nseal_interval = \"1h\"\nrecover_interval = \"1s\"\nrpc_polling_interval = \"0s\"\n\
         [processors.limitation.concurrent]\nc2 = 1\n"
    );
    for i in 0..3 {
        text.push_str(&format!(
            "[[sealing_thread]]\nlocation = \"{}\"\n",
            dir.join(format!("store{i}")).display()
        ));
    }
    text.push_str(&format!(
        "[[attached]]\nname = \"persist\"\nlocation = \"{}\"\n",
        dir.join("persist").display()
    ));
    let config = dir.join("worker.toml");
    std::fs::write(&config, text).expect("config");
    let init = Command::new(WORKER)
        .args(["store", "sealing-init", "-l"])
        .args((0..3).map(|i| dir.join(format!("store{i}"))))
        .output()
        .expect("sealing-init");
    assert!(init.status.success());
    let mut command = Command::new(WORKER);
    command.args(["daemon", "-c"]).arg(&config);
    Process::start(command, "admin API listening on ")
}

fn util(manager: &str, args: &[&str]) -> Output {
    Command::new(MANAGER)
        .args(["util", "--listen", manager])
        .args(args)
        .output()
        .expect("util")
}

fn util_json(manager: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = util(manager, &all);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn require_params() {
    let cache = std::env::var_os("FIL_PROOFS_PARAMETER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/filecoin-proof-parameters"));
    let has_2kib = std::fs::read_dir(&cache)
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                e.file_name().to_string_lossy().contains(
                    "032d3138d22506ec0082ed72b2dcba18df18477904e35bafee82b3793b06832f.params",
                )
            })
        })
        .unwrap_or(false);
    assert!(
        has_2kib,
        "2KiB parameters missing from {}: run `damocles-worker params generate --sector-size 2KiB`",
        cache.display()
    );
}

#[test]
fn a_worker_seals_for_the_mock_manager_and_is_managed_through_it() {
    require_params();
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("worker dir");
    let manager_process = manager(home.path());
    let m = manager_process.address.clone();
    let worker_process = worker(dir.path(), &m);

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

    // The worker reported itself.
    let workers = wait_until("the worker registered", Duration::from_secs(30), || {
        let list = util_json(&m, &["worker", "list"]);
        (list.as_array()?.len() == 1).then_some(list)
    });
    let info = &workers[0]["Info"];
    assert_eq!(info["Name"], "it-worker");
    assert_eq!(info["Dest"], worker_process.address.as_str());
    assert_eq!(info["Summary"]["Threads"], 3);
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
    assert_eq!(table.lines().count(), 4, "{table}");
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
    std::thread::sleep(Duration::from_millis(2100));
    let table = text(&util(&m, &["worker", "list", "--expiration", "1s"]));
    assert!(table.contains("(!)"), "{table}");
    let output = util(&m, &["worker", "info", "it-worker"]);
    assert_eq!(output.status.code(), Some(3), "unreachable");

    // A manager restart keeps the registry; remove deletes the entry.
    assert!(manager_process.terminate().success());
    let manager_process = manager(home.path());
    let m = manager_process.address.clone();
    let workers = util_json(&m, &["worker", "list"]);
    assert_eq!(workers[0]["Info"]["Name"], "it-worker");
    let output = util(&m, &["worker", "remove", "it-worker"]);
    assert_eq!(text(&output), "'it-worker' removed\n");
    assert_eq!(util_json(&m, &["worker", "list"]), serde_json::json!([]));
    let output = util(&m, &["worker", "remove", "it-worker"]);
    assert_eq!(output.status.code(), Some(2));
}
