//! Accepting and serving client connections.
//!
//! The accept loop runs until the process exits, whatever the phase: a connection refused
//! during unready would be a failed request the load balancer routed in good faith, and
//! one refused during closing is better answered with a 503 the client can act on.
//!
//! A connection that was open when closing began gets hyper's graceful shutdown: an idle
//! HTTP/1 connection is closed at once (cleanly, see [`Linger`]), a busy one finishes its
//! request with `Connection: close`, an h2 connection gets GOAWAY and finishes its
//! streams. A connection accepted during closing or later is left alone: its request gets
//! the 503 with `Connection: close`, and then it ends.
//!
//! A request head that starts arriving must be complete within `--client-header-timeout`
//! (see [`super::head`]); idle connections are never timed out from this side.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Shared;
use super::head::{ConnBody, HeadClock, HeadTimer};
use super::io::Linger;
use super::service::{self, ConnCtx};
use crate::drain::Phase;

/// Requests with more header bytes than this are answered 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .max_buf_size(MAX_HEADER_BYTES);
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = crate::net::accept(&listener, "proxy").await;
        tokio::spawn(serve(stream, peer, shared.clone(), builder.clone()));
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
) {
    let accepted_in = shared.drain.phase();
    let mut phases = shared.drain.subscribe();
    let clock = HeadClock::new(shared.client_header_timeout);
    let io = Linger::new(stream, HeadTimer::new(clock.clone()));
    let ctx = Arc::new(ConnCtx::new(shared, peer));
    let svc = service_fn(move |req: Request<Incoming>| {
        let (ctx, clock) = (ctx.clone(), clock.clone());
        clock.head_complete();
        async move {
            let resp = service::handle(&ctx, req).await;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                clock.off();
            }
            Ok::<_, Infallible>(resp.map(|body| ConnBody::new(body, clock)))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let res = if accepted_in < Phase::Closing {
        tokio::select! {
            res = conn.as_mut() => res,
            () = reached(&mut phases, Phase::Closing) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    } else {
        conn.await
    };
    if let Err(e) = res {
        tracing::debug!("connection from {peer}: {e}");
    }
}

/// Wait until the drain reaches `phase` (or the machine is gone).
pub(crate) async fn reached(rx: &mut watch::Receiver<Phase>, phase: Phase) {
    let _ = rx.wait_for(|p| *p >= phase).await;
}
