//! Exit codes, the same for both command lines.

use damocles_core::AdminError;

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

/// The exit code and JSON kind of an admin failure.
pub fn classify(error: &AdminError) -> (u8, &'static str) {
    match error {
        AdminError::ThreadNotFound { .. }
        | AdminError::InvalidState(_)
        | AdminError::ResumeRefused { .. } => (BAD_INPUT, "bad_input"),
        AdminError::Remote { code, .. } if *code == damocles_rpc::jsonrpc::INVALID_PARAMS => {
            (BAD_INPUT, "bad_input")
        }
        AdminError::Unreachable { .. } => (UNREACHABLE, "unreachable"),
        AdminError::Unauthorized { .. } => (UNAUTHORIZED, "unauthorized"),
        // Internal and remote failures, and kinds added after this was written.
        _ => (FAILED, "failed"),
    }
}
