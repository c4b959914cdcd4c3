//! A JSON-RPC 2.0 server on hyper 1: POST with a JSON body (single requests, batches and
//! notifications; `Content-Type: application/json` required, as the original requires
//! it), a size limit on bodies, optional bearer tokens, graceful shutdown; connections
//! bounded in number and time ([`ConnectionLimits`]), batches in length and answers in
//! size ([`crate::protocol::ProtocolLimits`]).
//!
//! [`handle_body`] (in [`crate::protocol`]) is the whole protocol without HTTP, for tests
//! and fuzzing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::conn::{self, ConnectionLimits, HttpResponse, Refusal};
use crate::dialect::{in_dialect, Dialect};
use crate::jsonrpc::{RpcError, SERVER_BUSY, UNAUTHORIZED};
use crate::method::Permission;
pub use crate::method::{CallObserver, Caller, RpcService};
use crate::pages::{browser_guard, from_browser, Page, PageRequest, Pages, PAGES_PATH};
use crate::piecestore::{
    receive_market_piece, receive_piece, serve_piece, UploadRules, MARKET_RESOURCE_PATH,
    PIECE_STORE_PATH,
};
use crate::protocol::{error_answer, ProtocolLimits};
pub use crate::protocol::{handle_body, handle_body_observed, Answer};

/// Bodies above this many bytes are refused (HTTP 413).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// How a server behaves. Its `Debug` never shows the tokens.
#[derive(Clone)]
pub struct ServerOptions {
    /// Serve only this path (`/rpc/v0`); `None` serves every path, as the original
    /// worker does.
    pub path: Option<String>,
    /// The token that allows every method.
    pub admin_token: Option<String>,
    /// The token that allows the read methods.
    pub read_token: Option<String>,
    /// The largest body accepted.
    pub body_limit: usize,
    /// The most calls in one batch ([`crate::protocol::DEFAULT_BATCH_LIMIT`]).
    pub batch_limit: usize,
    /// The most bytes of one answer ([`crate::protocol::DEFAULT_ANSWER_LIMIT`]).
    pub answer_limit: usize,
    /// Told of every call (for metrics).
    pub observer: Option<CallObserver>,
    /// Timeouts and the most connections at once.
    pub connections: ConnectionLimits,
    /// What anyone who reaches the server can do when it requires no token, for the
    /// warning logged when it listens beyond loopback without one (default: the worker's
    /// "pause and resume threads").
    pub exposure: &'static str,
    /// Serve `GET /piecestore/{piece cid}` from this directory (the manager's piece
    /// store), to callers with any valid token when tokens are required.
    pub piece_dir: Option<PathBuf>,
    /// Asked for a piece `piece_dir` lacks (the records another manager shares); what it
    /// fetches is kept in `piece_dir`.
    pub piece_fallback: Option<Arc<dyn damocles_core::PieceStore>>,
    /// Checks each piece stored with `PUT` against its piece CID and bounds its size
    /// (the manager knows its deals' pieces); `None` takes any bytes up to
    /// [`crate::piecestore::MAX_PIECE_BYTES`].
    pub piece_check: Option<Arc<dyn damocles_core::PieceCheck>>,
    /// How protocol errors are answered ([`Dialect::GoJsonRpc`] for a server standing in
    /// for the Go damocles-manager).
    pub dialect: Dialect,
    /// Web pages served under [`PAGES_PATH`] (`/` redirects there): the manager's
    /// dashboard.
    pub pages: Option<Arc<dyn Pages>>,
    /// Names besides IP addresses and `localhost` by which a browser may reach this
    /// server ([`crate::pages::browser_guard`]).
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |t: &Option<String>| t.as_ref().map(|_| "<hidden>");
        f.debug_struct("ServerOptions")
            .field("path", &self.path)
            .field("admin_token", &hidden(&self.admin_token))
            .field("read_token", &hidden(&self.read_token))
            .field("body_limit", &self.body_limit)
            .field("batch_limit", &self.batch_limit)
            .field("answer_limit", &self.answer_limit)
            .field("observer", &self.observer.is_some())
            .field("connections", &self.connections)
            .field("exposure", &self.exposure)
            .field("piece_dir", &self.piece_dir)
            .field("piece_fallback", &self.piece_fallback.is_some())
            .field("piece_check", &self.piece_check.is_some())
            .field("dialect", &self.dialect)
            .field("pages", &self.pages.is_some())
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            path: None,
            admin_token: None,
            read_token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            batch_limit: crate::protocol::DEFAULT_BATCH_LIMIT,
            answer_limit: crate::protocol::DEFAULT_ANSWER_LIMIT,
            observer: None,
            connections: ConnectionLimits::default(),
            exposure: "pause and resume threads",
            piece_dir: None,
            piece_fallback: None,
            piece_check: None,
            dialect: Dialect::Standard,
            pages: None,
            allowed_hosts: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// Whether calls need a token.
    pub fn requires_token(&self) -> bool {
        self.admin_token.is_some() || self.read_token.is_some()
    }

