//! The JSON-RPC 2.0 protocol without HTTP: a body in, the answer out.
//!
//! Every request object is checked whole before anything runs, alone or in a batch:
//! `jsonrpc` must be `"2.0"`, `id` (when present) a number, a string or `null`, `method`
//! a string and `params` absent, `null`, an array or an object. A request that fails one
//! check is answered `-32600` and never reaches a method.
//!
//! One body cannot make the server build an answer of any size: a batch holds at most
//! [`DEFAULT_BATCH_LIMIT`] calls (a longer one is refused whole, nothing runs), and an
//! answer is at most [`DEFAULT_ANSWER_LIMIT`] bytes: a call's result that would take it
//! past that is replaced by an [`ANSWER_TOO_LARGE`] error with the call's id. Both limits
//! are [`ProtocolLimits`], set per server in [`crate::ServerOptions`].

use hyper::StatusCode;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::jsonrpc::{
    Params, RawRequest, RpcError, RpcResult, ServerResponse, ANSWER_TOO_LARGE, UNAUTHORIZED,
};
use crate::method::{self, CallObserver, Caller, Permission, RpcService};

/// The most calls one batch may hold: 100. The original clients never batch; a script
/// that needs more sends several bodies.
pub const DEFAULT_BATCH_LIMIT: usize = 100;

/// The most bytes one answer may take: 4 MiB (a thread's whole event history, 1,000
/// entries, is about 80 KB; the list of a thousand workers about 300 KB).
pub const DEFAULT_ANSWER_LIMIT: usize = 4 << 20;

/// How much one body may ask of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolLimits {
    /// The most calls in one batch; a longer batch is answered `-32600` and nothing in it
    /// runs.
    pub batch_calls: usize,
    /// The most bytes of one answer. The result that would take it past this is replaced
    /// by an [`ANSWER_TOO_LARGE`] error with its call's id, so a batch answer may exceed it
    /// by the size of those errors (about 200 bytes each).
    pub answer_bytes: usize,
}

impl Default for ProtocolLimits {
    fn default() -> Self {
        Self {
            batch_calls: DEFAULT_BATCH_LIMIT,
            answer_bytes: DEFAULT_ANSWER_LIMIT,
        }
    }
}

/// What a body gets: the HTTP status and the JSON to send (`None`: an empty body, for
/// notifications).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON text, without its trailing newline.
    pub body: Option<Vec<u8>>,
}

/// Answers one request body as a caller with `permission`.
pub async fn handle_body(service: &dyn RpcService, permission: Permission, body: &[u8]) -> Answer {
    let caller = Caller {
        token: Some(permission),
        remote: None,
    };
    let limits = ProtocolLimits::default();
    handle_body_observed(service, permission, &caller, body, None, limits).await
}

/// [`handle_body`] for `caller` within `limits`, telling `observer` of every call that
/// reaches a method.
pub async fn handle_body_observed(
    service: &dyn RpcService,
    permission: Permission,
    caller: &Caller,
    body: &[u8],
    observer: Option<&CallObserver>,
    limits: ProtocolLimits,
) -> Answer {
    // Checked once as JSON without building a tree; each request is then read straight
    // into its fields.
    let json: &RawValue = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(_) => return error_answer(StatusCode::OK, RpcError::parse_error()),
    };
    let run = |item| run_one(service, permission, caller, item, observer);
    let mut budget = Budget {
        limit: limits.answer_bytes,
        used: 2,
    };
    if !json.get().trim_start().starts_with('[') {
        return match run(json).await {
            Some(response) => Answer {
                status: match &response.error {
                    Some(e) if e.code == UNAUTHORIZED => StatusCode::FORBIDDEN,
                    _ => StatusCode::OK,
                },
                body: Some(budget.fit(response)),
            },
            None => Answer {
                status: StatusCode::OK,
                body: None,
            },
        };
    }
    let batch = match read_batch(json.get(), limits.batch_calls) {
        Ok(batch) => batch,
        Err(_) => return error_answer(StatusCode::OK, RpcError::parse_error()),
    };
    if batch.len == 0 {
        return error_answer(
            StatusCode::OK,
            RpcError::invalid_request("Invalid request: empty batch"),
        );
    }
    if batch.len > limits.batch_calls {
        return error_answer(
            StatusCode::OK,
            RpcError::invalid_request(format!(
                "Invalid request: a batch may hold at most {} calls; this one holds {}, and none of them ran: send them in several batches",
                limits.batch_calls, batch.len
            )),
        );
    }
    let mut answers: Vec<Vec<u8>> = Vec::new();
    for item in batch.items {
        if let Some(response) = run(item).await {
            answers.push(budget.fit(response));
        }
    }
    if answers.is_empty() {
        return Answer {
            status: StatusCode::OK,
            body: None,
        };
    }
    let mut body = Vec::with_capacity(budget.used);
    body.push(b'[');
    for (n, answer) in answers.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(answer);
    }
    body.push(b']');
    Answer {
        status: StatusCode::OK,
        body: Some(body),
    }
}

/// The bytes an answer has used of its limit.
struct Budget {
    limit: usize,
    used: usize,
}

