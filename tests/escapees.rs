//! Processes that leave the app's process group — daemons started with `setsid`, workers
//! that double-fork — are still part of the container. They get the stop plan's signals
//! like the app, and whatever is still alive at the kill margin is killed, however deep.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::{Lastcall, monotonic, wait_until};

const RECORDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/recorder.py");
/// A process that ignores TERM; its last argument is a marker to find it by.
/// Ignores TERM, then creates the file named by its second argument to say so.
const IGNORES_TERM: &str = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open(sys.argv[2], \"w\").close(); time.sleep(300)";

fn got(path: &Path, what: &str) -> bool {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(what)
}

/// Processes on the machine whose command line contains `marker`.
fn running(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) && !cmdline.contains("cargo") {
            found.push(cmdline);
        }
    }
    found
}

/// redis-server --daemonize and friends: a daemon that left the app's group and was
/// re-parented to lastcall gets the plan's TERM, and the stop ends when it is done rather
/// than at the kill margin.
#[test]
fn a_daemon_that_left_the_apps_group_gets_the_stop_signal() {
    for as_pid1 in [true, false] {
        if as_pid1 && !support::pid_namespaces() {
            continue;
        }
        let dir = support::tempdir();
        let (daemon, main) = (dir.path().join("daemon"), dir.path().join("main"));
        // The subshell starts the daemon in a session of its own and exits: the daemon's
        // parent is gone, and it is re-parented to lastcall.
        let app = format!(
            "(setsid python3 {RECORDER} {} &); exec python3 {RECORDER} {}",
            daemon.display(),
            main.display()
        );
        let args = ["run", "--stop-timeout", "10s", "--", "sh", "-c", &app];
        let mut lc = if as_pid1 {
            Lastcall::start_as_pid1(&args)
        } else {
            Lastcall::start(&args)
        };
        assert!(wait_until(Duration::from_secs(10), || got(
            &daemon, "ready"
        ) && got(
            &main, "ready"
        )));
        lc.signal(Signal::SIGTERM);
        let status = lc.wait(Duration::from_secs(15));
        let log = lc.log();
        assert_eq!(status.code(), Some(0), "pid1={as_pid1}\n{log}");
        assert!(
            got(&daemon, "SIGTERM"),
            "pid1={as_pid1}: the daemon got no TERM\n{log}"
        );
        assert!(!log.contains("sending SIGKILL"), "pid1={as_pid1}\n{log}");
    }
}

/// Not PID 1, lastcall is a subreaper: a process that escaped two sessions deep is only
/// re-parented to lastcall when its parent dies, so one SIGKILL sweep is not enough.
#[test]
fn nested_escapees_are_all_killed_at_the_kill_margin() {
    let dir = support::tempdir();
    let rec = |name: &str| dir.path().join(name).display().to_string();
    let (main, outer, inner) = (rec("main"), rec("outer"), rec("inner"));
    // Every process ignores TERM (the recorder only records it).
    let script = support::script(
        dir.path(),
        "app.sh",
        &format!(
            "setsid sh -c 'setsid python3 {RECORDER} {inner} ignore & exec python3 {RECORDER} {outer} ignore' &\n\
             exec python3 {RECORDER} {main} ignore\n"
        ),
    );
    let mut lc = Lastcall::start(&[
        "run",
        "--stop-timeout",
        "3s",
        "--",
        script.to_str().unwrap(),
    ]);
    for f in [&main, &outer, &inner] {
        assert!(
            wait_until(Duration::from_secs(10), || got(Path::new(f), "ready")),
            "{f}"
        );
    }
    lc.signal(Signal::SIGTERM);
    let status = lc.wait(Duration::from_secs(10));
    let log = lc.log();
    assert_eq!(status.code(), Some(137), "{log}");
    let marker = dir.path().display().to_string();
    assert!(
        wait_until(Duration::from_secs(2), || running(&marker).is_empty()),
        "left running: {:?}\n{log}",
        running(&marker)
    );
    assert!(log.contains("every process has exited"), "{log}");
    assert!(
        log.contains(
            "exit 137: lastcall killed the app with SIGKILL: it did not stop by the kill margin"
        ),
        "{log}"
    );
}

/// The app exited on its own and left a process that ignores TERM; the orchestrator then
/// stops the container. The orphan grace may be long, but the kill still comes before the
/// orchestrator's deadline.
#[test]
fn a_stop_during_the_orphan_grace_still_ends_before_the_deadline() {
    let marker = format!("leftover-{}", std::process::id());
    // The app exits only once the leftover ignores TERM: the orphan grace's TERM must not
    // catch it before that.
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ignoring");
    let ready = ready.display();
    let app = format!(
        "python3 -c '{IGNORES_TERM}' {marker} {ready} & while [ ! -e {ready} ]; do sleep 0.01; done; exit 3"
    );
    let mut lc = Lastcall::start(&[
        "run",
        "--orphan-grace",
        "30s",
        "--stop-timeout",
        "3s",
        "--",
        "sh",
        "-c",
        &app,
    ]);
    lc.wait_for_log("left behind", Duration::from_secs(10));
    let t0 = monotonic();
    lc.signal(Signal::SIGTERM);
    let status = lc.wait(Duration::from_secs(10));
    let took = monotonic() - t0;
    let log = lc.log();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        (1.5..3.0).contains(&took),
        "killed {took:.3}s after SIGTERM, not at the kill margin (+2s)\n{log}"
    );
    assert!(log.contains("--orphan-grace: SIGKILL"), "{log}");
    assert!(running(&marker).is_empty(), "{:?}", running(&marker));
}
