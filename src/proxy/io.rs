//! A client socket that closes cleanly.
//!
//! Closing a TCP socket that still has unread bytes in its receive buffer makes the kernel
//! send a reset instead of a FIN, and a reset can also destroy response bytes the client
//! has not read yet. That is exactly the case of a keep-alive client that sends its next
//! request while the proxy closes the connection. So every client socket ends here: when
//! hyper lets go of it, a small task sends FIN and reads (and discards) until the client's
//! own FIN, bounded in time and bytes, and only then closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::head::HeadTimer;

/// How long a closed connection waits for the client's FIN.
const LINGER: Duration = Duration::from_secs(2);
/// How much a closed connection reads before giving up on a client that keeps sending.
const LINGER_BYTES: usize = 256 * 1024;

/// A `TcpStream` that lingers on drop instead of resetting, and times out slow request
/// heads (see [`super::head`]).
#[derive(Debug)]
pub(crate) struct Linger {
    stream: Option<TcpStream>,
    head: HeadTimer,
}

impl Linger {
    pub(crate) fn new(stream: TcpStream, head: HeadTimer) -> Linger {
        Linger {
            stream: Some(stream),
            head,
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

impl AsyncRead for Linger {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match this.stream() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        match polled {
            Poll::Ready(Ok(())) => {
                if let Some(new) = buf.filled().get(before..)
                    && !new.is_empty()
                {
                    this.head.on_bytes(new);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.head.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "request head not complete within --client-header-timeout {}",
                        crate::duration::fmt(this.head.timeout())
                    ),
                ))),
                Poll::Pending => Poll::Pending,
            },
            ready => ready,
        }
    }
}

impl AsyncWrite for Linger {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Linger {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        // Outside a runtime (process teardown) there is nobody left to linger for.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(linger(stream));
        }
    }
}

async fn linger(mut stream: TcpStream) {
    // Already shut down by hyper in the usual case; a second shutdown is harmless.
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
