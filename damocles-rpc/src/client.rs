//! A JSON-RPC 2.0 client over HTTP/1.1 with connect and request timeouts and an optional
//! bearer token; its errors say what a person can do about them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::jsonrpc::{Request, Response, RpcError};

/// Timeouts of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// The whole call, connection included.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No connection could be made, or none answered in time.
    #[error("cannot reach {address}: {reason}")]
    Unreachable {
        /// The address tried.
        address: String,
        /// Why.
        reason: String,
        /// Nothing listens at the address (the connection was refused).
        refused: bool,
    },
    /// The server refused the token (HTTP 401 or 403).
    #[error("{address} refused the call: {message}")]
    Unauthorized {
        /// The address.
        address: String,
        /// What it said.
        message: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error(transparent)]
    Rpc(RpcError),
    /// The answer was not a JSON-RPC answer, or not of the expected shape.
    #[error("{address} answered something unexpected: {reason}")]
    Protocol {
        /// The address.
        address: String,
        /// What was wrong.
        reason: String,
    },
}

/// A client of one JSON-RPC endpoint. Its `Debug` never shows the token.
pub struct RpcClient {
    /// Every server it may call, in the order given; one for most clients.
    endpoints: Vec<Endpoint>,
    /// The one that answered last: calls go there first.
    current: std::sync::atomic::AtomicUsize,
    token: Option<String>,
    timeouts: Timeouts,
    max_answer: usize,
    http: Client<crate::tls::Connector, Full<Bytes>>,
    next_id: AtomicU64,
}

