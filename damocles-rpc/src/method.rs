//! Typed method tables: each method's name, params, result and the permission it needs.
//! Servers route and authorise from the table; the CLI prints it.

use serde::Serialize;

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
    /// The positional params, in order, `name: type` (`?` marks an optional one).
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
