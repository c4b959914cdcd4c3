//! A thread's hot configuration: `<location>/config.toml`, read before each new job, so
//! that an operator changes a running thread without restarting the worker (the
//! original's "sealing_thread configuration hot reload", its docs/en/03, since v0.5.0).
//!
//! The file holds the keys of a `[[sealing_thread]]` except `location`: `plan` and
//! `sealing.*`. Its `plan` replaces the configured one; its `sealing.*` keys go over the
//! thread's configured options (its `[[sealing_thread]] sealing.*` over `[sealing]`).
//!
//! - The thread reads the file at every step boundary and applies what it says only when
//!   it starts a new job: the current job always finishes under the plan its record names.
//!   Until then `worker list` shows the new plan as pending.
//! - A removed file brings the configured plan and options back, at the next job too.
//! - A file that cannot be read or parsed keeps the previous configuration; the thread
//!   says why once per change (log, `worker list`'s `config_error`, its history).
//!
//! [`write_plan`] sets the file's `plan`, keeping its other keys and comments: `worker
//! set-plan`.

use std::path::{Path, PathBuf};

use damocles_core::Plan;
use serde::Deserialize;

use crate::config::{deserialize_toml, ConfigError, SealingSection};
use crate::options::SealingOptions;

/// The hot config's file name, in a thread's location.
pub const HOT_CONFIG_FILE: &str = "config.toml";

/// The path of the hot config of the thread at `location`.
pub fn hot_config_path(location: &Path) -> PathBuf {
    location.join(HOT_CONFIG_FILE)
}

/// What a hot config file may hold: a `[[sealing_thread]]` without `location`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HotThreadSection {
    /// The plan of the thread's next jobs.
    pub plan: Option<Plan>,
    /// Overrides of the thread's options.
    pub sealing: SealingSection,
    /// Refused: a thread's location cannot change while it runs.
    location: Option<toml::Value>,
}

impl HotThreadSection {
    /// Parses a hot config; unknown keys come back as warnings naming them.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a value of the wrong kind, text that is not TOML, or a
    /// `location` key.
    pub fn parse(text: &str, origin: &str) -> Result<(Self, Vec<String>), ConfigError> {
        let (section, unknown): (Self, _) = deserialize_toml(text, origin)?;
        if section.location.is_some() {
            return Err(ConfigError::Invalid {
                path: origin.to_owned(),
                key: "location".into(),
                message: "a thread's location cannot change while it runs; change it in the worker's configuration and restart".into(),
            });
        }
        let warnings = unknown
            .into_iter()
            .map(|key| format!("config {origin}: unknown key {key} is ignored"))
            .collect();
        Ok((section, warnings))
    }
}

/// What a thread runs its jobs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSettings {
    /// The plan of new jobs.
    pub plan: Plan,
    /// The options.
    pub options: SealingOptions,
}

/// The file as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Absent,
    Text(String),
    Unreadable(String),
}

/// What a look at the file found.
#[derive(Debug)]
pub(crate) enum Reload {
    /// The file is as it was.
    Unchanged,
    /// The file changed (or was removed): [`HotConfig::wanted`] is new; the unknown keys
    /// it holds, one line each.
    Changed {
        /// Unknown keys, one line each.
        warnings: Vec<String>,
    },
    /// The file changed but cannot be used; the previous settings stay.
    Rejected(String),
}

/// A thread's configured settings and the hot config over them.
#[derive(Debug)]
pub(crate) struct HotConfig {
    path: PathBuf,
    configured: ThreadSettings,
    seen: Seen,
    wanted: ThreadSettings,
    error: Option<String>,
}

impl HotConfig {
    /// The hot config of the thread at `location`, over its `configured` settings.
    pub(crate) fn new(location: &Path, configured: ThreadSettings) -> Self {
        Self {
            path: hot_config_path(location),
            wanted: configured.clone(),
            configured,
            seen: Seen::Absent,
            error: None,
        }
    }

    /// The settings the next job runs with.
    pub(crate) fn wanted(&self) -> &ThreadSettings {
        &self.wanted
    }

    /// Why the file is not used, while it is not.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether the file is there (and was used).
    pub(crate) fn file_present(&self) -> bool {
        matches!(self.seen, Seen::Text(_))
    }