/// The largest answer a client reads by default, in bytes ([`RpcClient::with_max_answer`]):
/// far above a real manager's largest answer (a WindowPoSt job over a whole deadline's
/// sectors is well under 2 MiB), small enough that a broken server cannot grow the caller.
pub const DEFAULT_MAX_ANSWER: usize = 32 << 20;

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field(
                "urls",
                &self.endpoints.iter().map(|e| &e.url).collect::<Vec<_>>(),
            )
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// `http://<address>`, or the address itself when it names its scheme (`https://host:port`,
/// as [`crate::sealer::manager_host_port`] gives a TLS manager).
pub(crate) fn origin(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

fn http_client(connector: crate::tls::Connector) -> Client<crate::tls::Connector, Full<Bytes>> {
    // Below the servers' idle timeout (ConnectionLimits::header_timeout, 10 s), so that a
    // kept-alive connection is not reused just as the server closes it.
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build(connector)
}

/// One server a client may call.
#[derive(Debug, Clone)]
struct Endpoint {
    address: String,
    url: hyper::Uri,
}

impl RpcClient {
    /// A client of `http://<address><path>` (`address` is `host:port`, or
    /// `https://host:port` for TLS).
    pub fn new(
        address: &str,
        path: &str,
        token: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self, CallError> {
        Self::with_failover(&[address.to_owned()], path, token, timeouts)
    }

    /// A client of several servers of one service (`host:port` each, at least one): a
    /// call that cannot reach the one that answered last tries the others in turn, and the
    /// first that answers takes over (logged). Each call tries each server once; retrying
    /// later, with backoff, is the caller's.
    pub fn with_failover(
        addresses: &[String],
        path: &str,
        token: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self, CallError> {
        let endpoints = addresses
            .iter()
            .map(|address| {
                let url = format!("{}{path}", origin(address)).parse().map_err(|e| {
                    CallError::Unreachable {
                        address: address.clone(),
                        reason: format!("not a host:port address ({e})"),
                        refused: false,
                    }
                })?;
                Ok(Endpoint {
                    address: address.clone(),
                    url,
                })
            })
            .collect::<Result<Vec<_>, CallError>>()?;
        if endpoints.is_empty() {
            return Err(CallError::Unreachable {
                address: String::new(),
                reason: "no address given".into(),
                refused: false,
            });
        }
        let connector = crate::tls::default_connector(timeouts.connect);
        Ok(Self {
            endpoints,
            current: std::sync::atomic::AtomicUsize::new(0),
            token,
            timeouts,
            max_answer: DEFAULT_MAX_ANSWER,
            http: http_client(connector),
            next_id: AtomicU64::new(0),
        })
    }

    /// The same client verifying `https://` servers against `trust` (the system's roots
    /// are trusted without it).
    ///
    /// # Errors
    ///
    /// [`crate::tls::TlsError`] when the trust's CA file cannot be used.
    pub fn with_tls(mut self, trust: &crate::tls::TlsTrust) -> Result<Self, crate::tls::TlsError> {
        self.http = http_client(trust.connector(self.timeouts.connect)?);
        Ok(self)
    }

    /// The same client reading answers of at most `bytes` (a longer one fails the call as
    /// a protocol error, read no further).
    #[must_use]
    pub fn with_max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// The address it calls first: the one that answered last.
    pub fn address(&self) -> &str {
        &self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()].address
    }

    /// Every address it may call, in the order given.
    pub fn addresses(&self) -> Vec<&str> {
        self.endpoints.iter().map(|e| e.address.as_str()).collect()
    }

    /// Calls method `M` with its params and decodes its result.
    pub async fn request<M: crate::method::RpcMethod>(
        &self,
        params: M::Params,
    ) -> Result<M::Result, CallError> {
        let params = serde_json::to_value(params).map_err(|e| CallError::Protocol {
            address: self.address().to_owned(),
            reason: e.to_string(),
        })?;
        self.call(M::SPEC.name, params).await
    }

    /// Calls `method` with `params` (a positional array, or null for none) and reads
    /// its result as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, CallError> {
        let first = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        let mut unreachable = Vec::new();
        for turn in 0..self.endpoints.len() {
            let index = (first + turn) % self.endpoints.len();
            let endpoint = &self.endpoints[index];
            match self.call_at(endpoint, method, params.clone()).await {
                Err(e @ CallError::Unreachable { .. }) if self.endpoints.len() > 1 => {
                    unreachable.push(e.to_string());
                }
                answered => {
                    if turn > 0 && answered.is_ok() {
                        let before = &self.endpoints[first].address;
                        if self
                            .current
                            .compare_exchange(first, index, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                        {
                            tracing::warn!(
                                "{before} cannot be reached ({}); using {} from now on",
                                unreachable.first().map_or("", String::as_str),
                                endpoint.address
                            );
                        }
                    }
                    return answered;
                }
            }
        }
        Err(CallError::Unreachable {
            address: self.addresses().join(", "),
            reason: format!("none answers: {}", unreachable.join("; ")),
            refused: false,
        })
    }

    async fn call_at<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        method: &str,
        params: Value,
    ) -> Result<T, CallError> {
        let request = Request {
            jsonrpc: "2.0",
            method,
            params,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        let body = serde_json::to_vec(&request).map_err(|e| protocol(endpoint, e))?;
        let mut http = hyper::Request::post(endpoint.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(token) = &self.token {
            http = http.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let http = http
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| protocol(endpoint, e))?;
        let exchange = async {
            let response = self
                .http
                .request(http)
                .await
                .map_err(|e| unreachable(endpoint, &e))?;
            let status = response.status();
            let bytes = http_body_util::Limited::new(response.into_body(), self.max_answer)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        protocol(
                            endpoint,
                            format!("{method}: the answer exceeds {} bytes", self.max_answer),
                        )
                    } else {
                        unreachable(endpoint, &*e)
                    }
                })?
                .to_bytes();
            Ok::<_, CallError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeouts.request, exchange)
            .await
            .map_err(|_| CallError::Unreachable {
                address: endpoint.address.clone(),
                reason: format!("no answer within {:?}", self.timeouts.request),
                refused: false,
            })??;
        let response: Result<Response, _> = serde_json::from_slice(&bytes);
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(CallError::Unauthorized {
                address: endpoint.address.clone(),
                message: response
                    .ok()
                    .and_then(|r| r.error)
                    .map_or_else(|| status.to_string(), |e| e.message),
            });
        }
        // As the original clients do, accept a JSON-RPC body whatever the HTTP status.
        let response = response.map_err(|e| {
            protocol(
                endpoint,
                format!(
                    "HTTP {status}, body is not a JSON-RPC response ({e}): {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
            )
        })?;
        let result = response.into_result().map_err(CallError::Rpc)?;
        serde_json::from_value(result).map_err(|e| {
            protocol(
                endpoint,
                format!("{method} answered an unexpected shape: {e}"),
            )
        })
    }
}

fn protocol(endpoint: &Endpoint, reason: impl std::fmt::Display) -> CallError {
    CallError::Protocol {
        address: endpoint.address.clone(),
        reason: reason.to_string(),
    }
}

fn unreachable(endpoint: &Endpoint, error: &(dyn std::error::Error + 'static)) -> CallError {
    // An I/O error's kind says whether it was refused.
    let mut inner = Some(error);
    let mut refused = false;
    while let Some(e) = inner {
        refused |= e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        inner = e.source();
    }
    CallError::Unreachable {
        address: endpoint.address.clone(),
        reason: if refused {
            "connection refused".to_owned()
        } else {
            innermost_cause(error).to_lowercase()
        },
        refused,
    }
}

/// The innermost cause of `error`, which says why (hyper's own text says only "client
/// error (Connect)"; a TLS failure's cause names the certificate).
pub(crate) fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(inner) = innermost.source() {
        innermost = inner;
    }
    let cause = innermost.to_string();
    if innermost.downcast_ref::<rustls::Error>().is_some()
        || cause.to_lowercase().contains("certificate")
    {
        format!("TLS: {cause} (a server whose certificate a cluster's own CA signed is trusted with [worker] tls_ca_file; an http server answers https:// with such errors too)")
    } else {
        cause
    }
}
