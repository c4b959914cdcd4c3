//! The manager's piece store over HTTP: `GET {manager origin}/piecestore/{piece cid}`
//! answers a deal's payload (reference §8: the worker's remote piece store).
//! [`serve_piece`] is the server side (from a directory of pieces by CID);
//! [`HttpPieceStore`] is the worker side, a [`PieceStore`] that streams the bytes into a
//! file.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use damocles_core::piece::{self, PieceFetchError, PieceStore};
use damocles_core::sealer_api::Cid;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::StatusCode;
use hyper_util::client::legacy::connect::HttpConnector;
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

/// Answers `GET /piecestore/{cid}` from `dir` (`<dir>/<cid>`): 200 with the bytes, 404
/// for a piece it does not hold, 400 for a name that is not a piece CID (so no path
/// outside `dir` is ever read). The file is read whole: the mock's pieces are at most a
/// test sector's size.
pub async fn serve_piece(dir: &Path, request_path: &str) -> HttpResponse {
    let name = request_path
        .strip_prefix(PIECE_STORE_PATH)
        .unwrap_or_default();
    let cid = Cid {
        text: name.to_owned(),
    };
    if let Err(e) = piece::comm_p(&cid) {
        return plain(StatusCode::BAD_REQUEST, e.to_string());
    }
    match tokio::fs::read(dir.join(name)).await {
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

/// A manager's piece store, read over HTTP. Its `Debug` never shows the token.
pub struct HttpPieceStore {
    address: String,
    token: Option<String>,
    timeouts: Timeouts,
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for HttpPieceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPieceStore")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl HttpPieceStore {
    /// The piece store of the manager at `manager` (a multiaddr or a URL, as
    /// `[sector_manager] rpc_client.addr`), sending `token` as a bearer token. Each
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
        let address = crate::sealer::manager_host_port(manager)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeouts.connect));
        Ok(Self {
            address,
            token,
            timeouts,
            http: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build(connector),
        })
    }

    async fn download(&self, cid: &Cid, tmp: &Path, limit: u64) -> Result<u64, PieceFetchError> {
        let url = format!("http://{}{PIECE_STORE_PATH}{}", self.address, cid.text);
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
            .map_err(|e| unavailable(format!("GET {url}: {e}")))?;
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
    async fn fetch(&self, cid: &Cid, dest: &Path, limit: u64) -> Result<u64, PieceFetchError> {
        // Into a temporary file renamed at the end: `dest` is whole or absent.
        let tmp = dest.with_extension("part");
        let result = self.download(cid, &tmp, limit).await;
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
