//! Failure levels: what a step's error means for the thread that met it.

use std::error::Error as StdError;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a failure is, which decides what the thread does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureLevel {
    /// Try the same state again after `recover_interval`, up to `max_retries` times, then
    /// escalate to [`FailureLevel::Permanent`].
    Temporary,
    /// Retrying will not help: the thread pauses with the error as `last_error`.
    Permanent,
    /// A local or infrastructure fault (state store, state machine): the thread pauses.
    Critical,
    /// Give up this sector: report it aborted, clean up, take the next one.
    Abort,
}

impl FailureLevel {
    /// The lower-case name used at the start of `last_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureLevel::Temporary => "temporary",
            FailureLevel::Permanent => "permanent",
            FailureLevel::Critical => "critical",
            FailureLevel::Abort => "abort",
        }
    }

    /// Whether a failure of this level pauses the thread (once retries are spent, for
    /// temporary ones).
    pub fn pauses(self) -> bool {
        matches!(self, FailureLevel::Permanent | FailureLevel::Critical)
    }

    /// The name the original reports in `ReportState`'s `Failure.Level`.
    pub fn report_name(self) -> &'static str {
        match self {
            FailureLevel::Temporary => "Temporary",
            FailureLevel::Permanent => "Permanent",
            FailureLevel::Critical => "Critical",
            FailureLevel::Abort => "Abort",
        }
    }
}

impl fmt::Display for FailureLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure: a level and a one-line message with its causes joined by `: `.
///
/// Displays as `<level>: <message>`, the form of `last_error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The level.
    pub level: FailureLevel,
    /// The message and its causes, on one line.
    pub message: String,
}

impl Failure {
    /// A failure of `level` with a message (newlines are folded into spaces, and the
    /// message cut to [`MESSAGE_KEPT`] bytes: it may quote what a manager, an HTTP server
    /// or a child process said, and it is stored with the thread and shown by `worker
    /// list`).
    pub fn new(level: FailureLevel, message: impl Into<String>) -> Self {
        Self {
            level,
            message: shortened(&one_line(&message.into()), MESSAGE_KEPT),
        }
    }

    /// A failure of `level` from an error, its whole `source()` chain joined by `: `.
    pub fn from_error(level: FailureLevel, error: &(dyn StdError + 'static)) -> Self {
        Self::new(level, error_chain(error))
    }

    /// The same failure at another level (e.g. a temporary one whose retries ran out).
    pub fn with_level(mut self, level: FailureLevel) -> Self {
        self.level = level;
        self
    }

    /// A temporary failure.
    pub fn temporary(message: impl Into<String>) -> Self {
        Self::new(FailureLevel::Temporary, message)
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(FailureLevel::Permanent, message)
    }

    /// A critical failure.
    pub fn critical(message: impl Into<String>) -> Self {
        Self::new(FailureLevel::Critical, message)
    }

    /// An abort.
    pub fn abort(message: impl Into<String>) -> Self {
        Self::new(FailureLevel::Abort, message)
    }

    /// Prefixes the message with what was being done: `context: message`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        let context = shortened(&one_line(&context.to_string()), MESSAGE_KEPT);
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.level, self.message)
    }
}

impl StdError for Failure {}

/// An error and its causes, joined by `: ` on one line, without repeating a cause that the
/// previous message already ends with.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    one_line(&text)
}

/// The longest failure message kept, in bytes (a few KiB: [`Failure::new`] cuts longer
/// ones, saying how much was cut).
pub const MESSAGE_KEPT: usize = 4096;

/// `text`, cut to at most `max` bytes (at a character boundary) with a note of how many
/// bytes were cut: `"<head>… (N more bytes cut)"`. Text from outside the process (an
/// error body, a child's output) goes through this before it is stored or shown.
pub fn shortened(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes cut)", &text[..end], text.len() - end)
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("read params")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn displays_level_then_message_with_causes_on_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let failure = Failure::from_error(FailureLevel::Permanent, &Outer(io));
        assert_eq!(failure.to_string(), "permanent: read params: no such file");
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        let failure = Failure::critical("state store\n  is corrupt\n");
        assert_eq!(failure.to_string(), "critical: state store is corrupt");
    }

    #[test]
    fn only_permanent_and_critical_pause() {
        assert!(!FailureLevel::Temporary.pauses());
        assert!(FailureLevel::Permanent.pauses());
        assert!(FailureLevel::Critical.pauses());
        assert!(!FailureLevel::Abort.pauses());
    }

    #[test]
    fn long_messages_are_cut_to_a_few_kib_saying_how_much() {
        let body = "é".repeat(100_000);
        let failure = Failure::permanent(format!("HTTP 500: {body}")).context("upload");
        assert!(
            failure.message.len() < MESSAGE_KEPT + 64,
            "{}",
            failure.message.len()
        );
        assert!(failure.message.starts_with("upload: HTTP 500: é"));
        assert!(
            failure.message.ends_with("more bytes cut)"),
            "{}",
            &failure.message[4000..]
        );
        assert_eq!(shortened("short", 10), "short");
        assert_eq!(shortened("abcdef", 3), "abc… (3 more bytes cut)");
    }

    #[test]
    fn context_goes_before_the_message() {
        let failure = Failure::temporary("connection refused").context("rpc error");
        assert_eq!(
            failure.to_string(),
            "temporary: rpc error: connection refused"
        );
    }
}
