//! Accepting and serving HTTP/1.1 connections within bounds, for every server of the
//! crate (the worker admin API, the manager, `/metrics`): no client can hold a
//! connection, or the server's file descriptors, for long without sending or reading.
//!
//! - A connection must send a complete request head within
//!   [`ConnectionLimits::header_timeout`] of its opening and of each answer (hyper's
//!   `header_read_timeout`, which starts whenever the connection waits for a head), so this
//!   is also how long a kept-alive connection may stay idle. A silent connection, or one
//!   that sends its head a byte at a time, is closed then.
//! - A body must arrive within [`ConnectionLimits::body_timeout`] (the RPC server answers
//!   408 past it).
//! - An answer the client does not read is given up after
//!   [`ConnectionLimits::write_timeout`] without progress.
//! - At most [`ConnectionLimits::max_connections`] are served at once. Past that, new
//!   clients wait (in the listen backlog) for a free slot; once the server has been full
//!   for [`ConnectionLimits::queue_wait`], each new one is answered 503 and closed until a
//!   slot frees.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::{Instant, Sleep};

/// The bounds every connection of a server is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a connection may take to send a complete request head, counted from its
    /// opening and from each answer: also the idle (keep-alive) timeout. Default 10 s.
    pub header_timeout: Duration,
    /// How long a request body may take to arrive once its head has. Default 30 s.
    pub body_timeout: Duration,
    /// How long writing an answer may make no progress (a client that does not read).
    /// Default 30 s.
    pub write_timeout: Duration,
    /// The most connections served at once. Default 256 (keep it below the process's
    /// file limit, `ulimit -n`).
    pub max_connections: usize,
    /// How long the server may be full before new clients are answered 503 instead of
    /// waiting for a slot. Default 2 s.
    pub queue_wait: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: 256,
            queue_wait: Duration::from_secs(2),
        }
    }
}

/// The answer of a client over the cap: HTTP 503 with this content type and body.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub content_type: &'static str,
    pub body: String,
}

/// The response type every server of the crate answers with.
pub(crate) type HttpResponse = hyper::Response<Full<Bytes>>;

/// Accepts and serves connections on `listener` within `limits` until `stopped`, then
/// lets the calls in progress finish (at most 10 s). `service` makes the handler of each
/// connection, from the peer's address.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    limits: ConnectionLimits,
    refusal: Refusal,
    mut stopped: oneshot::Receiver<()>,
    service: F,
) where
    F: Fn(SocketAddr, hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // A few refusals at a time; past that, a client over the cap is simply closed.
    let refusals = Arc::new(Semaphore::new(16));
    let refusal = Arc::new(refusal);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut full_since: Option<Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let refuse_from = *full_since.get_or_insert_with(Instant::now) + limits.queue_wait;
                let refusing = Instant::now() >= refuse_from;
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    accepted = listener.accept(), if refusing => {
                        if let Ok((stream, _)) = accepted {
                            refuse(stream, &refusals, &refusal);
                        }
                        continue;
                    }
                    () = tokio::time::sleep_until(refuse_from), if !refusing => continue,
                    _ = &mut stopped => break,
                }
            }
        };
        full_since = None;
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let service = service.clone();
        let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
        let connection = graceful.watch(http.serve_connection(
            io,
            hyper::service::service_fn(move |req| {
                let answer = service(remote, req);
                async move { Ok::<_, Infallible>(answer.await) }
            }),
        ));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection from {remote}: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// Answers a client over the cap with 503 and closes, within a second, in the background.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>, refusal: &Refusal) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{}",
        refusal.content_type,
        refusal.body.len(),
        refusal.body
    );
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client sent, so that closing does not reset the connection
            // before it has read the answer.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
        drop(permit);
    });
}

/// A stream whose writes fail once they have made no progress for `timeout`.
struct WriteTimeout {
    inner: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteTimeout {
    fn new(inner: TcpStream, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// Called when a write is pending: fails once it has been for `timeout`.
    fn check<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        poll: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.check(cx),
        }
    }
}

impl AsyncRead for WriteTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(poll, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(poll, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(poll, cx)
    }
}
