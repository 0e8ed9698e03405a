//! Slow request heads: a client that starts a request and never finishes its headers
//! (slowloris) would hold a connection, and its memory, forever.
//!
//! The clock starts at the first byte of a request head and stops when the head is
//! complete; a head that takes longer than `--client-header-timeout` ends the connection.
//! An idle keep-alive connection, with no byte of a next request yet, is never timed out:
//! the load balancer owns idle connections, and closing one from this side just as the LB
//! reuses it is a failed request (the reason ALB tells targets to keep connections open
//! longer than its own idle timeout). hyper's `header_read_timeout` starts on an idle
//! connection too, so it is not used.
//!
//! The socket wrapper ([`super::io::Linger`]) sees the bytes, the service sees complete
//! heads, and the response body's end makes the connection idle again; [`HeadClock`] is
//! what they share. HTTP/2 (its connection preface) and upgraded connections are left
//! alone: their bytes between requests are frames and tunnel data, not heads.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body::{BodyError, ProxyBody};

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;
const OFF: u8 = 3;

/// Where one client connection is between requests.
#[derive(Debug)]
pub(crate) struct HeadClock {
    state: AtomicU8,
    timeout: Duration,
}

impl HeadClock {
    pub(crate) fn new(timeout: Duration) -> Arc<HeadClock> {
        Arc::new(HeadClock {
            state: AtomicU8::new(IDLE),
            timeout,
        })
    }

    /// A complete head reached the service: the request is being served.
    pub(crate) fn head_complete(&self) {
        // From HEAD, or from IDLE when the head came in a read before the connection went
        // idle (pipelining); never out of OFF.
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                (s != OFF).then_some(BUSY)
            });
    }

    /// The connection now carries something other than HTTP/1 heads (an upgrade).
    pub(crate) fn off(&self) {
        self.state.store(OFF, Ordering::Relaxed);
    }

    fn response_done(&self) {
        let _ = self
            .state
            .compare_exchange(BUSY, IDLE, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The socket wrapper's half: watches the bytes a client sends.
#[derive(Debug)]
pub(crate) struct HeadTimer {
    clock: Arc<HeadClock>,
    first_read: bool,
    started: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl HeadTimer {
    pub(crate) fn new(clock: Arc<HeadClock>) -> HeadTimer {
        HeadTimer {
            clock,
            first_read: true,
            started: None,
            sleep: None,
        }
    }

    /// Bytes arrived: the first byte of a head, when the connection was idle, starts the
    /// clock. Reads no clock otherwise.
    pub(crate) fn on_bytes(&mut self, bytes: &[u8]) {
        if self.first_read {
            self.first_read = false;
            // h2c prior knowledge: an HTTP/2 connection sends frames between requests.
            if bytes.starts_with(b"PRI ") {
                self.clock.off();
            }
        }
        if self
            .clock
            .state
            .compare_exchange(IDLE, HEAD, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.started = Some(Instant::now());
        }
    }

    /// The socket has nothing more for now. If a head is half-read, wait for its deadline
    /// alongside the socket: Ready once it has passed. The timer only exists for heads
    /// that did not arrive in one read, which is rare.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.state.load(Ordering::Relaxed) != HEAD {
            return Poll::Pending;
        }
        let Some(started) = self.started else {
            return Poll::Pending;
        };
        let deadline = started + self.clock.timeout;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.clock.timeout
    }
}

/// A response body that makes its connection idle again when it is done (dropped by hyper
/// once written, or when the connection ends).
#[derive(Debug)]
pub(crate) struct ConnBody {
    inner: ProxyBody,
    clock: Arc<HeadClock>,
}

impl ConnBody {
    pub(crate) fn new(inner: ProxyBody, clock: Arc<HeadClock>) -> ConnBody {
        ConnBody { inner, clock }
    }
}

impl Drop for ConnBody {
    fn drop(&mut self) {
        self.clock.response_done();
    }
}

impl Body for ConnBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
