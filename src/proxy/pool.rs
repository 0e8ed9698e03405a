//! Keep-alive connections to the app.
//!
//! A small pool over hyper's HTTP/1 client connections instead of hyper-util's legacy
//! client: the app is one address speaking HTTP/1.1, so none of the legacy client's
//! generality (per-host keys, h2, boxed connectors) is needed, and leaving it out saves
//! work on every request and size in the binary.
//!
//! - A connection leaves the pool for one request and comes back when that request's
//!   response body has ended ([`Lease`] rides in the response body), so a streamed
//!   response never blocks another request behind it.
//! - Last in, first out: the hottest connection is reused and cold ones age out.
//!   Connections idle longer than [`IDLE`] are dropped rather than reused, because the
//!   app may be closing them right now (Node's keep-alive timeout is 5 s), and a request
//!   written into a connection the app is closing is a 502.
//! - A request that hyper hands back unsent (the connection closed between checkout and
//!   send) is retried once on a fresh connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
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

#[derive(Debug)]
struct Idle {
    tx: Sender,
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

/// A connection lent out for one request; back to the pool when dropped after
/// [`Lease::reusable`], closed otherwise.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    tx: Option<Sender>,
    reusable: bool,
}

impl Lease {
    /// The response ended cleanly: the connection can carry another request.
    pub(crate) fn reusable(&mut self) {
        self.reusable = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take()
            && self.reusable
            && !tx.is_closed()
        {
            self.pool.put(tx);
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

    /// Send `req` on a pooled or new connection.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        while let Some(mut tx) = self.take() {
            // A connection whose response just ended may still be settling in its task.
            if tx.ready().await.is_err() {
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lease(tx))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        let mut tx = self.connect().await?;
        let resp = tx.send_request(req).await?;
        Ok((resp, self.lease(tx)))
    }

    fn lease(self: &Arc<Self>, tx: Sender) -> Lease {
        Lease {
            pool: self.clone(),
            tx: Some(tx),
            reusable: false,
        }
    }

    fn take(&self) -> Option<Sender> {
        let mut idle = self.lock();
        while let Some(c) = idle.pop() {
            if !c.tx.is_closed() && c.since.elapsed() < IDLE {
                return Some(c.tx);
            }
        }
        None
    }

    fn put(&self, tx: Sender) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(SendError::Connect(e)),
                Err(_) => {
                    return Err(SendError::ConnectTimeout(crate::duration::fmt(
                        self.connect_timeout,
                    )));
                }
            };
        let _ = stream.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(tx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Only plain pushes and pops happen under this lock; a poisoned one is still sound.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