    /// The warning a server listening on `addr` with these options deserves: one that
    /// listens beyond loopback without a token.
    pub fn exposure_warning(&self, addr: SocketAddr) -> Option<String> {
        (!addr.ip().is_loopback() && !self.requires_token()).then(|| {
            format!(
                "serving {addr} without a token: anyone who can reach it can {}; set an admin token, or listen on 127.0.0.1",
                self.exposure
            )
        })
    }

    /// What the `Authorization` header allows; `None` when it allows nothing.
    fn permission(&self, authorization: Option<&HeaderValue>) -> Option<Permission> {
        if !self.requires_token() {
            return Some(Permission::Admin);
        }
        let given = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?;
        if self.admin_token.as_deref().is_some_and(|t| same(t, given)) {
            Some(Permission::Admin)
        } else if self.read_token.as_deref().is_some_and(|t| same(t, given)) {
            Some(Permission::Read)
        } else {
            None
        }
    }
}

/// Compares without stopping at the first difference.
fn same(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A running server.
pub struct RpcServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RpcServer {
    /// Binds `addr` (port 0 picks a free one) and serves `service` until
    /// [`RpcServer::shutdown`].
    pub async fn bind(
        addr: &str,
        service: Arc<dyn RpcService>,
        options: ServerOptions,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        if let Some(warning) = options.exposure_warning(local_addr) {
            tracing::warn!("{warning}");
        }
        let (stop, stopped) = oneshot::channel();
        let limits = options.connections;
        let refusal = Refusal {
            content_type: "application/json; charset=utf-8",
            body: String::from_utf8(
                error_answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    RpcError::new(
                        SERVER_BUSY,
                        format!(
                            "too many connections: this server serves at most {} at once; try again shortly",
                            limits.max_connections
                        ),
                    ),
                )
                .body
                .unwrap_or_default(),
            )
            .unwrap_or_default(),
        };
        let router = Arc::new(routes(&options));
        let options = Arc::new(options);
        let task = tokio::spawn(conn::serve(
            listener,
            limits,
            refusal,
            stopped,
            move |remote, req| {
                let service = service.clone();
                let options = options.clone();
                let router = router.clone();
                async move { serve_http(&*service, &options, &router, remote, req).await }
            },
        ));
        Ok(Self {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets calls in progress finish (at most 10 s), and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// What serves a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The JSON-RPC API.
    Rpc,
    /// `/piecestore/<cid>`: read a piece, or store an unsealed one.
    Piece,
    /// venus-market's `/resource?resource-id=…`: store an unsealed piece.
    MarketPiece,
    /// The web pages ([`ServerOptions::pages`]).
    Pages,
    /// `/`, which redirects to the pages.
    Root,
}

/// The paths a server answers: the piece store's where it serves pieces, the API at its
/// path. A path the router does not know goes to the API when it has no path (as the
/// original worker's server answers every path), and is refused otherwise.
fn routes(options: &ServerOptions) -> matchit::Router<Route> {
    let mut router = matchit::Router::new();
    // Static, distinct paths: an insert fails only on a conflict, and the first route
    // of a path is kept (the piece store's, as it was before the router).
    let mut add = |path: &str, route| {
        if let Err(conflict) = router.insert(path, route) {
            tracing::warn!("the server does not route {path} to {route:?}: {conflict}");
        }
    };
    if options.piece_dir.is_some() {
        add(PIECE_STORE_PATH, Route::Piece);
        add(&format!("{PIECE_STORE_PATH}{{*cid}}"), Route::Piece);
        add(MARKET_RESOURCE_PATH, Route::MarketPiece);
    }
    if let Some(path) = &options.path {
        add(path, Route::Rpc);
    }
    if options.pages.is_some() {
        add(PAGES_PATH, Route::Pages);
        add(&format!("{PAGES_PATH}/"), Route::Pages);
        add(&format!("{PAGES_PATH}/{{*page}}"), Route::Pages);
        add("/", Route::Root);
    }
    router
}

async fn serve_http(
    service: &dyn RpcService,
    options: &ServerOptions,
    router: &matchit::Router<Route>,
    remote: SocketAddr,
    req: hyper::Request<Incoming>,
) -> HttpResponse {
    let route = router.at(req.uri().path()).ok().map(|found| *found.value);
    match (route, options.piece_dir.as_deref()) {
        (Some(Route::Piece), Some(dir)) => serve_piece_route(options, dir, false, req).await,
        (Some(Route::MarketPiece), Some(dir)) => serve_piece_route(options, dir, true, req).await,
        (Some(Route::Rpc), _) => serve_rpc(service, options, remote, req).await,
        (Some(Route::Pages), _) => serve_pages(options, req).await,
        (Some(Route::Root), _) => redirect(&format!("{PAGES_PATH}/")),
        (None, _) if options.path.is_none() => serve_rpc(service, options, remote, req).await,
        _ => {
            let error = RpcError::invalid_request(format!(
                "no API at {}; it is served at {}",
                req.uri().path(),
                options.path.as_deref().unwrap_or("/")
            ));
            http_answer(error_answer(StatusCode::NOT_FOUND, error))
        }
    }
}

/// The piece store's paths (`/piecestore/<cid>`, venus-market's `/resource`): GET reads
/// a piece with the read token, PUT stores an unsealed one with the admin token.
async fn serve_piece_route(
    options: &ServerOptions,
    dir: &std::path::Path,
    market: bool,
    req: hyper::Request<Incoming>,
) -> HttpResponse {
    let permission = options.permission(req.headers().get(AUTHORIZATION));
    let needed = match *req.method() {
        Method::GET if !market => Permission::Read,
        // Unsealed pieces come back with PUT: a write.
        Method::PUT => Permission::Admin,
        _ if market => {
            return not_allowed(
                "venus-market's /resource takes unsealed pieces with PUT",
                "PUT",
            );
        }
        _ => {
            return not_allowed(
                "pieces are read with GET and unsealed ones stored with PUT",
                "GET, PUT",
            );
        }
    };
    match (permission, needed) {
        (None, _) => {
            let error = RpcError::new(
                UNAUTHORIZED,
                "unauthorized: send a token as `Authorization: Bearer <token>`",
            );
            return http_answer(error_answer(StatusCode::UNAUTHORIZED, error));
        }
        (Some(Permission::Read), Permission::Admin) => {
            let error = RpcError::new(UNAUTHORIZED, "storing a piece needs the admin token");
            return http_answer(error_answer(StatusCode::FORBIDDEN, error));
        }
        _ => {}
    }
    let rules = UploadRules {
        stall: options.connections.body_timeout,
        check: options.piece_check.clone(),
    };
    if market {
        let query = req.uri().query().unwrap_or_default().to_owned();
        return receive_market_piece(dir, &query, req.into_body(), rules).await;
    }
    if req.method() == Method::PUT {
        let path = req.uri().path().to_owned();
        return receive_piece(dir, &path, req.into_body(), rules).await;
    }
    return serve_piece(dir, options.piece_fallback.as_deref(), req.uri().path()).await;
}

/// The JSON-RPC endpoint: checks method, content type and token, reads the body
/// within its limits and answers the call (or batch).
async fn serve_rpc(
    service: &dyn RpcService,
    options: &ServerOptions,
    remote: SocketAddr,
    req: hyper::Request<Incoming>,
) -> HttpResponse {
    if req.method() != Method::POST {
        return not_allowed("JSON-RPC requests are POSTed", "POST");
    }
    if from_browser(req.headers()) {
        if let Err(why) = browser_guard(req.headers(), &options.allowed_hosts) {
            return http_answer(error_answer(
                StatusCode::FORBIDDEN,
                RpcError::new(UNAUTHORIZED, why.to_string()),
            ));
        }
    }
    // go-jsonrpc reads any body whatever its type; the original worker's server wants JSON.
    if options.dialect == Dialect::Standard && !is_json(req.headers().get(CONTENT_TYPE)) {
        let error = RpcError::invalid_request(
            "Supplied content type is not allowed. Content-Type: application/json is required",
        );
        return http_answer(error_answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, error));
    }
    let Some(permission) = options.permission(req.headers().get(AUTHORIZATION)) else {
        let error = RpcError::new(
            UNAUTHORIZED,
            "unauthorized: send a token this server accepts as `Authorization: Bearer <token>`",
        );
        return http_answer(error_answer(StatusCode::UNAUTHORIZED, error));
    };
    let body = match read_body(options, req).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let caller = Caller {
        token: options.requires_token().then_some(permission),
        remote: Some(remote),
    };
    let answer = handle_body_observed(
        service,
        permission,
        &caller,
        &body,
        options.observer.as_ref(),
        ProtocolLimits {
            batch_calls: options.batch_limit,
            answer_bytes: options.answer_limit,
        },
    )
    .await;
    http_answer(in_dialect(answer, options.dialect))
}

/// The web pages: GET a page, POST an action (its body read within the limits of an API
/// call); every request passes the browser guard.
async fn serve_pages(options: &ServerOptions, req: hyper::Request<Incoming>) -> HttpResponse {
    let Some(pages) = &options.pages else {
        return page_answer(Page::of(404, "text/plain; charset=utf-8", "no pages here"));
    };
    if let Err(why) = browser_guard(req.headers(), &options.allowed_hosts) {
        return page_answer(Page::of(403, "text/plain; charset=utf-8", why.to_string()));
    }
    if req.uri().path() == PAGES_PATH {
        // The page's relative links resolve below the directory.
        return redirect(&format!("{PAGES_PATH}/"));
    }
    let post = match *req.method() {
        Method::GET | Method::HEAD => false,
        Method::POST => true,
        _ => return not_allowed("pages are read with GET and act with POST", "GET, POST"),
    };
    let path = req
        .uri()
        .path()
        .strip_prefix(PAGES_PATH)
        .unwrap_or("/")
        .to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let permission = options.permission(req.headers().get(AUTHORIZATION));
    let body = if post {
        match read_body(options, req).await {
            Ok(body) => body,
            Err(refused) => return refused,
        }
    } else {
        Bytes::new()
    };
    let request = PageRequest {
        path,
        query,
        post,
        permission,
        body,
    };
    page_answer(pages.answer(request).await)
}

fn page_answer(page: Page) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(page.body));
    *response.status_mut() = StatusCode::from_u16(page.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(page.content_type));
    // Nothing of another origin runs in the pages or frames them; nothing is cached.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn redirect(to: &str) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert("location", location);
    }
    response
}

