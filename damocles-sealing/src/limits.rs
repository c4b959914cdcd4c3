//! Per-stage concurrency limits (`[processors.limitation.concurrent]`): how many threads
//! may run a stage at once. A thread waiting for a slot shows as Waiting and can be
//! paused.

use std::collections::HashMap;
use std::sync::Arc;

use damocles_core::ProofStage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared limits of one worker. Stages without a limit are not limited.
#[derive(Debug, Clone, Default)]
pub struct StageLimits {
    slots: HashMap<ProofStage, Arc<Semaphore>>,
}

impl StageLimits {
    /// Limits from `(stage, concurrent)` pairs.
    pub fn new(limits: impl IntoIterator<Item = (ProofStage, usize)>) -> Self {
        Self {
            slots: limits
                .into_iter()
                .map(|(stage, n)| (stage, Arc::new(Semaphore::new(n))))
                .collect(),
        }
    }

    /// Whether `stage` is limited.
    pub fn is_limited(&self, stage: ProofStage) -> bool {
        self.slots.contains_key(&stage)
    }

    /// Takes a slot of `stage` (at once when it is not limited).
    pub async fn acquire(&self, stage: ProofStage) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.slots.get(&stage)?.clone();
        semaphore.acquire_owned().await.ok()
    }
}
