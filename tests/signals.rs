//! Signals: what the app receives, when, and what lastcall does when the app will not stop.
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

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn wait_ready(path: &Path, n: usize) {
    let ok = wait_until(Duration::from_secs(10), || {
        lines(path)
            .iter()
            .filter(|l| l.starts_with("ready"))
            .count()
            >= n
    });
    assert!(ok, "the recorder never got ready: {:?}", lines(path));
}

/// `lastcall run OPTS -- recorder`, once the recorder is ready: its temp dir (kept alive
/// by the caller), the file it records signals in, and lastcall.
fn start_recorder(opts: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Lastcall) {
    let dir = support::tempdir();
    let rec = dir.path().join("rec");
    let mut args = vec!["run"];
    args.extend_from_slice(opts);
    args.extend(["--", "python3", RECORDER, rec.to_str().unwrap()]);
    let lc = Lastcall::start(&args);
    wait_ready(&rec, 1);
    (dir, rec, lc)
}

/// When `name` arrived, in CLOCK_MONOTONIC seconds.
fn arrival(path: &Path, name: &str) -> Option<f64> {
    lines(path)
        .iter()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.split(' ').nth(1)?.parse().ok())
}

#[test]
fn forwarded_signals_reach_the_whole_group_or_only_the_child() {
    for (mode, background_gets_them) in [("group", true), ("child", false)] {
        let dir = support::tempdir();
        let (main, bg) = (dir.path().join("main"), dir.path().join("bg"));
        let app = format!(
            "python3 {RECORDER} {} & exec python3 {RECORDER} {}",
            bg.display(),
            main.display()
        );
        // In child mode the leftover background process gets no TERM: it is killed at the
        // kill margin, so keep the stop short.
        let mut lc = Lastcall::start(&[
            "run",
            "--stop-timeout",
            "3s",
            "--signal-mode",
            mode,
            "--",
            "sh",
            "-c",
            &app,
        ]);
        wait_ready(&main, 1);
        wait_ready(&bg, 1);
        let forwarded = [
            ("SIGHUP", Signal::SIGHUP),
            ("SIGUSR1", Signal::SIGUSR1),
            ("SIGUSR2", Signal::SIGUSR2),
            ("SIGQUIT", Signal::SIGQUIT),
            ("SIGWINCH", Signal::SIGWINCH),
            ("SIGALRM", Signal::SIGALRM),
        ];
        for (name, sig) in forwarded {
            lc.signal(sig);
            let got = wait_until(Duration::from_secs(5), || arrival(&main, name).is_some());
            assert!(got, "{mode}: the app never got {name}: {:?}", lines(&main));
        }
        if background_gets_them {
            for (name, _) in forwarded {
                let got = wait_until(Duration::from_secs(5), || arrival(&bg, name).is_some());
                assert!(got, "group: the background process never got {name}");
            }
        } else {
            // Everything was delivered to main already; bg had the same chance.
            assert!(
                arrival(&bg, "SIGHUP").is_none(),
                "child mode reached the group: {:?}",
                lines(&bg)
            );
        }
        lc.signal(Signal::SIGTERM);
        lc.wait(Duration::from_secs(20));
    }
}

