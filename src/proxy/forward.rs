//! Forwarding one request to the app: header rewriting, the pooled upstream client, and
//! the 502/504 answers when the app cannot answer.
//!
//! The request is rewritten in place (its URI is already origin-form for HTTP/1.1
//! clients), so a forwarded request allocates nothing beyond what hyper needs, except
//! when an `X-Forwarded-For` chain must be extended.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};

use super::ProxyArgs;
use super::body::ProxyBody;
use super::h1;
use super::metrics::{self, UpstreamError};
use super::pool::{Pool, SendError};
use super::upload;
use crate::drain::InFlight;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The app behind the proxy and the pooled client that reaches it.
#[derive(Debug)]
pub(crate) struct Upstream {
    addr: SocketAddr,
    pool: Arc<Pool>,
    timeout: Duration,
}

impl Upstream {
    pub(crate) fn new(addr: SocketAddr, args: &ProxyArgs) -> Upstream {
        Upstream {
            addr,
            pool: Pool::new(addr, args.upstream_connect_timeout),
            timeout: args.upstream_timeout,
        }
    }

    /// Close idle upstream connections that aged out, periodically (runs forever).
    pub(crate) async fn sweep_forever(&self) {
        self.pool.clone().sweep_forever().await;
    }

    /// Send `req` to the app and answer with its response, whose body carries `guard`
    /// (the request is in flight until that body ends), or with a 502/504/408/400.
    /// `xff` is the client's address, ready to be a header value.
    ///
    /// The request is rewritten before the returned future is: the future, which lives
    /// in every request's state, holds only the parts still needed.
    pub(crate) fn send(
        &self,
        mut req: Request<Incoming>,
        xff: &HeaderValue,
        guard: InFlight,
    ) -> impl Future<Output = Response<ProxyBody>> + '_ {
        self.rewrite(&mut req, xff, false);
        let (parts, body) = req.into_parts();
        let (body, upload) = upload::watch(body);
        async move {
            match tokio::time::timeout(self.timeout, self.pool.send(&parts, body)).await {
                Ok(Ok((head, lease))) => {
                    let mut resp = Response::new(ProxyBody::app(head.decoder, lease, guard));
                    *resp.status_mut() = head.status;
                    *resp.headers_mut() = head.headers;
                    resp
                }
                // Rewritten: the URI is the origin-form path.
                Ok(Err(e)) => self.failed(&parts.method, parts.uri.path(), &e),
                Err(_) => self.timed_out(&parts.method, parts.uri.path(), &upload),
            }
        }
    }

    /// Send an upgrade request (WebSocket) to the app on a connection of its own. The
    /// response is the app's as hyper read it, so that its upgrade can be taken over.
    pub(crate) async fn send_upgrade(
        &self,
        mut req: Request<Incoming>,
        xff: &HeaderValue,
    ) -> Result<Response<Incoming>, Response<ProxyBody>> {
        self.rewrite(&mut req, xff, true);
        let method = req.method().clone();
        // Rewritten: the URI is the origin-form path (kept for log lines).
        let path = req.uri().clone();
        let (parts, body) = req.into_parts();
        let (body, upload) = upload::watch(body);
        let req = Request::from_parts(parts, body);
        match tokio::time::timeout(self.timeout, self.pool.send_upgrade(req)).await {
            Ok(Ok(mut resp)) => {
                // hyper answers HTTP/1.0 clients in kind; an HTTP/1.0 app must not make
                // every client's response HTTP/1.0 (and its connection close).
                *resp.version_mut() = Version::HTTP_11;
                if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    strip_hop_by_hop(resp.headers_mut());
                }
                Ok(resp)
            }
            Ok(Err(e)) => Err(self.failed(&method, path.path(), &e)),
            Err(_) => Err(self.timed_out(&method, path.path(), &upload)),
        }
    }

    /// The answer when the app could not be asked, or did not answer properly.
    fn failed(&self, method: &Method, path: &str, e: &SendError) -> Response<ProxyBody> {
        let client_body = match e {
            SendError::App(h1::Error::ClientBody(_)) => true,
            SendError::Upgrade(e) => client_body_failed(e),
            _ => false,
        };
        if client_body {
            // The client's own request body broke off (it hung up mid-upload, or sent
            // a malformed chunk): not the app's failure, and no 502 to alert on.
            tracing::debug!(
                "400 for {method} {}: the request body could not be read: {}",
                path,
                error_chain(e)
            );
            return local(
                StatusCode::BAD_REQUEST,
                "400 bad request: the request body could not be read\n",
            );
        }
        let kind = match e {
            SendError::Connect(_) | SendError::ConnectTimeout(_) => UpstreamError::Connect,
            SendError::App(_) | SendError::Upgrade(_) => UpstreamError::Other,
        };
        metrics::upstream_error(kind);
        tracing::warn!(
            "502 for {method} {}: the app at {} did not answer: {}",
            path,
            self.addr,
            error_chain(e)
        );
        local(
            StatusCode::BAD_GATEWAY,
            "502 bad gateway: the app did not answer\n",
        )
    }

    /// The answer when `--upstream-timeout` ran out.
    fn timed_out(
        &self,
        method: &Method,
        path: &str,
        upload: &upload::UploadWatch,
    ) -> Response<ProxyBody> {
        if upload.client_stalled() {
            // lastcall was waiting for the client's next body bytes, not for the app.
            tracing::debug!(
                "408 for {method} {}: the request body stopped arriving within --upstream-timeout {}",
                path,
                crate::duration::fmt(self.timeout)
            );
            let mut resp = local(
                StatusCode::REQUEST_TIMEOUT,
                "408 request timeout: the request body stopped arriving\n",
            );
            // The rest of the body may still come: this connection cannot carry
            // another request (RFC 9110 15.5.9).
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        metrics::upstream_error(UpstreamError::Timeout);
        tracing::warn!(
            "504 for {method} {}: the app at {} sent no response within --upstream-timeout {}",
            path,
            self.addr,
            crate::duration::fmt(self.timeout)
        );
        local(
            StatusCode::GATEWAY_TIMEOUT,
            "504 gateway timeout: the app took too long\n",
        )
    }

    /// Point `req` at the app (origin-form URI, HTTP/1.1) and rewrite its headers.
    fn rewrite(&self, req: &mut Request<Incoming>, xff: &HeaderValue, upgrade: bool) {
        // An h2 request names its host in :authority; the HTTP/1.1 app wants a Host header.
        if !req.headers().contains_key(header::HOST)
            && let Some(host) = req.uri().authority()
            && let Ok(v) = HeaderValue::from_str(host.as_str())
        {
            req.headers_mut().insert(header::HOST, v);
        }
        // The app gets origin-form (`GET /path`), as from any client: h2 requests and
        // absolute-form HTTP/1.1 requests carry the scheme and authority in the URI.
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            let path = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            *req.uri_mut() = Uri::from(path);
        }
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        if upgrade {
            strip_for_upgrade(headers);
        } else {
            strip_hop_by_hop(headers);
        }
        append_xff(headers, xff);
        // Kept when present: the load balancer in front knows the client's scheme
        // (https), and apps compare this header to one value, so appending would break them.
        headers
            .entry(&X_FORWARDED_PROTO)
            .or_insert_with(|| HeaderValue::from_static("http"));
    }
}

