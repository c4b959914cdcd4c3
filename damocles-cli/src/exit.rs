//! Exit codes, the same for both command lines, and [`CliError`]: every failure a command
//! reports has one [`ErrorKind`], which alone decides its exit code and its JSON `kind`.

use damocles_core::AdminError;
use damocles_rpc::client::CallError;

/// Success.
pub const OK: u8 = 0;
/// Any other failure.
pub const FAILED: u8 = 1;
/// Bad input: a bad argument, an unknown thread or state, a bad config file.
pub const BAD_INPUT: u8 = 2;
/// The worker (or manager) could not be reached.
pub const UNREACHABLE: u8 = 3;
/// The credentials were refused.
pub const UNAUTHORIZED: u8 = 4;
/// A second signal stopped the process without waiting for its proof calls (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

/// The reader of standard output went away (`… | head -1`): the process exits quietly
/// with the code a shell gives a command killed by SIGPIPE (128 + 13).
pub const BROKEN_PIPE: u8 = 141;

/// Writes `text` to standard output. When the reader has gone away, exits at once with
/// [`BROKEN_PIPE`] and no message, as a command killed by SIGPIPE would (Rust ignores
/// SIGPIPE, so `print!` would panic instead).
pub fn print_out(text: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = write!(out, "{text}").and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(BROKEN_PIPE));
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(i32::from(FAILED));
    }
}

/// What kind of failure a command reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad argument, an unknown thread or state, a bad config file.
    BadInput,
    /// The manager refused a request it understood (a job it will not create).
    Refused,
    /// The worker or manager could not be reached.
    Unreachable,
    /// The credentials were refused.
    Unauthorized,
    /// Anything else.
    Failed,
}

impl ErrorKind {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            ErrorKind::BadInput | ErrorKind::Refused => BAD_INPUT,
            ErrorKind::Unreachable => UNREACHABLE,
            ErrorKind::Unauthorized => UNAUTHORIZED,
            ErrorKind::Failed => FAILED,
        }
    }

    /// The `kind` of the `--json` error object.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Refused => "refused",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Failed => "failed",
        }
    }
}

impl From<&AdminError> for ErrorKind {
    fn from(error: &AdminError) -> Self {
        match error {
            AdminError::ThreadNotFound { .. }
            | AdminError::InvalidState(_)
            | AdminError::ResumeRefused { .. } => ErrorKind::BadInput,
            AdminError::Remote { code, .. } if *code == damocles_rpc::jsonrpc::INVALID_PARAMS => {
                ErrorKind::BadInput
            }
            AdminError::Unreachable { .. } => ErrorKind::Unreachable,
            AdminError::Unauthorized { .. } => ErrorKind::Unauthorized,
            // Internal and remote failures, and kinds added after this was written.
            _ => ErrorKind::Failed,
        }
    }
}

impl From<&CallError> for ErrorKind {
    fn from(error: &CallError) -> Self {
        match error {
            CallError::Unreachable { .. } => ErrorKind::Unreachable,
            // The manager answers, but cannot read its records (its database is down).
            CallError::Rpc(e) if e.code == damocles_rpc::manager::RECORDS_UNREADABLE => {
                ErrorKind::Unreachable
            }
            CallError::Unauthorized { .. } => ErrorKind::Unauthorized,
            _ => ErrorKind::Failed,
        }
    }
}

/// A failure as a command reports it: `error: <message>` on stderr (or the `--json` error
/// object on stdout) and the exit code of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// What kind.
    pub kind: ErrorKind,
    /// What went wrong, for a person.
    pub message: String,
}

impl CliError {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Bad input.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }

    /// Any other failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    /// An admin failure, its message passed through `prefix`.
    pub fn admin(error: &AdminError, prefix: impl FnOnce(&str) -> String) -> Self {
        Self::new(error.into(), prefix(&error.to_string()))
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.kind.code()
    }
}

impl From<AdminError> for CliError {
    fn from(error: AdminError) -> Self {
        Self::admin(&error, str::to_owned)
    }
}
