//! HTTP/1.1 to the app, written and read by lastcall itself.
//!
//! The client side of the proxy (connections from the load balancer, untrusted bytes,
//! HTTP/1 and h2c) is hyper's. The side towards the app is this small codec, because the
//! app is one address that speaks HTTP/1.1 and hyper's client connection costs more than
//! the exchange itself: a dispatcher state machine, a request channel and a response
//! channel per request, and a third channel that carries the response body. Measured
//! with callgrind, the client connection was a third of the instructions of a proxied
//! request. Here a request is written from its parsed head, the response head is parsed
//! with httparse in the buffer it was read into (header values share that buffer), and
//! the body is cut from the same buffer, so a small response costs one read and no copy.
//!
//! Framing follows RFC 9112 6.3: no body for HEAD and for 1xx/204/304, chunked when
//! `Transfer-Encoding` ends in chunked (a `Content-Length` next to it is dropped),
//! otherwise `Content-Length`, otherwise the body runs to the close of the connection.
//! Informational responses (100 Continue, 103 Early Hints) are skipped. Chunked bodies
//! are decoded into data frames; hyper frames them again for the client. Trailers are
//! read and dropped.

use std::fmt::Write as _;
use std::future::{Future, poll_fn};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::body::Body;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use super::forward::is_hop_by_hop;
use super::upload::ClientBody;

/// A response head larger than this is refused (the same bound as the client side's).
const MAX_HEAD: usize = 64 * 1024;
/// Most headers an app's response may have.
const MAX_HEADERS: usize = 100;
/// Bytes read per read call.
const READ_CHUNK: usize = 16 * 1024;
/// The request body is copied into the write buffer up to this much before writing.
const WRITE_AHEAD: usize = 64 * 1024;

/// Why an exchange with the app failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the connection closed before a response")]
    Closed,
    #[error("the connection closed in the middle of the response head")]
    ClosedInHead,
    #[error("malformed response head: {0}")]
    Malformed(&'static str),
    #[error("the response head is larger than 64 KiB")]
    HeadTooLarge,
    /// The client's body broke off: the client's failure, not the app's.
    #[error("the request body could not be read: {0}")]
    ClientBody(hyper::Error),
}

impl Error {
    /// Did the app close (or reset) the connection before sending any of a response?
    pub(crate) fn closed_before_response(&self) -> bool {
        match self {
            Error::Closed => true,
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            _ => false,
        }
    }
}

/// Why a response body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("reading the response body: {0}")]
    Io(#[from] std::io::Error),
    #[error("the app closed the connection in the middle of the response body")]
    Truncated,
    #[error("malformed chunked response body: {0}")]
    Chunked(&'static str),
}

/// One keep-alive connection to the app.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    /// Read from the app and not consumed yet.
    buf: BytesMut,
    /// Request bytes not written yet.
    out: BytesMut,
    /// The request being written: its body may still be going out while the response
    /// comes back (an app that streams its answer as it reads, like an echo).
    writing: Writing,
    /// Set when the connection cannot carry another request.
    broken: bool,
}

/// The app's response head, ready for the client.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    /// Hop-by-hop headers already removed.
    pub(crate) headers: HeaderMap,
    pub(crate) decoder: Decoder,
}

