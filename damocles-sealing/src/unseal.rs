//! Unsealing: a deal piece read back out of a sealed replica (the labels regenerated from
//! the ticket, the replica decoded), checked against its piece CID, and delivered to the
//! destinations a manager names. Blocking, like [`crate::proofs`]: proof errors are
//! permanent, local I/O critical, a destination the worker cannot write to permanent.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use damocles_core::sealer_api::Cid;
use damocles_core::{piece, Failure, FailureLevel, UnsealTarget};
use filecoin_proofs_api::seal;
use filecoin_proofs_api::{UnpaddedByteIndex, UnpaddedBytesAmount};

use crate::paths::SectorPaths;
use crate::proofs::{create_parent, io_failure, proof_failure, registered, SealIdentity};

/// Where a thread keeps the unsealed bytes of `piece` until they are delivered:
/// `<data dir>/unsealed-pieces/<piece cid>`.
pub fn unsealed_piece_path(data_dir: &Path, target: &UnsealTarget) -> PathBuf {
    data_dir
        .join("unsealed-pieces")
        .join(&target.piece_cid.text)
}

/// Unseals `target` out of the replica in `paths` (its `sealed` file and a `cache_dir`
/// holding `p_aux`, `t_aux` and tree R, where the labels are regenerated) into `out`
/// (written whole: `target.size` unpadded bytes, the deal's payload and the zeros after
/// it), then checks that the bytes give the piece's CID. Returns how many bytes were
/// written. A mismatch is permanent: the ticket, comm_d or offset are not the piece's.
pub fn unseal_piece(
    id: SealIdentity,
    paths: &SectorPaths,
    ticket: [u8; 32],
    target: &UnsealTarget,
    out: &Path,
) -> Result<u64, Failure> {
    create_parent(out)?;
    let file = File::create(out).map_err(|e| io_failure("create", out, e))?;
    let written = seal::get_unsealed_range_mapped(
        registered(id.proof),
        &paths.cache_dir,
        &paths.sealed,
        file,
        crate::proofs::prover_id(id.sector.miner),
        filecoin_proofs_api::SectorId::from(id.sector.number),
        target.comm_d,
        ticket,
        UnpaddedByteIndex(target.offset),
        UnpaddedBytesAmount(target.size),
    )
    .map_err(|e| proof_failure(FailureLevel::Permanent, "unseal", e))?;
    let reader = BufReader::new(File::open(out).map_err(|e| io_failure("read", out, e))?);
    let info = seal::generate_piece_commitment(registered(id.proof), reader, written)
        .map_err(|e| proof_failure(FailureLevel::Permanent, "unsealed piece commitment", e))?;
    let found = piece::piece_cid(&info.commitment);
    if found != target.piece_cid {
        return Err(Failure::permanent(format!(
            "the unsealed bytes of {} give piece CID {}: the job's offset, size, ticket or \
             comm_d are not the piece's",
            target.piece_cid.text, found.text
        )));
    }
    Ok(written.0)
}

/// Copies `from` to `to` through `<to>.part`, creating `to`'s directory: `to` is whole or
/// absent.
pub fn deliver_copy(from: &Path, to: &Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::permanent(format!("deliver the piece to {}: {e}", to.display()))
    };
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".part");
    fs::copy(from, &tmp).map_err(fail)?;
    fs::rename(&tmp, to).map_err(fail)
}

/// Where an unsealed piece goes, from a URL of `AcquireUnsealDest`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// `file:///<path>`: a local copy.
    File(PathBuf),
    /// `http(s)://…`: an HTTP PUT of the bytes.
    Http(String),
    /// `store://<instance>/<path>`: `<path>` inside the attached store `<instance>`.
    Store {
        /// The attached store's name.
        instance: String,
        /// The path inside it (relative, no `..`).
        path: PathBuf,
    },
    /// `store:///<piece cid>`: the manager's piece store (`PUT /piecestore/<cid>`); the
    /// CID as written (it must be the piece's).
    PieceStore(String),
}

/// Reads a destination URL of an unseal of `piece`. An unknown scheme, a path that could
/// leave its store, or a piece store URL naming another piece is a permanent failure
/// naming the URL.
pub fn destination_of(url: &str, piece: &Cid) -> Result<Destination, Failure> {
    let destination = parse_destination(url)?;
    if let Destination::PieceStore(named) = &destination {
        if *named != piece.text {
            return Err(Failure::permanent(format!(
                "unseal destination {url:?}: the piece store takes the piece under its own \
                 CID: store:///{}",
                piece.text
            )));
        }
    }
    Ok(destination)
}

/// Reads a destination URL. An unknown scheme, or a path that could leave its store, is
/// a permanent failure naming the URL.
pub fn parse_destination(url: &str) -> Result<Destination, Failure> {
    let bad = |why: &str| Failure::permanent(format!("unseal destination {url:?}: {why}"));
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(bad("a file URL needs an absolute path (file:///…)"));
        }
        return Ok(Destination::File(PathBuf::from(path)));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Destination::Http(url.to_owned()));
    }
    if let Some(rest) = url.strip_prefix("store://") {
        let (instance, path) = rest.split_once('/').unwrap_or((rest, ""));
        if instance.is_empty() {
            return Ok(Destination::PieceStore(path.to_owned()));
        }
        let path = Path::new(path);
        if path.as_os_str().is_empty()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad("a store URL needs a relative path inside the store"));
        }
        return Ok(Destination::Store {
            instance: instance.to_owned(),
            path: path.to_path_buf(),
        });
    }
    let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
    Err(bad(&format!(
        "unsupported url scheme {scheme:?} (file, http, https and store are)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_read_by_scheme_and_bad_ones_named() {
        assert_eq!(
            parse_destination("file:///tmp/p"),
            Ok(Destination::File("/tmp/p".into()))
        );
        assert_eq!(
            parse_destination("https://h/x"),
            Ok(Destination::Http("https://h/x".into()))
        );
        assert_eq!(
            parse_destination("store://remote/pieces/p"),
            Ok(Destination::Store {
                instance: "remote".into(),
                path: "pieces/p".into()
            })
        );
        assert_eq!(
            parse_destination("store:///baga6ea4sea"),
            Ok(Destination::PieceStore("baga6ea4sea".into()))
        );
        for (url, why) in [
            ("market://s/p", "unsupported url scheme \"market\""),
            ("ftp://h/p", "unsupported url scheme \"ftp\""),
            ("file://relative", "absolute path"),
            (
                "store://remote/../etc/passwd",
                "relative path inside the store",
            ),
            ("store://remote", "relative path inside the store"),
        ] {
            let err = parse_destination(url).expect_err(url).to_string();
            assert!(err.contains(why) && err.contains(url), "{url}: {err}");
        }
    }
}
