//! The app's response head: parsed with httparse where it was read, its framing and
//! whether the connection may be reused worked out in the same pass, and its headers
//! turned into a map that shares the read buffer, hop-by-hop headers left out.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use hyper::StatusCode;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::decode::{Decoder, Framing};
use super::{Error, Head, MAX_HEAD, MAX_HEADERS};
use crate::proxy::forward::is_hop_by_hop;

/// Parse a response head at the start of `buf` and consume it; None while incomplete.
/// Informational responses are consumed and skipped.
pub(super) fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, Error> {
    loop {
        // Where each header's name and value sit in `buf`, so that the values can share
        // the buffer once the head is split off it (and no header is copied).
        let mut spans = [[0u32; 4]; MAX_HEADERS];
        let mut facts = Facts::default();
        let (len, status, count) = {
            let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
            let len = match parsed {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(Error::Malformed("more than 100 headers"));
                }
                Err(_) => return Err(Error::Malformed("not an HTTP/1.x response")),
            };
            if len > MAX_HEAD {
                return Err(Error::HeadTooLarge);
            }
            let status = StatusCode::from_u16(resp.code.unwrap_or(0))
                .map_err(|_| Error::Malformed("invalid status code"))?;
            facts.http11 = resp.version == Some(1);
            let base = buf.as_ptr() as usize;
            // Offsets within a head of at most 64 KiB: they fit.
            let at = |p: *const u8| (p as usize - base) as u32;
            for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
                facts.see(h.name, h.value)?;
                let (n, v) = (at(h.name.as_ptr()), at(h.value.as_ptr()));
                *span = [n, n + h.name.len() as u32, v, v + h.value.len() as u32];
            }
            (len, status, resp.headers.len())
        };
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::Malformed(
                "101 for a request that did not ask to upgrade",
            ));
        }
        if status.is_informational() {
            buf.advance(len);
            continue;
        }
        let framing = facts.framing(status, head_request);
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(count);
        for &[ns, ne, vs, ve] in &spans[..count] {
            let name = HeaderName::from_bytes(&head[ns as usize..ne as usize])
                .map_err(|_| Error::Malformed("invalid header name"))?;
            // Connection and the rest of the hop-by-hop headers stay on this hop;
            // a length next to chunked framing is not the body's length.
            if is_hop_by_hop(&name) || (name == header::CONTENT_LENGTH && framing.chunked()) {
                continue;
            }
            let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
                .map_err(|_| Error::Malformed("invalid header value"))?;
            headers.append(name, value);
        }
        if facts.named_by_connection {
            for name in connection_tokens(&head) {
                headers.remove(name);
            }
        }
        let keep_alive = facts.http11 && !facts.close && framing.keeps_alive();
        return Ok(Some(Head {
            status,
            headers,
            decoder: Decoder::new(framing, keep_alive),
        }));
    }
}

/// What a response head's headers say about its framing and its connection.
#[derive(Debug, Default)]
struct Facts {
    http11: bool,
    /// `Connection: close`. (HTTP/1.0 keep-alive is opt-in and rare: such a connection
    /// is not reused, whatever it says.)
    close: bool,
    /// `Connection` names other headers, which must not be passed on.
    named_by_connection: bool,
    length: Option<u64>,
    /// `Transfer-Encoding: chunked`, the only transfer coding lastcall accepts: it
    /// decodes the body and lets hyper frame it again for the client, so any other
    /// coding (`gzip, chunked`) would reach the client still applied but no longer named.
    chunked: bool,
}

