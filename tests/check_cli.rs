#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! `lastcall check` as users drive it: exit codes, formats, ignores, config, bad input,
//! and the project's own examples.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn lastcall(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .current_dir(dir)
        .arg("check")
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, body).unwrap();
    p
}

const NODE_NO_INIT: &str =
    "FROM node:20-alpine\nWORKDIR /app\nCOPY . .\nCMD [\"node\", \"server.js\"]\n";

#[test]
fn the_projects_examples_are_clean() {
    let out = lastcall(Path::new(ROOT), &["examples/"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), String::new(), String::new())
    );
}

/// The examples' task definition has no command: it runs the Dockerfile's ENTRYPOINT
/// (lastcall), configured by the task's environment. A stopTimeout shorter than
/// LASTCALL_STOP_TIMEOUT shows the files are read together.
#[test]
fn task_definition_and_dockerfile_are_read_together() {
    let tmp = tempfile::tempdir().unwrap();
    let ex = Path::new(ROOT).join("examples");
    write(
        tmp.path(),
        "Dockerfile",
        &std::fs::read_to_string(ex.join("Dockerfile")).unwrap(),
    );
    let task = std::fs::read_to_string(ex.join("ecs/task-definition.json"))
        .unwrap()
        .replace("\"stopTimeout\": 60", "\"stopTimeout\": 20");
    write(tmp.path(), "ecs/task-definition.json", &task);
    let out = lastcall(tmp.path(), &["."]);
    let line = task
        .lines()
        .position(|l| l.contains("\"value\": \"60s\""))
        .unwrap()
        + 1;
    let col = task.lines().nth(line - 1).unwrap().find("\"60s\"").unwrap() + 1;
    let want = format!(
        "ecs/task-definition.json:{line}:{col}: error[LC209]: lastcall plans a 1m stop, but stopTimeout 20s SIGKILLs after 20s; set --stop-timeout 20s"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l == want), "{stdout}");
    // The app's window is the platform's 20 s, not lastcall's 60 s.
    assert!(
        stdout.contains("SIGKILLs at 20s, which leaves it 5s"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn human_output_shows_place_rule_source_line_and_fix_without_colour_on_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "Dockerfile", NODE_NO_INIT);
    let out = lastcall(tmp.path(), &["Dockerfile"]);
    let want = "\
Dockerfile:4:1: warning[LC105]: `node` runs as PID 1 without an init: unless the code handles SIGTERM itself it ignores the stop signal, and nothing reaps orphans
  |
4 | CMD [\"node\", \"server.js\"]
  | ^
  = fix: Put an init in front: ENTRYPOINT [\"lastcall\", \"run\", \"--\"] (or tini, dumb-init); on ECS set linuxParameters.initProcessEnabled, in compose `init: true`.
  = see: lastcall check --explain LC105

0 errors, 1 warning, 0 notes
";
    assert_eq!(text(&out.stdout), want);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn fail_on_decides_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "Dockerfile", NODE_NO_INIT);
    let table: &[(&[&str], i32)] = &[
        (&["."], 1),
        (&["--fail-on", "warning", "."], 1),
        (&["--fail-on", "error", "."], 0),
        (&["--fail-on", "info", "."], 1),
    ];
    for (args, code) in table {
        assert_eq!(
            lastcall(tmp.path(), args).status.code(),
            Some(*code),
            "{args:?}"
        );
    }
}

#[test]
fn inline_ignores_silence_one_rule_on_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "FROM node:20-alpine\n# lastcall ignore=LC105 server.js traps SIGTERM and reaps nothing\nCMD [\"node\", \"server.js\"]\n";
    write(tmp.path(), "Dockerfile", body);
    assert_eq!(lastcall(tmp.path(), &["."]).status.code(), Some(0));
    // Another rule's ID does not silence it.
    write(tmp.path(), "Dockerfile", &body.replace("LC105", "LC101"));
    assert_eq!(lastcall(tmp.path(), &["."]).status.code(), Some(1));
}

#[test]
fn the_config_file_ignores_rules_changes_severities_and_excludes_paths() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "app/Dockerfile", NODE_NO_INIT);
    write(tmp.path(), "legacy/Dockerfile", "FROM x\nCMD a && b\n");
    let table: &[(&str, &[&str], i32, usize)] = &[
        ("", &[], 1, 2),
        ("ignore: [LC105]\n", &[], 1, 1),
        ("ignore: [LC105]\nexclude: [legacy/]\n", &[], 0, 0),
        ("severity: {LC105: info}\nexclude: [legacy]\n", &[], 0, 1),
        (
            "severity: {LC105: info}\nexclude: [legacy]\n",
            &["--fail-on", "info"],
            1,
            1,
        ),
        ("fail-on: error\nexclude: [legacy]\n", &[], 0, 1),
    ];
    for (config, args, code, findings) in table {
        write(tmp.path(), ".lastcall-check.yaml", config);
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        all.push(".");
        let out = lastcall(tmp.path(), &all);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (
                out.status.code(),
                json["findings"].as_array().unwrap().len()
            ),
            (Some(*code), *findings),
            "{config}"
        );
    }
}

