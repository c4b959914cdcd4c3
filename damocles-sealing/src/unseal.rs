//! Unsealing: a deal piece read back out of a sealed replica (the labels regenerated from
//! the ticket, the replica decoded), checked against its piece CID, and delivered to the
//! destinations a manager names. Blocking, like [`crate::proofs`]: proof errors are
//! permanent, local I/O critical, a destination the worker cannot write to permanent.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Component, Path, PathBuf};

use damocles_core::sealer_api::Cid;
use damocles_core::{piece, Failure, FailureLevel, UnsealTarget};
use filecoin_proofs_api::seal;
use filecoin_proofs_api::{UnpaddedByteIndex, UnpaddedBytesAmount};

use crate::paths::SectorPaths;
use crate::proofs::tasks::{ProcessorTask, Unseal};
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
    let written = unseal_task(id, paths, ticket, target, out)?.execute()?;
    unseal_done(id, target, out, written)
}

/// The unseal task (in-process or for a processor) of [`unseal_piece`], once `out`'s
/// directory is made.
pub fn unseal_task(
    id: SealIdentity,
    paths: &SectorPaths,
    ticket: [u8; 32],
    target: &UnsealTarget,
    out: &Path,
) -> Result<Unseal, Failure> {
    create_parent(out)?;
    Ok(Unseal {
        registered_proof: registered(id.proof),
        prover_id: crate::proofs::prover_id(id.sector.miner),
        sector_id: filecoin_proofs_api::SectorId::from(id.sector.number),
        comm_d: target.comm_d,
        ticket,
        cache_dir: paths.cache_dir.clone(),
        sealed_file: paths.sealed.clone(),
        unsealed_output: out.to_path_buf(),
        offset: UnpaddedByteIndex(target.offset),
        num_bytes: UnpaddedBytesAmount(target.size),
    })
}

