//! Keep-alive connections to the app, driven inline.
//!
//! A small pool over hyper's HTTP/1 client connections instead of hyper-util's legacy
//! client, for two reasons. The app is one address speaking HTTP/1.1, so none of the
//! legacy client's generality is needed and leaving it out keeps the binary smaller. And
//! the legacy client runs every upstream connection as a task of its own, so each request
//! hops between two tasks (often two threads) several times; here the client connection's
//! task polls the upstream connection itself, while it waits for the response and while
//! it streams the response body. On a busy 2-core machine those hops, not the bytes, were
//! the cost of a proxied request.
//!
//! - A connection leaves the pool for one request and comes back when that request's
//!   response body has ended ([`Lease`] rides in the response body), so a streamed
//!   response never blocks another request behind it.
//! - Last in, first out: the hottest connection is reused and cold ones age out.
//!   Connections idle longer than [`IDLE`] are dropped rather than reused, because the
//!   app may be closing them right now (Node's keep-alive timeout is 5 s), and a request
//!   written into a connection the app is closing is a 502.
//! - A request that hyper hands back unsent (the connection turned out to be closed) is
//!   retried on another connection.
//! - The keep-alive race: the app may close a connection that sat idle (its keep-alive
//!   timeout) at the moment a request goes out on it; the request is then sent, but the
//!   connection ends before any response. A request that is safe to repeat — GET, HEAD or
//!   OPTIONS without a body — sent on a connection that was idle for at least
//!   [`REPLAY_AFTER`] is sent once more on a fresh connection, as the RFC 9110 allows for
//!   idempotent requests, instead of becoming a 502. Hot connections skip the copy this
//!   needs: no app's idle timer fires within [`REPLAY_AFTER`].
//! - Upgrades (WebSocket) get a fresh connection run as a task of its own, because the
//!   upgraded bytes outlive the request.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

use super::upload::ClientBody;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections older than this are not reused.
const IDLE: Duration = Duration::from_secs(4);
/// More idle connections than this are closed instead of kept.
const MAX_IDLE: usize = 512;
/// A request on a connection idle at least this long keeps a copy of its head, to be sent
/// again if the app closed the connection under it (see the module docs).
const REPLAY_AFTER: Duration = Duration::from_millis(100);

type Sender = http1::SendRequest<UpBody>;
type Driver = http1::Connection<TokioIo<TcpStream>, UpBody>;

/// The body of a request to the app: the client's, streamed (`Left`), or none for a
/// replayed head (`Right`).
pub(crate) type UpBody = Either<ClientBody, Empty<Bytes>>;

/// A copy of a request that may be sent again: idempotent and without a body.
fn replayable(req: &Request<UpBody>) -> Option<Request<UpBody>> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe || !req.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(UpBody::Right(Empty::new()));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// One upstream connection: the handle that sends and the state machine that does the I/O.
#[derive(Debug)]
struct UpConn {
    tx: Sender,
    /// `None` once the connection is closed. Dropping the driver also hands any request
    /// still queued in it back to its sender.
    io: Option<Driver>,
}

impl UpConn {
    /// Do whatever I/O is ready. Ready(()) once the connection is closed.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(());
        };
        match Pin::new(io).poll(cx) {
            Poll::Ready(res) => {
                if let Err(e) = res {
                    tracing::debug!("upstream connection ended: {e}");
                }
                self.io = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_closed(&self) -> bool {
        self.io.is_none() || self.tx.is_closed()
    }

    /// Can the connection take a request right now? It is driven once first: a connection
    /// whose response just ended settles into idle then. One that is still busy (the app
    /// answered before the request body was all sent, and it still is being sent) is not
    /// waited for: nobody else drives it, so it would never get there.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            let _ = self.poll_io(cx);
            match self.tx.poll_ready(cx) {
                Poll::Ready(res) => Poll::Ready(res.is_ok()),
                Poll::Pending => Poll::Ready(false),
            }
        })
        .await
    }

    /// Send `req` and drive the connection until the response head is in.
    async fn exchange(
        &mut self,
        req: Request<UpBody>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<UpBody>>> {
        let mut sent = std::pin::pin!(self.tx.try_send_request(req));
        poll_fn(|cx| {
            // I/O first: it writes the request and reads the response head.
            let _ = self.poll_io(cx);
            sent.as_mut().poll(cx)
        })
        .await
    }
}

#[derive(Debug)]
struct Idle {
    conn: Box<UpConn>,
    since: Instant,
}

/// Why the app could not be asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out after {0}")]
    ConnectTimeout(String),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

