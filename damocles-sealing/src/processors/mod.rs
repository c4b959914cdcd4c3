//! External processors: the proof calls of a stage (`pc1`, `pc2`, `c2`) run in child
//! processes configured by `[[processors.<stage>]]`, as the original runs them, instead
//! of in the worker.
//!
//! - [`tasks`] and [`protocol`]: what crosses to a child, in the original's shapes.
//! - [`serve`]: the child's side, `damocles-worker processor <stage>`.
//! - [`binding`], [`CpuSet`]: the child binds itself to its cpuset and NUMA node.
//! - [`Processors`]: the worker's side: every configured child started and kept running,
//!   a call sent to the child of its stage with the most spare capacity once it holds
//!   that child's shared locks (`[processors.ext_locks]`).

pub mod binding;
mod child;
mod lines;
pub mod protocol;
mod role;
mod serve;
mod sys;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use damocles_core::{Failure, ProofStage};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

pub use crate::cpuset::{CpuSet, CpuSetError};
/// The tasks a processor runs (they are proof calls: they live with the proofs).
pub use crate::proofs::tasks;
pub use serve::{serve, serve_stage, ServeError};

/// The stages with external processors here (others run in-process).
pub const EXTERNAL: [ProofStage; 9] = [
    ProofStage::AddPieces,
    ProofStage::PC1,
    ProofStage::PC2,
    ProofStage::C2,
    ProofStage::SnapEncode,
    ProofStage::SnapProve,
    ProofStage::Unseal,
    ProofStage::WindowPost,
    ProofStage::Transfer,
];
pub use tasks::ProcessorTask;

use crate::config::{ExternalProcessorSection, ProcessorsSection};
use child::{ChildCounters, ChildSpec, ExternalChild, Live};
use role::Role;

/// Why the external processors of a configuration cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorsError {
    /// A child's `cgroup.cpuset` names CPUs this machine does not have online.
    #[error("{key}: CPU {missing} not online on this machine (online: {online})")]
    CpusOffline {
        /// The key, e.g. `processors.c2[0].cgroup.cpuset`.
        key: String,
        /// The CPUs it names that are not online, in the kernel's list form (`8000`,
        /// `2-63`).
        missing: String,
        /// The CPUs online, in the kernel's list form.
        online: String,
    },
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChildLabels {
    stage: String,
    child: String,
}

/// The external processors of one worker, shared by its threads. The default has none:
/// every stage runs in-process. Cloning shares them; the children are killed when the
/// last clone is dropped.
#[derive(Clone, Default)]
pub struct Processors {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    stages: BTreeMap<ProofStage, Vec<Arc<ExternalChild>>>,
    /// `[[processors.sealing_daemons]]`: kept running, sent nothing.
    daemons: Vec<Arc<ExternalChild>>,
    locks: BTreeMap<String, Arc<Semaphore>>,
    calls: Family<ChildLabels, Counter>,
    restarts: Family<ChildLabels, Counter>,
    /// Dropped with the last clone: the supervisors kill their children.
    _closed: watch::Sender<()>,
}

impl std::fmt::Debug for Processors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stages: Vec<_> = self
            .inner
            .iter()
            .flat_map(|inner| inner.stages.iter().map(|(s, c)| (*s, c.len())))
            .collect();
        f.debug_struct("Processors")
            .field("external", &stages)
            .finish()
    }
}

/// What one configured child is doing, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildStatus {
    /// Its stage; `None` for a sealing daemon.
    pub stage: Option<ProofStage>,
    /// Its place among the stage's `[[processors.<stage>]]` (or the sealing daemons).
    pub index: usize,
    /// Its process id while it is ready.
    pub pid: Option<u32>,
    /// Calls sent to it.
    pub calls: u64,
    /// Times it was started again after exiting.
    pub restarts: u64,
}