/// Checks what an unseal wrote into `out` (`written` bytes): they must give the piece's
/// CID. Returns `written`.
pub fn unseal_done(
    id: SealIdentity,
    target: &UnsealTarget,
    out: &Path,
    written: UnpaddedBytesAmount,
) -> Result<u64, Failure> {
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

/// The config key naming the directories `file://` unseal destinations may write into.
pub const FILE_DIRS_KEY: &str = "[worker] unseal_file_dirs";

/// Where a `file://` destination may be written: `path` must lie inside one of `allowed`
/// (the directories of [`FILE_DIRS_KEY`]) without `..`. Returns that directory and the
/// path. A path outside them, or any path while none is configured, is a permanent
/// failure naming the key.
pub fn confine_file<'a>(path: &Path, allowed: &'a [PathBuf]) -> Result<&'a Path, Failure> {
    let refuse = |why: String| {
        Failure::permanent(format!(
            "unseal destination file://{}: {why}",
            path.display()
        ))
    };
    if allowed.is_empty() {
        return Err(refuse(format!(
            "file destinations are refused while {FILE_DIRS_KEY} names no directory"
        )));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(refuse("a path with `..` is refused".into()));
    }
    allowed
        .iter()
        .find(|dir| path.starts_with(dir) && path != dir.as_path())
        .map(PathBuf::as_path)
        .ok_or_else(|| {
            refuse(format!(
                "outside the directories of {FILE_DIRS_KEY} ({})",
                allowed
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Copies `from` to `to`, which must stay inside `root` (an allowed directory, made if
/// missing, or an attached store): `to`'s directories are made inside `root`, and a link that leads out
/// of it (in a directory or as `to` itself) is refused. `to` is whole or absent: the copy
/// goes to a temporary file of its own and is published without replacing anything. An
/// existing `to` is left as it is: when it holds the same bytes (this job's earlier
/// output) the delivery is done, else it is refused. Every refusal is permanent and names
/// its rule.
pub fn deliver_copy(from: &Path, to: &Path, root: &Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::permanent(format!("deliver the piece to {}: {e}", to.display()))
    };
    let refuse =
        |why: &str| Failure::permanent(format!("deliver the piece to {}: {why}", to.display()));
    let escapes = |why: &str| {
        Failure::permanent(format!(
            "deliver the piece to {}: {why} (it must stay inside {})",
            to.display(),
            root.display()
        ))
    };
    let (Some(dir), Some(file_name)) = (to.parent(), to.file_name()) else {
        return Err(refuse("not a file path"));
    };
    // The configured directory is made on first use, as a location is.
    fs::create_dir_all(root).map_err(fail)?;
    let real_root = fs::canonicalize(root).map_err(fail)?;
    fs::create_dir_all(dir).map_err(fail)?;
    let real_dir = fs::canonicalize(dir).map_err(fail)?;
    if !real_dir.starts_with(&real_root) {
        return Err(escapes("its directory leads out through a link"));
    }
    let target = real_dir.join(file_name);
    match fs::symlink_metadata(&target) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(escapes("it is a link, which is never followed"))
        }
        Ok(meta) if !meta.is_file() => return Err(refuse("it exists and is not a file")),
        _ => {}
    }
    let mut tmp_name = file_name.to_owned();
    tmp_name.push(format!(".{:016x}.part", rand::random::<u64>()));
    let tmp = real_dir.join(tmp_name);
    let published = fs::copy(from, &tmp)
        .and_then(|_| File::open(&tmp)?.sync_all())
        .and_then(|()| fs::hard_link(&tmp, &target));
    let _ = fs::remove_file(&tmp);
    match published {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if same_bytes(from, &target).map_err(fail)? {
                Ok(())
            } else {
                Err(refuse(
                    "a file with other bytes is there, and an existing file is never replaced",
                ))
            }
        }
        Err(e) => Err(fail(e)),
    }
}

/// Whether two files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
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
    /// `market://<store>/<piece cid>?host=<host:port>&scheme=<http|https>&token=<token>`:
    /// venus-market's piece store, as the Go manager hands it out
    /// (`modules/impl/sectors/unseal.go`) and the original worker sends it
    /// (`planner/unseal.rs`): `PUT <resource>` with `Authorization: Bearer <token>`,
    /// where exactly 200 is success.
    Market {
        /// `{scheme}://{host}/resource?resource-id=<piece cid>&store=<store>`.
        resource: String,
        /// The market's store the piece goes into.
        store: String,
        /// The piece CID as written.
        piece: String,
        /// The market's token (never shown: see [`redacted`]).
        token: String,
    },
}

/// `url` with its secrets replaced by `<hidden>`: the value of every `token` query
/// parameter (a `market://` destination carries one) and the password of a
/// `user:password@` part; for logs, errors, histories and listings.
pub fn redacted(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((user, host)) => {
                    let user = user.split_once(':').map_or(user, |(name, _)| name);
                    let hidden = if authority.contains(':') && user != authority {
                        ":<hidden>"
                    } else {
                        ""
                    };
                    format!("{scheme}://{user}{hidden}@{host}{path}")
                }
                None => head.to_owned(),
            }
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("token") => {
                    format!("{key}=<hidden>")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `text` (an error about delivering to `url`) with `url`'s secrets hidden wherever they
/// appear: the URL itself, and its token or password on their own (a server may echo the
/// `Authorization` header it was sent).
pub fn without_secrets(text: &str, url: &str) -> String {
    let mut text = text.replace(url, &redacted(url));
    let mut secrets: Vec<String> = Vec::new();
    if let Ok(parsed) = url::Url::parse(url) {
        secrets.extend(
            parsed
                .query_pairs()
                .filter(|(k, _)| k.eq_ignore_ascii_case("token"))
                .map(|(_, v)| v.into_owned()),
        );
        secrets.extend(parsed.password().map(str::to_owned));
    }
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        text = text.replace(secret.as_str(), "<hidden>");
    }
    text
}

/// Reads a destination URL of an unseal of `piece`. An unknown scheme, a path that could
/// leave its store, or a piece store URL naming another piece is a permanent failure
/// naming the URL.
pub fn destination_of(url: &str, piece: &Cid) -> Result<Destination, Failure> {
    let destination = parse_destination(url)?;
    if let Destination::PieceStore(named) | Destination::Market { piece: named, .. } = &destination
    {
        if *named != piece.text {
            return Err(Failure::permanent(format!(
                "unseal destination {:?}: the piece store takes the piece under its own \
                 CID ({})",
                redacted(url),
                piece.text
            )));
        }
    }
    Ok(destination)
}

