//! The metrics HTTP endpoint: `GET /metrics` (text exposition format) and `GET /healthz` (`ok`),
//! served by hyper 1 on a tokio runtime the caller owns.
//!
//! Kept tiny and robust: at most [`MAX_CONNECTIONS`] connections at once (more are closed at
//! once), request heads bounded by hyper's minimum buffer ([`MAX_REQUEST_HEAD_BYTES`]), a header
//! read timeout and a whole-connection timeout, no request bodies read, and no panic on any
//! request. Binding happens synchronously in [`serve`], so a busy port is an error the CLI can map
//! to exit 78 before the pipeline starts. Nothing here runs on the event hot path.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use super::{Metrics, MetricsError};

/// The default `--metrics-address`: loopback only.
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:9780";

/// Connections served at once; further ones are closed immediately.
pub const MAX_CONNECTIONS: usize = 16;

/// Request line plus headers, at most (hyper's minimum read buffer).
pub const MAX_REQUEST_HEAD_BYTES: usize = 8192;

/// Time allowed to receive a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a connection may stay open, keep-alive included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The text exposition format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Parses `--metrics-address`: `off` (any case) disables the endpoint (`None`); otherwise an
/// `IP:PORT` socket address (`127.0.0.1:9780`, `[::1]:0`, `0.0.0.0:9780`).
pub fn parse_metrics_address(s: &str) -> Result<Option<SocketAddr>, MetricsError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    t.parse::<SocketAddr>().map(Some).map_err(|_| MetricsError::BadAddress { input: s.to_owned() })
}

/// A running metrics endpoint. Dropping it (or [`MetricsServer::shutdown`]) stops accepting
/// connections and closes the listener; requests already being answered finish.
pub struct MetricsServer {
    local_addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The bound address (the actual port when port 0 was requested).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the endpoint.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Binds `addr` now and serves `/metrics` and `/healthz` on `rt` until the returned server is
/// dropped. Binding errors (busy port, bad interface, permission) are returned.
///
/// `rt` must be a running runtime (a multi-thread runtime, or a current-thread one that the
/// caller keeps driving); the accept loop and each connection are tasks on it.
pub fn serve(
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    rt: &tokio::runtime::Handle,
) -> Result<MetricsServer, MetricsError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    serve_listener(metrics, listener, rt)
}

/// Serves on an already-bound listener (for callers and tests that bind themselves).
pub fn serve_listener(
    metrics: Arc<Metrics>,
    listener: std::net::TcpListener,
    rt: &tokio::runtime::Handle,
) -> Result<MetricsServer, MetricsError> {
    let fallback: SocketAddr = ([0, 0, 0, 0], 0).into();
    let addr = listener.local_addr().unwrap_or(fallback);
    let bind_err = |source| MetricsError::Bind { addr, source };
    listener.set_nonblocking(true).map_err(bind_err)?;
    let local_addr = listener.local_addr().map_err(bind_err)?;
    let listener = {
        let _entered = rt.enter();
        tokio::net::TcpListener::from_std(listener).map_err(bind_err)?
    };
    let accept_task = rt.spawn(accept_loop(listener, metrics));
    Ok(MetricsServer { local_addr, accept_task })
}

async fn accept_loop(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "Metrics listener cannot accept a connection.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(&metrics, &req)) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            // Errors (malformed requests, resets, timeouts) only end this connection.
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Routes one request.
fn respond(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let mut r = Response::new(Full::new(Bytes::from(metrics.render())));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    r
}
