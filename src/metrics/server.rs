//! The metrics HTTP endpoint: `GET /metrics` (text exposition format) and `GET /healthz` (`ok`),
//! served by hyper 1 on a tokio runtime the caller owns.
//!
//! Kept tiny and robust: its own cap of [`MAX_CONNECTIONS`] connections (separate from the
//! input's `max_connections`), request heads bounded by hyper's minimum buffer
//! ([`MAX_REQUEST_HEAD_BYTES`]), a header read timeout and a whole-connection timeout, no request
//! bodies read, and no panic on any request. Binding happens synchronously in [`serve`], so a busy
//! port is an error the CLI can map to exit 78 before the pipeline starts. Nothing here runs on
//! the event hot path.
//!
//! Idle connections cannot delay a scrape (issue 13: 16 connections that sent nothing held every
//! slot until their header timeout, and scrapes meanwhile were refused): a connection that
//! arrives when every slot is taken closes the **oldest** open connection and takes its slot. A
//! scrape is answered within milliseconds of connecting, so the oldest connection is the one
//! most likely idle: one sending nothing, or a keep-alive connection between scrapes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Notify;

use super::{Metrics, MetricsError};
use crate::sync::lock;

/// Connections served at once; a further one closes the oldest open connection.
pub const MAX_CONNECTIONS: usize = 16;

/// Request line plus headers, at most (hyper's minimum read buffer).
pub const MAX_REQUEST_HEAD_BYTES: usize = 8192;

/// Time allowed to receive a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a connection may stay open, keep-alive included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The text exposition format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

/// The open connections, oldest first, each with the signal that closes it.
#[derive(Default)]
struct Open {
    next_id: u64,
    conns: VecDeque<(u64, Arc<Notify>)>,
}

impl Open {
    /// Registers a new connection; when [`MAX_CONNECTIONS`] are open, first tells the oldest to
    /// close (it leaves the list at once, so the cap holds whenever the closing one finishes).
    fn admit(&mut self) -> (u64, Arc<Notify>) {
        while self.conns.len() >= MAX_CONNECTIONS {
            if let Some((_, close)) = self.conns.pop_front() {
                // A stored permit: the connection closes even if it is not waiting right now.
                close.notify_one();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let close = Arc::new(Notify::new());
        self.conns.push_back((id, close.clone()));
        (id, close)
    }

    /// Forgets a finished connection (no-op when it was already closed as the oldest).
    fn remove(&mut self, id: u64) {
        self.conns.retain(|(c, _)| *c != id);
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let open = Arc::new(Mutex::new(Open::default()));
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
        let (id, close) = lock(&open).admit();
        let (metrics, open) = (metrics.clone(), open.clone());
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
            // Errors (malformed requests, resets, timeouts) only end this connection; a newer
            // connection that needs the slot ends it too (dropping it closes the socket).
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn) => {}
                () = close.notified() => {}
            }
            lock(&open).remove(id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_past_the_cap_closes_the_oldest() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut open = Open::default();
        let first: Vec<(u64, Arc<Notify>)> = (0..MAX_CONNECTIONS).map(|_| open.admit()).collect();
        assert_eq!(open.conns.len(), MAX_CONNECTIONS);
        let (newest, _) = open.admit();
        assert_eq!(open.conns.len(), MAX_CONNECTIONS, "the cap holds");
        assert_eq!(open.conns.front().map(|c| c.0), Some(first[1].0), "the oldest left the list");
        assert_eq!(open.conns.back().map(|c| c.0), Some(newest));
        // The oldest was told to close, even though nobody was waiting yet.
        let told = rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), first[0].1.notified()).await });
        assert!(told.is_ok());
        open.remove(first[0].0);
        assert_eq!(open.conns.len(), MAX_CONNECTIONS, "removing a closed connection changes nothing");
        open.remove(first[5].0);
        assert_eq!(open.conns.len(), MAX_CONNECTIONS - 1);
    }
}
