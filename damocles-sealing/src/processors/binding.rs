//! How a processor child binds itself to the CPUs and NUMA node its configuration names,
//! from the variables the worker passes (the original's names): `VC_CG_NAME` (its cgroup,
//! `<group_name>/<stage>-<index>`, the same for every restart of one configured child),
//! `VC_CG_CPUSET` and `VENUS_WORKER_NUMA_PREFERRED`.
//!
//! The cpuset is applied through cgroup v2 where `/sys/fs/cgroup` is unified, else through
//! the v1 cpuset hierarchy. Where neither can be written (no permission, a read-only
//! mount), the child binds itself with `sched_setaffinity` instead and says so; where even
//! that fails it runs unbound, with a warning. Binding never stops a child.

use std::fs;
use std::path::{Path, PathBuf};

use super::{sys, CpuSet};

/// The variable naming the child's cgroup.
pub const ENV_CGROUP_NAME: &str = "VC_CG_NAME";
/// The variable holding the child's cpuset.
pub const ENV_CGROUP_CPUSET: &str = "VC_CG_CPUSET";
/// The variable holding the child's preferred NUMA node.
pub const ENV_NUMA_PREFERRED: &str = "VENUS_WORKER_NUMA_PREFERRED";

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How the child was bound to its cpuset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuBinding {
    /// Through this cgroup directory.
    Cgroup(PathBuf),
    /// With `sched_setaffinity`, because the cgroup could not be joined (the reason).
    Affinity(String),
    /// Not at all (the reason).
    Unbound(String),
}

/// Applies the variables' cpuset and NUMA node to this process and logs what it did.
/// Call it before starting any thread.
pub fn bind_from_env() -> Option<CpuBinding> {
    if let Ok(node) = std::env::var(ENV_NUMA_PREFERRED) {
        match node.trim().parse::<u32>() {
            Ok(n) => match sys::prefer_numa_node(n) {
                Ok(()) => tracing::info!("memory prefers NUMA node {n}"),
                Err(e) => {
                    tracing::warn!("cannot prefer NUMA node {n} ({e}); memory comes from any node")
                }
            },
            Err(_) => {
                tracing::warn!("{ENV_NUMA_PREFERRED}={node:?} is not a NUMA node number; ignored")
            }
        }
    }
    let text = std::env::var(ENV_CGROUP_CPUSET).ok()?;
    let cpus = match CpuSet::parse(&text) {
        Ok(cpus) => cpus,
        Err(e) => {
            tracing::warn!("{ENV_CGROUP_CPUSET}: {e}; running unbound");
            return Some(CpuBinding::Unbound(e.to_string()));
        }
    };
    let name = std::env::var(ENV_CGROUP_NAME).unwrap_or_else(|_| "vc-worker".into());
    let binding = bind(Path::new(CGROUP_ROOT), &name, &cpus, std::process::id());
    match &binding {
        CpuBinding::Cgroup(dir) => tracing::info!("bound to CPUs {cpus} through cgroup {}", dir.display()),
        CpuBinding::Affinity(why) => tracing::warn!(
            "cannot bind to CPUs {cpus} through a cgroup ({why}); bound with sched_setaffinity instead"
        ),
        CpuBinding::Unbound(why) => tracing::warn!("cannot bind to CPUs {cpus} ({why}); running unbound"),
    }
    Some(binding)
}

/// Binds process `pid` (this one, for the affinity fallback) to `cpus` in cgroup `name`
/// under `root`.
pub(crate) fn bind(root: &Path, name: &str, cpus: &CpuSet, pid: u32) -> CpuBinding {
    let joined = if root.join("cgroup.controllers").exists() {
        join_v2(root, name, cpus, pid)
    } else if root.join("cpuset").join("cpuset.cpus").exists() {
        join_v1(&root.join("cpuset"), name, cpus, pid)
    } else {
        Err(CgroupError::NoHierarchy(root.to_path_buf()))
    };
    match joined {
        Ok(dir) => CpuBinding::Cgroup(dir),
        Err(why) => match sys::set_affinity(cpus) {
            Ok(()) => CpuBinding::Affinity(why.to_string()),
            Err(e) => CpuBinding::Unbound(format!("{why}; sched_setaffinity: {e}")),
        },
    }
}

/// Why a process could not join a cgroup.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    /// Neither hierarchy is mounted there.
    #[error("no cgroup v2 or v1 cpuset hierarchy under {}", .0.display())]
    NoHierarchy(PathBuf),
    /// A control file could not be written.
    #[error("cannot write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    /// A control file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A group could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn make_dir(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(path).map_err(|source| CgroupError::Create {
        path: path.to_path_buf(),
        source,
    })
}

