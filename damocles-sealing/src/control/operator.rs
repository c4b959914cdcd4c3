//! What an operator changes in a running worker, as a thread's control sees it: its hot
//! config's status and a worker stop (the thread parks at its next step boundary).

use std::time::Instant;

use damocles_core::Plan;

use super::{Control, Interrupt};

impl Control {
    /// Shows the hot config's pending plan and why it is not used; `None`s clear them.
    pub(crate) fn set_config_status(&self, pending_plan: Option<Plan>, error: Option<String>) {
        {
            let mut s = self.lock();
            if s.pending_plan == pending_plan && s.config_error == error {
                return;
            }
            s.pending_plan = pending_plan;
            s.config_error = error;
        }
        self.changed();
    }

    /// The hot config was written: cuts the thread's current wait, so that it reads the
    /// file at once (an idle thread takes the new plan now, not after its idle wait).
    pub(crate) fn nudge_config(&self) {
        self.lock().config_nudge = true;
        self.changed();
    }

    /// Whether the hot config was written since the last call.
    pub(crate) fn take_config_nudge(&self) -> bool {
        std::mem::take(&mut self.lock().config_nudge)
    }

    /// Asks the thread to take no new step (`on`), or calls that off; whether it changed.
    pub(crate) fn set_stop(&self, on: bool) -> bool {
        let changed = {
            let mut s = self.lock();
            std::mem::replace(&mut s.stop_requested, on) != on
        };
        if changed {
            self.changed();
        }
        changed
    }

    /// Whether the thread must park for a worker stop now (it holds nothing to finish).
    pub(crate) fn must_park(&self) -> bool {
        let s = self.lock();
        s.stop_requested && !s.must_finish
    }

    /// Says whether the thread holds work it finishes before a stop parks it.
    pub(crate) fn set_must_finish(&self, on: bool) {
        self.lock().must_finish = on;
        self.changed();
    }

    /// Whether a stopping worker may exit now as far as this thread goes: it is parked,
    /// or paused outside a proof call (a paused thread's record is saved).
    pub(crate) fn at_rest(&self) -> bool {
        let s = self.lock();
        s.parked.is_some() || (s.paused && !s.in_proof_call)
    }

    /// Whether a stop waits for this thread: it is in a proof call or holds a WindowPoSt
    /// job, and is not paused.
    pub(crate) fn finishing_before_stop(&self) -> bool {
        let s = self.lock();
        !s.paused && (s.in_proof_call || s.must_finish)
    }

    /// Parks the thread for a worker stop: shown paused until the stop is called off
    /// (`Ok`) or the worker stops (`Err`).
    pub(crate) async fn park_for_stop(&self) -> Result<(), Interrupt> {
        self.lock().parked = Some(Instant::now());
        self.changed();
        let outcome = loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if s.stopping {
                    break Err(Interrupt::Stopping);
                }
                if !s.stop_requested {
                    break Ok(());
                }
            }
            notified.await;
        };
        self.lock().parked = None;
        self.changed();
        outcome
    }
}
