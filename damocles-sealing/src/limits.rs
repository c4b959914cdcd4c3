//! Per-stage limits shared by a worker's threads: how many threads may run a stage at
//! once (`[processors.limitation.concurrent]`), and how far apart its starts must be
//! (`[processors.limitation.staggered]`, so that PC1s scheduled together do not all read
//! and write the disks at the same moment). A thread waiting for either shows as Waiting
//! and can be paused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use damocles_core::ProofStage;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The shared limits of one worker. Stages without a limit are not limited.
#[derive(Debug, Clone, Default)]
pub struct StageLimits {
    slots: HashMap<ProofStage, Arc<Semaphore>>,
    staggered: HashMap<ProofStage, Arc<Stagger>>,
}

/// The spacing of one stage's starts: the last start, behind a lock its waiters queue on.
#[derive(Debug)]
struct Stagger {
    interval: Duration,
    last_start: Mutex<Option<Instant>>,
}

impl StageLimits {
    /// Limits from `(stage, concurrent)` pairs.
    pub fn new(limits: impl IntoIterator<Item = (ProofStage, usize)>) -> Self {
        Self {
            slots: limits
                .into_iter()
                .map(|(stage, n)| (stage, Arc::new(Semaphore::new(n))))
                .collect(),
            staggered: HashMap::new(),
        }
    }

    /// These limits, with each stage of `intervals` started at least its interval after
    /// its previous start (a zero interval spaces nothing).
    pub fn with_staggered(
        mut self,
        intervals: impl IntoIterator<Item = (ProofStage, Duration)>,
    ) -> Self {
        for (stage, interval) in intervals {
            if !interval.is_zero() {
                let stagger = Stagger {
                    interval,
                    last_start: Mutex::new(None),
                };
                self.staggered.insert(stage, Arc::new(stagger));
            }
        }
        self
    }

    /// Whether `stage` is limited.
    pub fn is_limited(&self, stage: ProofStage) -> bool {
        self.slots.contains_key(&stage)
    }

    /// The interval `stage`'s starts are spaced by, when they are.
    pub fn staggered(&self, stage: ProofStage) -> Option<Duration> {
        self.staggered.get(&stage).map(|s| s.interval)
    }

    /// Takes a slot of `stage` (at once when it is not limited).
    pub async fn acquire(&self, stage: ProofStage) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.slots.get(&stage)?.clone();
        semaphore.acquire_owned().await.ok()
    }

    /// Waits until `stage` may start: its interval after its previous start (at once for
    /// a stage that is not staggered, and for the first start). Waiters start in the
    /// order they came; one dropped while it waits leaves its turn to the next.
    pub async fn staggered_start(&self, stage: ProofStage) {
        let Some(stagger) = self.staggered.get(&stage) else {
            return;
        };
        let mut last = stagger.last_start.lock().await;
        if let Some(last) = *last {
            tokio::time::sleep_until(last + stagger.interval).await;
        }
        *last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn staggered_starts_are_spaced_by_the_interval_in_arrival_order() {
        let interval = Duration::from_millis(200);
        let limits = StageLimits::default().with_staggered([(ProofStage::PC1, interval)]);
        let begin = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..3 {
            limits.staggered_start(ProofStage::PC1).await;
            starts.push(begin.elapsed());
        }
        assert!(starts[0] < interval, "the first starts at once: {starts:?}");
        assert!(
            starts[1] >= interval && starts[2] >= starts[1] + interval,
            "{starts:?}"
        );
        // Another stage is not held back.
        let before = Instant::now();
        limits.staggered_start(ProofStage::PC2).await;
        assert!(before.elapsed() < interval);
        assert_eq!(limits.staggered(ProofStage::PC1), Some(interval));
        assert_eq!(limits.staggered(ProofStage::PC2), None);
    }
}
