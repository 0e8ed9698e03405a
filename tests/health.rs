//! The health endpoint and the unready phase (seed 000): 200 while serving, 503 from the
//! moment a stop begins while the app runs untouched, and the stop proceeds once every
//! prober has seen the unhealthy threshold of 503s.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use socket2::{Domain, Socket, Type};
use support::{Lastcall, wait_until};

const RECORDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/recorder.py");
const HEALTH_APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/health_app.py");

/// GET `path` from `addr`, sent from the local address `from` (a distinct prober).
fn get_from(from: IpAddr, addr: SocketAddr, path: &str) -> u16 {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut stream: std::net::TcpStream = sock.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).unwrap();
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {resp:?}"))
}

fn probe(prober: u8, addr: SocketAddr) -> u16 {
    get_from(IpAddr::from([127, 0, 0, prober]), addr, "/health")
}

fn got(path: &Path, what: &str) -> bool {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(what)
}

#[test]
fn unready_answers_503_at_once_and_ends_after_the_threshold_from_every_prober() {
    let dir = support::tempdir();
    let rec = dir.path().join("rec");
    let mut lc = Lastcall::start(&[
        "run",
        "--health-listen",
        "127.0.0.1:0",
        "--deregistration-delay",
        "20s",
        "--",
        "python3",
        RECORDER,
        rec.to_str().unwrap(),
    ]);
    let addr =
        support::health_addr(&lc.wait_for_log("health endpoint on", Duration::from_secs(10)));
    assert!(wait_until(Duration::from_secs(10), || got(&rec, "ready")));
    // Two load balancer nodes probe us.
    assert_eq!(probe(1, addr), 200);
    assert_eq!(probe(2, addr), 200);

    lc.signal(Signal::SIGTERM);
    let sent = Instant::now();
    assert!(
        wait_until(Duration::from_secs(2), || probe(1, addr) == 503),
        "{}",
        lc.log()
    );
    eprintln!("first 503 {:?} after SIGTERM", sent.elapsed());
    // Prober 1 has seen one 503 in the loop above, give it its second.
    assert_eq!(probe(1, addr), 503);
    assert_eq!(probe(2, addr), 503);
    // Prober 2 has seen one 503 only: the load balancer may still route here, so the app
    // must be untouched. (An absence can only be observed over some time.)
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !got(&rec, "SIGTERM"),
        "the app got TERM before every prober let go\n{}",
        lc.log()
    );
    assert!(lc.log().contains("phase unready"), "{}", lc.log());

    assert_eq!(probe(2, addr), 503);
    assert!(
        wait_until(Duration::from_secs(5), || got(&rec, "SIGTERM")),
        "{}",
        lc.log()
    );
    let status = lc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", lc.log());
    assert!(
        lc.log()
            .contains("unready ends: every prober has seen the unhealthy threshold of 503s"),
        "{}",
        lc.log()
    );
}

/// ECS's normal path: ECS deregisters the task, the ALB stops health-checking it, and
/// SIGTERM comes after the deregistration delay. No 503 probe will ever come; the prober's
/// silence is the sign that it let go, so the stop does not sit out the unready cap (16 s
/// of a 30 s stop timeout).
#[test]
fn a_prober_that_stopped_probing_has_let_go() {
    let dir = support::tempdir();
    let rec = dir.path().join("rec");
    let mut lc = Lastcall::start(&[
        "run",
        "--health-listen",
        "127.0.0.1:0",
        "--stop-timeout",
        "30s",
        "--",
        "python3",
        RECORDER,
        rec.to_str().unwrap(),
    ]);
    let addr =
        support::health_addr(&lc.wait_for_log("health endpoint on", Duration::from_secs(10)));
    assert!(wait_until(Duration::from_secs(10), || got(&rec, "ready")));
    // A steady rhythm of checks, then none: 3 missed probes, and at least 3 s.
    for _ in 0..3 {
        assert_eq!(probe(1, addr), 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let last_probe = Instant::now();
    lc.signal(Signal::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(12), || got(&rec, "SIGTERM")),
        "the app got no TERM before the unready cap\n{}",
        lc.log()
    );
    let waited = last_probe.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "unready ended {waited:?} after the last probe, before the prober fell silent\n{}",
        lc.log()
    );
    assert_eq!(lc.wait(Duration::from_secs(10)).code(), Some(0));
    assert!(
        lc.log().contains(
            "unready ends: the load balancer stopped health-checking this target (it was deregistered)"
        ),
        "{}",
        lc.log()
    );
}

