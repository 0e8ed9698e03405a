//! Socket addresses as people write them in flags: `0.0.0.0:8080`, `:8080` (all
//! interfaces), `8080`, `localhost:8080`, `[::1]:8080`. Names other than `localhost` are
//! not resolved: a static binary has no NSS, and a container's upstream is local anyway.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Read an address to listen on; a bare port or `:port` means every interface.
pub fn listen(s: &str) -> Result<SocketAddr, String> {
    parse(s, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Read an address to connect to; a bare port or `:port` means 127.0.0.1.
pub fn connect(s: &str) -> Result<SocketAddr, String> {
    parse(s, IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Read an address for the admin endpoint: loopback unless an address is written out.
pub fn admin(s: &str) -> Result<SocketAddr, String> {
    parse(s, IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn parse(s: &str, default_ip: IpAddr) -> Result<SocketAddr, String> {
    let bad = || {
        format!("invalid address `{s}` (write e.g. 0.0.0.0:8080, :8080, 8080 or 127.0.0.1:3000)")
    };
    let t = s.trim();
    let t = t.strip_prefix("http://").unwrap_or(t).trim_end_matches('/');
    if let Ok(port) = t.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::new(default_ip, port));
    }
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = t.strip_prefix("localhost:") {
        let port = port.parse::<u16>().map_err(|_| bad())?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_people_write() {
        let table = [
            ("8080", "0.0.0.0:8080", "127.0.0.1:8080"),
            (":8080", "0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:3000", "127.0.0.1:3000", "127.0.0.1:3000"),
            ("localhost:3000", "127.0.0.1:3000", "127.0.0.1:3000"),
            ("http://localhost:3000/", "127.0.0.1:3000", "127.0.0.1:3000"),
            ("[::1]:80", "[::1]:80", "[::1]:80"),
        ];
        for (input, l, c) in table {
            assert_eq!(listen(input).unwrap().to_string(), l, "{input}");
            assert_eq!(connect(input).unwrap().to_string(), c, "{input}");
        }
    }

    #[test]
    fn rejects_names_it_would_have_to_resolve() {
        assert_eq!(
            connect("app:3000").unwrap_err(),
            "invalid address `app:3000` (write e.g. 0.0.0.0:8080, :8080, 8080 or 127.0.0.1:3000)"
        );
    }
}
