//! What the real-process tests share: starting `damocles-manager mock` and
//! `damocles-worker daemon` as children that say where they listen, running the command
//! lines, and bounded waits.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const MANAGER: &str = env!("CARGO_BIN_EXE_damocles-manager");
pub const WORKER: &str = env!("CARGO_BIN_EXE_damocles-worker");

/// A child process, killed when dropped; `address` is what it said it listens on.
pub struct Process {
    pub child: Child,
    pub address: String,
    /// Every line it wrote to stderr so far.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `command` and waits (at most 60 s) for the stderr line with `marker`,
    /// followed by the address.
    pub fn start(mut command: Command, marker: &'static str) -> Self {
        let mut child = command
            .env_remove("DAMOCLES_WORKER_CONFIG")
            .env_remove("DAMOCLES_WORKER_HOST")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = logs.clone();
        // Every byte is read until the process closes stderr: a reader that stopped early (at
        // a line that is not UTF-8, say) would leave the pipe to fill, and the process to
        // block on its next log line.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut bytes = Vec::new();
            while reader.read_until(b'\n', &mut bytes).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&bytes).trim_end().to_owned();
                bytes.clear();
                if let Some((_, rest)) = line.split_once(marker) {
                    let address = rest.trim().trim_start_matches("http://");
                    let address = address.split('/').next().unwrap_or_default();
                    let _ = tx.send(address.to_owned());
                }
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the process says where it listens");
        Self {
            child,
            address,
            logs,
        }
    }

    /// Sends SIGTERM and waits (at most 2 minutes) for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.wait_exit("SIGTERM", Duration::from_secs(120))
    }

    /// Waits at most `limit` for the process to exit on its own (after `what`).
    pub fn wait_exit(&mut self, what: &str, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit after {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9: no clean-up of any kind.
    pub fn kill_9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

/// `damocles-manager mock` on `listen` with its home in `home`, plus `extra` flags.
pub fn manager(home: &Path, listen: &str, extra: &[&str]) -> Process {
    let mut command = Command::new(MANAGER);
    command
        .args([
            "mock",
            "--miner",
            "10000",
            "--sector-size",
            "2KiB",
            "--listen",
            listen,
            "--home",
        ])
        .arg(home)
        .args(extra);
    Process::start(command, "listening on ")
}

/// Writes a worker config of `threads` threads under `dir`, sealing for `manager`, with
/// `sealing` lines added to `[sealing]` (intervals among them); prepares its locations.
/// Returns the file.
pub fn worker_config(dir: &Path, manager: &str, threads: usize, sealing: &str) -> PathBuf {
    let mut text = format!(
        "[worker]\nname = \"it-worker\"\nrpc_server.host = \"127.0.0.1\"\nrpc_server.port = 0\nping_interval = \"1s\"\n\
         unseal_file_dirs = [\"{retrieved}\"]\n\
         [sector_manager]\nrpc_client.addr = \"http://{manager}\"\n\
         [sealing]\nallowed_sizes = [\"2KiB\"]\nrpc_polling_interval = \"0s\"\n{sealing}\n\
         [processors.limitation.concurrent]\nc2 = 1\n",
        retrieved = dir.join("retrieved").display()
    );
    for i in 0..threads {
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
        .args((0..threads).map(|i| dir.join(format!("store{i}"))))
        .output()
        .expect("sealing-init");
    assert!(init.status.success());
    config
}

/// Checks that the unsealed copy of a finished deal sector (`sector`, as `util sealer
/// sectors list --json` shows it) in the attached store `persist` holds each deal's
/// payload, as the mock manager under `home` keeps it, at the deal's offset.
pub fn check_unsealed_copy(home: &Path, persist: &Path, sector: &serde_json::Value) {
    let pieces = sector["pieces"].as_array().expect("pieces");
    assert!(!pieces.is_empty(), "a deal sector: {sector}");
    let unsealed = persist
        .join("unsealed")
        .join(format!("s-t0{}-{}", sector["miner"], sector["number"]));
    let sizes = pieces.iter().map(|p| p["size"].as_u64().expect("size"));
    for (piece, offset) in pieces
        .iter()
        .zip(damocles_core::piece::piece_offsets(sizes))
    {
        let cid = piece["cid"].as_str().expect("cid");
        let payload = std::fs::read(home.join("pieces").join(cid)).expect("the mock's piece");
        let read = damocles_sealing::proofs::read_unsealed(&unsealed, offset, payload.len() as u64)
            .expect("read the unsealed copy");
        assert!(read == payload, "piece {cid} differs at offset {offset}");
    }
}

/// `damocles-worker daemon -c config`.
pub fn worker(config: &Path) -> Process {
    let mut command = Command::new(WORKER);
    command.args(["daemon", "-c"]).arg(config);
    Process::start(command, "admin API listening on ")
}

/// `damocles-manager util --listen manager …`.
pub fn util(manager: &str, args: &[&str]) -> Output {
    Command::new(MANAGER)
        .args(["util", "--listen", manager])
        .args(args)
        .output()
        .expect("util")
}

/// `damocles-manager util --json …`, which must succeed.
pub fn util_json(manager: &str, args: &[&str]) -> Value {
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

/// `damocles-worker worker -H worker --json list`; `None` when it cannot be reached.
pub fn worker_list(worker: &str) -> Option<Vec<Value>> {
    try_worker_list(worker).ok()
}

/// [`worker_list`], or why it failed (the exit status and standard error).
pub fn try_worker_list(worker: &str) -> Result<Vec<Value>, String> {
    let output = Command::new(WORKER)
        .args(["worker", "-H", worker, "--json", "list"])
        .env_remove("DAMOCLES_WORKER_CONFIG")
        .output()
        .expect("worker list");
    let why = || {
        format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    };
    if !output.status.success() {
        return Err(why());
    }
    serde_json::from_slice::<Value>(&output.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .ok_or_else(why)
}

/// `damocles-worker worker -H worker …`.
pub fn worker_cli(worker: &str, args: &[&str]) -> Output {
    Command::new(WORKER)
        .args(["worker", "-H", worker])
        .args(args)
        .env_remove("DAMOCLES_WORKER_CONFIG")
        .output()
        .expect("worker cli")
}

/// Standard output as text.
pub fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// [`wait_until`] on a listing of `process`'s threads, which on timeout shows the last
/// listing (or why the last one failed), whether the process still runs and the end of its
/// log, so that a failure in CI says what the worker was doing.
pub fn wait_for_threads(
    what: &str,
    process: &mut Process,
    limit: Duration,
    mut found: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut last = None;
    let mut failed = None;
    loop {
        let started = Instant::now();
        match try_worker_list(&process.address) {
            Ok(threads) => {
                if found(&threads) {
                    return threads;
                }
                last = Some(threads);
            }
            Err(why) => failed = Some(format!("{why} (after {:?})", started.elapsed())),
        }
        if Instant::now() >= deadline {
            let exited = process.child.try_wait().expect("try_wait");
            let logs = process.logs.lock().expect("logs");
            let tail = logs[logs.len().saturating_sub(40)..].join("\n");
            panic!(
                "timed out waiting for {what}; last listing: {last:#?}\nlast failed listing: \
                 {failed:?}\nthe worker exited: {exited:?}\nlog:\n{tail}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `probe` every `every` until it answers, at most `limit`.
pub fn wait_until<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
}

/// Fails with a hint when the 2KiB parameters are not in the cache.
pub fn require_params() {
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

/// A free loopback port (bound and released: a restarted process can take it again).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits (at most `limit`) until `manager` lists `count` sectors finished with a proof
/// (the mock verified it), and returns them.
pub fn finished_sectors(manager: &str, count: usize, limit: Duration) -> Vec<Value> {
    wait_until(
        &format!("{count} sectors finished and verified"),
        limit,
        Duration::from_millis(500),
        || {
            let sectors = util_json(manager, &["sealer", "sectors", "list"]);
            let done: Vec<Value> = sectors
                .as_array()?
                .iter()
                .filter(|s| s["state"] == "Finished" && s["proof"].is_string())
                .cloned()
                .collect();
            (done.len() == count).then_some(done)
        },
    )
}

/// A small tmpfs mounted for one test (a disk that fills up); unmounted when dropped.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts `bytes` of tmpfs; `None` where this process may not mount (not root).
    pub fn mount(bytes: u64) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file (`<mount>/filler`), until the disk says it is full.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join("filler")).expect("filler");
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    /// Frees what [`SmallDisk::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).expect("free");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
