//! The response body of the proxy: either the app's body, streamed frame by frame with the
//! request's in-flight guard riding along until the last frame (a long poll or a streamed
//! download counts as in flight until it is done), or a small body lastcall wrote itself.
//! An enum rather than a boxed trait object: no allocation per response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::pool::Lease;
use crate::drain::InFlight;

#[derive(Debug)]
pub(crate) enum ProxyBody {
    Upstream {
        body: Incoming,
        guard: Option<InFlight>,
        lease: Option<Lease>,
    },
    Local(Full<Bytes>),
}

impl ProxyBody {
    pub(crate) fn upstream(body: Incoming, guard: InFlight, mut lease: Lease) -> ProxyBody {
        if body.is_end_stream() {
            lease.reusable();
            return ProxyBody::Upstream {
                body,
                guard: None,
                lease: None,
            };
        }
        ProxyBody::Upstream {
            body,
            guard: Some(guard),
            lease: Some(lease),
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
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream { body, guard, lease } => {
                // The upstream connection is driven from here: it reads what this body
                // yields. Its waker is this task, so new bytes wake the poll below.
                if let Some(l) = lease.as_mut() {
                    l.poll_io(cx);
                }
                let polled = Pin::new(&mut *body).poll_frame(cx);
                // The request stops counting with its last frame, and its upstream
                // connection goes back to the pool; after an error (the client sees a
                // broken body) the connection is closed instead.
                let ended = match &polled {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    Poll::Ready(Some(Err(_))) => {
                        *lease = None;
                        *guard = None;
                        false
                    }
                    Poll::Pending => false,
                };
                if ended {
                    if let Some(l) = lease.as_mut() {
                        l.reusable();
                    }
                    *lease = None;
                    *guard = None;
                }
                polled
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
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Local(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Local(full) => full.size_hint(),
        }
    }
}
