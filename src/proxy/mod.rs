//! The HTTP drain proxy (issue 3): stands in front of the app on `--listen` and follows the
//! drain machine's phases, so a stop loses no request for any app, with no code change.
//!
//! # Design
//!
//! - The proxy runs on threads of its own, one per CPU, each a single-threaded tokio
//!   runtime with its own `SO_REUSEPORT` listener, connections and upstream pool: a
//!   request is handled start to finish by one event loop, as in nginx or HAProxy, instead
//!   of hopping between the workers of a shared runtime. The supervisor's runtime is left
//!   alone by the data path.
//! - `conn` accepts connections for the whole life of the process. The accept loop never
//!   stops on its own (hyper #3961): during unready the load balancer still routes here and
//!   a refused connection would be a failed request. Each connection is served by hyper
//!   (HTTP/1.1 and h2c) and gets hyper's graceful shutdown when closing begins, which
//!   closes idle HTTP/1 connections, turns keep-alive off on busy ones and sends h2 GOAWAY.
//!   Every socket closes through `io::Linger`: FIN, then read until the peer's FIN, so
//!   bytes the client already sent never turn the close into a reset.
//! - `service` answers one request: the health path from [`crate::health::answer`], 503
//!   with `Connection: close` and `Retry-After` for requests that arrive in closing or
//!   later, and everything else forwarded by `forward`.
//! - `forward` rewrites headers (hop-by-hop out, `X-Forwarded-*` in), sends the request
//!   on a pooled keep-alive upstream connection (`pool`) and streams both bodies. The in-flight
//!   guard rides in the response `body` and ends with it; upgraded connections
//!   (`tunnel`) hold theirs until they close.
//! - `h1` is the HTTP/1.1 the proxy speaks to the app: its own small codec over httparse
//!   rather than hyper's client, which cost more than the rest of a proxied request (see
//!   its module docs). Upgrades still go through hyper's client, which can hand over the
//!   upgraded connection.
//! - `ready` moves the machine from starting to serving once the app answers.
//! - [`metrics`] counts requests by phase and status for the admin endpoint.

mod body;
mod conn;
mod forward;
mod h1;
mod head;
mod io;
pub mod metrics;
mod pool;
mod ready;
mod service;
mod tunnel;
mod upload;

#[cfg(fuzzing)]
#[doc(hidden)]
pub use h1::fuzz_api as h1_fuzz_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;
use tokio::net::{TcpListener, TcpSocket};

use crate::drain::Drain;
use crate::health::HealthCheck;
use crate::{addr, duration};

/// Flags of the drain proxy, part of `lastcall run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Listen here and proxy HTTP to --upstream, draining it on stop (turns the proxy on).
    #[arg(long, env = "LASTCALL_LISTEN", value_name = "ADDR", value_parser = addr::listen, requires = "upstream")]
    pub listen: Option<SocketAddr>,
    /// Where the app listens.
    #[arg(long, env = "LASTCALL_UPSTREAM", value_name = "ADDR", value_parser = addr::connect, requires = "listen")]
    pub upstream: Option<SocketAddr>,
    /// The app's own health path; without it, readiness is a TCP connect to --upstream.
    #[arg(long, env = "LASTCALL_UPSTREAM_HEALTH_PATH", value_name = "PATH", value_parser = crate::health::path_arg)]
    pub upstream_health_path: Option<String>,
    /// How long the app may take to become ready before lastcall gives up.
    #[arg(long, env = "LASTCALL_READY_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = duration::arg)]
    pub ready_timeout: Duration,
    /// Unready also ends when no request came for this long after the first failed probe.
    #[arg(long, env = "LASTCALL_QUIET_PERIOD", value_name = "DURATION", default_value = "1s", value_parser = duration::arg)]
    pub quiet_period: Duration,
    /// Cap of the closing phase (default: derived from --stop-timeout).
    #[arg(long, env = "LASTCALL_DRAIN_TIMEOUT", value_name = "DURATION", value_parser = duration::arg)]
    pub drain_timeout: Option<Duration>,
    /// A connection to the app that takes longer than this is answered 502.
    #[arg(long, env = "LASTCALL_UPSTREAM_CONNECT_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = duration::arg)]
    pub upstream_connect_timeout: Duration,
    /// A response whose headers take longer than this is answered 504 (bodies may stream on);
    /// 408 instead when it was the client's upload that stalled.
    #[arg(long, env = "LASTCALL_UPSTREAM_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = duration::positive_arg)]
    pub upstream_timeout: Duration,
    /// A request head must be complete this long after its first byte, or the connection
    /// ends (slowloris). Idle keep-alive connections are never timed out.
    #[arg(long, env = "LASTCALL_CLIENT_HEADER_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = duration::positive_arg)]
    pub client_header_timeout: Duration,
}

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on --listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--upstream-health-path `{path}` is not a path (write it like /health)")]
    HealthPath { path: String },
    #[error("--listen needs --upstream ADDR (where the app listens)")]
    NoUpstream,
}

