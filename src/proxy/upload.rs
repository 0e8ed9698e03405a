//! The client's request body on its way to the app, watched for who holds it up.
//!
//! `--upstream-timeout` bounds the whole exchange with the app, the upload included. When
//! it runs out while lastcall is still waiting for the client's next body bytes, the
//! client stalled (a slow or abandoned upload): that is a 408 for the client, not a 504
//! that blames the app and pages its owners. When lastcall is not waiting on the client —
//! the body is done, or the app stopped reading it — the timeout is the app's, as before.
//!
//! Only requests with a body get a watch (one small allocation); most have none.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The client's body, as sent to the app.
#[derive(Debug)]
pub(crate) struct ClientBody {
    inner: Incoming,
    /// Set while the last read of the body found nothing from the client yet.
    waiting: Option<Arc<AtomicBool>>,
}

/// What the proxy keeps to ask, after a timeout, whether the client was the one stalling.
#[derive(Debug)]
pub(crate) struct UploadWatch(Option<Arc<AtomicBool>>);

impl UploadWatch {
    /// Was lastcall waiting for more of the client's body when asked?
    pub(crate) fn client_stalled(&self) -> bool {
        self.0.as_ref().is_some_and(|w| w.load(Ordering::Relaxed))
    }
}

/// Wrap the client's request body for the app; the watch tells later who held the
/// upload up.
pub(crate) fn watch(inner: Incoming) -> (ClientBody, UploadWatch) {
    let waiting = (!inner.is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
    let watch = UploadWatch(waiting.clone());
    (ClientBody { inner, waiting }, watch)
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(waiting) = &this.waiting {
            waiting.store(polled.is_pending(), Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
