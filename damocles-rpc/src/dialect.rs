//! How protocol errors are answered on the wire. The original worker's admin API (Rust's
//! jsonrpc-http-server) and the Go damocles-manager (go-jsonrpc v0.1.x, `server.go`
//! `rpcError` and `handler.go`) answer a malformed call differently; a server that stands
//! in for one answers as it does, so that a client written against it meets the same
//! statuses and codes.

use hyper::StatusCode;
use serde_json::Value;

use crate::jsonrpc::{INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR};
use crate::protocol::Answer;

/// How a server answers protocol errors (a body that is not JSON, not a request, an
/// unknown method, params that do not fit). Errors a method returns are answered alike
/// in both: HTTP 200 with the error object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// JSON-RPC 2.0 over HTTP: HTTP 200 with the error object (`data` where the server
    /// has more), `null` id when the request's own cannot be read.
    #[default]
    Standard,
    /// As go-jsonrpc v0.1.x answers (the Go damocles-manager): HTTP 500 for every
    /// protocol error; an empty body when the request's id cannot be read (the body is
    /// not JSON, or not a request object); params that cannot be decoded are `-32700`
    /// (go-jsonrpc's `rpcParseError`, "unmarshaling params"), a wrong count `-32602`; the
    /// error object holds only `code` and `message`. Batches are answered as in
    /// [`Dialect::Standard`].
    GoJsonRpc,
}

/// The longest answer that may be a protocol error (bytes): those hold a short message.
const PROTOCOL_ERROR_MAX: usize = 64 << 10;

/// `answer` as `dialect` gives it.
pub fn in_dialect(answer: Answer, dialect: Dialect) -> Answer {
    if dialect == Dialect::Standard {
        return answer;
    }
    // Protocol errors are short; a long answer is a result, not read again here.
    let Some(body) = answer
        .body
        .as_ref()
        .filter(|b| b.len() <= PROTOCOL_ERROR_MAX)
    else {
        return answer;
    };
    let Ok(Value::Object(mut response)) = serde_json::from_slice::<Value>(body) else {
        // A batch (an array), or nothing readable: as it is.
        return answer;
    };
    let Some(Value::Object(error)) = response.get_mut("error") else {
        return answer;
    };
    let code = error
        .get("code")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    if !(PARSE_ERROR..=INVALID_REQUEST).contains(&code) {
        return answer;
    }
    if response.get("id").is_none_or(Value::is_null) {
        return Answer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: None,
        };
    }
    let Some(Value::Object(error)) = response.get_mut("error") else {
        return answer;
    };
    let undecodable = error.get("data").and_then(|d| d.get("param")).is_some();
    if code == INVALID_PARAMS && undecodable {
        error.insert("code".into(), PARSE_ERROR.into());
    }
    error.remove("data");
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: serde_json::to_vec(&response).ok(),
    }
}
