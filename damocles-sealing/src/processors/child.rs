//! One configured external processor on the worker's side: its process, started by a
//! supervisor task that waits for the ready line, reads answers and matches them to
//! requests by id, and starts the process again when it exits (`auto_restart`) with the
//! same command line and environment, so that it rejoins the same cgroup and cpuset.
//!
//! A request whose process exits before it answers fails as a temporary failure, which
//! the thread retries; a process that cannot be started or never gets ready is an error
//! naming its command line, tried again when the next call needs it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use damocles_core::Failure;
use prometheus_client::metrics::counter::Counter;
use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{oneshot, watch, Notify, Semaphore};

use super::lines::{BoundedLines, MAX_LINE};
use super::protocol::{Request, Response};
use super::role::Role;

/// The first wait before a child that died soon after it got ready is started again; it
/// doubles with each such death, up to [`RESTART_BACKOFF_MAX`].
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A child that lived this long after it got ready is started again at once.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// How long an exited child's status is waited for once it has closed its stdout.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long what a child wrote before it exited is read, once it has exited.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// Why a child could not be started and made ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum StartFailed {
    /// The program could not be started.
    #[error("cannot start the {role} `{command_line}`: {error}")]
    Spawn {
        role: Role,
        command_line: String,
        error: String,
    },
    /// It started but did not become ready (`what` says how).
    #[error("the {role} `{command_line}` (pid {pid}) {what}")]
    NotReady {
        role: Role,
        command_line: String,
        pid: u32,
        what: String,
    },
}

/// How a child broke the protocol (its requests would wait for ever): the message reads
/// after "it".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BrokenProtocol {
    /// A line that is not an answer.
    #[error("printed a line that is not an answer ({error}): {shown}")]
    NotAnAnswer {
        /// Why it does not parse.
        error: String,
        /// Its first 200 characters.
        shown: String,
    },
    /// An answer to a request id this worker never sent.
    #[error("answered request {0}, which was never sent")]
    NeverSent(u64),
}

/// Everything needed to start one configured child, fixed for its life.
#[derive(Debug, Clone)]
pub(crate) struct ChildSpec {
    pub role: Role,
    pub index: usize,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The whole environment it starts with.
    pub env: Vec<(String, String)>,
    pub stable_wait: Duration,
    pub auto_restart: bool,
    pub concurrent: usize,
    pub locks: Vec<String>,
}