impl Processors {
    /// Starts every child `section` configures, the processors of each stage in
    /// [`EXTERNAL`] and the sealing daemons, each in the background: one that cannot
    /// start is logged and tried again when a call needs it (a sealing daemon: restarted
    /// as a processor is, when it exits, while `auto_restart` is on).
    /// `own_binary` is the default `bin` (the worker itself). Must be called within a
    /// tokio runtime.
    ///
    /// # Errors
    /// [`ProcessorsError::CpusOffline`], naming the key, when a `cgroup.cpuset` names CPUs
    /// this machine does not have online (nothing is started then).
    pub fn start(section: &ProcessorsSection, own_binary: &Path) -> Result<Self, ProcessorsError> {
        let external = section.external();
        if external.is_empty() && section.sealing_daemons.is_empty() {
            return Ok(Self::default());
        }
        check_cpus_online(section)?;
        let (closed_tx, closed) = watch::channel(());
        let calls = Family::<ChildLabels, Counter>::default();
        let restarts = Family::<ChildLabels, Counter>::default();
        let start = |role: Role, list: &[ExternalProcessorSection]| -> Vec<Arc<ExternalChild>> {
            list.iter()
                .enumerate()
                .map(|(index, child)| {
                    let labels = ChildLabels {
                        stage: role.key(),
                        child: index.to_string(),
                    };
                    let counters = ChildCounters {
                        calls: calls.get_or_create(&labels).clone(),
                        restarts: restarts.get_or_create(&labels).clone(),
                    };
                    let child = Arc::new(ExternalChild::new(
                        spec_of(role, index, child, own_binary),
                        counters,
                    ));
                    tokio::spawn(child.clone().supervise(closed.clone()));
                    child
                })
                .collect()
        };
        let stages = external
            .into_iter()
            .map(|(stage, list)| (stage, start(Role::Processor(stage), &list)))
            .collect();
        let daemons = start(Role::Daemon, &section.sealing_daemons);
        let locks = section
            .ext_locks
            .iter()
            .map(|(name, n)| (name.clone(), Arc::new(Semaphore::new(*n))))
            .collect();
        Ok(Self {
            inner: Some(Arc::new(Inner {
                stages,
                daemons,
                locks,
                calls,
                restarts,
                _closed: closed_tx,
            })),
        })
    }

    /// Whether `stage` runs in child processes.
    pub fn is_external(&self, stage: ProofStage) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.stages.contains_key(&stage))
    }

    /// Every configured child, by stage and index, then the sealing daemons.
    pub fn status(&self) -> Vec<ChildStatus> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        inner
            .stages
            .values()
            .flatten()
            .chain(&inner.daemons)
            .map(|child| ChildStatus {
                stage: match child.spec.role {
                    Role::Processor(stage) => Some(stage),
                    Role::Daemon => None,
                },
                index: child.spec.index,
                pid: child.live().map(|live| live.pid),
                calls: child.counters.calls.get(),
                restarts: child.counters.restarts.get(),
            })
            .collect()
    }

    /// Stops (`hold` true: SIGSTOP) or continues (SIGCONT) every ready child of `stages`
    /// with whatever it started (its process group): a call it is running is held, not
    /// lost. The number of children signalled. Used by [`crate::priority`].
    pub fn hold_back(&self, stages: &[ProofStage], hold: bool) -> usize {
        let Some(inner) = &self.inner else {
            return 0;
        };
        let signal = if hold { libc::SIGSTOP } else { libc::SIGCONT };
        let mut signalled = 0;
        for child in stages.iter().filter_map(|s| inner.stages.get(s)).flatten() {
            let Some(live) = child.live() else { continue };
            match sys::signal_group(live.pid, signal) {
                Ok(()) => signalled += 1,
                Err(e) => tracing::warn!("ext(pid: {}): cannot signal it: {e}", live.pid),
            }
        }
        signalled
    }

    /// Adds `processor_calls` and `processor_restarts` (labels `stage`, `child`) to
    /// `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        if let Some(inner) = &self.inner {
            registry.register(
                "processor_calls",
                "Calls sent to each external processor",
                inner.calls.clone(),
            );
            registry.register(
                "processor_restarts",
                "Times each external processor was started again after it exited",
                inner.restarts.clone(),
            );
        }
    }

    /// Runs `task` in a child of its stage, as a thread's processor call does (the ready
    /// child with the most free slots, once it holds the child's locks), for embedders
    /// and benchmarks.
    ///
    /// # Errors
    /// Temporary when the child exits during the call; permanent when no child of the
    /// stage can be started (naming its command line), or when it answers an error or an
    /// output that is not the stage's.
    pub async fn run<P: ProcessorTask>(&self, task: &P) -> Result<P::Output, Failure> {
        self.lease(P::STAGE).await?.run(task).await
    }

    /// A ready child of `stage` (the one with the most spare capacity), one of its
    /// `concurrent` slots and its locks, waiting for whichever is busy.
    ///
    /// # Errors
    /// Permanent when no child of the stage can be started (naming its command line).
    pub(crate) async fn lease(&self, stage: ProofStage) -> Result<Lease, Failure> {
        let inner = self
            .inner
            .as_ref()
            .ok_or_else(|| Failure::critical(format!("{stage} has no external processor")))?;
        let children = inner
            .stages
            .get(&stage)
            .ok_or_else(|| Failure::critical(format!("{stage} has no external processor")))?;
        // Ready children first, then the most free slots; the first configured on ties.
        let child = children
            .iter()
            .filter(|child| child.stopped().is_none())
            .rev()
            .max_by_key(|child| (child.live().is_some(), child.slots.available_permits()))
            .or_else(|| children.first())
            .ok_or_else(|| Failure::critical(format!("{stage} has no external processor")))?
            .clone();
        let slot = child
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::critical("a processor's slots were closed"))?;
        let live = child.ready().await?;
        let mut names = child.spec.locks.clone();
        names.sort();
        names.dedup();
        let mut locks = Vec::with_capacity(names.len());
        for name in names {
            let lock = inner.locks.get(&name).ok_or_else(|| {
                Failure::critical(format!("processor lock {name} is not declared"))
            })?;
            locks.push(
                lock.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Failure::critical("a processor lock was closed"))?,
            );
        }
        Ok(Lease {
            child,
            live,
            _slot: slot,
            _locks: locks,
        })
    }
}