impl Conn {
    pub(crate) fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: BytesMut::with_capacity(1024),
            writing: Writing::default(),
            broken: false,
        }
    }

    /// Did the app close this idle connection (or send something unasked)? Costs no
    /// system call unless the event loop saw the socket become readable.
    pub(crate) fn is_closed(&mut self) -> bool {
        if self.broken {
            return true;
        }
        let mut probe = [0u8; 1];
        match self.io.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            _ => {
                self.broken = true;
                true
            }
        }
    }

    /// Write the request and read the response head; the request body goes on being
    /// written while the response body is read. `parts` are sent as they are, so they
    /// must already be rewritten for the app (hop-by-hop headers removed).
    pub(crate) async fn exchange(
        &mut self,
        parts: &Parts,
        body: ClientBody,
    ) -> Result<Head, Exchange> {
        self.broken = true; // until the response is read whole
        self.buf.clear();
        let done = body.is_end_stream();
        // The framing comes from the body hyper read, never from the client's headers: a
        // request with both a length and chunked framing (the stuff of request smuggling)
        // must not reach the app with a length that is not its body's.
        let framing = if done {
            Sending::Headers
        } else {
            match body.size_hint().exact() {
                Some(n) => Sending::Length(n),
                None => Sending::Chunked,
            }
        };
        let chunked = framing == Sending::Chunked;
        encode_head(&mut self.out, parts, framing);
        self.writing = Writing {
            body: Some(body),
            chunked,
            body_done: done,
            written: 0,
            body_polled: false,
            write_failed: None,
        };
        let head_request = parts.method == Method::HEAD;
        let result = poll_fn(|cx| {
            self.poll_write_request(cx)?;
            // Read at any time, not only after the request is written: an app may answer
            // (413, 401) before it has read the whole body.
            match ready!(self.poll_head(cx, head_request)) {
                Ok(head) => Poll::Ready(Ok(head)),
                // No response after all: the write's failure is the first cause.
                Err(e) => Poll::Ready(Err(self.writing.write_failed.take().map_or(e, Error::Io))),
            }
        })
        .await;
        result.map_err(|error| {
            let w = &mut self.writing;
            let unsent = w.written == 0 && !w.body_polled && !matches!(error, Error::ClientBody(_));
            Exchange {
                error,
                unsent,
                body: w.body.take(),
            }
        })
    }

    /// Write what there is to write of the request. A broken client body is an error;
    /// a failed write to the app is not (yet): it is kept in `write_failed`, and the
    /// rest of the request is dropped.
    fn poll_write_request(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let w = &mut self.writing;
        loop {
            // Fill first, so that a small body leaves in the same write as the head.
            if !w.body_done
                && self.out.len() < WRITE_AHEAD
                && let Some(body) = w.body.as_mut()
            {
                match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        w.body_polled = true;
                        if let Ok(data) = frame.into_data() {
                            encode_data(&mut self.out, &data, w.chunked);
                        }
                        // Trailers of a request are not forwarded.
                        continue;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        w.body_polled = true;
                        w.body = None;
                        return Err(Error::ClientBody(e));
                    }
                    Poll::Ready(None) => {
                        w.body_polled = true;
                        w.body_done = true;
                        w.body = None;
                        if w.chunked {
                            self.out.put_slice(b"0\r\n\r\n");
                        }
                    }
                    Poll::Pending => {}
                }
            }
            if self.out.is_empty() {
                return Ok(());
            }
            let failed = match Pin::new(&mut self.io).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => std::io::ErrorKind::WriteZero.into(),
                Poll::Ready(Ok(n)) => {
                    w.written += n;
                    self.out.advance(n);
                    continue;
                }
                Poll::Ready(Err(e)) => e,
                Poll::Pending => return Ok(()),
            };
            // The app stopped reading: it may have answered already (a 413 for an upload
            // too large, then close), so the response is still read. The failure is only
            // reported if none comes.
            w.write_failed = Some(failed);
            w.body = None;
            w.body_done = true;
            self.out.clear();
            return Ok(());
        }
    }

    fn poll_head(&mut self, cx: &mut Context<'_>, head_request: bool) -> Poll<Result<Head, Error>> {
        loop {
            if !self.buf.is_empty()
                && let Some(head) = parse_head(&mut self.buf, head_request)?
            {
                return Poll::Ready(Ok(head));
            }
            if self.buf.len() > MAX_HEAD {
                return Poll::Ready(Err(Error::HeadTooLarge));
            }
            let n = ready!(self.poll_read(cx))?;
            if n == 0 {
                return Poll::Ready(Err(if self.buf.is_empty() {
                    Error::Closed
                } else {
                    Error::ClosedInHead
                }));
            }
        }
    }

    /// Read what the app sent into `buf`; Ready(0) at its end.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        // tokio's read_buf reads into the spare capacity as it is (uninitialised), and
        // its one poll is all it does, so a fresh one per poll keeps no state.
        std::pin::pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }

    /// The next piece of a response body; None at its end. At the end the connection is
    /// marked reusable when the response allows it and nothing else came after it.
    pub(crate) fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut Decoder,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        // The rest of the request body, if the app answered before reading it all. If
        // that breaks, the response may still complete; the connection is not reused.
        let unwritten = !(self.writing.body_done && self.out.is_empty());
        if unwritten && self.poll_write_request(cx).is_err() {
            self.writing.body = None;
            self.writing.body_done = true;
            self.out.clear();
            decoder.keep_alive = false;
        }
        loop {
            let eof = match decoder.step(&mut self.buf)? {
                Step::Data(data) => return Poll::Ready(Some(Ok(data))),
                Step::End => {
                    self.finish(decoder);
                    return Poll::Ready(None);
                }
                Step::More => ready!(self.poll_read(cx))? == 0,
            };
            if eof {
                match decoder.at_eof() {
                    Ok(()) => return Poll::Ready(None),
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
        }
    }

    /// The response body has ended: the connection is reusable when the response
    /// allows it, the request was written whole and nothing came after the response.
    pub(crate) fn finish(&mut self, decoder: &Decoder) {
        if decoder.is_end()
            && decoder.keep_alive
            && self.buf.is_empty()
            && self.writing.done(&self.out)
        {
            self.broken = false;
        }
    }

    /// May this connection carry another request?
    pub(crate) fn reusable(&self) -> bool {
        !self.broken
    }
}

