//! JSON-RPC 2.0 messages: requests, responses, error objects and positional params.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// A method's result, serialised once into JSON text (no intermediate tree).
pub type RpcResult = Result<Box<RawValue>, RpcError>;

/// `value` as a result.
pub fn result<T: Serialize + ?Sized>(value: &T) -> RpcResult {
    serde_json::value::to_raw_value(value).map_err(|e| RpcError::internal(e.to_string()))
}

/// `-32700`: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// `-32600`: the JSON is not a request.
pub const INVALID_REQUEST: i64 = -32600;
/// `-32601`: no such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// `-32602`: the params do not fit the method.
pub const INVALID_PARAMS: i64 = -32602;
/// `-32603`: the server failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// `-32001`: no or a wrong token (HTTP 401), or a token without the permission (403).
pub const UNAUTHORIZED: i64 = -32001;
/// `-32002`: the call's answer would exceed the server's answer limit; ask for less.
pub const ANSWER_TOO_LARGE: i64 = -32002;
/// `-32003`: the server serves as many connections as it may (HTTP 503); try again.
pub const SERVER_BUSY: i64 = -32003;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    /// The code.
    pub code: i64,
    /// What went wrong.
    pub message: String,
    /// More, when the server has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// `-32700 Parse error`.
    pub fn parse_error() -> Self {
        Self::new(PARSE_ERROR, "Parse error")
    }

    /// `-32600` with a reason.
    pub fn invalid_request(why: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, why)
    }

    /// `-32601 Method not found`, the original's exact message; the method asked for is
    /// in `data`.
    pub fn method_not_found(method: &str) -> Self {
        Self {
            code: METHOD_NOT_FOUND,
            message: "Method not found".into(),
            data: Some(Value::String(method.to_owned())),
        }
    }

    /// `-32602` with the reason.
    pub fn invalid_params(why: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, why)
    }

    /// `-32603` with the reason.
    pub fn internal(why: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, why)
    }
}

/// A request as it arrives: every field optional so that a bad one can be answered
/// precisely.
#[derive(Debug, Clone, Deserialize)]
pub struct RawRequest {
    /// Must be `"2.0"`, as the original worker's server requires (anything else, absent
    /// included, is refused before the call runs).
    #[serde(default)]
    pub jsonrpc: Option<Value>,
    /// The method.
    pub method: Option<Value>,
    /// Positional params (`null`, absent or an array).
    #[serde(default)]
    pub params: Option<Value>,
    /// The id; absent for a notification.
    #[serde(default, deserialize_with = "present")]
    pub id: Option<Value>,
}

/// Keeps `"id": null` apart from an absent id (`Some(Null)` vs `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A request to send.
#[derive(Debug, Clone, Serialize)]
pub struct Request<'a> {
    /// `"2.0"`.
    pub jsonrpc: &'static str,
    /// The method.
    pub method: &'a str,
    /// Positional params.
    pub params: Value,
    /// The id.
    pub id: u64,
}

/// A response as a server writes it: the result already JSON text.
#[derive(Debug, Serialize)]
pub struct ServerResponse {
    /// `"2.0"`.
    pub jsonrpc: &'static str,
    /// The result, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<RawValue>>,
    /// The error, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
    /// The request's id (`null` when it could not be read).
    pub id: Value,
}

impl ServerResponse {
    /// A response to `id`.
    pub fn new(id: Value, outcome: RpcResult) -> Self {
        let (result, error) = match outcome {
            Ok(value) => (Some(value), None),
            Err(error) => (None, Some(error)),
        };
        Self {
            jsonrpc: "2.0",
            result,
            error,
            id,
        }
    }
}

/// A response as a client reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// `"2.0"`.
    pub jsonrpc: String,
    /// The result, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
    /// The request's id (`null` when it could not be read).
    #[serde(default)]
    pub id: Value,
}

impl Response {
    /// A response to `id`.
    pub fn new(id: Value, outcome: Result<Value, RpcError>) -> Self {
        let (result, error) = match outcome {
            Ok(value) => (Some(value), None),
            Err(error) => (None, Some(error)),
        };
        Self {
            jsonrpc: "2.0".into(),
            result,
            error,
            id,
        }
    }

    /// The outcome the response carries (a response with neither is an error).
    pub fn into_result(self) -> Result<Value, RpcError> {
        match (self.error, self.result) {
            (Some(error), _) => Err(error),
            (None, Some(result)) => Ok(result),
            (None, None) => Ok(Value::Null),
        }
    }
}

/// A method's positional params, read one by one with precise errors.
#[derive(Debug, Clone)]
pub struct Params {
    values: Vec<Value>,
}

