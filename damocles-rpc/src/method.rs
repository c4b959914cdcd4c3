//! One definition per RPC method ([`RpcMethod`], declared with `rpc_methods!`): its
//! name, typed params and result, and the permission it needs. Servers route, authorise
//! and parse params from it ([`serve`]); clients send it ([`crate::RpcClient::request`]);
//! the CLI prints the tables of [`MethodSpec`]s. An [`RpcService`] is what a server serves:
//! its method table and the calls, each with its [`Caller`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::jsonrpc::{result, Params, RpcError, RpcResult};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Reading: listings and versions.
    Read,
    /// Everything, including pause and resume.
    Admin,
}

/// One method of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MethodSpec {
    /// The full name, `Namespace.Method`.
    pub name: &'static str,
    /// The positional params, in order, `name: what it must be` (an optional one says its
    /// default).
    pub params: &'static [&'static str],
    /// The result type.
    pub result: &'static str,
    /// The permission a caller needs when the server requires tokens.
    pub permission: Permission,
    /// What it does.
    pub summary: &'static str,
}

impl MethodSpec {
    /// The names of the params, for messages.
    pub fn param_names(&self) -> Vec<&'static str> {
        self.params
            .iter()
            .map(|p| p.split(':').next().unwrap_or(p).trim())
            .collect()
    }
}

/// Finds `name` in `table`.
pub fn find<'a>(table: &'a [MethodSpec], name: &str) -> Option<&'a MethodSpec> {
    table.iter().find(|m| m.name == name)
}

/// One JSON-RPC method, defined once: the server parses and answers it, the client sends
/// it, and its [`MethodSpec`] documents it (as Forest's `RpcMethod` does).
pub trait RpcMethod {
    /// Name, params, result and permission, as documented.
    const SPEC: MethodSpec;
    /// The positional params, as a tuple (`()` for none; an `Option` param may be absent
    /// or `null`).
    type Params: Serialize + Send;
    /// The result.
    type Result: Serialize + DeserializeOwned + Send;

    /// Reads the params, each with an error naming it and what it must be.
    fn parse(params: &Params) -> Result<Self::Params, RpcError>;
}

/// Parses the params of `M`, runs `run` on them and serialises its result: one match arm
/// of a service's dispatch.
pub async fn serve<M, F>(params: &Params, run: impl FnOnce(M::Params) -> F) -> RpcResult
where
    M: RpcMethod,
    F: Future<Output = Result<M::Result, RpcError>>,
{
    let parsed = M::parse(params)?;
    result(&run(parsed).await?)
}

