//! What a configured child is for: a stage's processor or a sealing daemon, and the
//! ready line each prints.

use damocles_core::ProofStage;

use super::protocol::{ready_line, DAEMON_NAME};

/// What a child is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// It runs the calls of a stage (`[[processors.<stage>]]`).
    Processor(ProofStage),
    /// A sealing daemon (`[[processors.sealing_daemons]]`): started and kept running with
    /// the worker, sent nothing.
    Daemon,
}

impl Role {
    /// Its config key: the stage's name, or `sealing_daemons`.
    pub fn key(self) -> String {
        match self {
            Role::Processor(stage) => stage.to_string(),
            Role::Daemon => "sealing_daemons".into(),
        }
    }

    /// The line it prints once it is ready.
    pub fn ready_line(self) -> String {
        match self {
            Role::Processor(stage) => ready_line(stage),
            Role::Daemon => format!("{DAEMON_NAME} processor ready"),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Processor(stage) => write!(f, "{stage} processor"),
            Role::Daemon => f.write_str("sealing daemon"),
        }
    }
}
