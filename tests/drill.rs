#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! `lastcall drill` as a user runs it: the built binary, real processes (the demo app as
//! PID 1 of a PID namespace when allowed), real sockets, the platform's stop, every request
//! counted. Drills are kept short with the default --time-scale 0.1 and a 1 s warm-up.
//!
//! The lastcall-wrapped variants need the drain proxy (`lastcall run --listen`, issue 3).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lastcall");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    json: Option<Value>,
    svg: Option<String>,
    _dir: tempfile::TempDir,
}

fn drill(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("drill.json");
    let svg = dir.path().join("drill.svg");
    let out = Command::new(BIN)
        .arg("drill")
        .args(["--warmup", "1s", "--tail", "500ms"])
        .arg("--json")
        .arg(&json)
        .arg("--chart")
        .arg(&svg)
        .args(args)
        .output()
        .unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: read(&json).map(|t| serde_json::from_str(&t).unwrap()),
        svg: read(&svg),
        _dir: dir,
    }
}

fn variant<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variant {name} in {doc}"))
}

fn kinds(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Index of the first event of `kind`; panics with the whole timeline when missing.
fn at(v: &Value, kind: &str) -> f64 {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {:?}", kinds(v)))["at_ms"]
        .as_f64()
        .unwrap()
}

fn lastcall_phase(v: &Value, phase: &str) -> f64 {
    let prefix = format!("lastcall: {phase}");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["kind"] == "lastcall-phase" && e["label"].as_str().unwrap().starts_with(&prefix)
        })
        .unwrap_or_else(|| panic!("lastcall never entered {phase}: {:?}", v["events"]))["at_ms"]
        .as_f64()
        .unwrap()
}

/// The documented order holds: each kind's first event is no earlier than the previous one.
fn assert_order(v: &Value, order: &[&str]) {
    let times: Vec<f64> = order.iter().map(|k| at(v, k)).collect();
    for w in times.windows(2).zip(order.windows(2)) {
        let ((a, b), names) = ((w.0[0], w.0[1]), w.1);
        assert!(
            a <= b,
            "{} ({a:.1} ms) came after {} ({b:.1} ms): {:?}",
            names[0],
            names[1],
            v["events"]
        );
    }
}