impl ChildSpec {
    /// The command line as an operator would type it, for messages.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .map(|part| {
                if part.is_empty() || part.contains(char::is_whitespace) {
                    format!("{part:?}")
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Where a child is in its life.
#[derive(Clone)]
pub(crate) enum ChildState {
    Starting,
    Ready(Arc<Live>),
    /// It could not be started or never got ready (why); tried again when a call asks.
    Failed(String),
    /// It exited and `auto_restart` is off (why).
    Stopped(String),
}

/// The counters of one child.
pub(crate) struct ChildCounters {
    pub calls: Counter,
    pub restarts: Counter,
}

/// One configured child.
pub(crate) struct ExternalChild {
    pub spec: ChildSpec,
    /// Its `concurrent` calls.
    pub slots: Arc<Semaphore>,
    pub counters: ChildCounters,
    state: watch::Sender<ChildState>,
    kick: Notify,
}

impl ExternalChild {
    pub fn new(spec: ChildSpec, counters: ChildCounters) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(spec.concurrent)),
            spec,
            counters,
            state: watch::Sender::new(ChildState::Starting),
            kick: Notify::new(),
        }
    }

    /// The running process, if it is ready.
    pub fn live(&self) -> Option<Arc<Live>> {
        match &*self.state.borrow() {
            ChildState::Ready(live) => Some(live.clone()),
            _ => None,
        }
    }

    /// Waits until a process other than `pid` is ready; its pid.
    #[cfg(test)]
    pub async fn ready_other_than(&self, pid: Option<u32>) -> u32 {
        let mut state = self.state.subscribe();
        let ready = state
            .wait_for(|s| matches!(s, ChildState::Ready(live) if Some(live.pid) != pid))
            .await
            .expect("the supervisor runs");
        match &*ready {
            ChildState::Ready(live) => live.pid,
            _ => 0,
        }
    }

    /// Whether it exited for good.
    pub fn stopped(&self) -> Option<String> {
        match &*self.state.borrow() {
            ChildState::Stopped(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// Waits until the process is ready. A child that failed to start is asked to try
    /// again once; its next failure is the answer.
    ///
    /// # Errors
    /// A permanent failure naming the command line when it cannot start or get ready, or
    /// saying it exited with `auto_restart` off.
    pub async fn ready(&self) -> Result<Arc<Live>, Failure> {
        let mut state = self.state.subscribe();
        let mut kicked = false;
        loop {
            let now = state.borrow_and_update().clone();
            match now {
                ChildState::Ready(live) => return Ok(live),
                ChildState::Stopped(why) => return Err(Failure::permanent(why)),
                ChildState::Failed(why) if kicked => return Err(Failure::permanent(why)),
                ChildState::Failed(_) => {
                    kicked = true;
                    self.kick.notify_one();
                }
                ChildState::Starting => {}
            }
            if state.changed().await.is_err() {
                return Err(Failure::critical("the worker's processors have shut down"));
            }
        }
    }

    /// Starts the process and keeps it running until `closed` (whose sender is dropped
    /// when the worker goes) ends; the process is killed then.
    pub async fn supervise(self: Arc<Self>, mut closed: watch::Receiver<()>) {
        let role = self.spec.role;
        let mut backoff = RESTART_BACKOFF;
        loop {
            self.state.send_replace(ChildState::Starting);
            let started = tokio::select! {
                started = self.spawn_ready() => started,
                _ = closed.changed() => return,
            };
            let (mut process, lines, live) = match started {
                Ok(started) => started,
                Err(why) => {
                    self.state.send_replace(ChildState::Failed(why.to_string()));
                    if role == Role::Daemon {
                        // Nothing asks for a daemon: it is tried again by itself.
                        tracing::error!(
                            "{why}; trying again in {}",
                            humantime::format_duration(backoff)
                        );
                        self.counters.restarts.inc();
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = closed.changed() => return,
                        }
                        backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
                        continue;
                    }
                    tracing::error!("{why}");
                    tokio::select! {
                        () = self.kick.notified() => continue,
                        _ = closed.changed() => return,
                    }
                }
            };
            let pid = live.pid;
            // However this task ends (the worker's runtime dropped included), what the
            // child started goes with it.
            let _group = GroupGuard(pid);
            tracing::info!(
                "{role} {} is ready as ext(pid: {pid}): {}",
                self.spec.index,
                self.spec.command_line()
            );
            self.state.send_replace(ChildState::Ready(live.clone()));
            let since = Instant::now();
            let status = tokio::select! {
                status = read_answers(lines, &live, &mut process, role) => status,
                _ = closed.changed() => {
                    kill(&mut process);
                    return;
                }
            };
            let why = format!("the {role} ext(pid: {pid}) {status}");
            live.fail_pending(&why);
            if !self.spec.auto_restart {
                tracing::error!("{why}; auto_restart is off, so it stays down");
                self.state.send_replace(ChildState::Stopped(format!(
                    "{why} and auto_restart is off: restart the worker to start `{}` again",
                    self.spec.command_line()
                )));
                let _ = closed.changed().await;
                return;
            }
            self.counters.restarts.inc();
            let wait = if since.elapsed() >= HEALTHY_RUN {
                backoff = RESTART_BACKOFF;
                Duration::ZERO
            } else {
                let wait = backoff;
                backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
                wait
            };
            tracing::warn!(
                "{why}; starting it again{}",
                if wait.is_zero() {
                    String::new()
                } else {
                    format!(" in {}", humantime::format_duration(wait))
                }
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = closed.changed() => return,
            }
        }
    }

    /// Starts the process and waits `stable_wait` for its ready line.
    async fn spawn_ready(&self) -> Result<(Child, BoundedLines, Arc<Live>), StartFailed> {
        let spec = &self.spec;
        let role = spec.role;
        let command_line = spec.command_line();
        let mut command = Command::new(&spec.program);
        super::sys::die_with_parent(&mut command);
        // Its own process group, so that holding it back for WindowPoSt stops whatever
        // it started too.
        command.process_group(0);
        let mut process = command
            .args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| StartFailed::Spawn {
                role,
                command_line: command_line.clone(),
                error: e.to_string(),
            })?;
        let pid = process.id().unwrap_or_default();
        let failed = |what: String| StartFailed::NotReady {
            role,
            command_line: command_line.clone(),
            pid,
            what,
        };
        let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
            return Err(failed("has no stdin or stdout".into()));
        };
        let mut lines = BoundedLines::new(stdout, MAX_LINE);
        let expected = role.ready_line();
        match tokio::time::timeout(spec.stable_wait, lines.next_line()).await {
            Ok(Ok(Some(line))) if line.trim() == expected => {}
            Ok(Ok(Some(line))) => {
                kill(&mut process);
                return Err(failed(format!(
                    "printed {line:?} where {expected:?} was expected (its logs belong on stderr)"
                )));
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                kill(&mut process);
                return Err(failed(format!("{e} where {expected:?} was expected")));
            }
            Ok(Ok(None) | Err(_)) => {
                let status = exit_status(&mut process).await;
                return Err(failed(format!("exited before it was ready ({status})")));
            }
            Err(_) => {
                kill(&mut process);
                return Err(failed(format!(
                    "did not print {expected:?} within {} (stable_wait)",
                    humantime::format_duration(spec.stable_wait)
                )));
            }
        }
        Ok((process, lines, Arc::new(Live::new(pid, stdin))))
    }
}

