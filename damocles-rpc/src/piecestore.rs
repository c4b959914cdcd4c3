//! The manager's piece store over HTTP: `GET {manager origin}/piecestore/{piece cid}`
//! answers a deal's payload (reference §8: the worker's remote piece store), and `PUT` at
//! the same path stores an unsealed piece an unseal job sends back. [`serve_piece`] and
//! [`receive_piece`] are the server side (a directory of pieces by CID; unsealed ones in
//! its `unsealed/`); [`HttpPieceStore`] is the worker side, a [`PieceStore`] that streams
//! a piece into a file, and PUTs unsealed pieces to the manager or to any `http://` URL.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use damocles_core::piece::{
    self, NotThePiece, PieceCheck, PieceFetchError, PieceStore, PieceUploadError,
};
use damocles_core::sealer_api::Cid;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;

use crate::client::Timeouts;
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

/// How much of an error answer's body is read and kept (bytes): it goes into the thread's
/// last error, which must stay small whatever a server sends.
const ERROR_BODY_KEPT: usize = 4096;

/// The first `max` bytes of `body` as text (lossy), read within `deadline`; the rest is
/// never read (the connection is dropped with it).
async fn body_head(mut body: hyper::body::Incoming, max: usize, deadline: Duration) -> String {
    let mut head = Vec::new();
    let read = async {
        while head.len() < max {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let room = max - head.len();
                        head.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(deadline, read).await;
    String::from_utf8_lossy(&head).trim().to_owned()
}

/// The largest piece a `PUT` may send: a 64GiB sector's unpadded bytes.
pub const MAX_PIECE_BYTES: u64 = (64 << 30) / 128 * 127;

/// A client builder whose idle connections close before a server's idle timeout.
fn pooled() -> hyper_util::client::legacy::Builder {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .to_owned()
}

/// A manager's piece store, read over HTTP. Its `Debug` never shows the token.
pub struct HttpPieceStore {
    /// Every manager's `host:port`, in the configured order.
    addresses: Vec<String>,
    /// The one that answered last: tried first.
    current: std::sync::atomic::AtomicUsize,
    token: Option<String>,
    timeouts: Timeouts,
    http: Client<crate::tls::Connector, Empty<Bytes>>,
    uploads: Client<crate::tls::Connector, Full<Bytes>>,
}

impl std::fmt::Debug for HttpPieceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPieceStore")
            .field("addresses", &self.addresses)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl HttpPieceStore {
    /// The piece store of the managers at `manager` (a multiaddr or a URL, as
    /// `[sector_manager] rpc_client.addr`, or a comma-separated list of them), sending
    /// `token` as a bearer token. A piece is asked of the manager that answered last,
    /// then of the others in order while one cannot be reached or lacks it. Each
    /// connection must be made within `timeouts.connect`, and each part of the answer
    /// must arrive within `timeouts.request` of the one before (the whole transfer has no
    /// limit: pieces can be many GiB).
    ///
    /// # Errors
    ///
    /// The address's problem, when it is neither a multiaddr nor a URL.
    pub fn new(
        manager: &str,
        token: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self, crate::sealer::InvalidManagerAddress> {
        let addresses = crate::sealer::manager_host_ports(manager)?;
        let connector = crate::tls::default_connector(timeouts.connect);
        Ok(Self {
            addresses,
            current: std::sync::atomic::AtomicUsize::new(0),
            token,
            timeouts,
            http: pooled().build(connector.clone()),
            uploads: pooled().build(connector),
        })
    }

    /// The same store verifying `https://` managers and destinations against `trust`.
    ///
    /// # Errors
    ///
    /// [`crate::tls::TlsError`] when the trust's CA file cannot be used.
    pub fn with_tls(mut self, trust: &crate::tls::TlsTrust) -> Result<Self, crate::tls::TlsError> {
        let connector = trust.connector(self.timeouts.connect)?;
        self.http = pooled().build(connector.clone());
        self.uploads = pooled().build(connector);
        Ok(self)
    }

    /// PUTs the file `src` at `url` (`http://` or `https://`), with `token` as a bearer token;
    /// `only_ok`: only 200 is success, any other status a refusal (venus-market's rule).
    async fn send(
        &self,
        url: &str,
        src: &Path,
        token: Option<&str>,
        only_ok: bool,
    ) -> Result<(), PieceUploadError> {
        let target = || url.to_owned();
        // Read whole: unsealed pieces are sent rarely, and a body of known length is what
        // any receiver takes.
        let bytes = tokio::fs::read(src)
            .await
            .map_err(|e| PieceUploadError::Local {
                target: target(),
                reason: format!("read {}: {e}", src.display()),
            })?;
        let unavailable = |reason: String| PieceUploadError::Unavailable {
            target: target(),
            reason,
        };
        let mut request = hyper::Request::put(url);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| PieceUploadError::Refused {
                target: target(),
                detail: format!("not a URL this worker can send to: {e}"),
            })?;
        let response = tokio::time::timeout(self.timeouts.request, self.uploads.request(request))
            .await
            .map_err(|_| unavailable(format!("no answer within {:?}", self.timeouts.request)))?
            .map_err(|e| unavailable(crate::client::innermost_cause(&e)))?;
        let status = response.status();
        if status == StatusCode::OK || (status.is_success() && !only_ok) {
            return Ok(());
        }
        let said = body_head(response.into_body(), ERROR_BODY_KEPT, self.timeouts.request).await;
        let detail = format!("HTTP {status}: {said}");
        if status.is_client_error() || only_ok {
            Err(PieceUploadError::Refused {
                target: target(),
                detail,
            })
        } else {
            Err(unavailable(detail))
        }
    }

    /// Runs `attempt` against each manager, the one that answered last first, while the
    /// answer is an error `try_next` says another manager may not give. When none
    /// answers, the error is the first `temporary` one (a manager that could not be
    /// reached may hold what the others lack), else the last.
    async fn with_failover<T, E, F>(
        &self,
        attempt: impl Fn(String) -> F,
        try_next: impl Fn(&E) -> bool,
        temporary: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: std::future::Future<Output = Result<T, E>>,
    {
        use std::sync::atomic::Ordering;
        let first = self.current.load(Ordering::Relaxed);
        let count = self.addresses.len();
        let mut kept: Option<E> = None;
        for tried in 0..count {
            let index = (first + tried) % count;
            let address = &self.addresses[index];
            match attempt(address.clone()).await {
                Ok(answer) => {
                    if index != first {
                        self.current.store(index, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
                Err(e) if try_next(&e) => {
                    if tried + 1 < count {
                        let next = &self.addresses[(index + 1) % count];
                        tracing::warn!("piece store {address}: {e}; asking {next}");
                    }
                    kept = match kept {
                        Some(earlier) if temporary(&earlier) => Some(earlier),
                        _ => Some(e),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Err(kept.expect("at least one manager is listed"))
    }

    async fn download(
        &self,
        address: &str,
        cid: &Cid,
        tmp: &Path,
        limit: u64,
    ) -> Result<u64, PieceFetchError> {
        let url = format!(
            "{}{PIECE_STORE_PATH}{}",
            crate::client::origin(address),
            cid.text
        );
        let unavailable = |reason: String| PieceFetchError::Unavailable {
            cid: cid.text.clone(),
            reason,
        };
        let mut request = hyper::Request::get(&url);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| unavailable(format!("GET {url}: {e}")))?;
        let response = tokio::time::timeout(self.timeouts.request, self.http.request(request))
            .await
            .map_err(|_| {
                unavailable(format!(
                    "GET {url}: no answer within {:?}",
                    self.timeouts.request
                ))
            })?
            .map_err(|e| {
                unavailable(format!("GET {url}: {}", crate::client::innermost_cause(&e)))
            })?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(PieceFetchError::NotFound {
                    cid: cid.text.clone(),
                    detail: format!("the manager's piece store {url} has no such piece"),
                })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(unavailable(format!(
                    "GET {url}: refused ({}): set [sector_manager] piece_token",
                    response.status()
                )))
            }
            status => return Err(unavailable(format!("GET {url}: HTTP {status}"))),
        }
        let local = |what: &str, e: std::io::Error| PieceFetchError::Local {
            cid: cid.text.clone(),
            reason: format!("{what} {}: {e}", tmp.display()),
        };
        let mut body = response.into_body();
        let mut file = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| local("create", e))?;
        let mut written = 0u64;
        loop {
            let frame = tokio::time::timeout(self.timeouts.request, body.frame())
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "GET {url}: the transfer stalled for {:?}",
                        self.timeouts.request
                    ))
                })?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| unavailable(format!("GET {url}: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            written += data.len() as u64;
            if written > limit {
                return Err(PieceFetchError::TooLarge {
                    cid: cid.text.clone(),
                    limit,
                });
            }
            file.write_all(&data).await.map_err(|e| local("write", e))?;
        }
        file.sync_all().await.map_err(|e| local("sync", e))?;
        Ok(written)
    }
}

#[async_trait]
impl PieceStore for HttpPieceStore {
    async fn upload(&self, cid: &Cid, src: &Path) -> Result<(), PieceUploadError> {
        self.with_failover(
            |address| {
                let url = format!(
                    "{}{PIECE_STORE_PATH}{}",
                    crate::client::origin(&address),
                    cid.text
                );
                async move { self.send(&url, src, self.token.as_deref(), false).await }
            },
            |e| matches!(e, PieceUploadError::Unavailable { .. }),
            |e| matches!(e, PieceUploadError::Unavailable { .. }),
        )
        .await
    }

    async fn put(&self, url: &str, src: &Path) -> Result<(), PieceUploadError> {
        // The manager's token stays with the manager.
        self.send(url, src, None, false).await
    }

    async fn put_market(
        &self,
        resource: &str,
        src: &Path,
        token: &str,
    ) -> Result<(), PieceUploadError> {
        self.send(resource, src, Some(token), true).await
    }

    async fn fetch(&self, cid: &Cid, dest: &Path, limit: u64) -> Result<u64, PieceFetchError> {
        // Into a temporary file renamed at the end: `dest` is whole or absent.
        let tmp = dest.with_extension("part");
        let result = self
            .with_failover(
                |address| {
                    let tmp = &tmp;
                    async move { self.download(&address, cid, tmp, limit).await }
                },
                |e| {
                    matches!(
                        e,
                        PieceFetchError::Unavailable { .. } | PieceFetchError::NotFound { .. }
                    )
                },
                |e| matches!(e, PieceFetchError::Unavailable { .. }),
            )
            .await;
        let result = match result {
            Ok(written) => tokio::fs::rename(&tmp, dest)
                .await
                .map(|()| written)
                .map_err(|e| PieceFetchError::Unavailable {
                    cid: cid.text.clone(),
                    reason: format!("rename {}: {e}", tmp.display()),
                }),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}
