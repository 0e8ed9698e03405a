//! lastcall exits with the app's status, as an orchestrator reads it: the code, or 128+N
//! for a death by signal N; 127/126 when the app cannot be started; 2 for usage mistakes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::process::Command;

use support::BIN;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().expect("exited, not signalled"), stderr)
}

#[test]
fn every_exit_status_passes_through() {
    for code in 0..=255 {
        let script = format!("exit {code}");
        let (got, log) = run(&["run", "-q", "--", "sh", "-c", &script]);
        assert_eq!(got, code, "{log}");
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    for (sig, code) in [
        ("KILL", 137),
        ("TERM", 143),
        ("SEGV", 139),
        ("ABRT", 134),
        ("HUP", 129),
    ] {
        let script = format!("kill -{sig} $$");
        let (got, log) = run(&["run", "-q", "--", "sh", "-c", &script]);
        assert_eq!(got, code, "{sig}: {log}");
    }
}

#[test]
fn cannot_start_the_app() {
    let dir = support::tempdir();
    let not_exec = dir.path().join("app.sh");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    let not_exec = not_exec.to_str().unwrap();
    let table: &[(&[&str], i32, String)] = &[
        (
            &["run", "--", "/no/such/app"],
            127,
            "lastcall: /no/such/app: command not found (check the name and PATH)\n".into(),
        ),
        (
            &["run", "--", "no-such-app-on-path"],
            127,
            "lastcall: no-such-app-on-path: command not found (check the name and PATH)\n".into(),
        ),
        (
            &["run", "--", not_exec],
            126,
            format!("lastcall: {not_exec}: permission denied (is it executable? chmod +x)\n"),
        ),
        (
            &["run", "--", "/tmp"],
            126,
            "lastcall: /tmp: is a directory, not a program (name the program inside it)\n".into(),
        ),
    ];
    for (args, code, msg) in table {
        let (got, stderr) = run(args);
        assert_eq!(got, *code, "{args:?}");
        assert_eq!(stderr, *msg, "{args:?}");
    }
}

#[test]
fn usage_mistakes_are_one_line_and_exit_2() {
    let table: &[(&[&str], &str)] = &[
        (
            &["run", "--stop-timeout", "30x", "--", "true"],
            "lastcall: invalid value '30x' for '--stop-timeout <DURATION>': invalid duration `30x`: unknown unit (use ms, s, m or h) (write e.g. 500ms, 30s, 2m or 1m30s) (see lastcall --help)",
        ),
        (
            &["run"],
            "lastcall: the following required arguments were not provided: <COMMAND>... (see lastcall --help)",
        ),
        (
            &["run", "--stop-timout", "5s", "sleep", "1"],
            "lastcall: unknown option '--stop-timout' for lastcall run (options go before COMMAND; write -- before a COMMAND that starts with -)",
        ),
        (
            &["run", "--bogus", "--", "true"],
            "lastcall: unknown option '--bogus' for lastcall run (options go before COMMAND; write -- before a COMMAND that starts with -)",
        ),
        (
            &["run", "--signal-plan", "TERM@12s", "--", "true"],
            "lastcall: invalid value 'TERM@12s' for '--signal-plan <PLAN>': invalid signal plan step `TERM@12s`: the offset needs a sign: +D after stopping begins, -D before the deadline (write e.g. TERM@+0 or TSTP@+0,TERM@-12s) (see lastcall --help)",
        ),
        (
            &[
                "run",
                "--stop-timeout",
                "10s",
                "--signal-plan",
                "TSTP@+0,TERM@-12s",
                "--",
                "true",
            ],
            "lastcall: signal plan step TERM@-12s is 12s before the deadline, but --stop-timeout is only 10s; raise --stop-timeout or shorten the offset",
        ),
        (
            &["run", "--health-listen", "nowhere", "--", "true"],
            "lastcall: invalid value 'nowhere' for '--health-listen <ADDR>': invalid address `nowhere` (write e.g. 0.0.0.0:8080, :8080, 8080 or 127.0.0.1:3000) (see lastcall --help)",
        ),
        (
            &[
                "run",
                "--listen",
                "8080",
                "--upstream",
                "8080",
                "--",
                "true",
            ],
            "lastcall: --upstream 127.0.0.1:8080 is lastcall's own --listen 0.0.0.0:8080: requests would loop back into lastcall (point --upstream at the port the app listens on)",
        ),
        (
            &["run", "--upstream", "3000", "--", "true"],
            "lastcall: the following required arguments were not provided: --listen <ADDR> (see lastcall --help)",
        ),
        (
            &[
                "run",
                "--health-upstream",
                "http://127.0.0.1:3000/health",
                "--",
                "true",
            ],
            "lastcall: --health-upstream needs --health-listen ADDR or --listen ADDR (where the load balancer probes)",
        ),
        (
            &[
                "run",
                "--health-listen",
                "8081",
                "--health-upstream",
                "https://127.0.0.1:3000/health",
                "--",
                "true",
            ],
            "lastcall: invalid value 'https://127.0.0.1:3000/health' for '--health-upstream <URL>': `https://127.0.0.1:3000/health` is not an http:// URL (write e.g. http://127.0.0.1:3000/health) (see lastcall --help)",
        ),
        (
            &["run", "--health-path", "healthz", "--", "true"],
            "lastcall: invalid value 'healthz' for '--health-path <PATH>': `healthz` is not a path (write it like /health) (see lastcall --help)",
        ),
        (
            &["run", "--upstream-timeout", "0s", "--", "true"],
            "lastcall: invalid value '0s' for '--upstream-timeout <DURATION>': invalid duration `0s`: it must be more than 0 (write e.g. 500ms, 30s, 2m or 1m30s) (see lastcall --help)",
        ),
        (
            &["run", "--kill-margin", "0", "--", "true"],
            "lastcall: invalid value '0' for '--kill-margin <DURATION>': invalid duration `0`: it must be more than 0 (write e.g. 500ms, 30s, 2m or 1m30s) (see lastcall --help)",
        ),
        (
            &["run", "--stop-signals", "QUIT,KILL", "--", "true"],
            "lastcall: invalid value 'KILL' for '--stop-signals <SIGNALS>': KILL cannot begin a stop: no process can catch it (TERM and INT already do; add e.g. QUIT or USR2) (see lastcall --help)",
        ),
        (
            &["run", "--stop-signals", "CHLD", "--", "true"],
            "lastcall: invalid value 'CHLD' for '--stop-signals <SIGNALS>': CHLD cannot begin a stop: every exiting child sends it (add e.g. QUIT or USR2) (see lastcall --help)",
        ),
        (
            &["run", "--signal-plan", "TERM@µs", "--", "true"],
            "lastcall: invalid value 'TERM@µs' for '--signal-plan <PLAN>': invalid signal plan step `TERM@µs`: the offset needs a sign: +D after stopping begins, -D before the deadline (write e.g. TERM@+0 or TSTP@+0,TERM@-12s) (see lastcall --help)",
        ),
        (
            &["run", "--signal-mode", "pgrp", "--", "true"],
            "lastcall: invalid value 'pgrp' for '--signal-mode <MODE>' [possible values: group, child]; tip: a similar value exists: 'group' (see lastcall --help)",
        ),
    ];
    for (args, msg) in table {
        let (got, stderr) = run(args);
        assert_eq!(got, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end(), *msg, "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}");
    }
}

#[test]
fn settings_come_from_the_environment_too() {
    // (variable, value, what lastcall says); the message names the variable, because in a
    // task definition the value is in `environment`, not in the command.
    let table = [
        (
            "LASTCALL_STOP_TIMEOUT",
            "ten seconds",
            "lastcall: invalid value 'ten seconds' for '--stop-timeout <DURATION>' (set by LASTCALL_STOP_TIMEOUT): invalid duration `ten seconds`: expected a number (write e.g. 500ms, 30s, 2m or 1m30s) (see lastcall --help)",
        ),
        (
            "LASTCALL_QUIET",
            "maybe",
            "lastcall: invalid value 'maybe' for '--quiet' (set by LASTCALL_QUIET): value was not a boolean (see lastcall --help)",
        ),
        // Booleans read as people write them in env vars.
        ("LASTCALL_QUIET", "1", ""),
        ("LASTCALL_QUIET", "yes", ""),
    ];
    for (var, value, said) in table {
        let out = Command::new(BIN)
            .args(["run", "--", "true"])
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end(), said, "{var}={value}");
        assert_eq!(out.status.code(), Some(if said.is_empty() { 0 } else { 2 }));
    }
}
