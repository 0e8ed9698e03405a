//! The admin endpoint (`--admin-listen`, loopback unless an address is written out):
//!
//! - `GET /status`: the phase, requests in flight, the stop's reason and clock, the caps
//!   of the timeline and how long each phase lasted, as JSON;
//! - `POST /drain`: begin a stop exactly as SIGTERM would (202; 200 when one is already
//!   under way);
//! - `GET /metrics`: Prometheus text, see [`crate::proxy::metrics`].
//!
//! It reads the drain machine and never changes it other than through
//! [`Drain::request_stop`], so it cannot disagree with the health endpoint or the proxy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::drain::{Drain, Phase};
use crate::proxy::metrics;

/// Bind and serve in the background.
pub async fn start(addr: SocketAddr, drain: &Drain) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr().unwrap_or(addr);
    if !local.ip().is_loopback() {
        tracing::warn!(
            "admin endpoint on {local} is reachable from other hosts: anyone who can reach it can stop this container (POST /drain)"
        );
    }
    tracing::info!("admin listening on {local}");
    tokio::spawn(serve(listener, drain.clone()));
    Ok(())
}

async fn serve(listener: TcpListener, drain: Drain) {
    loop {
        let (stream, peer) = crate::net::accept(&listener, "admin").await;
        let drain = drain.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let resp = answer(&drain, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!("admin connection from {peer}: {e}");
            }
        });
    }
}

fn answer(drain: &Drain, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (method, path) = (req.method(), req.uri().path());
    match (path, method) {
        ("/status", &Method::GET | &Method::HEAD) => json(StatusCode::OK, &status(drain)),
        ("/metrics", &Method::GET | &Method::HEAD) => {
            let mut r = text(StatusCode::OK, metrics::render(drain));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        ("/drain", &Method::POST) => {
            let began = drain.request_stop("POST /drain");
            let code = if began {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            json(code, &status(drain))
        }
        ("/status" | "/metrics", _) => not_allowed("GET, HEAD"),
        ("/drain", _) => not_allowed("POST"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found (try GET /status, GET /metrics or POST /drain)\n".into(),
        ),
    }
}

#[derive(Debug, Serialize)]
struct Status {
    phase: Phase,
    in_flight: usize,
    stop_reason: Option<String>,
    since_stop_seconds: Option<f64>,
    deadline_in_seconds: Option<f64>,
    stop_timeout_seconds: f64,
    unready_cap_seconds: f64,
    closing_cap_seconds: f64,
    kill_at_seconds: f64,
    phase_seconds: serde_json::Map<String, serde_json::Value>,
}

fn status(drain: &Drain) -> Status {
    let b = drain.budget();
    let clock = drain.clock();
    let mut phase_seconds = serde_json::Map::new();
    for (p, d) in drain.phase_durations() {
        phase_seconds.insert(p.as_str().into(), secs(d).into());
    }
    Status {
        phase: drain.phase(),
        in_flight: drain.in_flight(),
        stop_reason: drain.stop_reason().map(str::to_string),
        since_stop_seconds: clock.map(|c| secs(c.since())),
        deadline_in_seconds: clock.map(|c| secs(c.left())),
        stop_timeout_seconds: secs(b.stop_timeout),
        unready_cap_seconds: secs(b.unready_cap),
        closing_cap_seconds: secs(b.closing_cap),
        kill_at_seconds: secs(b.kill_at()),
        phase_seconds,
    }
}

/// Seconds with millisecond precision: what a human or a dashboard wants to read.
fn secs(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

fn json(code: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let mut bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
    bytes.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed (use {allow})\n"),
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}
