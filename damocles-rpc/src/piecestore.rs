//! The manager's piece store over HTTP: `GET {manager origin}/piecestore/{piece cid}`
//! answers a deal's payload (reference §8: the worker's remote piece store), and `PUT` at
//! the same path stores an unsealed piece an unseal job sends back. The server side is
//! [`crate::piece_server`] (re-exported here); [`HttpPieceStore`] is the worker side, a
//! [`PieceStore`] that streams a piece into a file, and PUTs unsealed pieces to the
//! manager or to any `http(s)://` URL.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use damocles_core::piece::{PieceFetchError, PieceStore, PieceUploadError};
use damocles_core::sealer_api::Cid;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;

use crate::client::Timeouts;
pub use crate::piece_server::{
    receive_market_piece, receive_piece, serve_piece, UploadRules, MARKET_RESOURCE_PATH,
    MAX_PIECE_BYTES, MIN_UPLOAD_RATE, PIECE_STORE_PATH,
};

/// How much of an error answer's body is read and kept (bytes): it goes into the thread's
/// last error, which must stay small whatever a server sends.
const ERROR_BODY_KEPT: usize = 4096;

/// The first `max` bytes of `body` as text (lossy), read within `deadline`; the rest is
/// never read (the connection is dropped with it).
async fn body_head(mut body: Incoming, max: usize, deadline: Duration) -> String {
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
        let body = self.piece_body(&url, cid).await?;
        self.write_body(body, &url, cid, tmp, limit).await
    }

    /// `GET url`: the body of the piece, or why not (an error status in words).
    async fn piece_body(&self, url: &str, cid: &Cid) -> Result<Incoming, PieceFetchError> {
        let unavailable = |reason: String| PieceFetchError::Unavailable {
            cid: cid.text.clone(),
            reason,
        };
        let mut request = hyper::Request::get(url);
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
            StatusCode::OK => Ok(response.into_body()),
            StatusCode::NOT_FOUND => Err(PieceFetchError::NotFound {
                cid: cid.text.clone(),
                detail: format!("the manager's piece store {url} has no such piece"),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(unavailable(format!(
                "GET {url}: refused ({}): set [sector_manager] piece_token",
                response.status()
            ))),
            status => Err(unavailable(format!("GET {url}: HTTP {status}"))),
        }
    }

    /// Streams `body` into `tmp` (synced), at most `limit` bytes: how many were written.
    async fn write_body(
        &self,
        mut body: Incoming,
        url: &str,
        cid: &Cid,
        tmp: &Path,
        limit: u64,
    ) -> Result<u64, PieceFetchError> {
        let unavailable = |reason: String| PieceFetchError::Unavailable {
            cid: cid.text.clone(),
            reason,
        };
        let local = |what: &str, e: std::io::Error| PieceFetchError::Local {
            cid: cid.text.clone(),
            reason: format!("{what} {}: {e}", tmp.display()),
        };
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
