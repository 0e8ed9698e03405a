//! One request through the proxy, decided by the phase it arrives in:
//!
//! | phase            | health path                  | other requests                    |
//! |------------------|------------------------------|-----------------------------------|
//! | starting         | 503                          | forwarded                         |
//! | serving          | the app's health answer      | forwarded                         |
//! | unready          | 503 (counted per prober)     | forwarded                         |
//! | closing, later   | 503                          | 503 + `Retry-After`               |
//!
//! From closing on, every HTTP/1 response also carries `Connection: close`, so the
//! connection ends after it instead of waiting idle for a request it would refuse.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};

use super::body::ProxyBody;
use super::forward::{self, is_upgrade};
use super::{Shared, metrics, tunnel};
use crate::drain::{InFlight, Phase};
use crate::health;

/// What one client connection knows about itself.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) peer: SocketAddr,
    /// The client's address as an `X-Forwarded-For` value, formatted once per connection.
    pub(crate) xff: HeaderValue,
}

impl ConnCtx {
    pub(crate) fn new(shared: Arc<Shared>, peer: SocketAddr) -> ConnCtx {
        let xff = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnCtx { shared, peer, xff }
    }
}

pub(crate) async fn handle(ctx: &ConnCtx, req: Request<Incoming>) -> Response<ProxyBody> {
    let shared = &ctx.shared;
    let drain = &shared.drain;
    let h1 = req.version() < Version::HTTP_2;
    let (arrived, mut resp) = if req.uri().path() == shared.health_path {
        let answer = health::answer(drain, ctx.peer, &shared.health).await;
        (drain.phase(), answer.map(ProxyBody::Local))
    } else {
        // Counted in flight before the phase is read: closing either sees this request
        // and waits for it, or has already ended and this request reads closing or later
        // and is refused. No request can slip past the end of the drain.
        let guard = drain.start_request();
        let arrived = drain.phase();
        if arrived >= Phase::Closing {
            drop(guard);
            (arrived, refuse())
        } else if is_upgrade(&req) {
            // Boxed: rare, and its future is the largest; this one is on every request.
            (arrived, Box::pin(upgrade(ctx, req, guard)).await)
        } else {
            (arrived, shared.upstream.send(req, &ctx.xff, guard).await)
        }
    };
    metrics::count(arrived, resp.status());
    if h1 && resp.status() != StatusCode::SWITCHING_PROTOCOLS && drain.phase() >= Phase::Closing {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn upgrade(
    ctx: &ConnCtx,
    mut req: Request<Incoming>,
    guard: InFlight,
) -> Response<ProxyBody> {
    let shared = &ctx.shared;
    let on_client = hyper::upgrade::on(&mut req);
    match shared.upstream.send_upgrade(req, &ctx.xff).await {
        Err(local) => local,
        Ok(mut resp) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let on_app = hyper::upgrade::on(&mut resp);
            tunnel::spawn(on_client, on_app, guard, shared.drain.clone());
            resp.map(|_| ProxyBody::empty())
        }
        Ok(resp) => resp.map(|body| ProxyBody::refused_upgrade(body, guard)),
    }
}

/// The answer to a request that arrives once the drain is closing: the load balancer
/// should have stopped routing here, so this client is told to go elsewhere.
fn refuse() -> Response<ProxyBody> {
    let mut resp = forward::local(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 service unavailable: this instance is shutting down, retry\n",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}
