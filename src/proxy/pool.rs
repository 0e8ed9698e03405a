//! Keep-alive connections to the app.
//!
//! A small pool of [`h1::Conn`]s, one per proxy thread (each thread's pool serves only
//! the requests that thread accepted, so a request never leaves its event loop).
//!
//! - A connection leaves the pool for one request and comes back when that request's
//!   response body has ended ([`Lease`] rides in the response body), so a streamed
//!   response never blocks another request behind it.
//! - Last in, first out: the hottest connection is reused and cold ones age out.
//!   Connections idle longer than [`IDLE`] are dropped rather than reused, because the
//!   app may be closing them right now (Node's keep-alive timeout is 5 s), and a request
//!   written into a connection the app is closing is a 502.
//! - A connection the app has closed while it sat idle is noticed when it is taken (the
//!   event loop has seen its end), and another one is used.
//! - A request of which nothing reached the app (the write failed at once) is sent on
//!   another connection, whatever its method.
//! - The keep-alive race: the app may close a connection that sat idle (its keep-alive
//!   timeout) at the moment a request goes out on it; the request is then sent, but the
//!   connection ends before any response. A request that is safe to repeat — GET, HEAD or
//!   OPTIONS without a body — sent on a connection that was idle for at least
//!   [`REPLAY_AFTER`] is sent once more on a fresh connection, as RFC 9110 allows for
//!   idempotent requests, instead of becoming a 502. Hot connections are not replayed:
//!   no app's idle timer fires within [`REPLAY_AFTER`].
//! - Upgrades (WebSocket) get a fresh connection through hyper's client, run as a task of
//!   its own, because the upgraded bytes outlive the request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::h1::{self, Conn, Head};
use super::upload::ClientBody;

/// Idle connections older than this are not reused.
const IDLE: Duration = Duration::from_secs(4);
/// More idle connections than this are closed instead of kept.
const MAX_IDLE: usize = 512;
/// A request on a connection idle at least this long may be sent again if the app closed
/// the connection under it (see the module docs).
const REPLAY_AFTER: Duration = Duration::from_millis(100);

/// May this request be sent a second time? Idempotent and without a body.
fn replayable(parts: &Parts, body: &ClientBody) -> bool {
    matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        && hyper::body::Body::is_end_stream(body)
}

#[derive(Debug)]
struct Idle {
    conn: Box<Conn>,
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
    App(#[from] h1::Error),
    #[error(transparent)]
    Upgrade(#[from] hyper::Error),
}

#[derive(Debug)]
pub(crate) struct Pool {
    addr: SocketAddr,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

/// A connection lent out for one request. The response body reads the connection
/// through [`Lease::conn`]; it goes back to the pool when dropped if the response was read
/// to its end and the connection can carry another request, and is closed otherwise.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    /// Boxed once per connection: it moves in and out of the pool. Always `Some` until
    /// the lease is dropped.
    conn: Option<Box<Conn>>,
}

impl Lease {
    pub(crate) fn conn(&mut self) -> Option<&mut Conn> {
        self.conn.as_deref_mut()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.reusable()
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

    /// Send a request on a pooled or new connection; the response head comes with the
    /// connection that carries its body.
    pub(crate) async fn send(
        self: &Arc<Self>,
        parts: &Parts,
        body: ClientBody,
    ) -> Result<(Head, Lease), SendError> {
        let mut body = body;
        let mut replayed = false;
        loop {
            let pooled = if replayed { None } else { self.take() };
            let (mut conn, idle) = match pooled {
                Some((conn, age)) => (conn, Some(age)),
                // Boxed: connecting is rare, and this future is part of every request's.
                None => (Box::new(Box::pin(self.connect()).await?), None),
            };
            let replayable = replayable(parts, &body);
            let e = match conn.exchange(parts, body).await {
                Ok(head) => {
                    let lease = Lease {
                        pool: self.clone(),
                        conn: Some(conn),
                    };
                    return Ok((head, lease));
                }
                Err(e) => e,
            };
            body = match e.body {
                // Nothing reached the app: any request can go on another connection.
                Some(b) if idle.is_some() && e.unsent => b,
                Some(b)
                    if !replayed
                        && replayable
                        && idle.is_some_and(|age| age >= REPLAY_AFTER)
                        && e.error.closed_before_response() =>
                {
                    tracing::debug!(
                        "the app closed an idle connection under a request: sending it again"
                    );
                    replayed = true;
                    b
                }
                _ => return Err(SendError::App(e.error)),
            };
        }
    }

    /// Send an upgrade request on a connection of its own, run as its own task so that
    /// the upgraded bytes can flow after the response.
    pub(crate) async fn send_upgrade(
        &self,
        req: Request<ClientBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let stream = self.dial().await?;
        let (mut tx, io) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = io.with_upgrades().await {
                tracing::debug!("upstream upgrade connection ended: {e}");
            }
        });
        Ok(tx.send_request(req).await?)
    }

    /// The most recently used connection that may still be reused, and how long it idled.
    fn take(&self) -> Option<(Box<Conn>, Duration)> {
        let mut idle = self.lock();
        while let Some(mut c) = idle.pop() {
            let age = c.since.elapsed();
            if age < IDLE && !c.conn.is_closed() {
                return Some((c.conn, age));
            }
        }
        None
    }

    fn put(&self, conn: Box<Conn>) {
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

    async fn connect(&self) -> Result<Conn, SendError> {
        Ok(Conn::new(self.dial().await?))
    }

    /// Close idle connections that are too old to be reused. Nothing drives a connection
    /// while it sits in the pool, so without this one the app has closed would linger
    /// half-closed (CLOSE_WAIT) until it is taken.
    pub(crate) fn sweep(&self) {
        self.lock()
            .retain_mut(|c| c.since.elapsed() < IDLE && !c.conn.is_closed());
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