#[test]
fn the_app_starts_with_an_empty_mask_and_default_dispositions() {
    // A parent that ignores HUP and PIPE (nohup does, Rust ignores PIPE) must not pass that on.
    let script = format!(
        "trap '' HUP PIPE; exec {} run -q -- grep -E '^Sig(Blk|Ign)' /proc/self/status",
        support::BIN
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn the_app_runs_in_a_session_of_its_own() {
    let out = std::process::Command::new(support::BIN)
        .args(["run", "-q", "--", "sh", "-c", "ps -o pid=,pgid=,sid= -p $$"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ids: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(ids.len(), 3, "{stdout}");
    assert!(
        ids[0] == ids[1] && ids[1] == ids[2],
        "pid, pgid and sid differ: {stdout}"
    );
}

#[test]
fn signal_plan_steps_fire_on_time() {
    let (_dir, rec, mut lc) = start_recorder(&[
        "--stop-timeout",
        "5s",
        "--signal-plan",
        "USR1@+0,USR2@+1s,TERM@-2s",
    ]);
    let t0 = monotonic();
    lc.signal(Signal::SIGTERM);
    let status = lc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", lc.log());
    for (name, expected) in [("SIGUSR1", 0.0), ("SIGUSR2", 1.0), ("SIGTERM", 3.0)] {
        let at = arrival(&rec, name).unwrap_or_else(|| panic!("no {name}: {:?}", lines(&rec))) - t0;
        assert!(
            (at - expected).abs() <= 0.1,
            "{name} arrived at +{at:.3}s, planned +{expected}s\n{}",
            lc.log()
        );
    }
}

#[test]
fn an_app_that_ignores_term_is_killed_before_the_deadline() {
    let dir = support::tempdir();
    let rec = dir.path().join("rec");
    let mut lc = Lastcall::start(&[
        "run",
        "--stop-timeout",
        "3s",
        "--kill-margin",
        "1s",
        "--",
        "python3",
        RECORDER,
        rec.to_str().unwrap(),
        "ignore",
    ]);
    wait_ready(&rec, 1);
    let t0 = monotonic();
    lc.signal(Signal::SIGTERM);
    // A second TERM must not restart the clock.
    assert!(wait_until(Duration::from_secs(5), || arrival(
        &rec, "SIGTERM"
    )
    .is_some()));
    std::thread::sleep(Duration::from_millis(500));
    lc.signal(Signal::SIGTERM);
    let status = lc.wait(Duration::from_secs(10));
    let took = monotonic() - t0;
    assert_eq!(status.code(), Some(137), "{}", lc.log());
    assert!(
        took < 3.0,
        "lastcall exited {took:.3}s after SIGTERM, after the deadline\n{}",
        lc.log()
    );
    assert!(
        took >= 1.9,
        "killed at {took:.3}s, before deadline - margin\n{}",
        lc.log()
    );
    let log = lc.log();
    assert!(
        log.contains("sending SIGKILL before the orchestrator does"),
        "{log}"
    );
    assert!(
        log.contains("SIGTERM again: the stop is already under way"),
        "{log}"
    );
}

#[test]
fn a_shell_that_dies_on_term_does_not_take_its_slow_worker_with_it() {
    if !support::pid_namespaces() {
        return;
    }
    let dir = support::tempdir();
    let rec = dir.path().join("rec");
    // sh is the main child and dies on TERM; the worker needs 3 s to finish its job.
    let app = format!(
        "python3 {RECORDER} {} slow=3; echo unreachable",
        rec.display()
    );
    let mut lc = Lastcall::start_as_pid1(&["run", "--stop-timeout", "10s", "--", "sh", "-c", &app]);
    wait_ready(&rec, 1);
    let t0 = monotonic();
    lc.signal(Signal::SIGTERM);
    let status = lc.wait(Duration::from_secs(15));
    let took = monotonic() - t0;
    let recorded = lines(&rec);
    assert!(
        recorded.iter().any(|l| l.starts_with("finished")),
        "worker cut short: {recorded:?}\n{}",
        lc.log()
    );
    assert!(
        (3.0..9.0).contains(&took),
        "exited after {took:.3}s\n{}",
        lc.log()
    );
    // The status says what happened to the main child: sh was killed by SIGTERM.
    assert_eq!(status.code(), Some(143), "{}", lc.log());
    assert!(
        lc.log()
            .contains("the app was killed by SIGTERM; waiting for the rest of its processes"),
        "{}",
        lc.log()
    );
}

#[test]
fn leftovers_of_an_app_that_exits_on_its_own_are_stopped_after_the_orphan_grace() {
    let dir = support::tempdir();
    let rec = dir.path().join("rec");
    let app = format!(
        "python3 {RECORDER} {} ignore & sleep 0.5; exit 7",
        rec.display()
    );
    let mut lc = Lastcall::start(&["run", "--orphan-grace", "500ms", "--", "sh", "-c", &app]);
    let status = lc.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(7), "{}", lc.log());
    assert!(
        arrival(&rec, "SIGTERM").is_some(),
        "the leftover got no TERM: {:?}",
        lines(&rec)
    );
    assert!(
        lc.log()
            .contains("did not stop within --orphan-grace: SIGKILL"),
        "{}",
        lc.log()
    );
}

#[test]
fn on_a_terminal_the_third_ctrl_c_kills_at_once() {
    use std::io::Write;
    let dir = support::tempdir();
    let rec = dir.path().join("rec");
    // script(1) gives lastcall a pseudo-terminal as its controlling terminal, like
    // `docker run -it`; a 0x03 byte written to it is a Ctrl-C.
    let cmd = format!(
        "exec {} run -- python3 {RECORDER} {} ignore",
        support::BIN,
        rec.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&rec, 1);
    let mut tty = child.stdin.take().unwrap();
    let t0 = monotonic();
    for _ in 0..3 {
        tty.write_all(b"\x03").unwrap();
        tty.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(wait_until(Duration::from_secs(10), || child
        .try_wait()
        .unwrap()
        .is_some()));
    let took = monotonic() - t0;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(
        took < 5.0,
        "took {took:.3}s: the 30 s stop ran its course\n{out}"
    );
    assert!(
        out.contains("third Ctrl-C: killing everything now"),
        "{out}"
    );
    assert!(out.contains("exit 137"), "{out}");
}

/// Sidekiq's plan: TSTP ("quiet") at once, TERM later. The TSTP must arrive: a CONT sent
/// right after it (to wake processes it might have stopped) made the kernel discard it
/// while it was still pending, so the worker never went quiet.
#[test]
fn a_tstp_step_reaches_the_worker_before_its_term() {
    let (_dir, rec, mut lc) = start_recorder(&[
        "--stop-timeout",
        "3s",
        "--signal-plan",
        "TSTP@+0,TERM@-1500ms",
    ]);
    let t0 = monotonic();
    lc.signal(Signal::SIGTERM);
    assert_eq!(
        lc.wait(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        lc.log()
    );
    let tstp = arrival(&rec, "SIGTSTP").unwrap_or_else(|| panic!("no TSTP: {:?}", lines(&rec)));
    let term = arrival(&rec, "SIGTERM").unwrap_or_else(|| panic!("no TERM: {:?}", lines(&rec)));
    assert!(tstp - t0 < 0.5, "TSTP at +{:.3}s", tstp - t0);
    assert!(term > tstp + 1.0, "TERM at +{:.3}s", term - t0);
}

/// `docker kill -s TSTP` (a worker's quiet signal) reaches a lastcall that is not PID 1
/// and has no terminal: it is forwarded, and lastcall must not suspend itself as it does
/// for job control on a terminal, or the stop that follows would never run.
#[test]
fn without_a_terminal_tstp_is_forwarded_and_lastcall_keeps_running() {
    let (_dir, rec, mut lc) = start_recorder(&["--stop-timeout", "5s"]);
    lc.signal(Signal::SIGTSTP);
    assert!(
        wait_until(Duration::from_secs(5), || arrival(&rec, "SIGTSTP")
            .is_some()),
        "{:?}",
        lines(&rec)
    );
    lc.signal(Signal::SIGTERM);
    let status = lc.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", lc.log());
}
