//! A thread's event history: every transition, pause, resume, drain, failure and abort,
//! with when it happened and (for operators' actions) who asked.
//!
//! A [`crate::StateStore`] keeps the last [`JOURNAL_LIMIT`] entries of its thread, numbered
//! in the order they were written, across restarts.

use serde::{Deserialize, Serialize};

use crate::failure::FailureLevel;
use crate::sector::SectorNumber;
use crate::state::{EventKind, PlanState};

/// How many entries a thread's history keeps; older ones are dropped.
pub const JOURNAL_LIMIT: usize = 1_000;

/// Something that happened to a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadEvent {
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// The sector (or, on a wdpost thread, the job) the thread had then, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub what: Happening,
}

impl ThreadEvent {
    /// `what`, now, for `sector`.
    pub fn now(sector: Option<String>, what: Happening) -> Self {
        Self {
            at_ms: unix_ms(),
            sector,
            what,
        }
    }
}

/// The current time in Unix milliseconds (0 before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What happened, tagged by `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Happening {
    /// The thread started (the worker started) with its saved record.
    Started {
        /// The record's state (a wdpost thread starts `Empty`).
        state: PlanState,
        /// Whether it was saved paused.
        paused: bool,
        /// Whether it was saved draining.
        draining: bool,
    },
    /// The sector (or the wdpost job) moved from one state to another.
    Transition {
        /// The state before.
        from: PlanState,
        /// The state after.
        to: PlanState,
        /// The event that moved it.
        event: EventKind,
    },
    /// A step failed; `level` is what the thread did about it (a temporary failure whose
    /// retries are spent is recorded as permanent).
    Failed {
        /// The level acted on.
        level: FailureLevel,
        /// The message, as `last_error` shows it after the level.
        message: String,
        /// For a temporary failure, the retry about to be made (1 for the first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<u32>,
    },
    /// The thread paused: asked by an operator (`by`), or on its own after a failure
    /// (`by` absent, `reason` the error).
    Paused {
        /// Who asked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// Why, when the thread paused itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An operator asked for a pause during a proof call; it takes effect when the call
    /// returns (a `paused` entry follows).
    PauseRequested {
        /// Who asked.
        by: String,
    },
    /// An operator called off a pause requested during a proof call.
    PauseCalledOff {
        /// Who asked.
        by: String,
    },
    /// An operator resumed the thread, at `state` when one was asked for.
    Resumed {
        /// Who asked.
        by: String,
        /// The state asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<PlanState>,
    },
    /// An operator drained the thread (`on`) or lifted its drain.
    Drain {
        /// Who asked.
        by: String,
        /// Drained (true) or undrained.
        on: bool,
    },
    /// A WindowPoSt job's sector could not be proven (a fault), and why.
    Faulty {
        /// The sector number (named `number`: the entry's `sector` is the job's id).
        number: SectorNumber,
        /// Why (the check's error, or its time limit).
        reason: String,
    },
    /// The sector was dropped.
    Aborted {
        /// Why.
        reason: String,
    },
    /// The sector was sealed, proven and finalized.
    Finished,
    /// The thread's hot config (`<location>/config.toml`) was read: from the next job on,
    /// the thread runs `plan` with the file's `sealing.*` over its configured options
    /// (`file` false: the file was removed, back to the configured ones).
    ConfigApplied {
        /// The plan of the next job.
        plan: crate::plan::Plan,
        /// Whether the file is there (false: removed).
        file: bool,
    },
    /// The thread's hot config could not be used; the thread keeps its previous
    /// configuration.
    ConfigRejected {
        /// Why, naming the file and the key.
        error: String,
    },
    /// A staggered stage (`[processors.limitation.staggered]`) started, `interval_ms`
    /// after the stage's previous start at the earliest, after waiting `waited_ms` for
    /// its turn. The entry's time is the start.
    StaggeredStart {
        /// The stage.
        stage: crate::proof_stage::ProofStage,
        /// Its configured spacing, in milliseconds.
        interval_ms: u64,
        /// How long this start waited for its turn, in milliseconds.
        waited_ms: u64,
    },
    /// A worker stop was asked for: the thread takes no new step and waits for the
    /// worker to exit (`on`), or the stop was called off.
    Stop {
        /// Who asked.
        by: String,
        /// Stopping (true) or called off.
        on: bool,
    },
}

