#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What `lastcall check` reads: directory walks that meet symbolic links, link loops and
//! special files; paths named on the command line that are not regular files (pipes,
//! devices); files that start with a byte-order mark.

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, body).unwrap();
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .current_dir(dir)
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The output, or a failure instead of a hung test if check blocks (as it did on a FIFO).
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("lastcall check did not finish within 60s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn check(dir: &Path, args: &[&str]) -> Output {
    finish(spawn(dir, args))
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// (path, rule) of each JSON finding.
fn findings(out: &Output) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const SHELL_FORM: &str = "FROM alpine\nCMD app --port 80\n";

/// Symbolic links to directories are not followed (a loop would repeat the tree), a link
/// to a file is read once, under the file's own name, and a FIFO, a socket or a dangling
/// link with a deployment file's name is skipped.
#[test]
fn a_walk_reads_each_file_once_and_skips_link_loops_and_special_files() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "Dockerfile", SHELL_FORM);
    let root = tmp.path();
    write(root, "app/Dockerfile", SHELL_FORM);
    symlink(".", root.join("app/a")).unwrap();
    symlink(".", root.join("app/b")).unwrap();
    symlink("..", root.join("app/up")).unwrap();
    symlink(outside.path(), root.join("app/elsewhere")).unwrap();
    symlink("Dockerfile", root.join("app/Dockerfile.link")).unwrap();
    symlink("app/Dockerfile", root.join("Dockerfile")).unwrap();
    symlink("missing.yaml", root.join("app/dangling.yaml")).unwrap();
    nix::unistd::mkfifo(&root.join("app/x.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(root.join("app/s.yaml")).unwrap();
    let out = check(root, &["--format", "json", "."]);
    assert_eq!(
        (out.status.code(), text(&out.stderr), findings(&out)),
        (
            Some(1),
            String::new(),
            vec![("app/Dockerfile".to_string(), "LC101".to_string())]
        )
    );
}

/// A file reached only through a link (no walk meets its own name) is read under the link.
#[test]
fn a_link_to_a_file_outside_the_walk_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "Dockerfile.prod", SHELL_FORM);
    symlink(
        outside.path().join("Dockerfile.prod"),
        tmp.path().join("Dockerfile"),
    )
    .unwrap();
    let out = check(tmp.path(), &["--format", "json", "."]);
    assert_eq!(
        findings(&out),
        vec![("Dockerfile".to_string(), "LC101".to_string())]
    );
}

/// A path named on the command line is read even when it is not a regular file: a pipe
/// (`<(cat td.json)` is /dev/fd/63; /dev/stdin is such a pipe here) or a device.
#[test]
fn named_pipes_and_devices_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let fargate = "{\"family\": \"f\", \"requiresCompatibilities\": [\"FARGATE\"],\n \"containerDefinitions\": [{\"name\": \"a\", \"image\": \"b\", \"stopTimeout\": 180}]}\n";
    let mut child = spawn(tmp.path(), &["--kind", "ecs", "/dev/stdin"]);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(fargate.as_bytes())
        .unwrap();
    let out = finish(child);
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(1), String::new())
    );
    assert!(
        text(&out.stdout).starts_with(
            "/dev/stdin:2:70: error[LC202]: stopTimeout 180 is above Fargate's maximum of 120s\n"
        ),
        "{}",
        text(&out.stdout)
    );
    let fifo = tmp.path().join("td.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let child = spawn(tmp.path(), &["--format", "json", "td.json"]);
    std::fs::write(&fifo, fargate).unwrap();
    let out = finish(child);
    assert_eq!(
        findings(&out),
        vec![("td.json".to_string(), "LC202".to_string())]
    );
    let out = check(tmp.path(), &["/dev/null"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), String::new(), String::new())
    );
}

/// (path, line, column, rule) of each JSON finding.
fn placed(out: &Output) -> Vec<(String, u64, u64, String)> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["column"].as_u64().unwrap(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A leading byte-order mark (Windows editors write one) is ignored for every kind, in a
/// directory scan and when the file is named; columns count from the first visible
/// character.
#[test]
fn a_byte_order_mark_is_ignored_in_every_kind() {
    let table: &[(&str, &str, (u64, u64, &str))] = &[
        (
            "Dockerfile",
            "FROM alpine\nCMD app --port 80\n",
            (2, 1, "LC101"),
        ),
        (
            "deploy.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  terminationGracePeriodSeconds: 10\n  containers:\n  - name: a\n    image: a\n    lifecycle:\n      preStop:\n        sleep: {seconds: 10}\n",
            (11, 26, "LC206"),
        ),
        (
            "td.json",
            "{\"family\": \"f\", \"requiresCompatibilities\": [\"FARGATE\"], \"containerDefinitions\": [{\"name\": \"a\", \"image\": \"b\", \"stopTimeout\": 180}]}\n",
            (1, 125, "LC202"),
        ),
        (
            "template.yaml",
            "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Task:\n    Type: AWS::ECS::TaskDefinition\n    Properties:\n      RequiresCompatibilities: [FARGATE]\n      ContainerDefinitions:\n      - Name: a\n        Image: b\n        StopTimeout: 180\n",
            (10, 22, "LC202"),
        ),
        (
            "compose.yaml",
            "services:\n  web:\n    image: ruby:3.3\n    command: sh -c \"./setup && ./server\"\n",
            (4, 14, "LC102"),
        ),
    ];
    for (name, body, (line, col, rule)) in table {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), name, &format!("\u{feff}{body}"));
        let want = vec![(name.to_string(), *line, *col, rule.to_string())];
        for args in [&["--format", "json", "."], &["--format", "json", *name]] {
            let out = check(tmp.path(), args);
            assert_eq!(
                (text(&out.stderr), placed(&out)),
                (String::new(), want.clone()),
                "{name} {args:?}"
            );
        }
    }
}

#[test]
fn a_config_file_may_start_with_a_byte_order_mark() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "Dockerfile", SHELL_FORM);
    write(
        tmp.path(),
        ".lastcall-check.yaml",
        "\u{feff}ignore: [LC101]\n",
    );
    let out = check(tmp.path(), &["."]);
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), String::new(), String::new())
    );
}
