//! `damocles-worker config check`: a configuration checked against this machine without
//! starting anything (no location created or locked, no child spawned, nothing sent to the
//! manager): what would run, and every problem that would stop it or make it run other
//! than configured.
//!
//! Checked: the file (keys and values, as the daemon reads it), each thread's location
//! (there and prepared, or creatable; not shared) and its hot config, each external
//! processor's program (found and executable) and CPUs (online on this machine), the
//! attached stores (there, scanned ones readable; one writable at least).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use damocles_core::{Plan, ProofStage};
use serde::Serialize;

use crate::config::{ConfigError, WorkerConfig};
use crate::hot_config::{hot_config_path, HotThreadSection};
use crate::store::{Location, LocationError};

/// What `config check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The file checked.
    pub file: String,
    /// Keys accepted but ignored or without effect, one line each.
    pub warnings: Vec<String>,
    /// What would stop the worker or make it run other than configured, one line each;
    /// none: the configuration can run here.
    pub problems: Vec<String>,
    /// The threads, in index order.
    pub threads: Vec<ThreadRow>,
    /// The external processors.
    pub processors: Vec<ProcessorRow>,
    /// Stages with a concurrency limit or staggered starts.
    pub limits: Vec<LimitRow>,
    /// The attached stores.
    pub attached: Vec<AttachedRow>,
    /// The manager's address as configured.
    pub manager: String,
    /// Where the admin API would listen.
    pub admin: String,
}

/// A thread as it would start.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadRow {
    /// Its index.
    pub index: usize,
    /// Its location.
    pub location: String,
    /// The plan of its next job: the hot config's, else the configured one.
    pub plan: Plan,
    /// Whether a hot config (`<location>/config.toml`) sets it.
    pub hot_config: bool,
    /// The location's state: `ready`, or `created at start`.
    pub location_state: String,
}

/// An external processor (or a sealing daemon, stage `sealing_daemons`) as it would be
/// spawned.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessorRow {
    /// Its stage (`pc1`, …).
    pub stage: String,
    /// Its position among the stage's processors.
    pub index: usize,
    /// The program (`None`: this worker's own binary).
    pub bin: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its CPUs, as configured.
    pub cpuset: Option<String>,
    /// Calls at once.
    pub concurrent: usize,
    /// The locks it holds during a call.
    pub locks: Vec<String>,
}

/// A stage's limits.
#[derive(Debug, Clone, Serialize)]
pub struct LimitRow {
    /// The stage.
    pub stage: ProofStage,
    /// Threads that may run it at once (`None`: not limited).
    pub concurrent: Option<usize>,
    /// The spacing of its starts, e.g. `5m` (`None`: not staggered).
    pub staggered: Option<String>,
}

/// An attached store.
#[derive(Debug, Clone, Serialize)]
pub struct AttachedRow {
    /// The name the manager knows it by.
    pub name: String,
    /// Its directory.
    pub location: String,
    /// Never written to.
    pub readonly: bool,
}

/// Checks the configuration at `path` against this machine.
///
/// # Errors
/// The file cannot be read or parsed ([`ConfigError`]): nothing else can be checked.
pub fn check(path: &Path) -> Result<CheckReport, ConfigError> {
    let loaded = WorkerConfig::load(path)?;
    let config = &loaded.config;
    let mut problems = Vec::new();
    let mut warnings = loaded.warnings.clone();
    let threads = check_threads(config, &mut problems, &mut warnings);
    let processors = check_processors(config, &mut problems);
    let attached = check_attached(config, &mut problems);
    let limits = config.stage_limits();
    let mut stages: Vec<ProofStage> = config.processors.limit.keys().copied().collect();
    stages.extend(config.processors.limitation.concurrent.keys());
    stages.extend(config.processors.limitation.staggered.keys());
    stages.sort();
    stages.dedup();
    let limits = stages
        .into_iter()
        .map(|stage| LimitRow {
            stage,
            concurrent: config
                .processors
                .limitation
                .concurrent
                .get(&stage)
                .or(config.processors.limit.get(&stage))
                .copied(),
            staggered: limits
                .staggered(stage)
                .map(|i| humantime::format_duration(i).to_string()),
        })
        .collect();
    Ok(CheckReport {
        file: path.display().to_string(),
        warnings,
        problems,
        threads,
        processors,
        limits,
        attached,
        manager: config.sector_manager.rpc_client.addr.clone(),
        admin: config.admin_addr(),
    })
}