/// lastcall with a health endpoint that asks the app at `app_port`; returns it and the
/// health endpoint's address.
fn with_app_health(app_port: u16, app: &[&str]) -> (Lastcall, SocketAddr) {
    let upstream = format!("http://127.0.0.1:{app_port}/health");
    let mut args = vec![
        "run",
        "--health-listen",
        "127.0.0.1:0",
        "--health-upstream",
        &upstream,
    ];
    args.extend(["--stop-timeout", "5s", "--"]);
    args.extend(app);
    let lc = Lastcall::start(&args);
    let addr =
        support::health_addr(&lc.wait_for_log("health endpoint on", Duration::from_secs(10)));
    (lc, addr)
}

#[test]
fn while_serving_the_apps_own_health_answer_passes_through() {
    let dir = support::tempdir();
    let status_file = dir.path().join("status");
    let app_port = support::free_port();
    let (mut lc, addr) = with_app_health(
        app_port,
        &[
            "python3",
            HEALTH_APP,
            &app_port.to_string(),
            status_file.to_str().unwrap(),
        ],
    );
    lc.wait_for_log("listening", Duration::from_secs(10));
    for (app_says, we_say) in [(200, 200), (500, 500), (204, 204)] {
        std::fs::write(&status_file, app_says.to_string()).unwrap();
        assert_eq!(probe(1, addr), we_say);
    }
    lc.signal(Signal::SIGTERM);
    assert!(wait_until(Duration::from_secs(2), || probe(1, addr) == 503));
    assert_eq!(probe(1, addr), 503);
    lc.wait(Duration::from_secs(10));
}

#[test]
fn an_app_that_is_down_is_unhealthy() {
    let port = support::free_port();
    let (mut lc, addr) = with_app_health(port, &["sleep", "30"]);
    assert_eq!(probe(1, addr), 503);
    assert_eq!(probe(1, addr), 503);
    lc.signal(Signal::SIGTERM);
    lc.wait(Duration::from_secs(10));
    // Said once, at warning level, not once per probe.
    let said = format!(
        "cannot ask the app's health check, answering 503 until it can: http://127.0.0.1:{port}/health:"
    );
    assert_eq!(lc.log().matches(&said).count(), 1, "{}", lc.log());
}

#[test]
fn without_a_health_endpoint_pre_stop_delay_holds_the_app_like_a_k8s_prestop_sleep() {
    let dir = support::tempdir();
    let (rec, flag) = (dir.path().join("rec"), dir.path().join("draining"));
    let mut lc = Lastcall::start(&[
        "run",
        "--pre-stop-delay",
        "1s",
        "--drain-file",
        flag.to_str().unwrap(),
        "--",
        "python3",
        RECORDER,
        rec.to_str().unwrap(),
    ]);
    assert!(wait_until(Duration::from_secs(10), || got(&rec, "ready")));
    let t0 = support::monotonic();
    lc.signal(Signal::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(2), || flag.exists()),
        "no drain file"
    );
    assert!(wait_until(Duration::from_secs(5), || got(&rec, "SIGTERM")));
    let term_at: f64 = std::fs::read_to_string(&rec)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("SIGTERM"))
        .and_then(|l| l.split(' ').nth(1)?.parse().ok())
        .unwrap();
    let delay = term_at - t0;
    assert!(
        (0.9..1.5).contains(&delay),
        "TERM came {delay:.3}s after the stop began"
    );
    assert_eq!(lc.wait(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_trigger_file_starts_the_stop() {
    let dir = support::tempdir();
    let (rec, trigger) = (dir.path().join("rec"), dir.path().join("stop-now"));
    let flag = dir.path().join("draining");
    let mut lc = Lastcall::start(&[
        "run",
        "--drain-trigger-file",
        trigger.to_str().unwrap(),
        // Created for a stop begun by the trigger file as for one begun by a signal.
        "--drain-file",
        flag.to_str().unwrap(),
        "--",
        "python3",
        RECORDER,
        rec.to_str().unwrap(),
    ]);
    assert!(wait_until(Duration::from_secs(10), || got(&rec, "ready")));
    std::fs::write(&trigger, "").unwrap();
    assert_eq!(lc.wait(Duration::from_secs(10)).code(), Some(0));
    assert!(got(&rec, "SIGTERM"));
    assert_eq!(
        std::fs::read_to_string(&flag).unwrap(),
        format!("trigger file {}\n", trigger.display())
    );
    assert!(
        lc.log()
            .contains(&format!("stop began (trigger file {})", trigger.display())),
        "{}",
        lc.log()
    );
}
