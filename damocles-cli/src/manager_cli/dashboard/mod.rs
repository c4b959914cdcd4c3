//! The manager's dashboard, at `/dashboard/` on the manager's own listener: one page
//! (`assets/`, in the binary) that shows fragments of HTML rendered here from the same
//! rows and lines as the `util` commands, polled every 1.5 s, and sends actions that run
//! as the `util` commands run them (through [`Fleet`], the registry and the chain view)
//! and answer with their messages.
//!
//! Paths below `/dashboard` ([`damocles_rpc::pages::PAGES_PATH`]):
//! - `GET /`, `/app.js`, `/app.css`: the page (no token needed; it holds no data);
//! - `GET /f/<fragment>?<query>`: `overview`, `workers`, `worker?name=`,
//!   `events?name=&index=&tz=`, `sectors`, `jobs`, `wdpost`: HTML with the read token (or
//!   none where no token is set); action controls only for the admin token;
//! - `POST /act` with `{"action", …}` (JSON): an action, with the admin token; the
//!   answer is the `util` command's message as text (200) or its error (4xx/5xx).
//!
//! The server checks `Host` and `Origin` of every request here
//! ([`damocles_rpc::pages::browser_guard`]).

mod actions;
mod fragments;
mod html;

use std::sync::Arc;
use std::time::Duration;

use damocles_rpc::fleet::Fleet;
use damocles_rpc::manager::ChainView;
use damocles_rpc::method::Permission;
use damocles_rpc::pages::{Page, PageRequest, Pages};
use damocles_rpc::Registry;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What the dashboard shows and acts on: the manager's registry, its chain view (the
/// mock chain's records; none for a manager without), and the workers through `fleet`.
pub struct Dashboard {
    registry: Arc<dyn Registry>,
    chain: Option<Arc<dyn ChainView>>,
    fleet: Fleet,
    /// Workers whose last ping is older are shown expired (`util worker list`'s `(!)`).
    expiration: Duration,
}

impl Dashboard {
    /// A dashboard of `registry` and `chain`, relaying to workers with `worker_token`.
    pub fn new(
        registry: Arc<dyn Registry>,
        chain: Option<Arc<dyn ChainView>>,
        worker_token: Option<String>,
        expiration: Duration,
    ) -> Self {
        Self {
            fleet: Fleet::new(registry.clone(), worker_token),
            registry,
            chain,
            expiration,
        }
    }
}

#[async_trait::async_trait]
impl Pages for Dashboard {
    async fn answer(&self, request: PageRequest) -> Page {
        let query: Vec<(String, String)> = form_urlencoded::parse(request.query.as_bytes())
            .into_owned()
            .collect();
        match (request.post, request.path.as_str()) {
            (false, "/") => Page::html(INDEX_HTML),
            (false, "/app.js") => Page::of(200, "text/javascript; charset=utf-8", APP_JS),
            (false, "/app.css") => Page::of(200, "text/css; charset=utf-8", APP_CSS),
            (false, path) if path.starts_with("/f/") => match request.permission {
                None => needs_token("reading the dashboard needs the read or the admin token"),
                Some(permission) => fragments::fragment(self, &path[3..], &query, permission).await,
            },
            (true, "/act") => match request.permission {
                Some(Permission::Admin) => actions::act(self, &request.body).await,
                Some(Permission::Read) => text(403, "actions need the admin token"),
                None => needs_token("actions need the admin token"),
            },
            (post, path) => text(
                404,
                format!("no such page: {} {path}", if post { "POST" } else { "GET" }),
            ),
        }
    }
}

impl Dashboard {
    /// The chain view, refused (503, saying since when) while its records cannot be read.
    fn chain(&self) -> Result<&dyn ChainView, Refusal> {
        let chain = self
            .chain
            .as_deref()
            .ok_or_else(|| Refusal::new(404, "this manager has no chain records to show"))?;
        match chain.records_unreadable() {
            Some(why) => Err(Refusal::new(503, why)),
            None => Ok(chain),
        }
    }
}

/// Why a view or an action is refused: the HTTP status and the text the page shows.
#[derive(Debug)]
struct Refusal {
    status: u16,
    message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A worker the registry does not know, in `util worker`'s words (404).
    fn unknown_worker(name: &str) -> Self {
        Self::new(
            404,
            format!("worker info not found. please make sure the instance name is correct: {name}"),
        )
    }
}

fn text(status: u16, body: impl Into<String>) -> Page {
    Page::of(status, "text/plain; charset=utf-8", body.into())
}

fn needs_token(why: &str) -> Page {
    text(401, format!("{why}: enter it above"))
}

/// The value of `name` in `query`.
fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests;
