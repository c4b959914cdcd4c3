//! The server side of the manager's piece store: `GET /piecestore/{piece cid}` from a
//! directory, `PUT` of unsealed pieces (and venus-market's `PUT /resource` stand-in), each
//! upload bounded, checked against its piece CID and published without replacing a good
//! piece. The worker's client is [`crate::piecestore::HttpPieceStore`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use damocles_core::piece::{self, NotThePiece, PieceCheck, PieceFetchError, PieceStore};
use damocles_core::sealer_api::Cid;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::conn::HttpResponse;

/// The path prefix of the piece store.
pub const PIECE_STORE_PATH: &str = "/piecestore/";

fn plain(status: StatusCode, text: String) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::from(text + "\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Answers `GET /piecestore/{cid}` from `dir` (`<dir>/<cid>`), or else from `fallback`
/// (fetched into `dir` first): 200 with the bytes, 404 for a piece neither holds, 503
/// when the fallback cannot be read now, 400 for a name that is not a piece CID (so no
/// path outside `dir` is ever read). The file is read whole: the mock's pieces are at
/// most a test sector's size.
pub async fn serve_piece(
    dir: &Path,
    fallback: Option<&dyn PieceStore>,
    request_path: &str,
) -> HttpResponse {
    let name = request_path
        .strip_prefix(PIECE_STORE_PATH)
        .unwrap_or_default();
    let cid = Cid {
        text: name.to_owned(),
    };
    if let Err(e) = piece::comm_p(&cid) {
        return plain(StatusCode::BAD_REQUEST, e.to_string());
    }
    let path = dir.join(name);
    if let Some(fallback) = fallback {
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            // The cache may have been removed: made again.
            if let Err(e) = tokio::fs::create_dir_all(dir).await {
                let detail = format!("cannot make {}: {e}", dir.display());
                return plain(StatusCode::INTERNAL_SERVER_ERROR, detail);
            }
            match fallback.fetch(&cid, &path, MAX_PIECE_BYTES).await {
                Ok(_) | Err(PieceFetchError::NotFound { .. }) => {}
                Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            }
        }
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut response = hyper::Response::new(Full::new(Bytes::from(bytes)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            plain(StatusCode::NOT_FOUND, format!("no piece {name} here"))
        }
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read piece {name}: {e}"),
        ),
    }
}

/// How uploads are taken: their deadlines and what checks their bytes.
#[derive(Clone)]
pub struct UploadRules {
    /// The longest wait for the next bytes of a body (408 past it).
    pub stall: Duration,
    /// What checks an upload's bytes against its piece CID (and bounds its size); `None`
    /// takes any bytes up to [`MAX_PIECE_BYTES`].
    pub check: Option<Arc<dyn PieceCheck>>,
}

/// The slowest average rate an upload may keep (bytes a second) once its first
/// [`UploadRules::stall`] has passed: a body that trickles a byte now and then is cut off
/// (408) instead of holding its connection for ever.
pub const MIN_UPLOAD_RATE: u64 = 1 << 20;

/// Answers `PUT /piecestore/{cid}`: the body is stored as `<dir>/unsealed/<cid>`, 201 once
/// stored (synced), 400 for a name that is not a piece CID, 404 for a piece the check
/// expects none of, 413 past the piece's size (or [`MAX_PIECE_BYTES`]), 422 for bytes that
/// are not the piece, 408 when the body makes no progress for `stall` or falls below
/// [`MIN_UPLOAD_RATE`] on average (a client that announces a length and sends nothing, or
/// a byte now and then, holds no connection longer). Each upload writes a temporary file
/// of its own, published without replacing a good piece: a piece once acknowledged stays
/// as it was. The same bytes sent again answer 201 (a resumed job sends its piece again).
/// Other bytes under a stored piece's CID: without a check, 409; with one, 201 when the
/// stored bytes give the CID too (a payload with or without its padding zeros: the piece
/// is there, kept), and the checked upload replaces stored bytes that fail the check
/// (stored before it, or by hand). A body announcing more than the piece holds is 413
/// before it is read.
pub async fn receive_piece(
    dir: &Path,
    request_path: &str,
    body: hyper::body::Incoming,
    rules: UploadRules,
) -> HttpResponse {
    let name = request_path
        .strip_prefix(PIECE_STORE_PATH)
        .unwrap_or_default();
    store_upload(
        &dir.join("unsealed"),
        name,
        body,
        rules,
        StatusCode::CREATED,
    )
    .await
}

/// The path of venus-market's piece upload, which the mock manager stands in for.
pub const MARKET_RESOURCE_PATH: &str = "/resource";

/// Answers venus-market's `PUT /resource?resource-id=<piece cid>&store=<store>` (where an
/// unseal job's `market://<store>/<cid>` destination is sent): the body is stored as
/// `<dir>/market/<store>/<cid>` under the rules of [`receive_piece`], answering 200 (what
/// venus-market answers, and the only status the original worker accepts); 400 for a
/// missing or bad `resource-id` or `store`.
pub async fn receive_market_piece(
    dir: &Path,
    query: &str,
    body: hyper::body::Incoming,
    rules: UploadRules,
) -> HttpResponse {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let value = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let store = value("store");
    if store.is_empty()
        || store.contains(['/', '\\'])
        || store.starts_with('.')
        || store.chars().any(char::is_control)
    {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("store {store:?} is not a store name"),
        );
    }
    let target = dir.join("market").join(store);
    store_upload(&target, value("resource-id"), body, rules, StatusCode::OK).await
}

