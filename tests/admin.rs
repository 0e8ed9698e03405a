//! The admin endpoint: `GET /status`, `POST /drain`, `GET /metrics`, against the real
//! binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod proxy_support;

use std::time::Duration;

use proxy_support::{Conn, Lastcall, get};

const LONG: Duration = Duration::from_secs(20);

fn status(lc: &Lastcall) -> serde_json::Value {
    let r = get(lc.admin, "/status");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_str(&r.body_text()).unwrap()
}

#[test]
fn status_shows_the_phase_and_the_timeline() {
    let lc = Lastcall::start(&[]);
    let v = status(&lc);
    assert_eq!(v["phase"], "serving");
    assert_eq!(v["in_flight"], 0);
    assert_eq!(v["stop_reason"], serde_json::Value::Null);
    assert_eq!(v["deadline_in_seconds"], serde_json::Value::Null);
    // The defaults of a 30 s stop timeout with a proxy: see the worked timeline in README.md.
    assert_eq!(v["stop_timeout_seconds"], 30.0);
    assert_eq!(v["unready_cap_seconds"], 16.0);
    assert_eq!(v["closing_cap_seconds"], 8.0);
    assert_eq!(v["kill_at_seconds"], 29.0);
    assert!(v["phase_seconds"]["starting"].as_f64().is_some());
    assert!(v["phase_seconds"]["serving"].as_f64().is_some());
}

#[test]
fn post_drain_starts_a_stop_once() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("draining");
    let lc = Lastcall::start(&[
        "--stop-timeout",
        "20s",
        "--drain-file",
        flag.to_str().unwrap(),
    ]);
    let mut c = Conn::open(lc.admin).unwrap();
    let r = c.request("POST", "/drain", &[], &[]).unwrap();
    assert_eq!(r.status, 202);
    // The stop began before the answer: the app's flag file is already there.
    assert_eq!(std::fs::read_to_string(&flag).unwrap(), "POST /drain\n");
    let v: serde_json::Value = serde_json::from_str(&r.body_text()).unwrap();
    assert_eq!(v["stop_reason"], "POST /drain");
    lc.wait_phase("unready", LONG);
    let r = c.request("POST", "/drain", &[], &[]).unwrap();
    assert_eq!(r.status, 200, "a second POST changes nothing");
    let v = status(&lc);
    assert_eq!(v["phase"], "unready");
    let left = v["deadline_in_seconds"].as_f64().unwrap();
    assert!(left > 10.0 && left <= 20.0, "{left}");
    assert!(
        lc.log_text()
            .contains("stop began (POST /drain); deadline in 20s")
    );
    let m = get(lc.admin, "/metrics").body_text();
    assert!(m.contains("lastcall_phase{phase=\"unready\"} 1\n"), "{m}");
    assert!(m.contains("lastcall_phase{phase=\"serving\"} 0\n"), "{m}");
    assert!(
        m.contains("# TYPE lastcall_stop_deadline_seconds gauge\n"),
        "{m}"
    );
    assert!(
        m.contains("lastcall_phase_duration_seconds{phase=\"unready\"} "),
        "{m}"
    );
}

#[test]
fn metrics_are_prometheus_text() {
    let lc = Lastcall::start(&[]);
    for _ in 0..3 {
        assert_eq!(get(lc.proxy, "/hello").status, 200);
    }
    assert_eq!(get(lc.proxy, "/nope").status, 404);
    let r = get(lc.admin, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let m = r.body_text();
    for line in [
        "# TYPE lastcall_requests_total counter\n",
        "lastcall_requests_total{phase=\"serving\",code=\"200\"} 3\n",
        "lastcall_requests_total{phase=\"serving\",code=\"404\"} 1\n",
        "# TYPE lastcall_in_flight gauge\n",
        "lastcall_in_flight 0\n",
        "lastcall_phase{phase=\"serving\"} 1\n",
        "lastcall_phase{phase=\"unready\"} 0\n",
        "lastcall_upstream_errors_total{kind=\"connect\"} 0\n",
    ] {
        assert!(m.contains(line), "missing {line:?} in:\n{m}");
    }
    assert!(m.contains("lastcall_phase_duration_seconds{phase=\"serving\"} "));
    assert!(!m.contains("lastcall_stop_deadline_seconds"), "no stop yet");
    // Every sample line is `name{labels} value` or `name value`.
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
}

#[test]
fn wrong_paths_and_methods_say_what_exists() {
    let lc = Lastcall::start(&[]);
    let table: &[(&str, &str, u16, &str)] = &[
        (
            "GET",
            "/nope",
            404,
            "not found (try GET /status, GET /metrics or POST /drain)\n",
        ),
        ("GET", "/drain", 405, "method not allowed (use POST)\n"),
        (
            "POST",
            "/status",
            405,
            "method not allowed (use GET, HEAD)\n",
        ),
        (
            "DELETE",
            "/metrics",
            405,
            "method not allowed (use GET, HEAD)\n",
        ),
    ];
    for (method, path, code, body) in table {
        let r = Conn::open(lc.admin)
            .unwrap()
            .request(method, path, &[], &[])
            .unwrap();
        assert_eq!(
            (r.status, r.body_text().as_str()),
            (*code, *body),
            "{method} {path}"
        );
    }
    assert_eq!(lc.phase(), "serving", "nothing above started a stop");
}