/// A response written by lastcall itself.
pub(crate) fn local(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::local(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn append_xff(headers: &mut HeaderMap, peer: &HeaderValue) {
    match headers.entry(&X_FORWARDED_FOR) {
        header::Entry::Vacant(slot) => {
            slot.insert(peer.clone());
        }
        header::Entry::Occupied(mut slot) => {
            let prev = slot.get();
            let mut joined = Vec::with_capacity(prev.len() + 2 + peer.len());
            joined.extend_from_slice(prev.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                slot.insert(v);
            }
        }
    }
}

/// The headers that describe one connection, not the message (RFC 9110 7.6.1).
/// `Connection` is first: the headers it names go too.
static HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &header::UPGRADE,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
];

/// Remove the hop-by-hop headers, including any the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names, then a hashed removal only for those present: most
    // messages carry none, or only `Connection: keep-alive`, and this runs twice per
    // proxied request (nine removals each cost more than the rest of the rewriting).
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        strip_named_by_connection(headers);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

/// Is `name` one of the hop-by-hop headers (other than those `Connection` names)?
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_by_hop_index(name).is_some()
}

/// Where `name` is in [`HOP_BY_HOP`]. A match on the name's text, which the compiler
/// turns into a length switch: cheaper than nine `HeaderName` comparisons per header.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    match name.as_str() {
        "connection" => Some(0),
        "upgrade" => Some(1),
        "keep-alive" => Some(2),
        "proxy-connection" => Some(3),
        "proxy-authenticate" => Some(4),
        "proxy-authorization" => Some(5),
        "te" => Some(6),
        "trailer" => Some(7),
        "transfer-encoding" => Some(8),
        _ => None,
    }
}

