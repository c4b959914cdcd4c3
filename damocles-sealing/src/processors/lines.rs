//! A child's stdout as lines of bounded length, read cancel-safely.

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStdout;

/// The longest line a child may print on stdout (bytes): a ready line or one answer.
/// The largest real answer (a C2 proof, a PC1 output naming its layers' files) is a few
/// KiB; a longer line breaks the protocol and the child is killed, so that a child
/// printing without end never grows the worker.
pub(crate) const MAX_LINE: usize = 16 << 20;

/// Lines of a child's stdout, each at most `max` bytes (without its newline).
pub(crate) struct BoundedLines {
    reader: BufReader<ChildStdout>,
    max: usize,
    /// What was read of the current line: kept here, so that `next_line` can be
    /// cancelled (raced against the child's exit) without losing it.
    partial: Vec<u8>,
}

impl BoundedLines {
    pub(crate) fn new(stdout: ChildStdout, max: usize) -> Self {
        Self {
            reader: BufReader::new(stdout),
            max,
            partial: Vec::new(),
        }
    }

    /// The next line; `None` at the end of the output. Cancel-safe.
    ///
    /// # Errors
    /// `InvalidData` for a line over the bound (what was read of it is dropped), or the
    /// read's error.
    pub(crate) async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                if self.partial.is_empty() {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(end) => (end, true),
                None => (buf.len(), false),
            };
            if self.partial.len() + take > self.max {
                self.partial.clear();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("printed a line longer than {} bytes", self.max),
                ));
            }
            self.partial.extend_from_slice(&buf[..take]);
            self.reader.consume(if done { take + 1 } else { take });
            if done {
                break;
            }
        }
        String::from_utf8(std::mem::take(&mut self.partial))
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}