#[derive(Debug)]
pub(crate) struct Pool {
    addr: SocketAddr,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

/// A connection lent out for one request. The response body drives it with
/// [`Lease::poll_io`]; it goes back to the pool when dropped after [`Lease::reusable`],
/// and is closed otherwise.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    /// Boxed once per connection: the driver is large and moves in and out of the pool.
    conn: Option<Box<UpConn>>,
    reusable: bool,
}

impl Lease {
    /// The response ended cleanly: the connection can carry another request.
    pub(crate) fn reusable(&mut self) {
        self.reusable = true;
    }

    /// Drive the connection (it feeds the response body being polled).
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>) {
        if let Some(c) = self.conn.as_mut() {
            let _ = c.poll_io(cx);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.reusable
            && !conn.is_closed()
        {
            self.pool.put(conn);
        }
    }
}

impl Pool {
    pub(crate) fn new(addr: SocketAddr, connect_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            addr,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Send `req` on a pooled or new connection; the response comes with the connection
    /// that carries its body.
    pub(crate) async fn send(
        self: &Arc<Self>,
        req: Request<ClientBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let mut req = req.map(UpBody::Left);
        let mut replayed = false;
        loop {
            let pooled = if replayed { None } else { self.take() };
            let (mut conn, idle) = match pooled {
                Some(pooled) => pooled,
                None => (self.connect().await?, None),
            };
            // A fresh connection takes its first request as it is (hyper buffers it).
            if idle.is_some() && !conn.ready().await {
                continue;
            }
            let replay = idle
                .filter(|idle| *idle >= REPLAY_AFTER && !replayed)
                .and_then(|_| replayable(&req));
            match conn.exchange(req).await {
                Ok(resp) => return Ok((resp, self.lease(conn))),
                Err(mut e) => match (e.take_message(), replay) {
                    (Some(unsent), _) if idle.is_some() => req = unsent,
                    (_, Some(copy)) if closed_under_us(e.error()) => {
                        tracing::debug!(
                            "the app closed an idle connection under a request: sending it again"
                        );
                        req = copy;
                        replayed = true;
                    }
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    /// Send an upgrade request on a connection of its own, run as its own task so that
    /// the upgraded bytes can flow after the response.
    pub(crate) async fn send_upgrade(
        self: &Arc<Self>,
        req: Request<ClientBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let req = req.map(UpBody::Left);
        let stream = self.dial().await?;
        let (mut tx, io) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = io.with_upgrades().await {
                tracing::debug!("upstream upgrade connection ended: {e}");
            }
        });
        let resp = tx.send_request(req).await?;
        Ok((
            resp,
            Lease {
                pool: self.clone(),
                conn: None,
                reusable: false,
            },
        ))
    }

    fn lease(self: &Arc<Self>, conn: Box<UpConn>) -> Lease {
        Lease {
            pool: self.clone(),
            conn: Some(conn),
            reusable: false,
        }
    }

    /// The most recently used connection that may still be reused, and how long it idled.
    fn take(&self) -> Option<(Box<UpConn>, Option<Duration>)> {
        let mut idle = self.lock();
        while let Some(c) = idle.pop() {
            let age = c.since.elapsed();
            if !c.conn.is_closed() && age < IDLE {
                return Some((c.conn, Some(age)));
            }
        }
        None
    }

    fn put(&self, conn: Box<UpConn>) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn dial(&self) -> Result<TcpStream, SendError> {
        let connect = TcpStream::connect(self.addr);
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SendError::Connect(e)),
            Err(_) => {
                return Err(SendError::ConnectTimeout(crate::duration::fmt(
                    self.connect_timeout,
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self) -> Result<Box<UpConn>, SendError> {
        let stream = self.dial().await?;
        let (tx, io) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Box::new(UpConn { tx, io: Some(io) }))
    }

    /// Close idle connections that are too old to be reused. Nothing drives a connection
    /// while it sits in the pool, so without this one the app has closed would linger
    /// half-closed (CLOSE_WAIT) until it is taken.
    pub(crate) fn sweep(&self) {
        self.lock()
            .retain(|c| c.since.elapsed() < IDLE && !c.conn.is_closed());
    }

    /// Sweep every [`IDLE`], for as long as the pool exists.
    pub(crate) async fn sweep_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(IDLE);
        loop {
            tick.tick().await;
            self.sweep();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Only plain pushes and pops happen under this lock; a poisoned one is still sound.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Did the connection end under a request before any response came (the app closed it)?
fn closed_under_us(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            );
        }
        source = err.source();
    }
    false
}
