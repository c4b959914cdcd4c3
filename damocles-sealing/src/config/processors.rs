//! `[processors]`: external processors per stage, their cgroups and locks, and the
//! checks of those keys.

use super::*;

/// `[processors]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ProcessorsSection {
    /// The legacy name of `limitation.concurrent`.
    pub limit: BTreeMap<ProofStage, usize>,
    /// `limitation`.
    pub limitation: LimitationSection,
    /// `[processors.ext_locks]`: named locks external processors share, each with how
    /// many holders it admits at once (`gpu0 = 1`: one call at a time on that GPU).
    pub ext_locks: BTreeMap<String, usize>,
    /// `[[processors.add_pieces]]`: external add_pieces processors.
    pub add_pieces: Vec<ExternalProcessorSection>,
    /// `[[processors.tree_d]]`: accepted for the original's files without `bin` (a
    /// warning: PC1 builds tree D itself here), refused with one.
    pub tree_d: Vec<ExternalProcessorSection>,
    /// `[[processors.pc1]]`: external PC1 processors.
    pub pc1: Vec<ExternalProcessorSection>,
    /// `[[processors.pc2]]`: external PC2 processors.
    pub pc2: Vec<ExternalProcessorSection>,
    /// `[[processors.c2]]`: external C2 processors.
    pub c2: Vec<ExternalProcessorSection>,
    /// `[[processors.snap_encode]]`: external snap_encode processors.
    pub snap_encode: Vec<ExternalProcessorSection>,
    /// `[[processors.snap_prove]]`: external snap_prove processors.
    pub snap_prove: Vec<ExternalProcessorSection>,
    /// `[[processors.transfer]]`: external transfer processors (persisting a sector's
    /// files into an attached store).
    pub transfer: Vec<ExternalProcessorSection>,
    /// `[[processors.unseal]]`: external unseal processors.
    pub unseal: Vec<ExternalProcessorSection>,
    /// `[[processors.window_post]]`: external window_post processors.
    pub window_post: Vec<ExternalProcessorSection>,
    /// `[[processors.sealing_daemons]]`: programs started with the worker and kept
    /// running (restarted when they exit, while `auto_restart` is on), sent nothing. Each
    /// must name its `bin` and print `EMPTY processor ready` within `stable_wait`.
    pub sealing_daemons: Vec<ExternalProcessorSection>,
    /// `[processors.static_tree_d]`: a CC sector's tree_d file per sector size (the
    /// original's key). Without effect here: PC1 (filecoin-proofs 19) builds tree_d
    /// itself; a warning says so.
    pub static_tree_d: BTreeMap<String, PathBuf>,
}

impl ProcessorsSection {
    /// Every `[[processors.<stage>]]` list with its key, the ones this worker runs first.
    fn lists(
        &self,
    ) -> [(
        &'static str,
        Option<ProofStage>,
        &Vec<ExternalProcessorSection>,
    ); 11] {
        [
            ("add_pieces", Some(ProofStage::AddPieces), &self.add_pieces),
            ("pc1", Some(ProofStage::PC1), &self.pc1),
            ("pc2", Some(ProofStage::PC2), &self.pc2),
            ("c2", Some(ProofStage::C2), &self.c2),
            (
                "snap_encode",
                Some(ProofStage::SnapEncode),
                &self.snap_encode,
            ),
            ("snap_prove", Some(ProofStage::SnapProve), &self.snap_prove),
            ("unseal", Some(ProofStage::Unseal), &self.unseal),
            (
                "window_post",
                Some(ProofStage::WindowPost),
                &self.window_post,
            ),
            ("transfer", Some(ProofStage::Transfer), &self.transfer),
            ("tree_d", None, &self.tree_d),
            ("sealing_daemons", None, &self.sealing_daemons),
        ]
    }

    /// The stages that can run in external processors here, as config keys:
    /// `pc1, pc2, …`.
    pub fn external_names(&self) -> String {
        self.lists()
            .iter()
            .filter(|(_, stage, _)| stage.is_some())
            .map(|(key, _, _)| *key)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The external processors this worker starts, by stage (a stage without any runs
    /// in-process).
    pub fn external(&self) -> BTreeMap<ProofStage, Vec<ExternalProcessorSection>> {
        self.lists()
            .into_iter()
            .filter_map(|(_, stage, list)| Some((stage?, list.clone())))
            .filter(|(_, list)| !list.is_empty())
            .collect()
    }
}

/// One `[[processors.<stage>]]`: a child process that runs the stage's calls, speaking
/// the original's JSON-lines protocol on its stdin and stdout.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ExternalProcessorSection {
    /// The program; the worker's own binary when absent.
    pub bin: Option<PathBuf>,
    /// Its arguments; `["processor", "<stage>"]` when absent.
    pub args: Option<Vec<String>>,
    /// Environment variables set for it (over the inherited ones).
    pub envs: BTreeMap<String, String>,
    /// Whether it starts with the worker's environment (default true); otherwise with
    /// only `envs` and the cgroup and NUMA variables.
    pub inherit_envs: bool,
    /// How long it may take to print its ready line (default 5s).
    #[serde(with = "humantime_serde")]
    pub stable_wait: Duration,
    /// Whether it is started again when it exits (default true).
    pub auto_restart: bool,
    /// How many calls it runs at once (default 64).
    pub concurrent: usize,
    /// Names from `[processors.ext_locks]` it holds during each call.
    pub locks: Vec<String>,
    /// The NUMA node it prefers to allocate memory on.
    pub numa_preferred: Option<u32>,
    /// `cgroup.cpuset` and `cgroup.group_name`.
    pub cgroup: CgroupSection,
}

impl Default for ExternalProcessorSection {
    fn default() -> Self {
        Self {
            bin: None,
            args: None,
            envs: BTreeMap::new(),
            inherit_envs: true,
            stable_wait: Duration::from_secs(5),
            auto_restart: true,
            concurrent: 64,
            locks: Vec::new(),
            numa_preferred: None,
            cgroup: CgroupSection::default(),
        }
    }
}

/// `cgroup.*` of an external processor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CgroupSection {
    /// The CPUs it is bound to, e.g. `"0-11,24-35"`.
    pub cpuset: Option<String>,
    /// The cgroup its own group is made under (default `vc-worker`, as the original).
    pub group_name: String,
}