/// The CPUs online on this machine, where the kernel says.
/// Checks that every external processor's `cgroup.cpuset` names CPUs online on this
/// machine (nothing is checked where the kernel does not say which are).
///
/// # Errors
/// [`ProcessorsError::CpusOffline`] for the first that does not, naming its key.
pub fn check_cpus_online(section: &ProcessorsSection) -> Result<(), ProcessorsError> {
    let Some(online) = online_cpus() else {
        return Ok(());
    };
    let external = section.external();
    let keyed = external
        .iter()
        .map(|(stage, list)| (stage.to_string(), list))
        .chain([("sealing_daemons".to_owned(), &section.sealing_daemons)]);
    for (stage, list) in keyed {
        for (index, child) in list.iter().enumerate() {
            let Some(Ok(cpus)) = child.cgroup.cpuset.as_deref().map(CpuSet::parse) else {
                continue;
            };
            let missing: CpuSet = cpus
                .cpus()
                .iter()
                .copied()
                .filter(|cpu| !online.cpus().contains(cpu))
                .collect();
            if !missing.cpus().is_empty() {
                return Err(ProcessorsError::CpusOffline {
                    key: format!("processors.{stage}[{index}].cgroup.cpuset"),
                    missing: missing.to_string(),
                    online: online.to_string(),
                });
            }
        }
    }
    Ok(())
}

fn online_cpus() -> Option<CpuSet> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    CpuSet::parse(text.trim()).ok()
}

fn spec_of(
    role: Role,
    index: usize,
    section: &ExternalProcessorSection,
    own_binary: &Path,
) -> ChildSpec {
    let mut env: BTreeMap<String, String> = if section.inherit_envs {
        std::env::vars().collect()
    } else {
        BTreeMap::new()
    };
    env.extend(section.envs.clone());
    if let Some(cpuset) = &section.cgroup.cpuset {
        env.insert(
            binding::ENV_CGROUP_NAME.into(),
            format!("{}/{}-{index}", section.cgroup.group_name, role.key()),
        );
        env.insert(binding::ENV_CGROUP_CPUSET.into(), cpuset.clone());
    }
    if let Some(node) = section.numa_preferred {
        env.insert(binding::ENV_NUMA_PREFERRED.into(), node.to_string());
    }
    ChildSpec {
        role,
        index,
        program: section
            .bin
            .clone()
            .unwrap_or_else(|| own_binary.to_path_buf()),
        // A processor defaults to the worker's own `processor <stage>`; a daemon is the
        // operator's program, started without arguments unless it names some.
        args: section.args.clone().unwrap_or_else(|| match role {
            Role::Processor(stage) => vec!["processor".into(), stage.to_string()],
            Role::Daemon => Vec::new(),
        }),
        env: env.into_iter().collect(),
        stable_wait: section.stable_wait,
        auto_restart: section.auto_restart,
        concurrent: section.concurrent,
        locks: section.locks.clone(),
    }
}

/// A ready child with one of its slots and its locks held, until dropped.
pub(crate) struct Lease {
    child: Arc<ExternalChild>,
    live: Arc<Live>,
    _slot: OwnedSemaphorePermit,
    _locks: Vec<OwnedSemaphorePermit>,
}

impl Lease {
    /// What `worker list` shows as the processor: `ext(pid: N)`.
    pub fn proc_name(&self) -> String {
        format!("ext(pid: {})", self.live.pid)
    }

    /// Sends `task` and decodes its output.
    ///
    /// # Errors
    /// Temporary when the process exits during the call; permanent when it answers an
    /// error (its `err_msg`) or an output that is not the stage's.
    pub async fn run<P: ProcessorTask>(&self, task: &P) -> Result<P::Output, Failure> {
        let stage = P::STAGE;
        let proc = self.proc_name();
        self.child.counters.calls.inc();
        let task = serde_json::value::to_raw_value(task)
            .map_err(|e| Failure::critical(format!("cannot encode the {stage} task: {e}")))?;
        let response = self.live.call(&task).await?;
        match (response.err_msg, response.output) {
            // Failure::new cuts the child's text to a few KiB.
            (Some(message), _) => Err(Failure::permanent(format!(
                "{stage} processor {proc}: {message}"
            ))),
            (None, Some(output)) => serde_json::from_str(output.get()).map_err(|e| {
                Failure::permanent(format!(
                    "{stage} processor {proc} answered an output that is not a {stage} output: {e}"
                ))
            }),
            (None, None) => Err(Failure::permanent(format!(
                "{stage} processor {proc} answered neither an output nor an err_msg"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
