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

/// A port on 127.0.0.1 that nothing listens on right now, for a server that must be told
/// its port before it starts (the drill's task and app).
///
/// Taken from outside the kernel's ephemeral range. A port from `bind(…:0)` is an
/// ephemeral one, and in the moment before the server binds it any outgoing connection
/// on the machine may take it as its source port ("address already in use", seen in CI
/// with tests running side by side). Outside that range only an explicit bind can take
/// it. Falls back to an ephemeral port if no candidate is free.
pub fn free_port() -> std::io::Result<u16> {
    use std::net::TcpListener;
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(str::parse::<u32>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((32768, 60999));
    // Ports below 10000 are where services are configured to listen; stay above them.
    let below = low.saturating_sub(10_000);
    let above = 65_535u32.saturating_sub(high);
    let candidates = below + above;
    // Any spread will do: two drills starting together should not try the same ports.
    let mut x = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
        | 1;
    for _ in 0..64 {
        if candidates == 0 {
            break;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = (x % u64::from(candidates)) as u32;
        let port = if k < below {
            10_000 + k
        } else {
            high + 1 + (k - below)
        };
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_outside_the_ephemeral_range_and_free() {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let mut it = range.split_whitespace().map(|p| p.parse::<u16>().unwrap());
        let (low, high) = (it.next().unwrap(), it.next().unwrap());
        for _ in 0..20 {
            let port = super::free_port().unwrap();
            assert!(!(low..=high).contains(&port), "{port} in {low}-{high}");
            assert!(port >= 10_000, "{port}");
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