/// For an upgrade the `Upgrade` and `Connection: upgrade` headers are the request itself:
/// every other hop-by-hop header goes (the table's first two are those two).
fn strip_for_upgrade(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP[2..] {
        headers.remove(*name);
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

fn strip_named_by_connection(headers: &mut HeaderMap) {
    // Rare: only pay for the collection when `Connection` names something besides the
    // usual keep-alive / close tokens.
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(s) = value.to_str() else { continue };
        for token in s.split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("close") || token.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
}

/// Is this an HTTP/1.1 upgrade request (WebSocket and friends)?
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v, "upgrade"))
}

fn has_token(v: &HeaderValue, token: &str) -> bool {
    v.to_str()
        .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Did sending fail because the client's request body (a hyper body read from the client
/// connection) failed, rather than the app?
fn client_body_failed(e: &hyper::Error) -> bool {
    use std::error::Error;
    e.is_user() && e.source().is_some_and(|s| s.is::<hyper::Error>())
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["accept"]);
    }

    #[test]
    fn the_index_names_the_same_headers_as_the_table() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        assert_eq!(hop_by_hop_index(&header::CONTENT_LENGTH), None);
        // Only what is present goes; the rest of the message is untouched.
        let mut h = map(&[("connection", "keep-alive"), ("content-length", "3")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["content-length"]);
    }

    #[test]
    fn xff_is_appended() {
        let peer = HeaderValue::from_static("10.0.0.9");
        let mut h = HeaderMap::new();
        append_xff(&mut h, &peer);
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.9");
        let mut h = map(&[("x-forwarded-for", "1.2.3.4")]);
        append_xff(&mut h, &peer);
        assert_eq!(h[&X_FORWARDED_FOR], "1.2.3.4, 10.0.0.9");
    }

    #[test]
    fn upgrades_are_recognised() {
        let table = [
            (Version::HTTP_11, "Upgrade", Some("websocket"), true),
            (
                Version::HTTP_11,
                "keep-alive, Upgrade",
                Some("websocket"),
                true,
            ),
            (Version::HTTP_11, "keep-alive", Some("websocket"), false),
            (Version::HTTP_11, "upgrade", None, false),
            (Version::HTTP_10, "upgrade", Some("websocket"), false),
        ];
        for (version, connection, upgrade, expect) in table {
            let mut b = Request::builder()
                .version(version)
                .header("connection", connection);
            if let Some(u) = upgrade {
                b = b.header("upgrade", u);
            }
            let req = b.body(()).unwrap();
            assert_eq!(is_upgrade(&req), expect, "{connection} {upgrade:?}");
        }
    }
}
