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
//! - Upgrades (WebSocket) get a fresh connection run as a task of its own, because the
//!   upgraded bytes outlive the request.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections older than this are not reused.
const IDLE: Duration = Duration::from_secs(4);
/// More idle connections than this are closed instead of kept.
const MAX_IDLE: usize = 512;

type Sender = http1::SendRequest<Incoming>;
type Driver = http1::Connection<TokioIo<TcpStream>, Incoming>;

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

    /// Wait until the connection can take a request; false if it closed instead.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            let closed = self.poll_io(cx).is_ready();
            match self.tx.poll_ready(cx) {
                Poll::Ready(res) => Poll::Ready(res.is_ok()),
                Poll::Pending if closed => Poll::Ready(false),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Send `req` and drive the connection until the response head is in.
    async fn exchange(
        &mut self,
        req: Request<Incoming>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Incoming>>> {
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
    #[error("{0}")]
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
        mut req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        loop {
            let (mut conn, fresh) = match self.take() {
                Some(c) => (c, false),
                None => (self.connect().await?, true),
            };
            if !conn.ready().await {
                if fresh {
                    return Err(SendError::Connect(std::io::Error::other(
                        "the app closed the connection at once",
                    )));
                }
                continue;
            }
            match conn.exchange(req).await {
                Ok(resp) => return Ok((resp, self.lease(conn))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    /// Send an upgrade request on a connection of its own, run as its own task so that
    /// the upgraded bytes can flow after the response.
    pub(crate) async fn send_upgrade(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
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

    fn take(&self) -> Option<Box<UpConn>> {
        let mut idle = self.lock();
        while let Some(c) = idle.pop() {
            if !c.conn.is_closed() && c.since.elapsed() < IDLE {
                return Some(c.conn);
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
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Box::new(UpConn { tx, io: Some(io) }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Only plain pushes and pops happen under this lock; a poisoned one is still sound.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
