//! The `transfer` task.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use damocles_core::{Failure, ProofStage};
use serde::{Deserialize, Serialize};

use super::ProcessorTask;

/// A store a [`Transfer`] names, with the manager's metadata of it (for transfer
/// programs that write to object stores; files need none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStoreInfo {
    /// The store's name.
    pub name: String,
    /// The manager's metadata of it (`null` when it has none).
    pub meta: Option<HashMap<String, String>>,
}

/// One end of a [`TransferRoute`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferItem {
    /// The store it is in (a key of [`Transfer::stores`]); `null` for a local path.
    pub store_name: Option<String>,
    /// Its absolute path.
    pub uri: PathBuf,
}

/// How a route is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOption {
    /// Whether the source is a directory (informational, as in the original).
    pub is_dir: bool,
    /// Whether a symbolic link may stand in for a copy.
    pub allow_link: bool,
}

/// One file or directory to bring from `src` to `dest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRoute {
    /// Where it is.
    pub src: TransferItem,
    /// Where it goes.
    pub dest: TransferItem,
    /// How (`null`: a copy).
    pub opt: Option<TransferOption>,
}

/// Transfer: files and directories copied (or linked, where a route allows it), in
/// order. A file is copied through a temporary file renamed over the destination, so a
/// crash leaves the old file or the new one and a file hard-linked to the old one is
/// never written to; a directory is copied file by file. Answers `true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The stores the routes name, by name.
    pub stores: HashMap<String, TransferStoreInfo>,
    /// What to bring where.
    pub routes: Vec<TransferRoute>,
}

impl ProcessorTask for Transfer {
    const STAGE: ProofStage = ProofStage::Transfer;
    type Output = bool;

    fn execute(self) -> Result<Self::Output, Failure> {
        for route in &self.routes {
            transfer(route).map_err(|e| {
                Failure::critical(format!(
                    "transfer {} to {}: {e}",
                    route.src.uri.display(),
                    route.dest.uri.display()
                ))
            })?;
        }
        Ok(true)
    }
}

fn transfer(route: &TransferRoute) -> io::Result<()> {
    let (src, dest) = (&route.src.uri, &route.dest.uri);
    if !src.is_absolute() || !dest.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "both paths must be absolute",
        ));
    }
    let is_dir = fs::metadata(src)?.is_dir();
    if overlaps(src, dest)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the destination is the source, lies inside it or holds it",
        ));
    }
    if let Ok(existing) = fs::symlink_metadata(dest) {
        if existing.is_dir() != is_dir {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the destination exists as a different kind (a file where a directory goes, or the reverse)",
            ));
        }
        if existing.is_dir() {
            fs::remove_dir_all(dest)?;
        } else if existing.is_symlink() {
            fs::remove_file(dest)?;
        }
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    if route.opt.is_some_and(|opt| opt.allow_link) {
        if dest.exists() {
            fs::remove_file(dest)?;
        }
        return std::os::unix::fs::symlink(src, dest);
    }
    if is_dir {
        copy_dir(src, dest)
    } else {
        copy_whole(src, dest)
    }
}

/// Whether `dest` (not followed, where it is a link) is `src`, or one holds the other:
/// removing or filling `dest` would then destroy `src`.
fn overlaps(src: &Path, dest: &Path) -> io::Result<bool> {
    let src = fs::canonicalize(src)?;
    let parent = dest.parent().unwrap_or(dest);
    let Ok(parent) = fs::canonicalize(parent) else {
        // Its directory does not exist yet: it holds nothing.
        return Ok(false);
    };
    let dest = match dest.file_name() {
        Some(name) => parent.join(name),
        None => parent,
    };
    Ok(dest.starts_with(&src) || src.starts_with(&dest))
}

fn copy_dir(src: &Path, dest: &Path) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let to = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else {
            copy_whole(&entry.path(), &to)?;
        }
    }
    Ok(())
}

/// Copies `from` to `to` through a temporary file renamed over `to`.
fn copy_whole(from: &Path, to: &Path) -> io::Result<()> {
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    fs::copy(from, &tmp)?;
    fs::rename(&tmp, to)
}
