#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `lastcall check` reports LC208 exactly when `lastcall run` would refuse to start: the
//! same command lines and environment go through both, the real binary included.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn check(dir: &Path, dockerfile: &str) -> Output {
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lastcall"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LASTCALL_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .args(["check", "--format", "json", "Dockerfile"])
        .output()
        .unwrap()
}

/// (line:column, message) of each LC208 finding.
fn lc208(out: &Output) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "LC208")
        .map(|f| {
            (
                format!("{}:{}", f["line"], f["column"]),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The real binary with the same argv and only the given `LASTCALL_*` variables.
fn real_exit_code(argv: &[&str], env: Option<(&str, &str)>) -> i32 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lastcall"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LASTCALL_") {
            cmd.env_remove(k);
        }
    }
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .code()
        .unwrap()
}

const UNKNOWN: &str =
    "for lastcall run (options go before COMMAND; write -- before a COMMAND that starts with -)";

/// (ENTRYPOINT, ENV, LC208 as line:column and message; `None`: starts). An app that
/// starts is `true`, so the real binary exits 0 then.
type Case = (
    &'static [&'static str],
    Option<(&'static str, &'static str)>,
    Option<(&'static str, &'static str)>,
);

const CASES: &[Case] = &[
    (&["/lastcall", "run", "--", "true"], None, None),
    (
        &["/lastcall", "run", "--stop-timeout", "5s", "--", "true"],
        None,
        None,
    ),
    (&["/lastcall", "run", "true"], None, None),
    (&["/lastcall", "run", "-q", "--", "true"], None, None),
    // A COMMAND starting with `-` after an explicit `--` is the app's own name.
    (&["/lastcall", "run", "--", "-true"], None, None),
    (
        &["/lastcall", "run", "--stop-timout", "5s", "true"],
        None,
        Some(("3:31", "unknown option '--stop-timout' ")),
    ),
    (
        &["/lastcall", "run", "--bogus", "--", "true"],
        None,
        Some(("3:31", "unknown option '--bogus' ")),
    ),
    (
        &["/lastcall", "--", "app"],
        None,
        Some((
            "3:30",
            "lastcall would refuse to start: unrecognized subcommand 'app'",
        )),
    ),
    (
        &["/lastcall", "app"],
        None,
        Some((
            "3:25",
            "lastcall would refuse to start: unrecognized subcommand 'app'",
        )),
    ),
    (
        &["/lastcall", "runn", "true"],
        None,
        Some((
            "3:25",
            "lastcall would refuse to start: unrecognized subcommand 'runn'; tip: a similar subcommand exists: 'run'",
        )),
    ),
    (
        &["/lastcall"],
        None,
        Some((
            "3:13",
            "lastcall would refuse to start: no subcommand; write `lastcall run [OPTIONS] -- COMMAND`",
        )),
    ),
    (
        &["/lastcall", "run"],
        None,
        Some((
            "3:13",
            "lastcall run would refuse to start: the following required arguments were not provided: <COMMAND>...",
        )),
    ),
    (
        &["/lastcall", "run", "--", "true"],
        Some(("LASTCALL_QUIET", "true")),
        None,
    ),
    (
        &["/lastcall", "run", "--", "true"],
        Some(("LASTCALL_QUIET", "false")),
        None,
    ),
    (
        &["/lastcall", "run", "--", "true"],
        Some(("LASTCALL_QUIET", "maybe")),
        Some((
            "2:5",
            "lastcall run would refuse to start: invalid value 'maybe' for '--quiet' in LASTCALL_QUIET (use true or false, yes or no, on or off, 1 or 0)",
        )),
    ),
    // A path flag the proxy would reject is a usage error, found by check too.
    (
        &[
            "/lastcall",
            "run",
            "--listen",
            ":8080",
            "--upstream",
            "3000",
            "--upstream-health-path",
            "health",
            "--",
            "true",
        ],
        None,
        Some((
            "3:95",
            "lastcall run would refuse to start: invalid value 'health' for '--upstream-health-path <PATH>': `health` is not a path (write it like /health)",
        )),
    ),
    // -q on the command line wins over the variable, which is then not read.
    (
        &["/lastcall", "run", "-q", "--", "true"],
        Some(("LASTCALL_QUIET", "maybe")),
        None,
    ),
];

#[test]
fn check_refuses_what_run_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    for (argv, env, want) in CASES {
        let env_line = env.map_or(String::new(), |(k, v)| format!("ENV {k}={v}"));
        let dockerfile = format!(
            "FROM alpine\n{env_line}\nENTRYPOINT {}\n",
            serde_json::to_string(argv).unwrap()
        );
        let got = lc208(&check(tmp.path(), &dockerfile));
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(at, msg)| {
                let msg = if msg.starts_with("unknown option") {
                    format!("lastcall run would refuse to start: {msg}{UNKNOWN}")
                } else {
                    msg.to_string()
                };
                (at.to_string(), msg)
            })
            .collect();
        assert_eq!(got, want, "{argv:?} {env:?}");
        let real = real_exit_code(argv, *env);
        assert_eq!(
            real == 2,
            !want.is_empty(),
            "{argv:?} {env:?}: lastcall exits {real}"
        );
    }
}

/// The switch values `lastcall run` accepts in the environment (clap's
/// BoolishValueParser): case-insensitive y/yes/t/true/on/1 and n/no/f/false/off/0.
#[test]
fn boolean_variables_take_exactly_the_values_run_takes() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = [
        "y", "yes", "t", "true", "on", "1", "n", "no", "f", "false", "off", "0", "YES", "True",
        "Off",
    ];
    let refused = ["maybe", "2", "enabled", "", "yes please", "-1"];
    for (value, refused) in ok
        .iter()
        .map(|v| (v, false))
        .chain(refused.iter().map(|v| (v, true)))
    {
        let dockerfile = format!(
            "FROM alpine\nENV LASTCALL_QUIET=\"{value}\"\nENTRYPOINT [\"/lastcall\", \"run\", \"--\", \"app\"]\n"
        );
        let want = if refused {
            vec![(
                "2:5".to_string(),
                format!(
                    "lastcall run would refuse to start: invalid value '{value}' for '--quiet' in LASTCALL_QUIET (use true or false, yes or no, on or off, 1 or 0)"
                ),
            )]
        } else {
            vec![]
        };
        assert_eq!(lc208(&check(tmp.path(), &dockerfile)), want, "{value:?}");
        // And the real binary agrees.
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_lastcall"))
            .args(["run", "--", "true"])
            .env("LASTCALL_QUIET", value)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            status.code(),
            Some(if refused { 2 } else { 0 }),
            "{value:?}"
        );
    }
}

/// clap reads `env = "LASTCALL_…"` from the process environment; check must read only the
/// container's, not the one it runs in.
#[test]
fn the_environment_check_runs_in_does_not_count() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("Dockerfile"),
        "FROM alpine\nENTRYPOINT [\"/lastcall\", \"run\", \"--\", \"app\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .current_dir(tmp.path())
        .env("LASTCALL_STOP_TIMEOUT", "bogus")
        .env("LASTCALL_QUIET", "maybe")
        .env("LASTCALL_SIGNAL_PLAN", "FOO@+0")
        .args(["check", "--format", "json", "Dockerfile"])
        .output()
        .unwrap();
    assert_eq!(lc208(&out), vec![]);
}
