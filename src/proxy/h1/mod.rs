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
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::body::Body;
use hyper::header::{self, HeaderMap};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use super::upload::ClientBody;

mod decode;
mod head;

pub(crate) use decode::Decoder;
use decode::Step;
use head::parse_head;

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
    /// How much of `buf` was already searched for the end of a response head.
    scanned: usize,
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
            scanned: 0,
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
            // A broken client body was polled too: never unsent.
            let unsent = w.written == 0 && !w.body_polled;
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
            // Parse the first bytes (what is not HTTP at all, say an SSH server waiting
            // for its client, fails at once), then again only once a blank line has
            // come: re-parsing the whole head after every read would cost time quadratic
            // in its size for an app that writes it a few bytes at a time (0.5 s of CPU
            // for a 64 KiB head sent byte by byte).
            if self.buf.len() > self.scanned {
                let first = self.scanned == 0;
                let from = self.scanned.saturating_sub(2);
                let parsed = if first || ends_head(&self.buf[from..]) {
                    parse_head(&mut self.buf, head_request)
                } else {
                    Ok(None)
                };
                // All of `buf` has been searched now, what a skipped 1xx head left too.
                self.scanned = self.buf.len();
                if let Some(head) = parsed? {
                    self.scanned = 0;
                    return Poll::Ready(Ok(head));
                }
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
            // The client's body broke off (its writer already dropped it): stop writing.
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

/// Does `bytes` hold the blank line that ends a head (CRLF CRLF, or LF LF, which httparse
/// also accepts)?
fn ends_head(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'\n'
            && match bytes.get(i + 1) {
                Some(b'\n') => true,
                Some(b'\r') => bytes.get(i + 2) == Some(&b'\n'),
                _ => false,
            }
    })
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

/// The response codec for the fuzz targets in `fuzz/`, which cannot reach this private
/// module: built only under `cfg(fuzzing)`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz_api {
    use bytes::{Bytes, BytesMut};
    use hyper::StatusCode;
    use hyper::header::HeaderMap;

    use super::decode::{self, Framing};

    /// A response head larger than this is refused.
    pub const MAX_HEAD: usize = super::MAX_HEAD;
    /// Chunk extensions longer than this on one size line are refused.
    pub const MAX_EXTENSION: usize = super::decode::MAX_EXTENSION;

    /// A parsed response head.
    #[derive(Debug)]
    pub struct Head {
        pub status: StatusCode,
        pub headers: HeaderMap,
        pub decoder: Decoder,
    }

    /// What [`Decoder::step`] gave.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Step {
        Data(Bytes),
        End,
        More,
    }

    /// A response body's decoder.
    #[derive(Debug)]
    pub struct Decoder(super::Decoder);

    impl Decoder {
        pub fn length(n: u64) -> Decoder {
            Decoder(super::Decoder::new(Framing::Length(n), true))
        }

        pub fn chunked() -> Decoder {
            let framing = Framing::Chunked { with_length: false };
            Decoder(super::Decoder::new(framing, true))
        }

        pub fn until_close() -> Decoder {
            Decoder(super::Decoder::new(Framing::Close, false))
        }

        pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
            match self.0.step(buf) {
                Ok(decode::Step::Data(data)) => Ok(Step::Data(data)),
                Ok(decode::Step::End) => Ok(Step::End),
                Ok(decode::Step::More) => Ok(Step::More),
                Err(e) => Err(e.to_string()),
            }
        }

        pub fn at_eof(&mut self) -> Result<(), String> {
            self.0.at_eof().map_err(|e| e.to_string())
        }

        pub fn is_end(&self) -> bool {
            self.0.is_end()
        }

        pub fn remaining(&self) -> Option<u64> {
            self.0.remaining()
        }

        pub fn keep_alive(&self) -> bool {
            self.0.keep_alive
        }
    }

    /// [`super::parse_head`]: a head at the start of `buf`, consumed; None while partial.
    pub fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, String> {
        let head = super::parse_head(buf, head_request).map_err(|e| e.to_string())?;
        Ok(head.map(|h| Head {
            status: h.status,
            headers: h.headers,
            decoder: Decoder(h.decoder),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_blank_line() {
        let table: &[(&[u8], bool)] = &[
            (b"HTTP/1.1 200 OK\r\n\r\n", true),
            (b"HTTP/1.1 200 OK\n\n", true),
            (b"\n\r\n", true),
            (b"HTTP/1.1 200 OK\r\nA: b\r\n", false),
            (b"HTTP/1.1 200 OK\r\n\r", false),
            (b"\r\n\r", false),
            (b"", false),
        ];
        for (bytes, ends) in table {
            assert_eq!(ends_head(bytes), *ends, "{bytes:?}");
        }
    }

    /// An app that writes its response a byte at a time, after a 100 Continue.
    #[tokio::test]
    async fn a_head_written_byte_by_byte_is_read_whole() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Slow: yes\r\nContent-Length: 2\r\n\r\nok";
            for b in raw {
                s.write_all(&[*b]).await.unwrap();
                s.flush().await.unwrap();
            }
            s
        });
        let mut conn = Conn::new(TcpStream::connect(addr).await.unwrap());
        let head = std::future::poll_fn(|cx| conn.poll_head(cx, false))
            .await
            .unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers["x-slow"], "yes");
        assert_eq!(conn.scanned, 0);
        let _app = app.await.unwrap();
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
}
