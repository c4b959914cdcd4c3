//! Prometheus endpoints: [`MetricsServer`] answers `GET /metrics` with whatever text its
//! renderer gives; [`ManagerMetrics`] is what the manager exposes (workers by liveness,
//! their threads summed, ping ages, each worker's last-ping age, API calls by method with
//! latency, WindowPoSt jobs by state with the last end of each, whether its records can be
//! read).

use std::collections::BTreeMap;
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
use crate::manager::ChainView;
use crate::registry::{PingEntry, Registry as WorkerRegistry};

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

/// How long a scrape waits for the registry and for the chain records, side by side: well
/// within Prometheus' default scrape timeout (10 s), so that a database outage is served
/// as `damocles_manager_database_up 0` rather than as a scrape that timed out.
pub const SCRAPE_WAIT: Duration = Duration::from_secs(3);

/// The WindowPoSt job states, as `util sealer wdpost list` shows them.
pub const WDPOST_STATES: [&str; 5] = ["pending", "proving", "finished", "failed", "missed"];

/// What a scrape reads besides the worker registry: the manager's chain records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFacts {
    /// The WindowPoSt jobs the manager keeps, by state ([`WDPOST_STATES`], or a state as
    /// the records hold it), each with when the last one of that state ended (Unix
    /// seconds; `None`: none has).
    pub wdpost_jobs: BTreeMap<String, WdPostTally>,
    /// Why the records could not be read (a database outage); `None` while they are.
    pub unreadable: Option<String>,
}

/// The WindowPoSt jobs of one state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WdPostTally {
    /// How many.
    pub jobs: u64,
    /// When the last of them finished or was given up (Unix seconds).
    pub last_end: Option<u64>,
}

impl RecordFacts {
    /// What `chain` shows now: its WindowPoSt jobs, read first (that read is what finds
    /// its database down), and whether its records could be read. It may wait on the
    /// database: call it off the async executor.
    pub fn of_chain(chain: &dyn ChainView) -> Self {
        let jobs = chain.wdpost_jobs();
        let mut facts = Self::tally(jobs.iter().map(|j| (j.state.as_str(), j.finished_at)));
        facts.unreadable = chain.records_unreadable();
        facts
    }

    /// Counts `rows` (state, when it ended) by state.
    pub fn tally<'a>(rows: impl IntoIterator<Item = (&'a str, Option<u64>)>) -> Self {
        let mut facts = Self::default();
        for (state, ended) in rows {
            let tally = facts.wdpost_jobs.entry(state.to_owned()).or_default();
            tally.jobs = tally.jobs.saturating_add(1);
            tally.last_end = tally.last_end.max(ended);
        }
        facts
    }
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
    last_ping_age: Family<WorkerLabels, Gauge>,
    calls: Family<MethodLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    wdpost_jobs: Family<StateLabels, Gauge>,
    wdpost_last_end: Family<StateLabels, Gauge>,
    database_up: Gauge,
    /// Held while a scrape sets the gauges (some cleared and refilled each time).
    rendering: std::sync::Mutex<()>,
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
        let last_ping_age = Family::default();
        let wdpost_jobs = Family::default();
        let wdpost_last_end = Family::default();
        let database_up = Gauge::default();
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
        registry.register(
            "worker_last_ping_age_seconds",
            "Seconds since each registered worker's last ping, by worker name",
            last_ping_age.clone(),
        );
        registry.register("api_calls", "API calls by method", calls.clone());
        registry.register(
            "api_call_duration_seconds",
            "API call latency by method",
            latency.clone(),
        );
        registry.register(
            "wdpost_jobs",
            "WindowPoSt jobs the manager keeps, by state",
            wdpost_jobs.clone(),
        );
        registry.register(
            "wdpost_last_end_timestamp_seconds",
            "When the last WindowPoSt job of each state finished or was given up (Unix seconds; states none has ended in are left out)",
            wdpost_last_end.clone(),
        );
        registry.register(
            "database_up",
            "1 while the manager reads its records (worker registry, chain records: PostgreSQL with --db), 0 while it cannot",
            database_up.clone(),
        );
        Self {
            registry,
            workers,
            threads,
            ping_age,
            last_ping_age,
            calls,
            latency,
            wdpost_jobs,
            wdpost_last_end,
            database_up,
            rendering: std::sync::Mutex::default(),
        }
    }
}