/// Hands each answer line to its request until the process exits or closes its stdout,
/// or breaks the protocol (a line that is not an answer, an answer to a request never
/// sent: its requests would wait for ever), when it is killed; then what became of it.
/// A process that exits while something it started still holds its stdout is noticed
/// at its exit: what it wrote before is taken, then its process group is killed. A
/// sealing daemon is sent nothing: what it prints is logged.
async fn read_answers(
    mut lines: BoundedLines,
    live: &Live,
    process: &mut Child,
    role: Role,
) -> String {
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            status = process.wait() => {
                let status = status.map_or_else(|e| format!("status unknown: {e}"), |s| s.to_string());
                let _ = tokio::time::timeout(EXIT_DRAIN, async {
                    while let Ok(Some(line)) = lines.next_line().await {
                        if take_line(&line, live, role).is_err() {
                            break;
                        }
                    }
                })
                .await;
                let _ = super::sys::signal_group(live.pid, libc::SIGKILL);
                return format!("exited ({status})");
            }
        };
        match line {
            Ok(Some(line)) => {
                if let Err(broken) = take_line(&line, live, role) {
                    tracing::error!("ext(pid: {}) {broken}; killing it", live.pid);
                    kill(process);
                    let _ = tokio::time::timeout(EXIT_WAIT, process.wait()).await;
                    return format!("was killed: it {broken}");
                }
            }
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData && role == Role::Daemon => {
                tracing::warn!("sealing daemon ext(pid: {}): {e}", live.pid);
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::error!("ext(pid: {}) {e}; killing it", live.pid);
                kill(process);
                let _ = tokio::time::timeout(EXIT_WAIT, process.wait()).await;
                return format!("was killed: it {e}");
            }
            Err(e) => {
                tracing::warn!("ext(pid: {}): cannot read its stdout: {e}", live.pid);
                break;
            }
        }
    }
    format!("exited ({})", exit_status(process).await)
}

