//! The admin endpoint (`--admin-listen`, loopback by default): `GET /status`,
//! `POST /drain`, `GET /metrics`. Part of issue 3; not built yet.

use std::net::SocketAddr;

use crate::drain::Drain;

/// Bind and serve in the background.
pub async fn start(addr: SocketAddr, drain: &Drain) -> std::io::Result<()> {
    let _ = (addr, drain);
    Err(std::io::Error::other(
        "--admin-listen is not available yet (issue 3)",
    ))
}