/// `text` as a label value of the text exposition: prometheus-client writes label values
/// as they are, so a worker named with `"`, `\` or a line break would break every scrape.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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

    /// Reads `registry` and `chain` (each for at most `wait`, side by side; what is not
    /// read by then counts as unreadable) and renders them at the current time.
    pub async fn scrape(
        &self,
        registry: &dyn WorkerRegistry,
        chain: Arc<dyn ChainView>,
        expiration: Duration,
        wait: Duration,
    ) -> String {
        let (entries, records) = tokio::join!(
            tokio::time::timeout(wait, registry.entries()),
            tokio::time::timeout(
                wait,
                tokio::task::spawn_blocking(move || RecordFacts::of_chain(chain.as_ref()))
            ),
        );
        let entries = match entries {
            Ok(Ok(entries)) => Some(entries),
            Ok(Err(e)) => {
                tracing::debug!("metrics: the worker registry cannot be read: {e}");
                None
            }
            Err(_) => None,
        };
        let records = match records {
            Ok(Ok(records)) => records,
            Ok(Err(e)) => RecordFacts {
                unreadable: Some(format!("reading the chain records failed: {e}")),
                ..RecordFacts::default()
            },
            Err(_) => RecordFacts {
                unreadable: Some(format!("the chain records were not read within {wait:?}")),
                ..RecordFacts::default()
            },
        };
        self.render(
            entries.as_deref(),
            expiration,
            crate::manager::unix_now(),
            &records,
        )
    }

    /// The text exposition, with the figures of the registry's `entries` taken at `now`
    /// (`None`: the registry could not be read; its gauges are left out) and of the chain
    /// `records` (unreadable: the WindowPoSt gauges are left out, as the listings show
    /// nothing then).
    pub fn render(
        &self,
        entries: Option<&[PingEntry]>,
        expiration: Duration,
        now: i64,
        records: &RecordFacts,
    ) -> String {
        // Two scrapes at once would interleave their clearing and refilling.
        let _rendering = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        self.database_up
            .set(i64::from(entries.is_some() && records.unreadable.is_none()));
        self.wdpost_jobs.clear();
        self.wdpost_last_end.clear();
        if records.unreadable.is_none() {
            self.set_wdpost_gauges(&records.wdpost_jobs);
        }
        self.last_ping_age.clear();
        match entries {
            Some(entries) => self.set_registry_gauges(entries, expiration, now),
            None => {
                self.workers.clear();
                self.threads.clear();
                self.ping_age.clear();
            }
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    fn set_wdpost_gauges(&self, jobs: &BTreeMap<String, WdPostTally>) {
        for state in WDPOST_STATES {
            self.wdpost_jobs
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(0);
        }
        for (state, tally) in jobs {
            let labels = StateLabels {
                state: state.clone(),
            };
            self.wdpost_jobs
                .get_or_create(&labels)
                .set(i64::try_from(tally.jobs).unwrap_or(i64::MAX));
            if let Some(end) = tally.last_end {
                self.wdpost_last_end
                    .get_or_create(&labels)
                    .set(i64::try_from(end).unwrap_or(i64::MAX));
            }
        }
    }

    fn set_registry_gauges(&self, entries: &[PingEntry], expiration: Duration, now: i64) {
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
            self.last_ping_age
                .get_or_create(&WorkerLabels {
                    worker: label_value(&entry.info.name),
                })
                .set(age.max(0));
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
    }
}

#[cfg(test)]
mod tests;