/// Where writing a request stands.
#[derive(Debug, Default)]
struct Writing {
    /// The client's body, until it has been read to its end.
    body: Option<ClientBody>,
    chunked: bool,
    body_done: bool,
    written: usize,
    body_polled: bool,
    /// Writing to the app failed; the rest of the request was dropped.
    write_failed: Option<std::io::Error>,
}

impl Writing {
    /// Was the request written whole?
    fn done(&self, out: &BytesMut) -> bool {
        self.body_done && out.is_empty() && self.write_failed.is_none()
    }
}

/// A failed exchange, and whether the request may be sent again elsewhere.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) error: Error,
    /// Nothing of the request reached the app and its body was not touched: it can go on
    /// another connection as it is, whatever its method.
    pub(crate) unsent: bool,
    /// The request body, unless it was (partly) sent.
    pub(crate) body: Option<ClientBody>,
}

/// How a request's body is framed for the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// No body: the headers go as they are (a `Content-Length: 0` stays).
    Headers,
    /// This many bytes, said in a `Content-Length` of lastcall's own.
    Length(u64),
    /// Of unknown length: chunked, and no `Content-Length`.
    Chunked,
}

fn encode_head(out: &mut BytesMut, parts: &Parts, framing: Sending) {
    out.clear();
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if framing != Sending::Headers && name == header::CONTENT_LENGTH {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    match framing {
        Sending::Headers => {}
        // Writing into a BytesMut cannot fail.
        Sending::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Sending::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.put_slice(b"\r\n");
}

fn encode_data(out: &mut BytesMut, data: &[u8], chunked: bool) {
    if data.is_empty() {
        return;
    }
    if chunked {
        let _ = write!(out, "{:x}\r\n", data.len());
        out.put_slice(data);
        out.put_slice(b"\r\n");
    } else {
        out.put_slice(data);
    }
}

/// Parse a response head at the start of `buf` and consume it; None while incomplete.
/// Informational responses are consumed and skipped.
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, Error> {
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
            decoder: Decoder {
                state: framing.into_state(),
                keep_alive,
            },
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
    /// `Transfer-Encoding` was present: whether its last coding is chunked.
    chunked: Option<bool>,
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
                if let Some(last) = value
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii)
                    .rfind(|t| !t.is_empty())
                {
                    self.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
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
            (Some(true), l) => Framing::Chunked {
                with_length: l.is_some(),
            },
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
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

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked { with_length: bool },
    Close,
}

impl Framing {
    fn chunked(self) -> bool {
        matches!(self, Framing::Chunked { .. })
    }

    /// A body delimited by the close, or a chunked one that also had a length (a sign of
    /// a confused or hostile app, RFC 9112 6.3), ends the connection.
    fn keeps_alive(self) -> bool {
        !matches!(
            self,
            Framing::Close | Framing::Chunked { with_length: true }
        )
    }

    fn into_state(self) -> State {
        match self {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked { .. } => State::Size { size: 0, digits: 0 },
            Framing::Close => State::UntilClose,
        }
    }
}

fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Where the reading of a response body stands.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
    keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    /// In a chunk-size line: the size so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: extensions, up to the line's end.
    Extension {
        size: u64,
    },
    /// The size line's CR was read.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section: bytes of the current line so far.
    Trailer {
        line: usize,
        total: usize,
    },
    Done,
}

/// What the buffered bytes gave.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Data(Bytes),
    End,
    More,
}

