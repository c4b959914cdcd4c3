//! Figure 2: `VenusWorker.WorkerList` of a worker with N idle threads over loopback,
//! against a bare hyper server answering a fixed body of the same size, in alternating
//! blocks on the same connection kind.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use damocles_rpc::{AdminService, RpcServer, ServerOptions};
use damocles_sealing::mock_chain::idle_worker;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use super::stats::{Connection, Latency};

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct AdminFigures {
    /// Threads listed.
    pub threads: usize,
    /// Size of one answer, bytes.
    pub answer_bytes: usize,
    /// Our worker's admin API.
    pub ours: Latency,
    /// The bare server.
    pub bare: Latency,
    /// ours.p99 / bare.p99 (target ≤ 1.5).
    pub p99_ratio: f64,
}

/// A hyper server that answers every request with `body`.
async fn bare_server(body: Bytes) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let body = body.clone();
                        async move {
                            // Read the request like a real server would.
                            let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                            let mut response = hyper::Response::new(Full::new(body));
                            response.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static(
                                    "application/json; charset=utf-8",
                                ),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

const LIST: &[u8] = br#"{"jsonrpc":"2.0","method":"VenusWorker.WorkerList","params":[],"id":1}"#;

/// Runs figure 2 with `threads` threads and `calls` calls to each server.
pub async fn run(threads: usize, calls: usize) -> anyhow::Result<AdminFigures> {
    let dir = tempfile::tempdir()?;
    let worker = Arc::new(
        idle_worker(
            dir.path(),
            threads,
            &damocles_cli::worker_cli::daemon::version(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("idle worker: {e}"))?,
    );
    let server = RpcServer::bind(
        "127.0.0.1:0",
        Arc::new(AdminService::new(worker.clone())),
        ServerOptions::default(),
    )
    .await?;
    let ours_addr = server.local_addr().to_string();
    let mut ours = Connection::open(&ours_addr, "/").await?;
    // The bare server answers exactly what ours answers.
    let sample = {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let request = hyper::Request::post(format!("http://{ours_addr}/"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(LIST)))?;
        http_body_util::BodyExt::collect(client.request(request).await?.into_body())
            .await?
            .to_bytes()
    };
    let (bare_addr, bare_task) = bare_server(sample.clone()).await?;
    let mut bare = Connection::open(&bare_addr, "/").await?;

    for _ in 0..calls.min(500) {
        ours.post(Bytes::from_static(LIST)).await?;
        bare.post(Bytes::from_static(LIST)).await?;
    }
    let (mut ours_times, mut bare_times) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    let block = 500.min(calls.max(1));
    let mut done = 0;
    while done < calls {
        let n = block.min(calls - done);
        for _ in 0..n {
            ours_times.push(ours.post(Bytes::from_static(LIST)).await?.1);
        }
        for _ in 0..n {
            bare_times.push(bare.post(Bytes::from_static(LIST)).await?.1);
        }
        done += n;
    }
    let (ours, bare) = (Latency::of(ours_times), Latency::of(bare_times));
    bare_task.abort();
    server.shutdown().await;
    worker.shutdown().await;
    Ok(AdminFigures {
        threads,
        answer_bytes: sample.len(),
        p99_ratio: ours.p99_us / bare.p99_us.max(1e-9),
        ours,
        bare,
    })
}