/// cgroup v2: the cpuset controller enabled down to the child's group, its CPUs set, the
/// process moved in.
fn join_v2(root: &Path, name: &str, cpus: &CpuSet, pid: u32) -> Result<PathBuf, CgroupError> {
    let leaf = root.join(name);
    make_dir(&leaf)?;
    let mut dir = root.to_path_buf();
    for part in Path::new(name).components() {
        let control = dir.join("cgroup.subtree_control");
        if !read(&control)?.split_whitespace().any(|c| c == "cpuset") {
            write(&control, "+cpuset")?;
        }
        dir = dir.join(part);
    }
    write(&leaf.join("cpuset.cpus"), &cpus.to_string())?;
    write(&leaf.join("cgroup.procs"), &pid.to_string())?;
    Ok(leaf)
}

/// cgroup v1: each new group given its parent's CPUs and memory nodes (a v1 cpuset takes
/// no task without both), the child's group its own CPUs, the process moved in.
fn join_v1(root: &Path, name: &str, cpus: &CpuSet, pid: u32) -> Result<PathBuf, CgroupError> {
    let mut dir = root.to_path_buf();
    for part in Path::new(name).components() {
        let parent = dir.clone();
        dir = dir.join(part);
        if !dir.exists() {
            make_dir(&dir)?;
            for file in ["cpuset.cpus", "cpuset.mems"] {
                write(&dir.join(file), &read(&parent.join(file))?)?;
            }
        }
    }
    write(&dir.join("cpuset.cpus"), &cpus.to_string())?;
    write(&dir.join("tasks"), &pid.to_string())?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_without_any_hierarchy_falls_back_to_affinity_and_names_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let allowed = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Cpus_allowed_list:")
                        .map(|v| v.trim().to_owned())
                })
            })
            .expect("Cpus_allowed_list");
        // Binding to the CPUs this thread already has changes nothing for the tests
        // running beside it, and always succeeds.
        let cpus = CpuSet::parse(&allowed).expect("the kernel's own list parses");
        let std::thread::Result::Ok(binding) = std::thread::spawn(move || {
            bind(dir.path(), "vc-worker/pc1-0", &cpus, std::process::id())
        })
        .join() else {
            panic!("bind panicked")
        };
        match binding {
            CpuBinding::Affinity(why) => assert!(why.contains("no cgroup v2 or v1"), "{why}"),
            other => panic!("expected the affinity fallback, got {other:?}"),
        }
    }

    #[test]
    fn a_v2_tree_gets_the_controller_the_cpus_and_the_process() {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::write(root.path().join("cgroup.controllers"), "cpuset cpu\n").expect("write");
        std::fs::write(root.path().join("cgroup.subtree_control"), "").expect("write");
        // A real cgroupfs creates these files with the directory; here they are made
        // ahead so that the writes land in plain files.
        let group = root.path().join("vc-worker");
        std::fs::create_dir_all(group.join("pc1-0")).expect("dirs");
        std::fs::write(group.join("cgroup.subtree_control"), "").expect("write");
        let cpus = CpuSet::parse("0-1").expect("valid");
        let joined = join_v2(root.path(), "vc-worker/pc1-0", &cpus, 4242).expect("joined");
        assert_eq!(joined, group.join("pc1-0"));
        assert_eq!(
            read(&root.path().join("cgroup.subtree_control")).ok(),
            Some("+cpuset".into())
        );
        assert_eq!(
            read(&group.join("cgroup.subtree_control")).ok(),
            Some("+cpuset".into())
        );
        assert_eq!(read(&joined.join("cpuset.cpus")).ok(), Some("0-1".into()));
        assert_eq!(read(&joined.join("cgroup.procs")).ok(), Some("4242".into()));
    }

    #[test]
    fn a_v1_group_inherits_memory_nodes_and_takes_its_own_cpus() {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::write(root.path().join("cpuset.cpus"), "0-7\n").expect("write");
        std::fs::write(root.path().join("cpuset.mems"), "0\n").expect("write");
        let cpus = CpuSet::parse("2,3").expect("valid");
        let joined = join_v1(root.path(), "vc-worker/c2-1", &cpus, 77).expect("joined");
        assert_eq!(
            read(&root.path().join("vc-worker/cpuset.cpus")).ok(),
            Some("0-7".into())
        );
        assert_eq!(read(&joined.join("cpuset.mems")).ok(), Some("0".into()));
        assert_eq!(read(&joined.join("cpuset.cpus")).ok(), Some("2-3".into()));
        assert_eq!(read(&joined.join("tasks")).ok(), Some("77".into()));
    }
}
