//! Why a command-line value is not what its option takes (clap prints it under the
//! option's name, and exits 2).

use damocles_core::ProofStage;

/// A value an option's parser refused.
#[derive(Debug, thiserror::Error)]
pub enum BadValue {
    /// `--store` takes `NAME=PATH`.
    #[error("{0:?} is not NAME=PATH (e.g. remote=/mnt/store1)")]
    NotNamePath(String),
    /// A WindowPoSt interval under a second.
    #[error("{0:?} is too short: a round needs at least 1s (e.g. 30s, 1m)")]
    IntervalTooShort(String),
    /// Not a duration.
    #[error("{0:?}: {1} (e.g. 30s, 1m)")]
    NotADuration(String, humantime::DurationError),
    /// Not a number from 0 to 1.
    #[error("{0:?} is not a share between 0 and 1 (e.g. 0.5)")]
    NotAShare(String),
    /// Not a proof stage.
    #[error("{0}")]
    NotAStage(#[from] damocles_core::ParseProofStageError),
    /// A stage that has no external processor.
    #[error("{0} runs in-process in this worker; processors: {external}", external = external_stages())]
    InProcess(ProofStage),
}

fn external_stages() -> String {
    damocles_sealing::processors::EXTERNAL
        .map(|s| s.to_string())
        .join(", ")
}