    /// Reads the file again; what changed.
    pub(crate) fn reload(&mut self) -> Reload {
        let seen = match std::fs::read_to_string(&self.path) {
            Ok(text) => Seen::Text(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::Absent,
            Err(e) => Seen::Unreadable(format!("cannot read {}: {e}", self.path.display())),
        };
        if seen == self.seen {
            return Reload::Unchanged;
        }
        self.seen = seen.clone();
        let origin = self.path.display().to_string();
        let parsed = match seen {
            Seen::Absent => Ok((HotThreadSection::default(), Vec::new())),
            Seen::Text(text) => HotThreadSection::parse(&text, &origin).map_err(|e| e.to_string()),
            Seen::Unreadable(why) => Err(why),
        };
        match parsed {
            Ok((section, warnings)) => {
                self.error = None;
                self.wanted = ThreadSettings {
                    plan: section.plan.unwrap_or(self.configured.plan),
                    options: section.sealing.apply(self.configured.options.clone()),
                };
                Reload::Changed { warnings }
            }
            Err(why) => {
                self.error = Some(why.clone());
                Reload::Rejected(why)
            }
        }
    }
}

/// Why `set-plan` could not write a thread's hot config. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum WritePlanError {
    /// The file exists but is not TOML: it is left as it is.
    #[error("{path} is not valid TOML, left as it is (fix or remove it first): {reason}")]
    NotToml {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// The file holds another key the thread cannot use (a `location`, a bad value): a
    /// plan written there would not be used either. It is left as it is.
    #[error("{path} would still not be used, left as it is (fix it first): {reason}")]
    Unusable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file could not be read or written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Sets `plan` in the hot config of the thread at `location`, creating the file when
/// there is none and keeping its other keys and comments; returns the file's path and the
/// plan it named before (`None`: none). Written through a temporary file renamed over it,
/// so a thread never reads half a file.
pub fn write_plan(location: &Path, plan: Plan) -> Result<(PathBuf, Option<Plan>), WritePlanError> {
    let path = hot_config_path(location);
    let io = |source| WritePlanError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| WritePlanError::NotToml {
                path: path.display().to_string(),
                reason: e.message().to_owned(),
            })?;
    let before = doc
        .get("plan")
        .and_then(|item| item.as_str())
        .and_then(|name| name.parse().ok());
    doc["plan"] = toml_edit::value(plan.as_str());
    let text = doc.to_string();
    // A plan in a file the thread would not use would change nothing: refused.
    HotThreadSection::parse(&text, &path.display().to_string()).map_err(|e| {
        WritePlanError::Unusable {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    })?;
    // Unique, so that two writers never share a temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = location.join(format!(".{HOT_CONFIG_FILE}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&temporary, text).map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)?;
    Ok((path, before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(plan: Plan) -> ThreadSettings {
        ThreadSettings {
            plan,
            options: SealingOptions::default(),
        }
    }

    #[test]
    fn a_changed_file_applies_a_bad_one_keeps_the_last_and_a_removed_one_restores() {
        let dir = tempfile::tempdir().unwrap();
        let mut hot = HotConfig::new(dir.path(), settings(Plan::Sealer));
        assert!(matches!(hot.reload(), Reload::Unchanged));
        let file = hot_config_path(dir.path());
        std::fs::write(&file, "plan = \"rebuild\"\n[sealing]\nmax_retries = 9\n").unwrap();
        assert!(matches!(hot.reload(), Reload::Changed { .. }));
        assert_eq!(hot.wanted().plan, Plan::Rebuild);
        assert_eq!(hot.wanted().options.max_retries, 9);
        assert!(matches!(hot.reload(), Reload::Unchanged));

        std::fs::write(&file, "plan = \"bogus\"\n").unwrap();
        let Reload::Rejected(why) = hot.reload() else {
            panic!("a bad plan must be rejected")
        };
        assert!(why.contains("plan"), "{why}");
        assert_eq!(
            hot.wanted().plan,
            Plan::Rebuild,
            "the last good settings stay"
        );
        assert_eq!(hot.error(), Some(why.as_str()));

        std::fs::write(&file, "location = \"/elsewhere\"\n").unwrap();
        let Reload::Rejected(why) = hot.reload() else {
            panic!("a location must be rejected")
        };
        assert!(why.contains("location cannot change"), "{why}");

        std::fs::remove_file(&file).unwrap();
        assert!(matches!(hot.reload(), Reload::Changed { .. }));
        assert_eq!(hot.wanted(), &settings(Plan::Sealer));
        assert_eq!(hot.error(), None);
    }

    #[test]
    fn write_plan_keeps_other_keys_and_comments_and_refuses_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, before) = write_plan(dir.path(), Plan::Snapup).unwrap();
        assert_eq!(before, None);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "plan = \"snapup\"\n"
        );

        let text = "# switched for the upgrade campaign\nplan = \"snapup\" # until Friday\n\n[sealing]\nmax_retries = 2 # flaky disk\n";
        std::fs::write(&path, text).unwrap();
        let (_, before) = write_plan(dir.path(), Plan::Sealer).unwrap();
        assert_eq!(before, Some(Plan::Snapup));
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            written.contains("# switched for the upgrade campaign"),
            "{written}"
        );
        assert!(
            written.contains("max_retries = 2 # flaky disk"),
            "{written}"
        );
        let (section, warnings) = HotThreadSection::parse(&written, "t").unwrap();
        assert_eq!(section.plan, Some(Plan::Sealer));
        assert_eq!(section.sealing.max_retries, Some(2));
        assert!(warnings.is_empty());

        std::fs::write(&path, "plan = \n").unwrap();
        let e = write_plan(dir.path(), Plan::Rebuild).unwrap_err();
        assert!(matches!(e, WritePlanError::NotToml { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "plan = \n");

        std::fs::write(&path, "[sealing]\nmax_retries = \"many\"\n").unwrap();
        let e = write_plan(dir.path(), Plan::Rebuild).unwrap_err();
        assert!(matches!(e, WritePlanError::Unusable { .. }), "{e}");
        assert!(e.to_string().contains("max_retries"), "{e}");
    }
}
