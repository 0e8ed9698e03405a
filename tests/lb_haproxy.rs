//! The acceptance test of the drain proxy behind a real load balancer: HAProxy (from
//! Debian) with active health checks like an ALB target group (`inter 1s fall 2`, no
//! retries) in front of two backends, one app under lastcall and one plain app. Under
//! constant load through HAProxy, lastcall gets SIGTERM; its app dies at once on TERM.
//! Not one request may fail, with HAProxy keeping server connections alive and with it
//! closing them after every response.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod proxy_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use proxy_support::{Lastcall, Load, app_script, free_port, get, wait_until};

const LONG: Duration = Duration::from_secs(30);
/// HAProxy's check interval and fall count, as in the config below.
const INTER: Duration = Duration::from_secs(1);
const FALL: u32 = 2;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy_config(mode: &str, front: u16, lastcall: SocketAddr, plain: u16) -> String {
    format!(
        "global
    maxconn 2000
defaults
    mode http
    option {mode}
    retries 0
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{front}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /health
    default-server inter 1s fall {FALL} rise 1
    server lastcall {lastcall} check
    server plain 127.0.0.1:{plain} check
"
    )
}

fn stop_behind_haproxy(mode: &str) {
    let mut lc = Lastcall::start(&["--upstream-health-path", "/health", "--stop-timeout", "30s"]);
    let plain_port = free_port();
    let script = app_script(lc.dir.path());
    let _plain = Killed(
        Command::new("python3")
            .arg(&script)
            .args([&plain_port.to_string(), "plain"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the plain app", LONG, || {
        std::net::TcpStream::connect(("127.0.0.1", plain_port)).is_ok()
    });
    let front = free_port();
    let cfg = lc.dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_config(mode, front, lc.proxy, plain_port)).unwrap();
    let _haproxy = Killed(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front: SocketAddr = ([127, 0, 0, 1], front).into();
    // Both backends take traffic before the stop.
    wait_until("HAProxy routing to both backends", LONG, || {
        let mut seen = HashSet::new();
        for _ in 0..6 {
            if let Ok(mut c) = proxy_support::Conn::open(front)
                && let Ok(r) = c.get("/hello")
            {
                seen.insert(r.body_text());
            }
        }
        seen.len() == 2
    });

    let load = Load::start(front, 6, "/hello", LONG);
    // A request in flight at the stop, straight to lastcall: it must finish, and lastcall
    // must wait for it.
    let proxy = lc.proxy;
    let slow = std::thread::spawn(move || get(proxy, "/slow?ms=1500"));
    wait_until("the slow request in flight", LONG, || {
        let v: serde_json::Value =
            serde_json::from_str(&get(lc.admin, "/status").body_text()).unwrap();
        v["in_flight"].as_u64().unwrap() >= 1
    });
    let stopped = Instant::now();
    lc.signal(Signal::SIGTERM);
    let status = lc.wait_exit(LONG);
    let took = stopped.elapsed();
    // Keep the load on past the stop, so that requests race the LB's own detection.
    let after = Instant::now();
    wait_until("load after the exit", LONG, || {
        after.elapsed() > Duration::from_millis(500)
    });
    let (ok, failed) = load.finish();
    let slow = slow.join().unwrap();
    let log = lc.log_text();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}\n{log}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok > 100, "too little load to mean anything: {ok}");
    assert_eq!(slow.status, 200, "{log}");
    assert_eq!(status.code(), Some(143), "{log}");
    // LB detection (fall × inter, plus up to one inter until the first check) + the
    // longest request in flight + 0.5 s, with 1 s of slack for a loaded 2-core machine.
    let bound = INTER * (FALL + 1) + Duration::from_millis(1500 + 500 + 1000);
    eprintln!("{mode}: {ok} requests, 0 failed; lastcall exited {took:?} after SIGTERM");
    assert!(
        took < bound,
        "lastcall took {took:?} to exit (bound {bound:?})\n{log}"
    );
}

#[test]
fn no_request_fails_with_http_keep_alive() {
    stop_behind_haproxy("http-keep-alive");
}

#[test]
fn no_request_fails_with_http_server_close() {
    stop_behind_haproxy("http-server-close");
}
