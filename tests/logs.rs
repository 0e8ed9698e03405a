//! Log lines say where the stop is: phase, time since the stop began, time left. In JSON
//! every line is one object, so log pipelines can parse them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use support::Lastcall;

#[test]
fn json_lines_carry_phase_and_timing() {
    let mut lc = Lastcall::start(&[
        "run",
        "--log-format",
        "json",
        "--stop-timeout",
        "5s",
        "--",
        "sleep",
        "30",
    ]);
    lc.wait_for_log("started sleep", Duration::from_secs(10));
    lc.signal(Signal::SIGTERM);
    assert_eq!(lc.wait(Duration::from_secs(10)).code(), Some(143));
    let lines: Vec<serde_json::Value> = lc
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let first = &lines[0];
    assert_eq!(first["phase"], "serving");
    assert_eq!(
        first["msg"].as_str().unwrap().split(" as pid").next(),
        Some("started sleep")
    );
    assert!(first.get("left_ms").is_none(), "no stop yet: {first}");
    let last = lines.last().unwrap();
    assert_eq!(last["phase"], "exited");
    assert_eq!(last["msg"], "exit 143: the app was killed by SIGTERM");
    let left = last["left_ms"].as_u64().unwrap();
    let since = last["since_stop_ms"].as_u64().unwrap();
    assert!(left + since >= 4_900 && left + since <= 5_000, "{last}");
    let phases: Vec<&str> = lines.iter().map(|l| l["phase"].as_str().unwrap()).collect();
    assert!(phases.contains(&"stopping"), "{phases:?}");
}

#[test]
fn text_lines_carry_phase_and_timing() {
    let mut lc = Lastcall::start(&["run", "--stop-timeout", "5s", "--", "sleep", "30"]);
    lc.wait_for_log("started sleep", Duration::from_secs(10));
    lc.signal(Signal::SIGTERM);
    lc.wait(Duration::from_secs(10));
    let log = lc.log();
    let last = log.lines().last().unwrap();
    assert!(last.starts_with("lastcall[exited +0."), "{last}");
    assert!(
        last.ends_with("s left] exit 143: the app was killed by SIGTERM"),
        "{last}"
    );
}

/// A log collector that died, or `lastcall … 2>&1 | head -1`: stderr is a closed pipe.
/// The lines are lost, the supervision is not — the app's status still comes through,
/// where a panic on the first unwritable line used to orphan the app.
#[test]
fn a_closed_stderr_loses_log_lines_not_the_app() {
    let table: [(&[&str], i32); 3] = [
        (&["run", "--", "sh", "-c", "sleep 0.3; exit 7"], 7),
        // usage errors are reported on stderr too
        (&["run", "--stop-timeout", "nope", "--", "true"], 2),
        // stdout closed as well: check's and drill's reports go there
        (&["check", "--list-rules"], 0),
    ];
    for (args, code) in table {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lastcall"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{args:?}");
    }
}
