//! The response body of the proxy: the app's body, read from its connection frame by
//! frame with the request's in-flight guard riding along until the last frame (a long
//! poll or a streamed download counts as in flight until it is done); the body of an
//! upgrade the app refused, as hyper read it; or a small body lastcall wrote itself.
//! An enum rather than a boxed trait object: no allocation per response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::h1::{self, Decoder};
use super::pool::Lease;
use crate::drain::InFlight;

/// Why a response body broke off (the client sees a truncated response).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error(transparent)]
    App(#[from] h1::BodyError),
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

#[derive(Debug)]
pub(crate) enum ProxyBody {
    App {
        decoder: Decoder,
        /// The connection the body comes on; `None` once the body has ended (and the
        /// connection went back to the pool, or was closed).
        lease: Option<Lease>,
        guard: Option<InFlight>,
    },
    RefusedUpgrade {
        body: Incoming,
        guard: Option<InFlight>,
    },
    Local(Full<Bytes>),
}

impl ProxyBody {
    pub(crate) fn app(decoder: Decoder, mut lease: Lease, guard: InFlight) -> ProxyBody {
        if decoder.is_end() {
            // Complete with its head: the connection can serve the next request now.
            if let Some(conn) = lease.conn() {
                conn.finish(&decoder);
            }
            return ProxyBody::App {
                decoder,
                lease: None,
                guard: None,
            };
        }
        ProxyBody::App {
            decoder,
            lease: Some(lease),
            guard: Some(guard),
        }
    }

    pub(crate) fn refused_upgrade(body: Incoming, guard: InFlight) -> ProxyBody {
        ProxyBody::RefusedUpgrade {
            body,
            guard: Some(guard),
        }
    }

    pub(crate) fn local(bytes: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Local(Full::new(bytes.into()))
    }

    pub(crate) fn empty() -> ProxyBody {
        ProxyBody::Local(Full::new(Bytes::new()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::App {
                decoder,
                lease,
                guard,
            } => {
                let Some(conn) = lease.as_mut().and_then(Lease::conn) else {
                    return Poll::Ready(None);
                };
                let polled = conn.poll_body(cx, decoder);
                // The request stops counting with its last frame, and its connection
                // goes back to the pool then (the lease's drop decides). After an error
                // the client sees a broken body, and the connection is closed.
                let ended = match &polled {
                    Poll::Ready(None | Some(Err(_))) => true,
                    Poll::Ready(Some(Ok(_))) => decoder.is_end(),
                    Poll::Pending => false,
                };
                if ended {
                    if decoder.is_end() {
                        conn.finish(decoder);
                    }
                    *lease = None;
                    *guard = None;
                }
                match polled {
                    Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
            ProxyBody::RefusedUpgrade { body, guard } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                if matches!(polled, Poll::Ready(None | Some(Err(_)))) || body.is_end_stream() {
                    *guard = None;
                }
                polled.map(|f| f.map(|r| r.map_err(BodyError::from)))
            }
            ProxyBody::Local(full) => match Pin::new(full).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::App { decoder, lease, .. } => lease.is_none() || decoder.is_end(),
            ProxyBody::RefusedUpgrade { body, .. } => body.is_end_stream(),
            ProxyBody::Local(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::App { decoder, lease, .. } => match decoder.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None if lease.is_none() => SizeHint::with_exact(0),
                None => SizeHint::default(),
            },
            ProxyBody::RefusedUpgrade { body, .. } => body.size_hint(),
            ProxyBody::Local(full) => full.size_hint(),
        }
    }
}
