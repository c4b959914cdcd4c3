//! Panics the worker expects from damaged files and reports as errors: a redb database
//! cut short, a replica a vanilla proof maps past its end. [`contain`] turns such a panic
//! into its message; [`quiet_contained_panics`] keeps those panics out of the log, where
//! the panic hook would otherwise print each one with a backtrace (thousands of lines for
//! one proving check under `RUST_BACKTRACE=1`), since the caller reports it as an error
//! naming the file. Every other panic reaches the hook that was installed before.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many [`contain`] calls this thread is inside.
    static CONTAINING: Cell<u32> = const { Cell::new(0) };
}

/// A panic [`contain`] caught: its message ("unknown panic" when it carries no text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ContainedPanic {
    /// The panic's text.
    pub message: String,
}

/// Runs `f`; a panic inside it becomes a [`ContainedPanic`].
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, ContainedPanic> {
    CONTAINING.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(c.get() - 1));
    result.map_err(|panic| ContainedPanic {
        message: message(&*panic),
    })
}

/// The text a panic carries.
pub fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Installs (once per process) a panic hook that stays silent for panics inside
/// [`contain`] and passes every other panic to the hook installed before it. The daemons
/// call it at start; an embedder that wants the same calls it too.
pub fn quiet_contained_panics() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINING.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_is_its_message_and_the_thread_goes_on() {
        quiet_contained_panics();
        let caught = |message: &str| ContainedPanic {
            message: message.to_owned(),
        };
        assert_eq!(contain(|| 7), Ok(7));
        let text = contain(|| -> () { panic!("cut short at {}", 4096) });
        assert_eq!(text, Err(caught("cut short at 4096")));
        let fixed = contain(|| -> () { std::panic::panic_any(17_u8) });
        assert_eq!(fixed, Err(caught("unknown panic")));
        // Outside, the count is back to zero: other panics reach the previous hook.
        assert_eq!(CONTAINING.with(Cell::get), 0);
        let nested = contain(|| contain(|| -> () { panic!("inner") }).unwrap_err());
        assert_eq!(nested, Ok(caught("inner")));
        assert_eq!(CONTAINING.with(Cell::get), 0);
    }
}
