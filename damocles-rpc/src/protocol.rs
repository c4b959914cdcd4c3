//! The JSON-RPC 2.0 protocol without HTTP: a body in, the answer out.
//!
//! Every request object is checked whole before anything runs, alone or in a batch:
//! `jsonrpc` must be `"2.0"`, `id` (when present) a number, a string or `null`, `method`
//! a string and `params` absent, `null`, an array or an object. A request that fails one
//! check is answered `-32600` and never reaches a method.

use hyper::StatusCode;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::jsonrpc::{Params, RawRequest, RpcError, RpcResult, ServerResponse, UNAUTHORIZED};
use crate::method::{self, Permission};
use crate::server::{CallObserver, Caller, RpcService};

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
    handle_body_observed(service, permission, &caller, body, None).await
}

/// [`handle_body`] for `caller`, telling `observer` of every call that reaches a method.
pub async fn handle_body_observed(
    service: &dyn RpcService,
    permission: Permission,
    caller: &Caller,
    body: &[u8],
    observer: Option<&CallObserver>,
) -> Answer {
    // Checked once as JSON without building a tree; each request is then read straight
    // into its fields.
    let json: &RawValue = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(_) => return error_answer(StatusCode::OK, RpcError::parse_error()),
    };
    let run = |item| run_one(service, permission, caller, item, observer);
    if !json.get().trim_start().starts_with('[') {
        return match run(json).await {
            Some(response) => Answer {
                status: match &response.error {
                    Some(e) if e.code == UNAUTHORIZED => StatusCode::FORBIDDEN,
                    _ => StatusCode::OK,
                },
                body: Some(to_bytes(&response)),
            },
            None => Answer {
                status: StatusCode::OK,
                body: None,
            },
        };
    }
    let items: Vec<&RawValue> = match serde_json::from_str(json.get()) {
        Ok(items) => items,
        Err(_) => return error_answer(StatusCode::OK, RpcError::parse_error()),
    };
    if items.is_empty() {
        return error_answer(
            StatusCode::OK,
            RpcError::invalid_request("Invalid request: empty batch"),
        );
    }
    let mut answers = Vec::new();
    for item in items {
        if let Some(response) = run(item).await {
            answers.push(response);
        }
    }
    Answer {
        status: StatusCode::OK,
        body: (!answers.is_empty()).then(|| to_bytes(&answers)),
    }
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