/// What every connection of the proxy shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) drain: Drain,
    pub(crate) health_path: String,
    pub(crate) health: HealthCheck,
    pub(crate) upstream: forward::Upstream,
    pub(crate) client_header_timeout: Duration,
}

/// Bind the listeners and start serving; returns once the proxy runs in the background.
pub async fn start(args: &ProxyArgs, health_path: &str, drain: &Drain) -> Result<(), ProxyError> {
    let (Some(listen), Some(upstream)) = (args.listen, args.upstream) else {
        return Err(ProxyError::NoUpstream);
    };
    let health_uri = match &args.upstream_health_path {
        None => None,
        Some(path) => Some(health_uri(upstream, path)?),
    };
    let bind_err = |source| ProxyError::Bind {
        addr: listen,
        source,
    };
    // One listener per thread on the same port (SO_REUSEPORT): the kernel spreads
    // connections, and each thread serves its own with its own event loop.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let listen = claim(listen).map_err(bind_err)?;
    let first = reuseport_listener(listen).map_err(bind_err)?;
    let local = first.local_addr().map_err(bind_err)?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(reuseport_listener(local).map_err(bind_err)?);
    }
    crate::log::set_phase(drain.phase());
    for (i, listener) in listeners.into_iter().enumerate() {
        let listener = listener.into_std().map_err(bind_err)?;
        let shared = Shared {
            drain: drain.clone(),
            health_path: health_path.to_string(),
            health: HealthCheck::new(health_uri.clone()),
            upstream: forward::Upstream::new(upstream, args),
            client_header_timeout: args.client_header_timeout,
        };
        std::thread::Builder::new()
            .name(format!("lastcall-proxy-{i}"))
            .spawn(move || serve_thread(listener, shared))
            .map_err(bind_err)?;
    }
    tokio::spawn(ready::wait(
        drain.clone(),
        upstream,
        HealthCheck::new(health_uri),
        args.ready_timeout,
    ));
    tracing::info!("proxy listening on {local}, forwarding to {upstream}");
    Ok(())
}

/// Check that nothing listens on `addr` yet, and pick the port when it is 0.
///
/// `SO_REUSEPORT` lets any socket of the same user that also sets it share the port, so
/// a second lastcall (or an nginx with `reuseport`) on the same `--listen` — easy to do
/// with two containers of one pod, which share a network namespace — would bind without
/// error and quietly take half the connections. A plain bind first gets the usual
/// "address in use" instead. It is closed before the real listeners bind, but it is not
/// listening, so no connection can be queued on it and lost.
fn claim(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let socket = socket_for(addr)?;
    socket.bind(addr)?;
    socket.local_addr()
}

/// A socket of `addr`'s family with `SO_REUSEADDR`, as std's `TcpListener::bind` makes
/// them: connections of an earlier run in TIME_WAIT do not hold the port.
fn socket_for(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket_for(addr)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// One proxy thread: a single-threaded runtime that owns its listener, its connections
/// and its upstream pool, so a request never leaves the thread (and its event loop) that
/// accepted it. The thread inherits the blocked signal mask, so signals stay with the
/// supervisor's signalfd.
fn serve_thread(listener: std::net::TcpListener, shared: Shared) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("proxy thread could not start its runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("proxy thread could not use its listener: {e}");
                return;
            }
        };
        let shared = Arc::new(shared);
        tokio::spawn({
            let shared = shared.clone();
            async move { shared.upstream.sweep_forever().await }
        });
        conn::accept_loop(listener, shared).await;
    });
}

fn health_uri(upstream: SocketAddr, path: &str) -> Result<Uri, ProxyError> {
    let bad = || ProxyError::HealthPath {
        path: path.to_string(),
    };
    // --upstream-health-path is a checked path (health::path_arg), so this holds; the
    // error stays for a URL that would still not parse.
    format!("http://{upstream}{path}")
        .parse()
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_uri_is_the_path_on_the_upstream() {
        let up: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(
            health_uri(up, "/healthz?full=1").unwrap().to_string(),
            "http://127.0.0.1:3000/healthz?full=1"
        );
    }
}