impl Decoder {
    pub(crate) fn is_end(&self) -> bool {
        self.state == State::Done
    }

    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Consume what `buf` holds of the body: a data frame, the end, or a need for more.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let rest = n - take as u64;
                    self.state = if rest == 0 {
                        State::Done
                    } else {
                        State::Length(rest)
                    };
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                State::Data(n) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let rest = n - take as u64;
                    self.state = if rest == 0 {
                        State::DataCr
                    } else {
                        State::Data(rest)
                    };
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                _ => {
                    let Some(&b) = buf.first() else {
                        return Ok(Step::More);
                    };
                    buf.advance(1);
                    self.state = self.framing_byte(b)?;
                }
            }
        }
    }

    /// One byte of chunk framing (size lines, CRLFs, trailers).
    fn framing_byte(&self, b: u8) -> Result<State, BodyError> {
        let bad = |what| Err(BodyError::Chunked(what));
        Ok(match self.state {
            State::Size { size, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 15 {
                        return bad("chunk size too large");
                    }
                    let d = u64::from(hex(b));
                    State::Size {
                        size: size * 16 + d,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return bad("chunk size missing"),
                b';' | b' ' | b'\t' => State::Extension { size },
                b'\r' => State::SizeLf { size },
                _ => return bad("invalid chunk size"),
            },
            State::Extension { size } => match b {
                b'\r' => State::SizeLf { size },
                b'\n' => return bad("bare LF in a chunk size line"),
                _ => State::Extension { size },
            },
            State::SizeLf { size } => match (b, size) {
                (b'\n', 0) => State::Trailer { line: 0, total: 0 },
                (b'\n', n) => State::Data(n),
                _ => return bad("chunk size line not ended by CRLF"),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return bad("chunk data not followed by CRLF"),
            },
            State::DataLf => match b {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return bad("chunk data not followed by CRLF"),
            },
            State::Trailer { line, total } => {
                if total > MAX_HEAD {
                    return bad("trailers larger than 64 KiB");
                }
                match b {
                    b'\n' if line == 0 => State::Done,
                    b'\n' => State::Trailer {
                        line: 0,
                        total: total + 1,
                    },
                    // The CR of a line's CRLF does not count towards the line.
                    b'\r' => State::Trailer {
                        line,
                        total: total + 1,
                    },
                    _ => State::Trailer {
                        line: line + 1,
                        total: total + 1,
                    },
                }
            }
            other => other,
        })
    }

    /// The connection ended: the end of a close-delimited body, a truncation otherwise.
    fn at_eof(&mut self) -> Result<(), BodyError> {
        if self.state == State::UntilClose {
            self.state = State::Done;
            self.keep_alive = false;
            Ok(())
        } else {
            Err(BodyError::Truncated)
        }
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, head_request: bool) -> Result<Option<Head>, Error> {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_head(&mut buf, head_request)
    }

    fn body(decoder: &mut Decoder, input: &[u8]) -> Result<(Vec<u8>, bool), BodyError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match decoder.step(&mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::End => return Ok((out, true)),
                Step::More => return Ok((out, false)),
            }
        }
    }

    #[test]
    fn requests_are_written_as_the_app_expects_them() {
        let (parts, ()) = hyper::Request::post("/up?x=1")
            .header("host", "app")
            .header("x-forwarded-for", "10.0.0.1")
            .body(())
            .unwrap()
            .into_parts();
        let mut out = BytesMut::new();
        encode_head(&mut out, &parts, Sending::Chunked);
        encode_data(&mut out, b"hello", true);
        encode_data(&mut out, b"", true);
        encode_data(&mut out, &[b'x'; 26], true);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "POST /up?x=1 HTTP/1.1\r\nhost: app\r\nx-forwarded-for: 10.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n\
             5\r\nhello\r\n1a\r\nxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
        );
    }

    #[test]
    fn the_length_sent_is_the_bodys_never_the_clients() {
        let (parts, ()) = hyper::Request::post("/")
            .header("content-length", "5")
            .body(())
            .unwrap()
            .into_parts();
        let table = [
            (
                Sending::Chunked,
                "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
            (
                Sending::Length(12),
                "POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n",
            ),
            (
                Sending::Headers,
                "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\n",
            ),
        ];
        for (framing, want) in table {
            let mut out = BytesMut::new();
            encode_head(&mut out, &parts, framing);
            assert_eq!(std::str::from_utf8(&out).unwrap(), want, "{framing:?}");
        }
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
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false,
                Framing::Chunked { with_length: false },
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked { with_length: true },
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                Framing::Close,
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

    #[test]
    fn a_chunked_body_is_decoded_whatever_the_reads() {
        let raw =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";
        // The whole body at once, and one byte per read.
        for split in [raw.len(), 1] {
            let mut d = Framing::Chunked { with_length: false }.into_state();
            let mut decoder = Decoder {
                state: d,
                keep_alive: true,
            };
            let mut out = Vec::new();
            let mut ended = false;
            let mut buf = BytesMut::new();
            for piece in raw.chunks(split) {
                buf.extend_from_slice(piece);
                loop {
                    match decoder.step(&mut buf).unwrap() {
                        Step::Data(x) => out.extend_from_slice(&x),
                        Step::End => {
                            ended = true;
                            break;
                        }
                        Step::More => break,
                    }
                }
            }
            d = decoder.state;
            assert!(ended, "split {split}: {d:?}");
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "split {split}");
            assert!(buf.is_empty());
        }
    }

    /// Random bodies, chunked at random sizes with and without extensions and trailers,
    /// fed to the decoder in random pieces: what comes out is the body, and the bytes
    /// after it stay in the buffer.
    #[test]
    fn chunked_bodies_decode_whatever_their_chunks_and_reads() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..500 {
            let len = next(3000) as usize;
            let body: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
            let mut wire = Vec::new();
            let mut at = 0;
            while at < len {
                let n = (1 + next(700) as usize).min(len - at);
                if next(2) == 0 {
                    wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                } else {
                    wire.extend_from_slice(format!("{n:X};name=v\r\n").as_bytes());
                }
                wire.extend_from_slice(&body[at..at + n]);
                wire.extend_from_slice(b"\r\n");
                at += n;
            }
            wire.extend_from_slice(b"0\r\n");
            if next(2) == 0 {
                wire.extend_from_slice(b"x-checksum: 1\r\n");
            }
            wire.extend_from_slice(b"\r\nNEXT");
            let mut decoder = Decoder {
                state: Framing::Chunked { with_length: false }.into_state(),
                keep_alive: true,
            };
            let (mut out, mut buf, mut fed, mut ended) = (Vec::new(), BytesMut::new(), 0, false);
            while !ended {
                if fed < wire.len() {
                    let n = (1 + next(900) as usize).min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
                loop {
                    match decoder.step(&mut buf).unwrap() {
                        Step::Data(d) => out.extend_from_slice(&d),
                        Step::End => {
                            ended = true;
                            break;
                        }
                        Step::More => break,
                    }
                }
                assert!(ended || fed < wire.len(), "round {round}: stuck");
            }
            assert!(out == body, "round {round}: body differs");
            // What follows the body is left for the connection's next use.
            let rest = [&buf[..], &wire[fed..]].concat();
            assert_eq!(rest, b"NEXT", "round {round}");
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        let table: &[(&[u8], &str)] = &[
            (
                b"zz\r\n",
                "malformed chunked response body: chunk size missing",
            ),
            (
                b"5\r\nhelloXX",
                "malformed chunked response body: chunk data not followed by CRLF",
            ),
            (
                b"5\nhello",
                "malformed chunked response body: invalid chunk size",
            ),
            (
                b"1000000000000000\r\n",
                "malformed chunked response body: chunk size too large",
            ),
        ];
        for (raw, msg) in table {
            let mut decoder = Decoder {
                state: Framing::Chunked { with_length: false }.into_state(),
                keep_alive: true,
            };
            let err = body(&mut decoder, raw).unwrap_err();
            assert_eq!(err.to_string(), *msg, "{raw:?}");
        }
    }

    #[test]
    fn a_length_body_ends_at_its_length_and_leaves_the_rest() {
        let mut decoder = Decoder {
            state: Framing::Length(5).into_state(),
            keep_alive: true,
        };
        let mut buf = BytesMut::from(&b"helloEXTRA"[..]);
        assert_eq!(
            decoder.step(&mut buf).unwrap(),
            Step::Data(Bytes::from_static(b"hello"))
        );
        assert_eq!(decoder.step(&mut buf).unwrap(), Step::End);
        assert_eq!(&buf[..], b"EXTRA");
        // The connection's end before the length is a truncation; for a close-delimited
        // body it is the end.
        let mut short = Decoder {
            state: Framing::Length(5).into_state(),
            keep_alive: true,
        };
        assert_eq!(body(&mut short, b"hel").unwrap(), (b"hel".to_vec(), false));
        assert!(matches!(short.at_eof(), Err(BodyError::Truncated)));
        let mut close = Decoder {
            state: Framing::Close.into_state(),
            keep_alive: false,
        };
        assert!(close.at_eof().is_ok());
    }
}
