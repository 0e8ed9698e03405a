//! Listener plumbing shared by the health endpoint, the admin API and the proxy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// The next connection, with TCP_NODELAY set. Never gives up: an accept error (EMFILE,
/// ENOBUFS…) is logged and retried after a short pause instead of spinning, because a
/// listener that stops accepting during a drain turns into refused requests.
pub async fn accept(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(e) => {
                tracing::warn!("{what} accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