impl Budget {
    /// The JSON of `response`, or of an [`ANSWER_TOO_LARGE`] error with its id when it
    /// would take the answer past the limit.
    fn fit(&mut self, response: ServerResponse) -> Vec<u8> {
        let mut bytes = to_bytes(&response);
        if self.used.saturating_add(bytes.len()) > self.limit {
            let error = RpcError::new(
                ANSWER_TOO_LARGE,
                format!(
                    "the answer exceeded {} bytes, the most this server sends; ask for less (a smaller limit, fewer calls per batch)",
                    self.limit
                ),
            );
            bytes = to_bytes(&ServerResponse::new(response.id, Err(error)));
        }
        self.used = self.used.saturating_add(bytes.len() + 1);
        bytes
    }
}

/// A batch's first `limit` requests, and how many it holds.
struct Batch<'a> {
    items: Vec<&'a RawValue>,
    len: usize,
}

/// Reads a batch without keeping more than `limit` of its requests.
fn read_batch(json: &str, limit: usize) -> Result<Batch<'_>, serde_json::Error> {
    struct Bounded(usize);
    impl<'de> Visitor<'de> for Bounded {
        type Value = Batch<'de>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of requests")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Batch<'de>, A::Error> {
            let mut batch = Batch {
                items: Vec::new(),
                len: 0,
            };
            while let Some(item) = seq.next_element::<&'de RawValue>()? {
                batch.len += 1;
                if batch.items.len() < self.0 {
                    batch.items.push(item);
                }
            }
            Ok(batch)
        }
    }
    impl<'de> DeserializeSeed<'de> for Bounded {
        type Value = Batch<'de>;

        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Batch<'de>, D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut reader = serde_json::Deserializer::from_str(json);
    let batch = Bounded(limit).deserialize(&mut reader)?;
    reader.end()?;
    Ok(batch)
}

/// The answer of an error that belongs to no request.
pub(crate) fn error_answer(status: StatusCode, error: RpcError) -> Answer {
    Answer {
        status,
        body: Some(to_bytes(&ServerResponse::new(Value::Null, Err(error)))),
    }
}

fn to_bytes<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A request object that passed every check: only these reach a method.
struct Checked {
    /// `None`: a notification, which gets no answer.
    id: Option<Value>,
    method: String,
    params: Option<Value>,
}

/// A refused request: the id to answer (`null` when its own is not valid) and why.
type Refused = (Value, RpcError);

fn invalid(id: Value, why: impl Into<String>) -> Refused {
    (id, RpcError::invalid_request(why))
}

/// Checks the whole request object; what fails is answered (with the request's id when
/// the id itself is valid, else `null`) and runs nothing.
fn check(item: &RawValue) -> Result<Checked, Refused> {
    let request: RawRequest = serde_json::from_str(item.get())
        .map_err(|e| invalid(Value::Null, format!("Invalid request: {e}")))?;
    let id = match request.id {
        None => None,
        Some(id @ (Value::Null | Value::Number(_) | Value::String(_))) => Some(id),
        Some(_) => {
            return Err(invalid(
                Value::Null,
                "Invalid request: id must be a number, a string or null",
            ))
        }
    };
    let answer_id = id.clone().unwrap_or(Value::Null);
    if !matches!(&request.jsonrpc, Some(Value::String(v)) if v == "2.0") {
        return Err(invalid(
            answer_id,
            "Invalid request: jsonrpc must be \"2.0\"",
        ));
    }
    let Some(Value::String(method)) = request.method else {
        return Err(invalid(
            answer_id,
            "Invalid request: method must be a string",
        ));
    };
    match &request.params {
        None | Some(Value::Null | Value::Array(_) | Value::Object(_)) => {}
        Some(_) => {
            return Err(invalid(
                answer_id,
                "Invalid request: params must be an array (positional params), an object or absent",
            ))
        }
    }
    Ok(Checked {
        id,
        method,
        params: request.params,
    })
}

/// Checks and runs one request object; its answer, `None` for a valid notification.
async fn run_one(
    service: &dyn RpcService,
    permission: Permission,
    caller: &Caller,
    item: &RawValue,
    observer: Option<&CallObserver>,
) -> Option<ServerResponse> {
    let request = match check(item) {
        Ok(request) => request,
        Err((id, error)) => return Some(ServerResponse::new(id, Err(error))),
    };
    let Checked { id, method, params } = request;
    let outcome = dispatch(service, permission, caller, &method, params, observer).await;
    id.map(|id| ServerResponse::new(id, outcome))
}

async fn dispatch(
    service: &dyn RpcService,
    permission: Permission,
    caller: &Caller,
    name: &str,
    params: Option<Value>,
    observer: Option<&CallObserver>,
) -> RpcResult {
    let spec =
        method::find(service.methods(), name).ok_or_else(|| RpcError::method_not_found(name))?;
    if permission < spec.permission {
        return Err(RpcError::new(
            UNAUTHORIZED,
            format!("{name} needs the admin token"),
        ));
    }
    let params = Params::from_request(params)?;
    params.expect_at_most(&spec.param_names())?;
    let started = std::time::Instant::now();
    let outcome = service.call(spec, params, caller).await;
    if let Some(observe) = observer {
        observe(spec.name, started.elapsed());
    }
    outcome
}
