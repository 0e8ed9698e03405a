#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! The drill's built-in demo app (`lastcall demo-app`, hidden) as a real process: what the
//! drill's results rest on — it serves HTTP with keep-alive, exits at once on SIGTERM, and
//! closes idle connections when asked to.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lastcall");

fn free_port() -> u16 {
    // Outside the ephemeral range: see lastcall::net::free_port.
    lastcall::net::free_port().unwrap()
}

struct Demo {
    child: Child,
    port: u16,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the demo with PORT in its environment and wait until it accepts connections.
fn demo(args: &[&str]) -> Demo {
    let port = free_port();
    let child = Command::new(BIN)
        .arg("demo-app")
        .args(args)
        .env("PORT", port.to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < give_up, "demo-app never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    Demo { child, port }
}

/// Send one GET on `s` and read one response (the demo always sends content-length).
fn get(s: &mut TcpStream, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "closed before a full response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            if body.len() >= len {
                return text;
            }
        }
    }
}

#[test]
fn serves_keep_alive_and_exits_at_once_on_sigterm() {
    let mut d = demo(&["--latency", "10ms"]);
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    for _ in 0..3 {
        let r = get(&mut s, "/");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("served by task\n"), "{r}");
    }
    assert!(get(&mut s, "/health").ends_with("ok\n"));
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    let sent = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = d.child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
}

#[test]
fn closes_idle_keep_alive_connections_after_the_idle_timeout() {
    let d = demo(&["--latency", "1ms", "--idle-timeout", "200ms"]);
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    get(&mut s, "/");
    let idle_since = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 16];
    // A clean close (FIN): read returns 0, no reset.
    assert_eq!(s.read(&mut b).unwrap(), 0);
    let idle = idle_since.elapsed();
    assert!(idle >= Duration::from_millis(190), "closed after {idle:?}");
}

#[test]
fn misbehaves_request_by_request_as_told() {
    let d = demo(&["--latency", "1ms", "--misbehave", "500,ok"]);
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    assert!(get(&mut s, "/").starts_with("HTTP/1.1 500 "));
    assert!(get(&mut s, "/").starts_with("HTTP/1.1 200 "));
    // Health checks do not count as requests in the pattern.
    assert!(get(&mut s, "/health").starts_with("HTTP/1.1 200 "));
    assert!(get(&mut s, "/").starts_with("HTTP/1.1 500 "));
}