/// Stores an upload of piece `name` in `dir` (see [`receive_piece`]), answering `done`
/// once it is stored.
async fn store_upload(
    dir: &Path,
    name: &str,
    body: hyper::body::Incoming,
    rules: UploadRules,
    done: StatusCode,
) -> HttpResponse {
    let cid = Cid {
        text: name.to_owned(),
    };
    if let Err(e) = piece::comm_p(&cid) {
        return plain(StatusCode::BAD_REQUEST, e.to_string());
    }
    let max = match &rules.check {
        None => MAX_PIECE_BYTES,
        Some(check) => match check.max_bytes(&cid) {
            Some(max) => max,
            None => {
                return plain(
                    StatusCode::NOT_FOUND,
                    format!("no deal here has piece {name}: nothing is expected under it"),
                )
            }
        },
    };
    let tmp = dir.join(format!("{name}.{:016x}.part", rand::random::<u64>()));
    let target = dir.join(name);
    // A body that announces more than the piece holds is refused before it is read.
    let outcome = if hyper::body::Body::size_hint(&body).lower() > max {
        Ok(Received::TooLarge)
    } else {
        receive_into(dir, &tmp, body, rules.stall, max).await
    };
    let outcome = match outcome {
        Ok(Received::Whole) => match checked(rules.check.as_ref(), &cid, &tmp).await {
            Ok(()) => publish(&tmp, &target, rules.check.as_ref(), &cid).await,
            Err(reason) => Ok(Received::NotThePiece(reason)),
        },
        other => other,
    };
    let _ = tokio::fs::remove_file(&tmp).await;
    match outcome {
        Ok(Received::Whole) => plain(done, format!("piece {name} stored")),
        Ok(Received::TooLarge) => plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("piece {name} holds at most {max} bytes"),
        ),
        Ok(Received::Stalled) => plain(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body of piece {name} made no progress for {:?} or came slower than {MIN_UPLOAD_RATE} bytes a second",
                rules.stall
            ),
        ),
        Ok(Received::Conflict) => plain(
            StatusCode::CONFLICT,
            format!("piece {name} is already stored with other bytes; it is kept as it was"),
        ),
        Ok(Received::NotThePiece(reason)) => plain(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not piece {name}: {reason}; nothing was stored"),
        ),
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store piece {name}: {e}"),
        ),
    }
}

/// What `check` says of `file` as piece `cid` (on a blocking thread); no check: ok.
async fn checked(
    check: Option<&Arc<dyn PieceCheck>>,
    cid: &Cid,
    file: &Path,
) -> Result<(), NotThePiece> {
    let Some(check) = check.cloned() else {
        return Ok(());
    };
    let (cid, file) = (cid.clone(), file.to_path_buf());
    tokio::task::spawn_blocking(move || check.check(&cid, &file))
        .await
        .map_err(|e| NotThePiece::new(format!("the piece check failed: {e}")))?
}

/// What became of an upload.
enum Received {
    Whole,
    TooLarge,
    Stalled,
    Conflict,
    NotThePiece(NotThePiece),
}

/// Writes `body` into the new file `tmp` (never an existing one) and syncs it: at most
/// `max` bytes, each frame within `stall`, the whole at [`MIN_UPLOAD_RATE`] on average
/// past the first `stall`.
async fn receive_into(
    dir: &Path,
    tmp: &Path,
    mut body: hyper::body::Incoming,
    stall: Duration,
    max: u64,
) -> std::io::Result<Received> {
    tokio::fs::create_dir_all(dir).await?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .await?;
    let started = tokio::time::Instant::now();
    let mut received = 0u64;
    loop {
        let allowed = stall + Duration::from_secs_f64(received as f64 / MIN_UPLOAD_RATE as f64);
        let wait = allowed.saturating_sub(started.elapsed()).min(stall);
        let Ok(frame) = tokio::time::timeout(wait, body.frame()).await else {
            return Ok(Received::Stalled);
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(std::io::Error::other)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > max {
            return Ok(Received::TooLarge);
        }
        file.write_all(&data).await?;
    }
    file.sync_all().await?;
    Ok(Received::Whole)
}

/// Publishes `tmp` as `target` unless `target` exists (a hard link fails then, atomically):
/// then it is `Whole` when both hold the same bytes. Other bytes: without a check, the
/// stored ones are kept (`Conflict`); with one, the stored ones are kept when they pass it
/// (`Whole`: the piece is there) and replaced by the checked `tmp` when they do not.
async fn publish(
    tmp: &Path,
    target: &Path,
    check: Option<&Arc<dyn PieceCheck>>,
    cid: &Cid,
) -> std::io::Result<Received> {
    let sync_dir = || async {
        match target.parent() {
            Some(dir) => tokio::fs::File::open(dir).await?.sync_all().await,
            None => Ok(()),
        }
    };
    match tokio::fs::hard_link(tmp, target).await {
        Ok(()) => {
            sync_dir().await?;
            Ok(Received::Whole)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let (a, b) = (tmp.to_path_buf(), target.to_path_buf());
            let same = tokio::task::spawn_blocking(move || same_bytes(&a, &b))
                .await
                .map_err(std::io::Error::other)??;
            if same {
                return Ok(Received::Whole);
            }
            if check.is_some() {
                // Both give the piece CID (the payload alone and the payload padded with
                // zeros do): the stored piece is the piece, kept. Stored bytes that are not
                // the piece are replaced by the checked upload.
                if checked(check, cid, target).await.is_err() {
                    tokio::fs::rename(tmp, target).await?;
                    sync_dir().await?;
                }
                return Ok(Received::Whole);
            }
            Ok(Received::Conflict)
        }
        Err(e) => Err(e),
    }
}

/// Whether two files hold the same bytes (read in 1 MiB blocks).
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut a, mut b) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
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

/// The largest piece a `PUT` may send: a 64GiB sector's unpadded bytes.
pub const MAX_PIECE_BYTES: u64 = (64 << 30) / 128 * 127;