impl Happening {
    /// The `kind` tag (`transition`, `paused`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Happening::Started { .. } => "started",
            Happening::Transition { .. } => "transition",
            Happening::Failed { .. } => "failed",
            Happening::Paused { .. } => "paused",
            Happening::PauseRequested { .. } => "pause_requested",
            Happening::PauseCalledOff { .. } => "pause_called_off",
            Happening::Resumed { .. } => "resumed",
            Happening::Drain { .. } => "drain",
            Happening::Faulty { .. } => "faulty",
            Happening::Aborted { .. } => "aborted",
            Happening::Finished => "finished",
            Happening::ConfigApplied { .. } => "config_applied",
            Happening::ConfigRejected { .. } => "config_rejected",
            Happening::StaggeredStart { .. } => "staggered_start",
            Happening::Stop { .. } => "stop",
        }
    }

    /// One line saying what happened, for tables.
    pub fn describe(&self) -> String {
        match self {
            Happening::Started {
                state,
                paused,
                draining,
            } => {
                let mut line = format!("thread started at {state}");
                if *paused {
                    line.push_str(", paused");
                }
                if *draining {
                    line.push_str(", draining");
                }
                line
            }
            Happening::Transition { from, to, event } => format!("{from} -> {to} ({event})"),
            Happening::Failed {
                level,
                message,
                retry,
            } => match retry {
                Some(n) => format!("{level}: {message} (retry {n})"),
                None => format!("{level}: {message}"),
            },
            Happening::Paused { by, reason } => match (by, reason) {
                (Some(by), _) => format!("paused by {by}"),
                (None, Some(reason)) => format!("paused on error: {reason}"),
                (None, None) => "paused".into(),
            },
            Happening::PauseRequested { by } => {
                format!("pause requested by {by} (after the proof call)")
            }
            Happening::PauseCalledOff { by } => format!("pause request called off by {by}"),
            Happening::Resumed { by, state } => match state {
                Some(state) => format!("resumed at {state} by {by}"),
                None => format!("resumed by {by}"),
            },
            Happening::Drain { by, on: true } => format!("drained by {by}"),
            Happening::Drain { by, on: false } => format!("undrained by {by}"),
            Happening::Faulty { number, reason } => format!("sector {number} faulty: {reason}"),
            Happening::Aborted { reason } => format!("sector aborted: {reason}"),
            Happening::Finished => "sector finished".into(),
            Happening::ConfigApplied { plan, file: true } => {
                format!("config.toml applied: next job under {plan}")
            }
            Happening::ConfigApplied { plan, file: false } => {
                format!("config.toml removed: next job under {plan} (the configured plan)")
            }
            Happening::ConfigRejected { error } => {
                format!("config.toml rejected, previous configuration kept: {error}")
            }
            Happening::StaggeredStart {
                stage,
                interval_ms,
                waited_ms,
            } => format!(
                "{stage} started (staggered by {}, waited {})",
                humantime::format_duration(std::time::Duration::from_millis(*interval_ms)),
                humantime::format_duration(std::time::Duration::from_millis(*waited_ms))
            ),
            Happening::Stop { by, on: true } => format!("worker stop asked by {by}"),
            Happening::Stop { by, on: false } => format!("worker stop called off by {by}"),
        }
    }
}

/// A stored [`ThreadEvent`] with its number: entries are numbered from 1 in the order
/// they were written and never renumbered, so a reader can tell what is new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Its number.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: ThreadEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    #[test]
    fn entries_are_flat_json_tagged_by_kind_and_read_back() {
        let entry = JournalEntry {
            seq: 7,
            event: ThreadEvent {
                at_ms: 1_700_000_000_123,
                sector: Some("s-t01000-3".into()),
                what: Happening::Resumed {
                    by: "127.0.0.1:40000".into(),
                    state: Some(PlanState::Sector(State::C1Done)),
                },
            },
        };
        let json = serde_json::to_value(&entry).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({
                "seq": 7, "at_ms": 1_700_000_000_123_u64, "sector": "s-t01000-3",
                "kind": "resumed", "by": "127.0.0.1:40000", "state": "C1Done"
            })
        );
        let back: JournalEntry = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, entry);
        assert_eq!(back.event.what.kind(), "resumed");
        assert_eq!(
            back.event.what.describe(),
            "resumed at C1Done by 127.0.0.1:40000"
        );
    }

    #[test]
    fn a_pause_says_who_asked_or_why_the_thread_paused_itself() {
        let asked = Happening::Paused {
            by: Some("admin token from 10.0.0.9:5000".into()),
            reason: None,
        };
        assert_eq!(asked.describe(), "paused by admin token from 10.0.0.9:5000");
        let failed = Happening::Paused {
            by: None,
            reason: Some("permanent: C2: no params".into()),
        };
        assert_eq!(
            failed.describe(),
            "paused on error: permanent: C2: no params"
        );
    }
}