impl Default for CgroupSection {
    fn default() -> Self {
        Self {
            cpuset: None,
            group_name: "vc-worker".into(),
        }
    }
}

/// `[processors.limitation]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LimitationSection {
    /// How many threads may run a stage at once, e.g. `c2 = 1`.
    pub concurrent: BTreeMap<ProofStage, usize>,
    /// How far apart a stage's starts must be, e.g. `pc1 = "5min"`: the second of two PC1s
    /// scheduled together starts 5 minutes after the first (the original's meaning).
    pub staggered: BTreeMap<ProofStage, Interval>,
}

/// A duration written as text (`"1min"`, `"30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Interval(#[serde(with = "humantime_serde")] pub Duration);

/// The checks of `[processors]` serde cannot make: locks named and declared, counts
/// above zero, cpusets that parse; stages that run in-process here are warned about.
pub(super) fn check_processors(
    processors: &ProcessorsSection,
    warnings: &mut Vec<String>,
    origin: &str,
) -> Result<(), ConfigError> {
    let invalid = |key: String, message: String| ConfigError::Invalid {
        path: origin.to_owned(),
        key,
        message,
    };
    for (name, n) in &processors.ext_locks {
        if *n == 0 {
            return Err(invalid(
                format!("processors.ext_locks.{name}"),
                "0 would never let a call hold it; use at least 1".into(),
            ));
        }
    }
    if !processors.static_tree_d.is_empty() {
        warnings.push(format!(
            "config {origin}: [processors.static_tree_d] has no effect: PC1 builds tree_d itself in this worker (filecoin-proofs 19)"
        ));
    }
    for (key, stage, list) in processors.lists() {
        if key == "sealing_daemons" {
            let unnamed = |daemon: &ExternalProcessorSection| {
                daemon
                    .bin
                    .as_ref()
                    .is_none_or(|bin| bin.as_os_str().is_empty())
            };
            if let Some(i) = list.iter().position(unnamed) {
                let what = if list[i].bin.is_none() {
                    "missing"
                } else {
                    "empty"
                };
                return Err(invalid(
                    format!("processors.sealing_daemons[{i}].bin"),
                    format!("{what}: a sealing daemon is a program of yours; name it (it must print \"EMPTY processor ready\" on stdout once it runs)"),
                ));
            }
        } else if stage.is_none() && !list.is_empty() {
            // tree_d: PC1 builds tree D itself (filecoin-proofs 19). A program of the
            // operator's would be expected to run: refused; the worker's own, a warning.
            if let Some(i) = list.iter().position(|child| child.bin.is_some()) {
                return Err(invalid(
                    format!("processors.{key}[{i}].bin"),
                    format!("this worker builds tree D within PC1 (filecoin-proofs 19) and has no {key} step to send to another program; remove the entry (external processors: {})", processors.external_names()),
                ));
            }
            warnings.push(format!(
                "config {origin}: [[processors.{key}]] has no effect: PC1 builds tree D itself in this worker (filecoin-proofs 19); the TreeD step computes comm_d from the pieces, in-process"
            ));
            continue;
        }
        for (i, child) in list.iter().enumerate() {
            let at = |field: &str| format!("processors.{key}[{i}].{field}");
            check_child(child, &processors.ext_locks, &|field, message| {
                invalid(at(field), message)
            })?;
        }
    }
    Ok(())
}

/// The checks of one external processor: `invalid(field, message)` names what is wrong.
fn check_child(
    child: &ExternalProcessorSection,
    ext_locks: &BTreeMap<String, usize>,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if child.stable_wait.is_zero() {
        return Err(invalid(
            "stable_wait",
            "0s leaves no time to print the ready line; the default is 5s".into(),
        ));
    }
    if child
        .bin
        .as_ref()
        .is_some_and(|bin| bin.as_os_str().is_empty())
    {
        return Err(invalid(
            "bin",
            "empty: leave it out for the worker itself, or name a program".into(),
        ));
    }
    if child.concurrent == 0 {
        return Err(invalid(
            "concurrent",
            "0 would never run a call; use at least 1".into(),
        ));
    }
    if let Some(lock) = child
        .locks
        .iter()
        .find(|lock| !ext_locks.contains_key(*lock))
    {
        let declared: Vec<&str> = ext_locks.keys().map(String::as_str).collect();
        return Err(invalid(
            "locks",
            format!(
                "lock {lock:?} is not declared in [processors.ext_locks] (declared: {})",
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ),
        ));
    }
    if let Some(cpuset) = &child.cgroup.cpuset {
        crate::cpuset::CpuSet::parse(cpuset)
            .map_err(|e| invalid("cgroup.cpuset", e.to_string()))?;
    }
    let group = &child.cgroup.group_name;
    if group.is_empty() || group.contains('/') || group.starts_with('.') {
        return Err(invalid(
            "cgroup.group_name",
            format!("{group:?} is not a cgroup name (no '/', not empty, no leading '.')"),
        ));
    }
    Ok(())
}