impl Facts {
    /// Look at one header. Only three names matter here; their lengths tell them apart
    /// from the rest without comparing text.
    fn see(&mut self, name: &str, value: &[u8]) -> Result<(), Error> {
        match name.len() {
            10 if name.eq_ignore_ascii_case("connection") => {
                for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                        self.named_by_connection = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case("content-length") => {
                for part in value.split(|b| *b == b',') {
                    let n = parse_length(part.trim_ascii())
                        .ok_or(Error::Malformed("invalid Content-Length"))?;
                    if self.length.is_some_and(|l| l != n) {
                        return Err(Error::Malformed("conflicting Content-Length values"));
                    }
                    self.length = Some(n);
                }
            }
            17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                let mut codings = value
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|t| !t.is_empty())
                    .peekable();
                if codings.peek().is_none() {
                    return Err(Error::Malformed("empty Transfer-Encoding"));
                }
                for coding in codings {
                    if !coding.eq_ignore_ascii_case(b"chunked") {
                        return Err(Error::Malformed(
                            "a transfer coding other than chunked, which lastcall cannot pass on",
                        ));
                    }
                    if self.chunked {
                        return Err(Error::Malformed("chunked applied twice"));
                    }
                    self.chunked = true;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// RFC 9112 6.3.
    fn framing(&self, status: StatusCode, head_request: bool) -> Framing {
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Framing::Empty;
        }
        match (self.chunked, self.length) {
            (true, l) => Framing::Chunked {
                with_length: l.is_some(),
            },
            (false, Some(n)) => Framing::Length(n),
            (false, None) => Framing::Close,
        }
    }
}

/// The names listed in a head's `Connection` headers, other than close and keep-alive
/// (rare: only then is the head parsed a second time).
fn connection_tokens(head: &Bytes) -> Vec<HeaderName> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    if resp.parse(head).is_err() {
        return Vec::new();
    }
    let mut names = Vec::new();
    for h in resp.headers.iter() {
        if !h.name.eq_ignore_ascii_case("connection") {
            continue;
        }
        let Ok(s) = std::str::from_utf8(h.value) else {
            continue;
        };
        for token in s.split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("close") || token.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                names.push(name);
            }
        }
    }
    names
}

fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, head_request: bool) -> Result<Option<Head>, Error> {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_head(&mut buf, head_request)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let table: &[(&str, bool, Framing)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Length(5),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                Framing::Empty,
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", false, Framing::Empty),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                Framing::Empty,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
                false,
                Framing::Chunked { with_length: false },
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked { with_length: true },
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Framing::Close),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n",
                false,
                Framing::Length(4),
            ),
        ];
        for (raw, head_request, want) in table {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut slots);
            resp.parse(raw.as_bytes()).unwrap();
            let mut facts = Facts::default();
            for h in resp.headers.iter() {
                facts.see(h.name, h.value).unwrap();
            }
            let status = StatusCode::from_u16(resp.code.unwrap()).unwrap();
            assert_eq!(facts.framing(status, *head_request), *want, "{raw:?}");
        }
    }

    #[test]
    fn bad_heads_are_refused_with_the_reason() {
        let table: &[(&str, &str)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
                "malformed response head: conflicting Content-Length values",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "malformed response head: invalid Content-Length",
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\n\r\n",
                "malformed response head: 101 for a request that did not ask to upgrade",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n",
                "malformed response head: a transfer coding other than chunked, which lastcall cannot pass on",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "malformed response head: a transfer coding other than chunked, which lastcall cannot pass on",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                "malformed response head: chunked applied twice",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\nContent-Length: 2\r\n\r\n",
                "malformed response head: empty Transfer-Encoding",
            ),
            (
                "SSH-2.0-OpenSSH\r\n\r\n",
                "malformed response head: not an HTTP/1.x response",
            ),
        ];
        for (raw, msg) in table {
            let err = head(raw, false).unwrap_err();
            assert_eq!(err.to_string(), *msg, "{raw:?}");
        }
    }

    #[test]
    fn heads_lose_hop_by_hop_headers_and_say_whether_to_reuse() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\nContent-Length: 0\r\nX-App: yes\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        let mut names: Vec<_> = h.headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-app"]);
        assert!(h.decoder.keep_alive);
        assert!(h.decoder.is_end());

        let table: &[(&str, bool)] = &[
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false),
        ];
        for (raw, reuse) in table {
            assert_eq!(
                head(raw, false).unwrap().unwrap().decoder.keep_alive,
                *reuse,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn informational_responses_are_skipped_and_a_partial_head_waits() {
        let h = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert!(
            head("HTTP/1.1 200 OK\r\nContent-Le", false)
                .unwrap()
                .is_none()
        );
    }
}
