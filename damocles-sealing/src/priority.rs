//! WindowPoSt before sealing (`[worker] wdpost_priority`, on by default; not in the
//! original): while a wdpost thread proves a job, no new PC2, C2 or snap prove starts in
//! this worker (a thread about to start one waits, shown as Waiting, and can be paused),
//! and the external processors of C2 and snap prove are stopped (SIGSTOP to each child's
//! process group) until the last job being proven is done (SIGCONT): their calls are held,
//! not lost. A C2 or snap prove running in-process cannot be held back and keeps its
//! cores; run them in `[[processors.c2]]` / `[[processors.snap_prove]]` where WindowPoSt
//! shares the machine's cores. Turn it off where WindowPoSt has cores or a GPU of its own.

use std::sync::Arc;

use damocles_core::ProofStage;
use tokio::sync::watch;

use crate::processors::Processors;

/// The stages that do not start while a WindowPoSt job is proven: the ones that take
/// every core for a minute or more.
pub const YIELDING: [ProofStage; 3] = [ProofStage::PC2, ProofStage::C2, ProofStage::SnapProve];

/// The stages whose external processors are stopped while a WindowPoSt job is proven.
pub const HELD_BACK: [ProofStage; 2] = [ProofStage::C2, ProofStage::SnapProve];

/// WindowPoSt's priority over sealing in one worker, shared by its threads. The default is
/// off: nothing waits, nothing is held back.
#[derive(Clone, Default)]
pub struct PostPriority {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// How many WindowPoSt jobs are being proven now.
    proving: watch::Sender<usize>,
    /// Whose children are held back.
    processors: Processors,
}

impl std::fmt::Debug for PostPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostPriority")
            .field("on", &self.inner.is_some())
            .field("proving", &self.proving_now())
            .finish()
    }
}

impl PostPriority {
    /// On, holding back the children of `processors`.
    pub fn new(processors: Processors) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                proving: watch::Sender::new(0),
                processors,
            })),
        }
    }

    /// How many WindowPoSt jobs are being proven now (0 when off).
    pub fn proving_now(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |inner| *inner.proving.borrow())
    }

    /// Whether a thread about to start `stage` waits while WindowPoSt proves.
    pub fn yields(&self, stage: ProofStage) -> bool {
        self.inner.is_some() && YIELDING.contains(&stage)
    }

    /// Waits until no WindowPoSt job is being proven (at once when off).
    pub async fn clear(&self) {
        if let Some(inner) = &self.inner {
            let mut proving = inner.proving.subscribe();
            // The sender lives in `inner`, which this borrow keeps.
            let _ = proving.wait_for(|n| *n == 0).await;
        }
    }

    /// A WindowPoSt job is being proven until the guard is dropped: the first one holds
    /// back the external processors of [`HELD_BACK`], the last one lets them go. `None`
    /// when off.
    pub fn proving(&self) -> Option<Proving> {
        let inner = self.inner.clone()?;
        inner.proving.send_modify(|n| {
            *n += 1;
            if *n == 1 {
                let held = inner.processors.hold_back(&HELD_BACK, true);
                if held > 0 {
                    tracing::info!("WindowPoSt proving: {held} external processor(s) of C2 and snap prove held back");
                }
            }
        });
        Some(Proving { inner })
    }
}

/// A WindowPoSt job being proven (see [`PostPriority::proving`]).
#[must_use = "the job counts as proven only while this is held"]
pub struct Proving {
    inner: Arc<Inner>,
}

impl Drop for Proving {
    fn drop(&mut self) {
        let processors = &self.inner.processors;
        self.inner.proving.send_modify(|n| {
            *n -= 1;
            if *n == 0 {
                let released = processors.hold_back(&HELD_BACK, false);
                if released > 0 {
                    tracing::info!("WindowPoSt proven: {released} external processor(s) continue");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sealing_waits_while_a_job_is_proven_and_goes_on_after_the_last() {
        let priority = PostPriority::new(Processors::default());
        assert!(priority.yields(ProofStage::C2) && !priority.yields(ProofStage::PC1));
        let first = priority.proving().expect("on");
        let second = priority.proving().expect("on");
        assert_eq!(priority.proving_now(), 2);
        let waiting = tokio::spawn({
            let priority = priority.clone();
            async move { priority.clear().await }
        });
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "one job is still being proven");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released")
            .expect("joined");
        assert_eq!(priority.proving_now(), 0);
    }

    #[tokio::test]
    async fn off_nothing_waits() {
        let off = PostPriority::default();
        assert!(off.proving().is_none());
        assert!(!off.yields(ProofStage::C2));
        tokio::time::timeout(Duration::from_secs(1), off.clear())
            .await
            .expect("at once");
    }
}