fn check_threads(
    config: &WorkerConfig,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<ThreadRow> {
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for (index, thread) in config.sealing_thread.iter().enumerate() {
        let at = |what: String| format!("sealing_thread[{index}]: {what}");
        let location_state = match Location::open(&thread.location) {
            Ok(location) => {
                if !seen.insert(location.root().to_path_buf()) {
                    problems.push(at(format!(
                        "location {} is already used by another thread",
                        location.root().display()
                    )));
                }
                "ready".to_owned()
            }
            Err(LocationError::Missing { path })
                if thread
                    .location
                    .parent()
                    .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir()) =>
            {
                let _ = path;
                "created at start".to_owned()
            }
            Err(e) => {
                problems.push(at(e.to_string()));
                "unusable".to_owned()
            }
        };
        let mut plan = thread.plan;
        let hot = hot_config_path(&thread.location);
        let hot_config = match std::fs::read_to_string(&hot) {
            Ok(text) => match HotThreadSection::parse(&text, &hot.display().to_string()) {
                Ok((section, _)) => {
                    plan = section.plan.unwrap_or(plan);
                    true
                }
                Err(e) => {
                    warnings.push(at(format!(
                        "{e} (the thread runs its configured plan and says so until it is mended)"
                    )));
                    false
                }
            },
            Err(_) => false,
        };
        rows.push(ThreadRow {
            index,
            location: thread.location.display().to_string(),
            plan,
            hot_config,
            location_state,
        });
    }
    rows
}

fn check_processors(config: &WorkerConfig, problems: &mut Vec<String>) -> Vec<ProcessorRow> {
    if let Err(e) = crate::processors::check_cpus_online(&config.processors) {
        problems.push(e.to_string());
    }
    let mut rows = Vec::new();
    let external = config.processors.external();
    let keyed = external
        .iter()
        .map(|(stage, children)| (stage.as_str(), children))
        .chain([("sealing_daemons", &config.processors.sealing_daemons)]);
    for (key, children) in keyed {
        let daemon = key == "sealing_daemons";
        for (index, child) in children.iter().enumerate() {
            let at = |what: String| format!("processors.{key}[{index}]: {what}");
            if let Some(bin) = &child.bin {
                if !executable(bin) {
                    problems.push(at(format!(
                        "bin {}: not an executable file (nor found on PATH)",
                        bin.display()
                    )));
                }
            }
            rows.push(ProcessorRow {
                stage: key.to_owned(),
                index,
                bin: child.bin.as_ref().map(|b| b.display().to_string()),
                args: child.args.clone().unwrap_or_else(|| {
                    if daemon {
                        Vec::new()
                    } else {
                        vec!["processor".into(), key.to_owned()]
                    }
                }),
                cpuset: child.cgroup.cpuset.clone(),
                concurrent: child.concurrent,
                locks: child.locks.clone(),
            });
        }
    }
    rows
}

fn check_attached(config: &WorkerConfig, problems: &mut Vec<String>) -> Vec<AttachedRow> {
    let (stores, scan_problems) = config.attached_stores_found();
    problems.extend(scan_problems);
    if !stores.iter().any(|s| !s.readonly) {
        problems.push(
            "no attached store available: add an [[attached]] store that is not readonly".into(),
        );
    }
    stores
        .into_iter()
        .map(|store| {
            let creatable = store
                .location
                .parent()
                .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir());
            if !store.location.is_dir() && !creatable {
                problems.push(format!(
                    "attached store {}: {} is not a directory, nor can it be made (no parent directory)",
                    store.name,
                    store.location.display()
                ));
            }
            AttachedRow {
                name: store.name,
                location: store.location.display().to_string(),
                readonly: store.readonly,
            }
        })
        .collect()
}

/// Whether `bin` names an executable file: a path, or a name found on `PATH`.
fn executable(bin: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if bin.components().count() > 1 {
        vec![bin.to_path_buf()]
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(bin))
            .collect()
    };
    candidates.into_iter().any(|path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