/// Reads a destination URL. An unknown scheme, or a path that could leave its store, is
/// a permanent failure naming the URL.
pub fn parse_destination(url: &str) -> Result<Destination, Failure> {
    let bad = |why: &str| bad_destination(url, why);
    if url.starts_with("market://") {
        return market_destination(url);
    }
    if let Some(path) = url.strip_prefix("file://") {
        // RFC 8089: `file://localhost/…` is `file:///…`.
        let path = path.strip_prefix("localhost").unwrap_or(path);
        let path = Path::new(path);
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(bad(
                "a file URL needs an absolute path without .. (file:///…)",
            ));
        }
        return Ok(Destination::File(path.to_path_buf()));
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
        "unsupported url scheme {scheme:?} (file, http, https, store and market are)"
    )))
}

/// The permanent failure of a destination URL `url` (its secrets hidden), saying `why`.
fn bad_destination(url: &str, why: &str) -> Failure {
    Failure::permanent(format!("unseal destination {:?}: {why}", redacted(url)))
}

/// Reads a `market://<store>/<piece cid>?host=&scheme=&token=` URL as the original worker
/// does: the three query keys are required, the store is the URL's host, the piece CID
/// its path.
fn market_destination(text: &str) -> Result<Destination, Failure> {
    let bad = |why: &str| bad_destination(text, why);
    let url = url::Url::parse(text).map_err(|e| bad(&format!("not a URL ({e})")))?;
    let store = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
        bad("a market URL names its store as its host (market://<store>/<piece cid>)")
    })?;
    let piece = url.path().trim_matches('/');
    if piece.is_empty() || piece.contains('/') {
        return Err(bad(
            "a market URL's path is the piece CID (market://<store>/<piece cid>)",
        ));
    }
    let query = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                bad(&format!(
                    "a market URL needs its `{key}` query parameter (host, scheme and token)"
                ))
            })
    };
    let (host, scheme, token) = (query("host")?, query("scheme")?, query("token")?);
    if scheme != "http" && scheme != "https" {
        return Err(bad(&format!("scheme {scheme:?} is neither http nor https")));
    }
    let mut resource = url::Url::parse(&format!("{scheme}://{host}/resource"))
        .map_err(|e| bad(&format!("host {host:?} is not a host:port ({e})")))?;
    resource
        .query_pairs_mut()
        .append_pair("resource-id", piece)
        .append_pair("store", store);
    Ok(Destination::Market {
        resource: resource.into(),
        store: store.to_owned(),
        piece: piece.to_owned(),
        token,
    })
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
            parse_destination("file://localhost/srv/p"),
            Ok(Destination::File("/srv/p".into()))
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
        assert_eq!(
            parse_destination("market://s1/bagaP?token=se%2Fcret&scheme=http&host=127.0.0.1:41235"),
            Ok(Destination::Market {
                resource: "http://127.0.0.1:41235/resource?resource-id=bagaP&store=s1".into(),
                store: "s1".into(),
                piece: "bagaP".into(),
                token: "se/cret".into(),
            })
        );
        assert_eq!(
            redacted("market://s/p?host=h:1&scheme=http&token=secret"),
            "market://s/p?host=h:1&scheme=http&token=<hidden>"
        );
        assert_eq!(
            redacted("http://user:pw@127.0.0.1:1/x?token=secret&a=b"),
            "http://user:<hidden>@127.0.0.1:1/x?token=<hidden>&a=b"
        );
        assert_eq!(redacted("http://user@h/x"), "http://user@h/x");
        let url = "market://s/p?host=h:1&scheme=http&token=secret5";
        assert_eq!(
            without_secrets(&format!("{url}: HTTP 500: echo auth=Bearer secret5"), url),
            "market://s/p?host=h:1&scheme=http&token=<hidden>: HTTP 500: echo auth=Bearer <hidden>"
        );
        for (url, why) in [
            (
                "market://s/p?host=h:1&scheme=http",
                "`token` query parameter",
            ),
            ("market://s/p?host=h:1&token=t", "`scheme` query parameter"),
            (
                "market://s/p?scheme=ftp&host=h:1&token=secret",
                "neither http nor https",
            ),
            (
                "market:///p?scheme=http&host=h:1&token=secret",
                "names its store",
            ),
            ("ftp://h/p", "unsupported url scheme \"ftp\""),
            ("file://relative", "absolute path"),
            ("file:///srv/pieces/../../etc/x", "without .."),
            ("file://otherhost/x", "absolute path"),
            (
                "store://remote/../etc/passwd",
                "relative path inside the store",
            ),
            ("store://remote", "relative path inside the store"),
        ] {
            let err = parse_destination(url).expect_err(url).to_string();
            assert!(
                err.contains(why) && err.contains(&redacted(url)),
                "{url}: {err}"
            );
            assert!(!err.contains("secret"), "the token is never shown: {err}");
        }
    }

    /// Every way a manager or client could name a file outside what the operator allowed
    /// is refused with the rule, and nothing outside is created or changed.
    #[test]
    fn file_destinations_stay_inside_the_allowed_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let allowed = dir.path().join("retrieved");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&allowed).expect("allowed");
        fs::create_dir_all(&outside).expect("outside");
        let piece = dir.path().join("piece");
        fs::write(&piece, b"deal bytes").expect("piece");
        let dirs = vec![allowed.clone()];

        let none = confine_file(&allowed.join("p"), &[]).expect_err("no dirs");
        assert!(none.to_string().contains(FILE_DIRS_KEY), "{none}");
        for path in [
            PathBuf::from("/etc/x"),
            allowed.join("../outside/y"),
            allowed.clone(),
        ] {
            let err = confine_file(&path, &dirs).expect_err("outside");
            assert_eq!(err.level, FailureLevel::Permanent);
            assert!(
                err.to_string().contains(FILE_DIRS_KEY) || err.to_string().contains(".."),
                "{err}"
            );
        }
        let root = confine_file(&allowed.join("a/b"), &dirs).expect("inside");
        assert_eq!(root, allowed.as_path());

        // Delivered, and delivered again (a re-run step) to the same bytes.
        let to = allowed.join("sub/piece");
        deliver_copy(&piece, &to, &allowed).expect("delivered");
        deliver_copy(&piece, &to, &allowed).expect("the same bytes again");
        assert_eq!(fs::read(&to).expect("copy"), b"deal bytes");
        // An allowed directory that does not exist yet is made.
        let fresh = dir.path().join("fresh");
        deliver_copy(&piece, &fresh.join("p"), &fresh).expect("made");
        assert_eq!(fs::read(fresh.join("p")).expect("copy"), b"deal bytes");
        // An existing file with other bytes is never replaced.
        let victim = allowed.join("victim");
        fs::write(&victim, b"the operator's").expect("victim");
        let err = deliver_copy(&piece, &victim, &allowed).expect_err("replace");
        assert!(err.to_string().contains("never replaced"), "{err}");
        assert_eq!(fs::read(&victim).expect("victim"), b"the operator's");
        // Links out of the directory are not followed, as a directory or as the file.
        std::os::unix::fs::symlink(&outside, allowed.join("link")).expect("dir link");
        let err = deliver_copy(&piece, &allowed.join("link/y"), &allowed).expect_err("out");
        assert!(
            err.to_string().contains("leads out through a link"),
            "{err}"
        );
        std::os::unix::fs::symlink(outside.join("z"), allowed.join("z")).expect("file link");
        let err = deliver_copy(&piece, &allowed.join("z"), &allowed).expect_err("link");
        assert!(err.to_string().contains("is a link"), "{err}");
        assert_eq!(fs::read_dir(&outside).expect("outside").count(), 0);
        // No temporary file is left behind.
        let leftovers: Vec<_> = fs::read_dir(allowed.join("sub"))
            .expect("sub")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("piece")]);
    }
}
