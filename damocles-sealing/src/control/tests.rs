//! The unit tests of `control`.

use super::*;

fn control() -> Control {
    Control::new(
        0,
        "/s0".into(),
        Plan::Sealer,
        Arc::new(watch::Sender::new(0)),
        Arc::default(),
    )
}

#[test]
fn the_last_call_wins_even_before_the_thread_looks() {
    let c = control();
    // pause, resume, pause, resume, with the thread never looking in between (the
    // race the concurrency test found: the second resume answered "not paused").
    assert_eq!(c.pause("test"), PauseOutcome::Paused);
    assert!(matches!(c.resume(None), Ok(ResumeOutcome::Resumed { .. })));
    assert_eq!(c.pause("test"), PauseOutcome::Paused);
    assert!(matches!(c.resume(None), Ok(ResumeOutcome::Resumed { .. })));
    assert!(!matches!(c.info().thread_state, ThreadState::Paused { .. }));
    // And ending on a pause leaves it paused, with no resume pending.
    assert_eq!(c.pause("test"), PauseOutcome::Paused);
    assert!(c.lock().resume.is_none());
    assert!(matches!(c.info().thread_state, ThreadState::Paused { .. }));
}

#[test]
fn a_resume_calls_off_a_pause_requested_during_a_proof_call() {
    let c = control();
    c.enter_proof_call("builtin C2");
    assert_eq!(c.pause("test"), PauseOutcome::Requested);
    assert!(c.info().pause_requested);
    let at_a_state = c.resume(Some("PC1Done")).unwrap_err();
    assert!(
        at_a_state
            .to_string()
            .contains("its pause is still pending"),
        "{at_a_state}"
    );
    assert!(c.info().pause_requested, "the refusal changed nothing");
    assert_eq!(c.resume(None), Ok(ResumeOutcome::PauseCalledOff));
    assert!(!c.info().pause_requested);
    c.leave_proof_call();
    c.apply_requested_pause();
    assert!(!matches!(c.info().thread_state, ThreadState::Paused { .. }));
    assert_eq!(c.resume(None), Ok(ResumeOutcome::NotPaused));
}