/// Excludes are relative to the current directory, also when the path is given absolute.
#[test]
fn excludes_apply_to_absolute_paths_too() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "legacy/Dockerfile", "FROM x\nCMD a && b\n");
    write(tmp.path(), ".lastcall-check.yaml", "exclude: [legacy/]\n");
    let abs = tmp.path().canonicalize().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .current_dir(&abs)
        .arg("check")
        .arg(&abs)
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), String::new())
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "bad.yaml", "fail-on: fatal\n");
    write(tmp.path(), "not-deploy.json", "{\"a\": 1}\n");
    let table: &[(&[&str], &str)] = &[
        (
            &["--explain", "LC999"],
            "lastcall: unknown rule `LC999` for --explain (see lastcall check --list-rules)\n",
        ),
        (
            &["-"],
            "lastcall: reading stdin (-) needs --kind (dockerfile, compose, ecs, cloudformation or k8s)\n",
        ),
        (
            &["--config", "bad.yaml"],
            "lastcall: bad.yaml:1:10: unknown severity `fatal` (use info, warning or error)\n",
        ),
        (
            &["--config", "missing.yaml"],
            "lastcall: missing.yaml: cannot read the config file: No such file or directory (os error 2)\n",
        ),
        (&["nope"], "lastcall: nope: no such file or directory\n"),
        (
            &["not-deploy.json"],
            "lastcall: not-deploy.json: not a task definition, CloudFormation template, Kubernetes manifest or compose file; pass --kind if it is one\n",
        ),
    ];
    for (args, stderr) in table {
        let out = lastcall(tmp.path(), args);
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(2), stderr.to_string()),
            "{args:?}"
        );
    }
}

#[test]
fn a_malformed_file_is_one_error_and_the_others_are_still_checked() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "Dockerfile", NODE_NO_INIT);
    write(
        tmp.path(),
        "ecs/broken.json",
        "{\n  \"family\": \"x\",\n  \"containerDefinitions\": [\n    {\"name\": \"a\",, \"image\": \"b\"}\n  ]\n}\n",
    );
    write(
        tmp.path(),
        "k8s/broken.yaml",
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: [unclosed\n",
    );
    write(tmp.path(), "k8s/notes.yaml", "just: [a, b]\n");
    write(
        tmp.path(),
        "chart/templates/deploy.yaml",
        "spec:\n  {{- if .Values.x }}\n  replicas: 1\n",
    );
    write(tmp.path(), "bin.json", "\u{0}\u{1}\u{2}");
    std::fs::write(
        tmp.path().join("latin1.yaml"),
        b"kind: Pod\nname: caf\xe9\n",
    )
    .unwrap();
    let out = lastcall(tmp.path(), &["."]);
    assert_eq!(
        text(&out.stderr),
        "\
lastcall: ecs/broken.json:4:18: cannot parse JSON: while parsing a node, did not find expected node content
lastcall: k8s/broken.yaml:7:1: cannot parse YAML: while parsing a flow sequence, expected ',' or ']'
lastcall: latin1.yaml: not UTF-8 text (invalid byte at offset 19)
"
    );
    assert!(
        text(&out.stdout).starts_with("Dockerfile:4:1: warning[LC105]"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(2));
    let json = lastcall(tmp.path(), &["--format", "json", "."]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["errors"][0],
        serde_json::json!({"path": "ecs/broken.json", "line": 4, "column": 18, "message": "cannot parse JSON: while parsing a node, did not find expected node content"})
    );
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
}

#[test]
fn stdin_is_read_with_kind() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .args(["check", "--kind", "dockerfile", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM ruby:3.3\nCMD bundle exec rails db:migrate && bundle exec puma\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["findings"][0]["path"].as_str(),
            v["findings"][0]["rule"].as_str(),
            v["findings"][0]["line"].as_u64()
        ),
        (Some("<stdin>"), Some("LC102"), Some(2))
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn explain_and_list_rules() {
    let out = lastcall(Path::new(ROOT), &["--explain", "lc203"]);
    let s = text(&out.stdout);
    assert!(s.starts_with("LC203 (error): Fargate Spot: deregistration delay + stopTimeout exceed the 2-minute notice\n\nWhy: "), "{s}");
    assert!(
        s.contains("\n\nFix: Set deregistration_delay.timeout_seconds"),
        "{s}"
    );
    assert_eq!(out.status.code(), Some(0));
    let list = text(&lastcall(Path::new(ROOT), &["--list-rules"]).stdout);
    assert!(
        list.lines()
            .any(|l| l == "LC101  warning  shell-form command: a shell is PID 1"),
        "{list}"
    );
}

/// docs/check.md lists every rule with the same title, why and fix `--explain` prints.
#[test]
fn the_docs_list_every_rule_as_explain_does() {
    let docs = std::fs::read_to_string(Path::new(ROOT).join("docs/check.md")).unwrap();
    let list = text(&lastcall(Path::new(ROOT), &["--list-rules"]).stdout);
    for id in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let explain = text(&lastcall(Path::new(ROOT), &["--explain", id]).stdout);
        let (head, rest) = explain.split_once("\n\nWhy: ").unwrap();
        let (why, fix) = rest.split_once("\n\nFix: ").unwrap();
        let title = head.split_once("): ").unwrap().1;
        assert!(
            docs.contains(&format!("### {id}\n\n**{title}**")),
            "{id}: title"
        );
        assert!(docs.contains(why.trim()), "{id}: why");
        assert!(docs.contains(fix.trim()), "{id}: fix");
    }
}

/// Colour on a terminal (util-linux `script` gives the command a pty), none with NO_COLOR.
#[test]
fn colour_only_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "Dockerfile", NODE_NO_INIT);
    let cmd = format!(
        "{} check {}",
        env!("CARGO_BIN_EXE_lastcall"),
        file.display()
    );
    let run = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        text(&c.output().unwrap().stdout)
    };
    let tty = run(false);
    assert!(
        tty.contains("\x1b[1;33mwarning\x1b[0m[\x1b[1mLC105\x1b[0m]"),
        "{tty:?}"
    );
    let plain = run(true);
    assert!(
        plain.contains("warning[LC105]") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}
