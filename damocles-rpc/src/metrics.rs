//! Prometheus endpoints: [`MetricsServer`] answers `GET /metrics` with whatever text its
//! renderer gives; [`ManagerMetrics`] is what the manager exposes (workers by liveness,
//! their threads summed, ping ages, API calls by method with latency).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use damocles_core::Liveness;
use http_body_util::Full;
use hyper::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::conn::{self, ConnectionLimits, HttpResponse, Refusal};
use crate::registry::PingEntry;

/// The text exposition of one scrape, on its way.
pub type Rendering = std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>;

/// Produces the text exposition on each scrape (asynchronously: a registry in a database
/// is read on the way).
pub type Renderer = Arc<dyn Fn() -> Rendering + Send + Sync>;

/// A [`Renderer`] of a synchronous function.
pub fn renderer(render: impl Fn() -> String + Send + Sync + 'static) -> Renderer {
    Arc::new(move || {
        let text = render();
        Box::pin(async move { text })
    })
}

/// An HTTP server of `GET /metrics`, its connections bounded as the RPC servers' are
/// ([`ConnectionLimits`]).
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
    _stop: oneshot::Sender<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `render`'s text at `/metrics`.
    pub async fn bind(addr: &str, render: Renderer) -> std::io::Result<Self> {
        Self::bind_with(addr, render, ConnectionLimits::default()).await
    }

    /// [`MetricsServer::bind`] with connection `limits`.
    pub async fn bind_with(
        addr: &str,
        render: Renderer,
        limits: ConnectionLimits,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let refusal = Refusal {
            content_type: "text/plain; charset=utf-8",
            body: format!(
                "too many connections: this server serves at most {} at once; try again shortly\n",
                limits.max_connections
            ),
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(conn::serve(
            listener,
            limits,
            refusal,
            stopped,
            move |_, req| {
                let render = render.clone();
                async move { answer(&render, &req).await }
            },
        ));
        Ok(Self {
            local_addr,
            task,
            _stop: stop,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

async fn answer(render: &Renderer, req: &hyper::Request<hyper::body::Incoming>) -> HttpResponse {
    let mut response = if req.method() == Method::GET && req.uri().path() == "/metrics" {
        hyper::Response::new(Full::new(Bytes::from(render().await)))
    } else {
        let mut r = hyper::Response::new(Full::new(Bytes::from("metrics are at GET /metrics\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LivenessLabels {
    liveness: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgeLabels {
    age: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

fn latency_histogram() -> Histogram {
    // 10 µs … about 40 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 12))
}

/// The manager's metrics.
pub struct ManagerMetrics {
    registry: Registry,
    workers: Family<LivenessLabels, Gauge>,
    threads: Family<StateLabels, Gauge>,
    ping_age: Family<AgeLabels, Gauge>,
    calls: Family<MethodLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for ManagerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerMetrics").finish_non_exhaustive()
    }
}

impl Default for ManagerMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("damocles_manager");
        let workers = Family::default();
        let threads = Family::default();
        let ping_age = Family::default();
        let calls = Family::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("workers", "Registered workers by liveness", workers.clone());
        registry.register(
            "worker_threads",
            "Sealing threads of all registered workers, by what their last report counts",
            threads.clone(),
        );
        registry.register(
            "worker_ping_age",
            "Registered workers by the age of their last ping",
            ping_age.clone(),
        );
        registry.register("api_calls", "API calls by method", calls.clone());
        registry.register(
            "api_call_duration_seconds",
            "API call latency by method",
            latency.clone(),
        );
        Self {
            registry,
            workers,
            threads,
            ping_age,
            calls,
            latency,
        }
    }
}

impl ManagerMetrics {
    /// An API call of `method` took `took`.
    pub fn record_call(&self, method: &str, took: Duration) {
        let labels = MethodLabels {
            method: method.to_owned(),
        };
        self.calls.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the figures of the registry's `entries` taken at `now`.
    pub fn render(&self, entries: &[PingEntry], expiration: Duration, now: i64) -> String {
        let mut by_liveness = [0i64; 2];
        let mut sums = [0u64; 5];
        let mut ages = [0i64; 4];
        for entry in entries {
            match Liveness::at(entry.last_ping, now, expiration) {
                Liveness::Ok => by_liveness[0] = by_liveness[0].saturating_add(1),
                Liveness::Expired => by_liveness[1] = by_liveness[1].saturating_add(1),
            }
            let s = &entry.info.summary;
            for (sum, n) in sums
                .iter_mut()
                .zip([s.empty, s.paused, s.running, s.waiting, s.errors])
            {
                // Reported counts are the workers' word: one claiming u64::MAX must not
                // break every later scrape.
                *sum = sum.saturating_add(n);
            }
            let age = now.saturating_sub(entry.last_ping);
            let bucket = match age {
                ..=60 => 0,
                61..=120 => 1,
                121..=300 => 2,
                _ => 3,
            };
            ages[bucket] = ages[bucket].saturating_add(1);
        }
        for (liveness, n) in ["ok", "expired"].into_iter().zip(by_liveness) {
            self.workers
                .get_or_create(&LivenessLabels {
                    liveness: liveness.into(),
                })
                .set(n);
        }
        for (state, n) in ["empty", "paused", "running", "waiting", "errors"]
            .into_iter()
            .zip(sums)
        {
            self.threads
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (age, n) in ["<=60s", "<=120s", "<=300s", ">300s"].into_iter().zip(ages) {
            self.ping_age
                .get_or_create(&AgeLabels { age: age.into() })
                .set(n);
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
