//! The public HTTP listener: hyper's connection handling with the limits a
//! port open to strangers needs, which `axum::serve` does not set.
//!
//! - A request head (request line and headers) must arrive within
//!   [`Limits::read_timeout`], on a fresh connection and between requests of
//!   a kept-alive one, and a body may not fall silent for longer: a client
//!   that sends half a request is cut off instead of holding a connection
//!   forever.
//! - One client address may hold at most [`Limits::per_ip`] connections;
//!   the next ones are closed as they are accepted.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// What one connection and one client address may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time for a request head to arrive, and between pieces of a body.
    pub read_timeout: Duration,
    /// Connections open at once from one address; 0 for no limit.
    pub per_ip: usize,
}

/// Open connections by client address.
#[derive(Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; uncounted when dropped.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A map of counters: a panicked holder leaves no half-made entry.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<Slot> {
        let mut map = self.lock();
        let n = map.entry(ip).or_default();
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.counts.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish (WebSockets included, which end with their rooms).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.read_timeout,
    ));
    let counts = Arc::new(Counts::default());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut refused_logged = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors, mostly: wait for some to close.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = counts.take(peer.ip(), limits.per_ip) else {
            if refused_logged.elapsed() >= Duration::from_secs(10) {
                refused_logged = std::time::Instant::now();
                tracing::warn!(client = %peer.ip(), limit = limits.per_ip, "connections refused: too many from one address");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, client = %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    // Kept-alive connections close after their current request; none may hold the exit up for long.
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown were dropped");
    }
}
