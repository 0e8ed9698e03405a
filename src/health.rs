//! The health endpoint a load balancer probes (seed 000's trick, built in): 200 while
//! serving, 503 from lastcall itself the moment a stop begins, so the load balancer stops
//! routing here while the app keeps running untouched. Every probe is also counted per
//! prober address by the [`Drain`] machine, which ends the unready phase once every prober
//! has seen enough 503s.
//!
//! Used on its own port (`--health-listen`) and by the proxy on its listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::drain::{Drain, ProbeAnswer};

/// An app health check can take this long before lastcall calls the app unhealthy.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the app's own health answer comes from, if anywhere.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    upstream: Option<Uri>,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// The last probe could not reach the app's health check: logged once when that
    /// starts and once when it ends, not on every probe.
    unreachable: Arc<AtomicBool>,
}

impl HealthCheck {
    pub fn new(upstream: Option<Uri>) -> HealthCheck {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(UPSTREAM_TIMEOUT));
        connector.set_nodelay(true);
        HealthCheck {
            upstream,
            client: Client::builder(TokioExecutor::new()).build(connector),
            unreachable: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The app's health check URL, if there is one to ask.
    pub fn upstream(&self) -> Option<&Uri> {
        self.upstream.as_ref()
    }

    /// The app's own answer (200 without a health check), or why there was none.
    pub async fn ask(&self) -> Result<StatusCode, String> {
        let Some(uri) = &self.upstream else {
            return Ok(StatusCode::OK);
        };
        let req = self.client.get(uri.clone());
        match tokio::time::timeout(UPSTREAM_TIMEOUT, req).await {
            Ok(Ok(resp)) => Ok(resp.status()),
            Ok(Err(e)) => Err(format!("{uri}: {e}")),
            Err(_) => Err(format!(
                "{uri}: no answer within {}",
                crate::duration::fmt(UPSTREAM_TIMEOUT)
            )),
        }
    }

    /// Ask the app; any failure counts as unhealthy (503) rather than an error.
    async fn ask_app(&self) -> StatusCode {
        match self.ask().await {
            Ok(status) => {
                if self.unreachable.swap(false, Ordering::Relaxed) {
                    tracing::info!("the app's health check answers again");
                }
                status
            }
            Err(why) => {
                if !self.unreachable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot ask the app's health check, answering 503 until it can: {why}"
                    );
                }
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// Answer one health probe from `peer`.
pub async fn answer(drain: &Drain, peer: SocketAddr, check: &HealthCheck) -> Response<Full<Bytes>> {
    let status = match drain.probe(peer.ip()) {
        ProbeAnswer::Fail => StatusCode::SERVICE_UNAVAILABLE,
        ProbeAnswer::Pass => check.ask_app().await,
    };
    let body = format!("{}\n", drain.phase().as_str());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Serve `GET path` on `listener` until the process exits.
pub async fn serve(listener: TcpListener, path: String, drain: Drain, check: HealthCheck) {
    let shared = Arc::new((path, drain, check));
    loop {
        let (stream, peer) = crate::net::accept(&listener, "health listener").await;
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move {
                    let (path, drain, check) = &*shared;
                    let resp = if req.uri().path() == path.as_str() {
                        answer(drain, peer, check).await
                    } else {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!("health connection from {peer}: {e}");
            }
        });
    }
}

/// For clap: a URL path such as `/health` (a query may follow), for every path flag of
/// `run` and `drill`: it starts with `/` and is something an HTTP request line can carry.
pub fn path_arg(s: &str) -> Result<String, String> {
    let valid = s.starts_with('/') && s.parse::<hyper::http::uri::PathAndQuery>().is_ok();
    if valid && !s.contains(char::is_whitespace) {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a path (write it like /health)"))
    }
}

/// For clap: the app's own health check, an `http://` URL with a host.
pub fn upstream_arg(s: &str) -> Result<Uri, String> {
    let bad = || format!("`{s}` is not an http:// URL (write e.g. http://127.0.0.1:3000/health)");
    let uri: Uri = s.parse().map_err(|_| bad())?;
    if uri.scheme_str() == Some("http") && uri.authority().is_some() {
        Ok(uri)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_flags_take_url_paths() {
        for ok in ["/", "/health", "/api/ping?deep=1", "/lastcall/health"] {
            assert_eq!(path_arg(ok).as_deref(), Ok(ok));
        }
        let table = [
            ("health", "`health` is not a path (write it like /health)"),
            ("", "`` is not a path (write it like /health)"),
            ("/a b", "`/a b` is not a path (write it like /health)"),
            (
                "http://x/health",
                "`http://x/health` is not a path (write it like /health)",
            ),
        ];
        for (input, msg) in table {
            assert_eq!(path_arg(input).unwrap_err(), msg, "{input}");
        }
    }
}