impl Params {
    /// Params from the request's field: absent and `null` mean none; anything but an
    /// array is refused.
    pub fn from_request(params: Option<Value>) -> Result<Self, RpcError> {
        match params {
            None | Some(Value::Null) => Ok(Self { values: Vec::new() }),
            Some(Value::Array(values)) => Ok(Self { values }),
            Some(other) => Err(RpcError::invalid_params(format!(
                "invalid params: expected a positional array, got {}",
                kind(&other)
            ))),
        }
    }

    /// Refuses more than `max` params; `names` (every param's name) explains which exist.
    pub fn expect_at_most(&self, names: &[&str]) -> Result<(), RpcError> {
        if self.values.len() > names.len() {
            return Err(RpcError::invalid_params(format!(
                "invalid params: {} given, at most {} expected ({})",
                self.values.len(),
                names.len(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        Ok(())
    }

    /// The required param at `position`, called `name`.
    pub fn required<T: DeserializeOwned>(
        &self,
        position: usize,
        name: &str,
        expected: &str,
    ) -> Result<T, RpcError> {
        let value = self
            .values
            .get(position)
            .ok_or_else(|| missing(position, name, expected))?;
        decode(value, name, expected)
    }

    /// The optional param at `position`: absent and `null` are `None`.
    pub fn optional<T: DeserializeOwned>(
        &self,
        position: usize,
        name: &str,
        expected: &str,
    ) -> Result<Option<T>, RpcError> {
        match self.values.get(position) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => decode(value, name, expected).map(Some),
        }
    }
}

impl Params {
    /// The param at `position`, called `name`: an absent one reads as `null`, so that an
    /// `Option` param may be left out and any other is missing.
    pub fn take<T: DeserializeOwned>(
        &self,
        position: usize,
        name: &str,
        expected: &str,
    ) -> Result<T, RpcError> {
        match self.values.get(position) {
            Some(value) => decode(value, name, expected),
            None => T::deserialize(&Value::Null).map_err(|_| missing(position, name, expected)),
        }
    }
}

fn missing(position: usize, name: &str, expected: &str) -> RpcError {
    RpcError::invalid_params(format!(
        "invalid params: missing {name} (param {}, {expected})",
        position + 1
    ))
}

/// Reads a param; what cannot be read is `-32602` with `data: {"param": <name>}` (which
/// [`crate::dialect::Dialect::GoJsonRpc`] answers as go-jsonrpc does, `-32700`).
fn decode<T: DeserializeOwned>(value: &Value, name: &str, expected: &str) -> Result<T, RpcError> {
    T::deserialize(value).map_err(|e| {
        let mut error = RpcError::invalid_params(format!(
            "invalid params: {name} must be {expected}, got {} ({e})",
            kind(value)
        ));
        error.data = Some(serde_json::json!({ "param": name }));
        error
    })
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_are_read_by_position_with_errors_that_say_which_and_why() {
        let params = Params::from_request(Some(json!([3, null]))).expect("array");
        assert_eq!(params.required::<u64>(0, "index", "a thread index"), Ok(3));
        assert_eq!(
            params.optional::<String>(1, "state", "a state name"),
            Ok(None)
        );
        assert_eq!(
            params.optional::<String>(2, "state", "a state name"),
            Ok(None)
        );
        let err = params
            .required::<u64>(2, "other", "a number")
            .expect_err("missing");
        assert_eq!(err.code, INVALID_PARAMS);
        assert!(err.message.contains("missing other (param 3"), "{err}");

        let params = Params::from_request(Some(json!(["0"]))).expect("array");
        let err = params
            .required::<u64>(0, "index", "a thread index (a number from 0)")
            .expect_err("string");
        assert!(err.message.contains("got string \"0\""), "{err}");
        let params = Params::from_request(Some(json!([-1]))).expect("array");
        assert!(params.required::<u64>(0, "index", "x").is_err());

        assert!(Params::from_request(Some(json!({"index": 0}))).is_err());
        assert!(Params::from_request(None).is_ok());
        let params = Params::from_request(Some(json!([1, 2, 3]))).expect("array");
        let err = params
            .expect_at_most(&["index", "state"])
            .expect_err("too many");
        assert!(err.message.contains("3 given, at most 2"), "{err}");
    }

    #[test]
    fn an_absent_id_differs_from_a_null_id() {
        let notification: RawRequest =
            serde_json::from_str(r#"{"jsonrpc":"2.0","method":"m"}"#).expect("json");
        assert_eq!(notification.id, None);
        let null_id: RawRequest =
            serde_json::from_str(r#"{"jsonrpc":"2.0","method":"m","id":null}"#).expect("json");
        assert_eq!(null_id.id, Some(Value::Null));
    }
}
