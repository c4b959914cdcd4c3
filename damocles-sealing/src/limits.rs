//! Per-stage concurrency limits (`[processors.limitation.concurrent]`): how many threads
//! may run a stage at once. A thread waiting for a slot shows as Waiting and can be
//! paused.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The stage-limit names of the original (`add_pieces`, `tree_d`, `pc1`, `pc2`, `c1`,
/// `c2`, …).
pub const STAGE_NAMES: [&str; 12] = [
    "add_pieces",
    "tree_d",
    "pc1",
    "pc2",
    "synth_proof",
    "c1",
    "c2",
    "snap_encode",
    "snap_prove",
    "unseal",
    "transfer",
    "window_post",
];

/// The shared limits of one worker. Stages without a limit are not limited.
#[derive(Debug, Clone, Default)]
pub struct StageLimits {
    slots: HashMap<String, Arc<Semaphore>>,
}

impl StageLimits {
    /// Limits from `(stage, concurrent)` pairs.
    pub fn new<'a>(limits: impl IntoIterator<Item = (&'a str, usize)>) -> Self {
        Self {
            slots: limits
                .into_iter()
                .map(|(stage, n)| (stage.to_owned(), Arc::new(Semaphore::new(n))))
                .collect(),
        }
    }

    /// Whether `stage` is limited.
    pub fn is_limited(&self, stage: &str) -> bool {
        self.slots.contains_key(stage)
    }

    /// Takes a slot of `stage` (at once when it is not limited).
    pub async fn acquire(&self, stage: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.slots.get(stage)?.clone();
        semaphore.acquire_owned().await.ok()
    }
}
