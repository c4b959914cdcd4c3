//! Web pages a server serves beside its API (the manager's dashboard, under
//! [`PAGES_PATH`]): what the server hands a [`Pages`] and what it answers, and the guard
//! every request from a browser passes ([`browser_guard`]).
//!
//! The guard stops two attacks on an operator's browser: a page of another site that
//! posts to the manager (its `Origin` is not the manager's), and a DNS name rebound to
//! the manager's address, through which a page of that name would be same-origin with
//! the manager (its `Host` is that name, not an address or a name the operator allowed).

use async_trait::async_trait;
use bytes::Bytes;
use hyper::header::{HeaderMap, HOST, ORIGIN};

use crate::method::Permission;

/// Where the pages are served: `/dashboard/…`; `/` redirects there.
pub const PAGES_PATH: &str = "/dashboard";

/// A request for a page or a page's action.
#[derive(Debug)]
pub struct PageRequest {
    /// The path below [`PAGES_PATH`]: `/` for the page itself, `/app.js`, `/f/workers`…
    pub path: String,
    /// The query string, undecoded (`name=w1&index=2`), empty when none.
    pub query: String,
    /// `true` for a POST (an action), `false` for a GET.
    pub post: bool,
    /// What the request's token allows: `None` when tokens are required and it sent
    /// none that the server knows.
    pub permission: Option<Permission>,
    /// The body of a POST.
    pub body: Bytes,
}

/// A page's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl Page {
    /// A 200 answer of HTML.
    pub fn html(body: impl Into<Bytes>) -> Self {
        Self::of(200, "text/html; charset=utf-8", body)
    }

    /// An answer of `status`, type and body.
    pub fn of(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
        }
    }
}

/// What serves the pages.
#[async_trait]
pub trait Pages: Send + Sync {
    /// The answer to `request`.
    async fn answer(&self, request: PageRequest) -> Page;
}

/// Checks a request that a browser may have sent. `Host` must name this server by an
/// IP address, `localhost`, or one of `allowed_hosts` (names without port, compared
/// without case); where the request carries `Origin` (every browser POST does), it must
/// be this server's own origin. The refusal says why, for a 403.
///
/// Programs that send no `Origin` (the workers, `util`, curl) pass the `Origin` part; the
/// API applies the guard only to requests with `Origin` or `Sec-Fetch-Site`, the pages to
/// every request.
pub fn browser_guard(headers: &HeaderMap, allowed_hosts: &[String]) -> Result<(), BrowserRefusal> {
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| BrowserRefusal("the request names no Host".into()))?;
    let name = host_name(host);
    let allowed = name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
        || allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(name));
    if !allowed {
        return Err(BrowserRefusal(format!(
            "Host {host:?} is not an address of this manager: open it by IP address or localhost, or start it with --dashboard-host {name}"
        )));
    }
    // A request the browser itself marks as made by another site's page.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site")
    {
        return Err(BrowserRefusal(
            "a page of another site may not call this manager".into(),
        ));
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let own = ["http://", "https://"]
            .iter()
            .any(|scheme| origin.strip_prefix(scheme) == Some(host));
        if !own {
            return Err(BrowserRefusal(format!(
                "a page of {origin:?} may not call this manager (only its own pages, at {host}, may)"
            )));
        }
    }
    Ok(())
}

/// Why [`browser_guard`] refused a request, in words for the 403's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BrowserRefusal(pub String);

/// Whether a request to the API came from a browser (and so passes [`browser_guard`]).
pub fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(ORIGIN) || headers.contains_key("sec-fetch-site")
}

/// `host:port`, `[v6]:port` or a bare host → the host, brackets removed.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(HOST, HeaderValue::from_str(host).expect("host"));
        if let Some(origin) = origin {
            map.insert(ORIGIN, HeaderValue::from_str(origin).expect("origin"));
        }
        map
    }

    #[test]
    fn addresses_localhost_and_allowed_names_pass_with_their_own_origin() {
        let allowed = vec!["manager.lan".to_owned()];
        for (host, origin) in [
            ("127.0.0.1:1789", None),
            ("127.0.0.1:1789", Some("http://127.0.0.1:1789")),
            ("[::1]:1789", Some("http://[::1]:1789")),
            ("localhost:1789", Some("https://localhost:1789")),
            ("Manager.LAN:1789", Some("http://Manager.LAN:1789")),
            ("10.0.0.5", None),
        ] {
            assert_eq!(
                browser_guard(&headers(host, origin), &allowed),
                Ok(()),
                "{host} {origin:?}"
            );
        }
    }

    #[test]
    fn rebound_names_and_other_origins_are_refused_saying_why() {
        let allowed = vec!["manager.lan".to_owned()];
        let rebound = browser_guard(
            &headers("evil.example:1789", Some("http://evil.example:1789")),
            &allowed,
        )
        .unwrap_err();
        assert!(
            rebound.0.contains("--dashboard-host evil.example"),
            "{rebound}"
        );
        let cross = browser_guard(
            &headers("127.0.0.1:1789", Some("http://evil.example")),
            &allowed,
        )
        .unwrap_err();
        assert!(
            cross.0.contains("\"http://evil.example\" may not call"),
            "{cross}"
        );
        // Another port is another origin.
        assert!(browser_guard(
            &headers("127.0.0.1:1789", Some("http://127.0.0.1:8080")),
            &allowed
        )
        .is_err());
        assert!(browser_guard(&HeaderMap::new(), &allowed).is_err());
        let mut marked = headers("127.0.0.1:1789", None);
        marked.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(browser_guard(&marked, &allowed).is_err());
        assert!(from_browser(&headers("x", Some("http://x"))));
        assert!(!from_browser(&headers("x", None)));
    }
}