/// The counts are the drill's own record of every request.
fn assert_counts_are_the_record(v: &Value) {
    let requests = v["requests"].as_array().unwrap();
    let sent = v["sent"].as_u64().unwrap();
    let ok = v["ok"].as_u64().unwrap();
    let failed = v["failed"].as_u64().unwrap();
    assert_eq!(sent, ok + failed, "sent = ok + failed");
    assert_eq!(sent, requests.len() as u64);
    let failed_in_record = requests.iter().filter(|r| !r["cause"].is_null()).count() as u64;
    assert_eq!(failed, failed_in_record);
    let by_cause: u64 = v["failed_by_cause"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(failed, by_cause);
}

/// Bare loses requests, lastcall loses none and needs no SIGKILL, exit 0.
fn assert_bare_fails_lastcall_saves(r: &Run) -> (Value, Value) {
    let doc = r
        .json
        .as_ref()
        .unwrap_or_else(|| panic!("no JSON: {}", r.stderr));
    let bare = variant(doc, "bare").clone();
    let wrapped = variant(doc, "lastcall").clone();
    assert!(
        bare["failed"].as_u64().unwrap() > 0,
        "the bare demo app lost nothing:\n{}",
        r.stdout
    );
    assert_eq!(
        wrapped["failed"].as_u64().unwrap(),
        0,
        "lastcall lost requests:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(wrapped["killed"], false, "{}", r.stdout);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_counts_are_the_record(&bare);
    assert_counts_are_the_record(&wrapped);
    // The lastcall variant drained: it went unready on SIGTERM, and the app got TERM only
    // after the LB had stopped routing to the task.
    assert!(lastcall_phase(&wrapped, "unready") >= at(&wrapped, "sigterm"));
    assert!(at(&wrapped, "lastcall-signal") >= at(&wrapped, "routing-stopped"));
    assert!(at(&wrapped, "app-exit") >= at(&wrapped, "lastcall-signal"));
    (bare, wrapped)
}

#[test]
fn ecs_alb_bare_loses_requests_lastcall_loses_none() {
    let r = drill(&[]);
    let (bare, wrapped) = assert_bare_fails_lastcall_saves(&r);
    for v in [&bare, &wrapped] {
        // ECS: deregister → deregistration delay → SIGTERM; the ALB stops routing only
        // after its propagation delay.
        assert_order(v, &["stop-began", "deregistered", "sigterm", "app-exit"]);
        assert_order(v, &["deregistered", "routing-stopped"]);
        assert!(!kinds(v).contains(&"sigkill".to_string()));
    }
    // The bare app exited on SIGTERM while the LB still routed to it: refused connections.
    assert!(at(&bare, "app-exit") < at(&bare, "routing-stopped"));
    assert!(bare["failed_by_cause"]["refused"].as_u64().unwrap() > 0);
    assert!(r.stdout.contains("summary: bare lost"), "{}", r.stdout);
}

#[test]
fn k8s_bare_loses_requests_lastcall_loses_none() {
    let r = drill(&["--platform", "k8s"]);
    let (bare, wrapped) = assert_bare_fails_lastcall_saves(&r);
    for v in [&bare, &wrapped] {
        // Endpoint removal and SIGTERM at the same moment; routing ends later.
        assert_order(
            v,
            &[
                "stop-began",
                "endpoint-removed",
                "sigterm",
                "routing-stopped",
            ],
        );
        assert!(at(v, "sigterm") - at(v, "endpoint-removed") < 100.0);
    }
}

#[test]
fn fargate_spot_bare_loses_requests_lastcall_loses_none() {
    let r = drill(&["--platform", "fargate-spot"]);
    let (bare, wrapped) = assert_bare_fails_lastcall_saves(&r);
    for v in [&bare, &wrapped] {
        assert_order(
            v,
            &[
                "interruption-notice",
                "stop-began",
                "deregistered",
                "sigterm",
                "app-exit",
            ],
        );
    }
}

#[test]
fn ecs_essential_exit_bare_loses_requests_lastcall_loses_none() {
    // ALB's default 30 s × 2 health checks cannot fit a 30 s stopTimeout (the drill says so,
    // see the next test); a 5 s interval, as teams set it for ECS services, can.
    let r = drill(&[
        "--platform",
        "ecs-essential-exit",
        "--health-interval",
        "5s",
        "--health-timeout",
        "2s",
    ]);
    let (bare, wrapped) = assert_bare_fails_lastcall_saves(&r);
    // SIGTERM with no deregistration first; ECS deregisters the task once it has stopped.
    for v in [&bare, &wrapped] {
        assert_order(v, &["stop-began", "sigterm", "app-exit", "deregistered"]);
    }
    // Under lastcall the ALB's own health checks took the task out of rotation: each of
    // its two nodes (two probers, 127.0.0.1 and 127.0.0.2) on its own results, and lastcall
    // let the app go only after both had.
    assert_order(
        &wrapped,
        &["sigterm", "unhealthy", "routing-stopped", "app-exit"],
    );
    let unhealthy: Vec<f64> = wrapped["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "unhealthy")
        .map(|e| e["at_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(unhealthy.len(), 2, "{:?}", wrapped["events"]);
    assert!(at(&wrapped, "routing-stopped") >= unhealthy[1]);
    assert!(at(&wrapped, "lastcall-signal") >= unhealthy[1]);
}

#[test]
fn ecs_essential_exit_with_alb_defaults_is_explained_and_fails() {
    let r = drill(&["--platform", "ecs-essential-exit", "--wrap"]);
    assert!(
        r.stdout.contains(
            "note:  lastcall's unready phase is capped at 1.267s by a 3s grace period, but the LB may route to the task for 6.500s after SIGTERM"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    let wrapped = variant(r.json.as_ref().unwrap(), "lastcall");
    assert!(wrapped["failed"].as_u64().unwrap() > 0);
}

#[test]
fn a_broken_backend_is_counted_by_cause() {
    // The task answers, request by request: ok, 500, reset, close, never. The LB never
    // retries, so each misbehaviour is one failed request of its own cause.
    let r = drill(&[
        "--bare",
        "--request-timeout",
        "300ms",
        "--",
        BIN,
        "demo-app",
        "--latency",
        "5ms",
        "--misbehave",
        "ok,500,reset,close,hang",
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let doc = r.json.unwrap();
    let bare = variant(&doc, "bare");
    assert_counts_are_the_record(bare);
    let stop = bare["stop_began_ms"].as_f64().unwrap();
    // Before the stop, only the task's misbehaviour fails requests: count the record.
    let mut by = std::collections::BTreeMap::<String, u64>::new();
    let mut task_requests = 0u64;
    for req in bare["requests"].as_array().unwrap() {
        if req["start_ms"].as_f64().unwrap() >= stop - 400.0 {
            continue;
        }
        match req["backend"].as_str().unwrap() {
            "peer" => assert!(req["cause"].is_null(), "the peer failed: {req}"),
            "task" => {
                task_requests += 1;
                let cause = req["cause"].as_str().unwrap_or("ok");
                *by.entry(cause.to_string()).or_default() += 1;
            }
            other => panic!("unknown backend {other}"),
        }
    }
    assert!(task_requests > 50, "{task_requests} requests to the task");
    let fifth = task_requests as f64 / 5.0;
    for cause in ["ok", "5xx", "reset", "closed", "timeout"] {
        let n = by.get(cause).copied().unwrap_or(0) as f64;
        assert!(
            (n - fifth).abs() <= 3.0,
            "{cause}: {n} of {task_requests} task requests, expected about {fifth:.0}: {by:?}"
        );
    }
    for req in bare["requests"].as_array().unwrap() {
        if req["cause"] == "5xx" {
            assert_eq!(req["status"], 500);
        }
    }
}

#[test]
fn an_app_that_ignores_sigterm_is_killed_and_fails_the_drill() {
    let r = drill(&[
        "--bare",
        "--platform",
        "k8s",
        "--",
        BIN,
        "demo-app",
        "--ignore-term",
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let doc = r.json.unwrap();
    let bare = variant(&doc, "bare");
    assert_eq!(bare["killed"], true);
    assert_eq!(bare["exit_signal"], 9, "{}", bare["exit"]);
    assert_eq!(bare["exit"], "killed by SIGKILL");
    assert_order(bare, &["sigterm", "sigkill", "app-exit"]);
    // terminationGracePeriodSeconds 30 s × 0.1.
    let grace = at(bare, "sigkill") - at(bare, "sigterm");
    assert!(
        (2900.0..4000.0).contains(&grace),
        "SIGKILL after {grace} ms"
    );
    assert!(r.stdout.contains("needed SIGKILL"), "{}", r.stdout);
}

/// The documented JSON shape, read from the README so the docs and the test agree.
fn documented_fields() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap();
    let start = doc.find("<!-- json-schema:start -->").unwrap();
    let end = doc.find("<!-- json-schema:end -->").unwrap();
    doc[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].to_string())
        })
        .collect()
}

fn check_type(path: &str, v: &Value, ty: &str) {
    let ok = match ty {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "string or null" => v.is_string() || v.is_null(),
        "integer or null" => v.is_u64() || v.is_i64() || v.is_null(),
        other => panic!("the README uses an unknown type `{other}` for {path}"),
    };
    assert!(ok, "{path} should be {ty}, is {v}");
}

/// Every value at `path` (`a.b`, `list[].c`) in `v`.
fn values_at<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![v];
    for part in path.split('.') {
        let (name, each) = match part.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (part, false),
        };
        let mut next = Vec::new();
        for c in cur {
            let field = &c[name];
            assert!(!field.is_null() || !each, "missing {path} ({name})");
            if each {
                next.extend(
                    field
                        .as_array()
                        .unwrap_or_else(|| panic!("{path}: {name} is not a list")),
                );
            } else {
                assert!(
                    c.get(name).is_some(),
                    "missing field {name} of {path} in {}",
                    serde_json::to_string(c)
                        .unwrap()
                        .chars()
                        .take(300)
                        .collect::<String>()
                );
                next.push(field);
            }
        }
        cur = next;
    }
    cur
}

#[test]
fn the_json_has_the_documented_shape_and_the_svg_is_well_formed() {
    let r = drill(&["--bare", "--rate", "100"]);
    let doc = r.json.as_ref().unwrap();
    let fields = documented_fields();
    assert!(
        fields.len() > 20,
        "the JSON schema table in README.md is missing"
    );
    for (path, ty) in &fields {
        let found = values_at(doc, path);
        assert!(!found.is_empty(), "nothing at {path}");
        for v in found {
            check_type(path, v, ty);
        }
    }
    let names: Vec<&str> = doc["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bare"]);

    let svg = r.svg.as_ref().unwrap();
    let xml =
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}"));
    assert_eq!(xml.root_element().tag_name().name(), "svg");
    let events: Vec<String> = xml
        .descendants()
        .filter(|n| n.attribute("class") == Some("event"))
        .map(|n| n.attribute("data-kind").unwrap().to_string())
        .collect();
    for kind in [
        "stop-began",
        "deregistered",
        "sigterm",
        "routing-stopped",
        "app-exit",
    ] {
        assert!(
            events.iter().any(|k| k == kind),
            "no {kind} marker in {events:?}"
        );
    }
    // Each marker is a vertical line with a label.
    for g in xml
        .descendants()
        .filter(|n| n.attribute("class") == Some("event"))
    {
        let line = g.children().find(|c| c.has_tag_name("line")).unwrap();
        assert_eq!(line.attribute("x1"), line.attribute("x2"));
        let text = g.children().find(|c| c.has_tag_name("text")).unwrap();
        assert!(!text.text().unwrap_or("").is_empty());
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let table: &[(&[&str], &str)] = &[
        (
            &["--rate", "0"],
            "lastcall: --rate 0 is out of range (write a number of requests per second from 1 to 5000)",
        ),
        (
            &["--time-scale", "0"],
            "lastcall: --time-scale 0 is out of range (write a factor from 0.01 to 10, e.g. 0.1 for a tenth of real time)",
        ),
        (
            &["--time-scale", "1e-300"],
            "lastcall: --time-scale 1e-300 is out of range (write a factor from 0.01 to 10, e.g. 0.1 for a tenth of real time)",
        ),
        (
            &["--port", "0"],
            "lastcall: --port 0 is not a port to reach the task on (leave --port out for a free port)",
        ),
        (
            &["--json", "/nonexistent/dir/x.json"],
            "lastcall: --json /nonexistent/dir/x.json: there is no directory /nonexistent/dir to write it in (create it first)",
        ),
        (
            &["--health-path", "health"],
            "lastcall: invalid value 'health' for '--health-path <PATH>': `health` is not a path (write it like /health) (see lastcall --help)",
        ),
        (
            &["--port", "18080", "--app-port", "18080"],
            "lastcall: --port and --app-port must differ (lastcall listens on --port and forwards to the app on --app-port)",
        ),
        (
            &["--platform", "k8s", "--pre-stop-sleep", "30s"],
            "lastcall: --pre-stop-sleep 30s must be shorter than the grace period 30s (the kubelet counts preStop inside terminationGracePeriodSeconds)",
        ),
        (
            &["--stop-timeout", "500ms"],
            "lastcall: the grace period 500ms at --time-scale 0.1 is 50ms, too short for lastcall: --kill-margin 100ms must be shorter than --stop-timeout 50ms (lastcall must act before the orchestrator's SIGKILL)",
        ),
        (
            &["--wrap", "--bogus-flag"],
            "lastcall: --wrap '--bogus-flag': unknown option '--bogus-flag' for lastcall run (see lastcall run --help)",
        ),
        (
            &["--wrap", "--stop-timeout 5x"],
            "lastcall: --wrap '--stop-timeout 5x': invalid value '5x' for '--stop-timeout <DURATION>': invalid duration `5x`: unknown unit (use ms, s, m or h) (write e.g. 500ms, 30s, 2m or 1m30s) (see lastcall --help)",
        ),
        (
            &["--bare", "--compare"],
            "lastcall: the argument '--bare' cannot be used with '--compare' (see lastcall --help)",
        ),
        (
            &["--request-path", "api"],
            "lastcall: invalid value 'api' for '--request-path <PATH>': `api` is not a path (write it like /health) (see lastcall --help)",
        ),
        (
            &["--unhealthy-threshold", "0"],
            "lastcall: --unhealthy-threshold and --healthy-threshold must be at least 1 (ALB's are 2 and 5)",
        ),
        (
            &["--health-interval", "0s"],
            "lastcall: --health-interval and --health-timeout must be above 0 (write e.g. 5s and 2s)",
        ),
        (
            &["--lb-nodes", "9"],
            "lastcall: invalid value '9' for '--lb-nodes <N>': 9 is not in 1..=8 (see lastcall --help)",
        ),
        (
            &["--app-idle-timeout", "5s", "--", "my-app"],
            "lastcall: --app-idle-timeout configures the built-in demo app; with a COMMAND, set your app's own idle timeout",
        ),
        (
            &["--latency", "fast"],
            "lastcall: invalid value 'fast' for '--latency <DURATION>': invalid duration `fast`: expected a number (write e.g. 500ms, 30s, 2m or 1m30s) (see lastcall --help)",
        ),
    ];
    for (args, msg) in table {
        let out = Command::new(BIN).arg("drill").args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end(), *msg, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_app_that_never_gets_ready_is_reported() {
    let out = Command::new(BIN)
        .args([
            "drill",
            "--bare",
            "--ready-timeout",
            "1s",
            "--",
            "sleep",
            "30",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "lastcall: drill (bare): the app did not answer GET /health with 200 on 127.0.0.1:"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "within 1s (is it listening on $PORT? raise --ready-timeout if it starts slowly)"
        ),
        "{stderr}"
    );
}

#[test]
fn options_lastcall_run_refuses_at_start_are_a_usage_error() {
    // Parses, but cannot fit the platform's 3 s grace (30 s × 0.1): lastcall run says why.
    let out = Command::new(BIN)
        .args(["drill", "--wrap", "--signal-plan TERM@+29s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("lastcall: drill (lastcall): lastcall run (with the app behind it) exited before it was ready (exit status 2)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("signal plan step TERM@+29s fires at"),
        "{stderr}"
    );
}

#[test]
fn spot_hard_limit_kills_before_sigterm_when_the_delays_do_not_fit() {
    // Seed 003: deregistration delay + stopTimeout must fit Spot's hard limit, or the task
    // is killed before it ever sees SIGTERM (here 60 s delay, 30 s limit, × 0.1).
    let r = drill(&[
        "--bare",
        "--platform",
        "fargate-spot",
        "--deregistration-delay",
        "60s",
        "--hard-limit",
        "30s",
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "note:  deregistration delay 6s + stopTimeout 3s exceed the Spot hard limit 3s"
        ),
        "{}",
        r.stdout
    );
    let doc = r.json.unwrap();
    let bare = variant(&doc, "bare");
    assert_eq!(bare["killed"], true);
    assert!(
        !kinds(bare).contains(&"sigterm".to_string()),
        "{:?}",
        kinds(bare)
    );
    assert_order(
        bare,
        &["interruption-notice", "deregistered", "sigkill", "app-exit"],
    );
    let limit = at(bare, "sigkill") - at(bare, "interruption-notice");
    assert!(
        (2900.0..4000.0).contains(&limit),
        "SIGKILL after {limit} ms"
    );
}

#[test]
fn without_a_pid_namespace_the_report_says_so_and_lastcall_still_saves() {
    let r = drill(&["--platform", "k8s", "--no-namespace"]);
    assert!(
        r.stdout
            .contains("  task:  a plain child process (--no-namespace)\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.json.as_ref().unwrap()["isolation"],
        "a plain child process (--no-namespace)"
    );
    assert_bare_fails_lastcall_saves(&r);
}

#[test]
fn k8s_pre_stop_sleep_longer_than_propagation_saves_even_the_bare_app() {
    // The drill does not invent losses: with the textbook fix (a preStop sleep that outlasts
    // endpoint propagation, 10 s > 5 s), SIGTERM comes after the LB let go.
    let r = drill(&["--bare", "--platform", "k8s", "--pre-stop-sleep", "10s"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let doc = r.json.unwrap();
    let bare = variant(&doc, "bare");
    assert_eq!(bare["failed"], 0, "{}", r.stdout);
    assert_counts_are_the_record(bare);
    assert_order(
        bare,
        &["endpoint-removed", "routing-stopped", "sigterm", "app-exit"],
    );
    let pre_stop = at(bare, "sigterm") - at(bare, "endpoint-removed");
    assert!(
        (950.0..2000.0).contains(&pre_stop),
        "preStop lasted {pre_stop} ms"
    );
}

#[test]
fn an_app_whose_health_path_is_its_only_path_still_drains_under_lastcall() {
    // `--health-path /` (an app with one path): bare, the LB checks `/`; under lastcall the
    // LB checks lastcall's own /lastcall/health, and lastcall asks the app on `/` — the
    // traffic on `/` is never answered by lastcall's health endpoint.
    let r = drill(&["--compare", "--health-path", "/", "--", BIN, "demo-app"]);
    let (_, wrapped) = assert_bare_fails_lastcall_saves(&r);
    let command: Vec<&str> = wrapped["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let joined = command.join(" ");
    assert!(
        joined.contains("--health-path /lastcall/health --upstream-health-path / "),
        "{joined}"
    );
}