/// Declares methods: a unit type implementing [`RpcMethod`] per method, with an inherent
/// `NAME` for match arms, and a table of their [`MethodSpec`]s.
///
/// ```text
/// rpc_methods! {
///     /// The table's doc.
///     pub const TABLE;
///     /// The type's doc.
///     Pause = "VenusWorker.WorkerPause", Admin, (index: u64 = "a thread index") -> bool = "bool",
///         "pauses a thread";
/// }
/// ```
macro_rules! rpc_methods {
    (
        $(#[$table_meta:meta])* pub const $table:ident;
        $(
            $(#[$meta:meta])*
            $ty:ident = $name:literal, $perm:ident,
            ( $( $param:ident : $pty:ty = $pdoc:literal ),* $(,)? )
            -> $rty:ty = $rdoc:literal, $summary:literal;
        )+
    ) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $ty;

            impl $ty {
                #[doc = concat!("`", $name, "`.")]
                pub const NAME: &'static str = $name;
            }

            impl $crate::method::RpcMethod for $ty {
                const SPEC: $crate::method::MethodSpec = $crate::method::MethodSpec {
                    name: $name,
                    params: &[$(concat!(stringify!($param), ": ", $pdoc)),*],
                    result: $rdoc,
                    permission: $crate::method::Permission::$perm,
                    summary: $summary,
                };
                type Params = ($($pty,)*);
                type Result = $rty;

                #[allow(unused_variables, unused_mut)]
                fn parse(
                    params: &$crate::jsonrpc::Params,
                ) -> Result<Self::Params, $crate::jsonrpc::RpcError> {
                    let mut position = 0..;
                    Ok(($(
                        params.take::<$pty>(
                            position.next().unwrap_or_default(),
                            stringify!($param),
                            $pdoc,
                        )?,
                    )*))
                }
            }
        )+

        $(#[$table_meta])*
        pub const $table: &[$crate::method::MethodSpec] =
            &[$(<$ty as $crate::method::RpcMethod>::SPEC),+];
    };
}
pub(crate) use rpc_methods;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{serve, RpcMethod};
    use crate::jsonrpc::{Params, INVALID_PARAMS};

    rpc_methods! {
        /// A table for the test.
        pub const TEST_METHODS;
        /// Adds.
        Add = "Test.Add", Read, (a: u64 = "a number", b: Option<u64> = "a number, default 1")
            -> u64 = "u64", "adds";
    }

    fn params(value: serde_json::Value) -> Params {
        Params::from_request(Some(value)).expect("an array")
    }

    async fn add(value: serde_json::Value) -> Result<String, crate::jsonrpc::RpcError> {
        serve::<Add, _>(
            &params(value),
            |(a, b)| async move { Ok(a + b.unwrap_or(1)) },
        )
        .await
        .map(|raw| raw.get().to_owned())
    }

    #[tokio::test]
    async fn one_definition_parses_serves_and_documents_a_method() {
        assert_eq!(TEST_METHODS, [Add::SPEC]);
        assert_eq!(Add::NAME, "Test.Add");
        assert_eq!(Add::SPEC.params, ["a: a number", "b: a number, default 1"]);
        assert_eq!(Add::SPEC.param_names(), ["a", "b"]);
        assert_eq!(add(json!([2, 3])).await, Ok("5".into()));
        assert_eq!(
            add(json!([2])).await,
            Ok("3".into()),
            "an Option param may be absent"
        );
        assert_eq!(add(json!([2, null])).await, Ok("3".into()));
        let missing = add(json!([])).await.expect_err("a is required");
        assert_eq!(missing.code, INVALID_PARAMS);
        assert!(
            missing.message.contains("missing a (param 1, a number)"),
            "{missing}"
        );
        let wrong = add(json!([2, "3"])).await.expect_err("b is a number");
        assert!(
            wrong
                .message
                .contains("b must be a number, default 1, got string"),
            "{wrong}"
        );
        // What a client sends for these params is what the server parses.
        let sent = serde_json::to_value((7_u64, Some(8_u64))).expect("json");
        assert_eq!(Add::parse(&params(sent)), Ok((7, Some(8))));
    }
}

/// An API a server serves: a method table and the calls.
#[async_trait]
pub trait RpcService: Send + Sync + 'static {
    /// Every method, with the permission it needs.
    fn methods(&self) -> &'static [MethodSpec];

    /// Runs `method` (one of [`RpcService::methods`]) with its params, for `caller`.
    async fn call(&self, method: &'static MethodSpec, params: Params, caller: &Caller)
        -> RpcResult;
}

/// Who made a call, as a worker's event history records it: the token used (when the
/// server requires one) and the remote address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caller {
    /// The token's permission, when the server requires tokens.
    pub token: Option<Permission>,
    /// The peer's address, when the call came over a connection.
    pub remote: Option<SocketAddr>,
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.map(|p| match p {
            Permission::Admin => "admin token",
            Permission::Read => "read token",
        });
        match (token, self.remote) {
            (Some(token), Some(remote)) => write!(f, "{token} from {remote}"),
            (None, Some(remote)) => write!(f, "{remote}"),
            (Some(token), None) => f.write_str(token),
            (None, None) => f.write_str("unknown caller"),
        }
    }
}

/// Told of every call that reached a method: its name and how long it took.
pub type CallObserver = Arc<dyn Fn(&str, Duration) + Send + Sync>;