/// The body of a JSON-RPC request, refused past `body_limit` (413), past the body timeout
/// (408) or unreadable (400).
async fn read_body(
    options: &ServerOptions,
    req: hyper::Request<Incoming>,
) -> Result<Bytes, HttpResponse> {
    let too_large = || {
        let error = RpcError::invalid_request(format!(
            "request body larger than {} bytes",
            options.body_limit
        ));
        http_answer(error_answer(StatusCode::PAYLOAD_TOO_LARGE, error))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > options.body_limit) {
        return Err(too_large());
    }
    let timeout = options.connections.body_timeout;
    let body = tokio::time::timeout(
        timeout,
        Limited::new(req.into_body(), options.body_limit).collect(),
    )
    .await;
    let body = match body {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(_) => {
            let error = RpcError::invalid_request(format!(
                "the request body did not arrive within {timeout:?}"
            ));
            return Err(http_answer(error_answer(
                StatusCode::REQUEST_TIMEOUT,
                error,
            )));
        }
        Ok(Err(e)) => {
            let error = RpcError::invalid_request(format!("cannot read the body: {e}"));
            return Err(http_answer(error_answer(StatusCode::BAD_REQUEST, error)));
        }
    };
    Ok(body)
}

/// Whether a `Content-Type` is `application/json` (parameters such as `charset` allowed).
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// 405, saying which methods the path takes (`Allow`, as RFC 9110 asks) and why.
fn not_allowed(why: &str, allow: &'static str) -> HttpResponse {
    let error = RpcError::invalid_request(why);
    let mut response = http_answer(error_answer(StatusCode::METHOD_NOT_ALLOWED, error));
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn http_answer(answer: Answer) -> HttpResponse {
    let body = match answer.body {
        Some(mut bytes) => {
            bytes.push(b'\n');
            Bytes::from(bytes)
        }
        None => Bytes::new(),
    };
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = answer.status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}