/// Takes one line a ready child printed: an answer, handed to its request; a daemon's
/// line, logged.
fn take_line(line: &str, live: &Live, role: Role) -> Result<(), BrokenProtocol> {
    if role == Role::Daemon {
        tracing::info!("sealing daemon ext(pid: {}): {line}", live.pid);
        return Ok(());
    }
    live.deliver(line)
}

/// Kills a child's process group when dropped.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = super::sys::signal_group(self.0, libc::SIGKILL);
    }
}

/// Kills `process` and its process group (what it started goes with it).
fn kill(process: &mut Child) {
    if let Some(pid) = process.id() {
        let _ = super::sys::signal_group(pid, libc::SIGKILL);
    }
    let _ = process.start_kill();
}

async fn exit_status(process: &mut Child) -> String {
    match tokio::time::timeout(EXIT_WAIT, process.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("status unknown: {e}"),
        Err(_) => {
            kill(process);
            "closed its stdout but did not exit; killed".into()
        }
    }
}

type Answer = Result<Response<Box<RawValue>>, Failure>;

#[derive(Default)]
struct Pending {
    next_id: u64,
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
    /// Set once the process has exited: why.
    exited: Option<String>,
}

/// A running, ready process.
pub(crate) struct Live {
    pub pid: u32,
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<Pending>,
}

impl Live {
    fn new(pid: u32, stdin: ChildStdin) -> Self {
        Self {
            pid,
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(Pending::default()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `task` and waits for its answer.
    ///
    /// # Errors
    /// A temporary failure when the process exits (or its stdin closes) before answering.
    pub async fn call(&self, task: &RawValue) -> Answer {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut pending = self.pending();
            if let Some(why) = &pending.exited {
                return Err(Failure::temporary(why.clone()));
            }
            let id = pending.next_id;
            pending.next_id += 1;
            pending.waiting.insert(id, tx);
            id
        };
        let mut line = serde_json::to_string(&Request { id, task })
            .map_err(|e| Failure::critical(format!("cannot encode a request: {e}")))?;
        line.push('\n');
        let written = {
            let mut stdin = self.stdin.lock().await;
            match stdin.write_all(line.as_bytes()).await {
                Ok(()) => stdin.flush().await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = written {
            self.pending().waiting.remove(&id);
            return Err(Failure::temporary(format!(
                "cannot send a request to ext(pid: {}): {e}",
                self.pid
            )));
        }
        rx.await.unwrap_or_else(|_| {
            Err(Failure::temporary(format!(
                "ext(pid: {}) went away during the call",
                self.pid
            )))
        })
    }

    /// Hands `line` to its request. A duplicate answer is only logged.
    ///
    /// # Errors
    /// What is wrong when `line` is not an answer, or answers a request never sent.
    fn deliver(&self, line: &str) -> Result<(), BrokenProtocol> {
        let response: Response<Box<RawValue>> =
            serde_json::from_str(line).map_err(|e| BrokenProtocol::NotAnAnswer {
                error: e.to_string(),
                shown: line.chars().take(200).collect(),
            })?;
        let mut pending = self.pending();
        match pending.waiting.remove(&response.id) {
            Some(waiter) => {
                let _ = waiter.send(Ok(response));
                Ok(())
            }
            None if response.id < pending.next_id => {
                tracing::warn!(
                    "ext(pid: {}) answered request {} again; the second answer is ignored",
                    self.pid,
                    response.id
                );
                Ok(())
            }
            None => Err(BrokenProtocol::NeverSent(response.id)),
        }
    }

    fn fail_pending(&self, why: &str) {
        let mut pending = self.pending();
        pending.exited = Some(why.to_owned());
        for (_, waiter) in pending.waiting.drain() {
            let _ = waiter.send(Err(Failure::temporary(format!("{why} during the call"))));
        }
    }
}
