#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! Every rule against fixtures modelled on what projects ship: each positive case must
//! report exactly the listed findings (place, rule, message), each negative case nothing.

use std::path::Path;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/check/rules");

/// (case directory, [(file:line:col, rule, message)]); an empty list is a negative case.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str, &'static str)],
);

const CASES: &[Case] = &[
    (
        "lc101-pos",
        &[(
            "Dockerfile:14:1",
            "LC101",
            "shell-form CMD: a shell starts `gunicorn --bind 0.0.0.0:8000 --workers 3 myproject.wsgi:app…`; write it in exec form so the app itself gets SIGTERM",
        )],
    ),
    ("lc101-neg", &[]),
    (
        "lc102-pos",
        &[(
            "Dockerfile:7:1",
            "LC102",
            "shell-form CMD with `&&`: the shell is PID 1 and does not pass SIGTERM on, so the app never gets it and is SIGKILLed at the deadline",
        )],
    ),
    (
        "lc102-pos-k8s",
        &[(
            "deployment.yaml:20:38",
            "LC102",
            "command runs `sh -c` with `&&`: the shell is PID 1 and does not pass SIGTERM on, so the app never gets it and is SIGKILLed at the deadline",
        )],
    ),
    ("lc102-neg", &[]),
    (
        "lc103-pos",
        &[(
            "docker-entrypoint.sh:14:1",
            "LC103",
            "docker-entrypoint.sh ends with `\"$@\"` without exec: the shell is PID 1 and does not pass SIGTERM on, and the app is SIGKILLed at the deadline",
        )],
    ),
    ("lc103-neg", &[]),
    (
        "lc104-pos",
        &[(
            "Dockerfile:7:1",
            "LC104",
            "`npm start` is PID 1 (or the init's only child): it may not pass SIGTERM to node or wait for it; run `node` directly",
        )],
    ),
    ("lc104-neg", &[]),
    (
        "lc105-pos",
        &[(
            "Dockerfile:5:1",
            "LC105",
            "`node` runs as PID 1 without an init: unless the code handles SIGTERM itself it ignores the stop signal, and nothing reaps orphans",
        )],
    ),
    (
        "lc105-pos-k8s",
        &[(
            "deployment.yaml:15:11",
            "LC105",
            "`node` runs as PID 1 without an init: unless the code handles SIGTERM itself it ignores the stop signal, and nothing reaps orphans",
        )],
    ),
    ("lc105-neg", &[]),
    ("lc105-neg-k8s", &[]),
    (
        "lc106-pos",
        &[(
            "Dockerfile:5:1",
            "LC106",
            "nginx runs without a stop signal, so it gets SIGTERM (its fast stop, which drops open connections); set STOPSIGNAL SIGQUIT",
        )],
    ),
    (
        "lc106-pos-compose",
        &[(
            "compose.yaml:9:18",
            "LC106",
            "nginx is stopped with SIGTERM, its fast stop that drops open connections; use SIGQUIT",
        )],
    ),
    (
        "lc106-pos-k8s",
        &[(
            "deployment.yaml:15:11",
            "LC106",
            "nginx runs without a stop signal, so it gets SIGTERM (its fast stop, which drops open connections); set STOPSIGNAL SIGQUIT",
        )],
    ),
    ("lc106-neg", &[]),
    ("lc106-neg-k8s", &[]),
    (
        "lc107-pos",
        &[(
            "Dockerfile:3:12",
            "LC107",
            "STOPSIGNAL SIGFOO is not a signal; use a signal name such as SIGTERM or SIGQUIT, or a number from 1 to 64",
        )],
    ),
    (
        "lc107-pos-number",
        &[(
            "Dockerfile:3:12",
            "LC107",
            "STOPSIGNAL 999 is not a signal; use a signal name such as SIGTERM or SIGQUIT, or a number from 1 to 64",
        )],
    ),
    (
        "lc107-pos-compose",
        &[(
            "compose.yaml:7:18",
            "LC107",
            "stop_signal SIGQIUT is not a signal; use a signal name such as SIGTERM or SIGQUIT, or a number from 1 to 64",
        )],
    ),
    (
        "lc107-pos-k8s",
        &[(
            "deployment.yaml:17:25",
            "LC107",
            "stopSignal SIGTERMINATE is not a signal; use a signal name such as SIGTERM or SIGQUIT, or a number from 1 to 64",
        )],
    ),
    ("lc107-neg", &[]),
    ("lc107-neg-k8s", &[]),
    (
        "lc201-pos-ecs",
        &[(
            "task-definition.json:12:7",
            "LC201",
            "sidekiq may take 25s to stop (the default -t) + 5s to push unfinished jobs back, but stopTimeout 30s (the default), which leaves it 30s; it wants 35s (5s to spare)",
        )],
    ),
    (
        "lc201-pos-k8s",
        &[(
            "deployment.yaml:24:93",
            "LC201",
            "gunicorn may take 30s to stop (--graceful-timeout), but terminationGracePeriodSeconds 30s, which leaves it 30s; it wants 35s (5s to spare)",
        )],
    ),
    (
        "lc201-pos-compose",
        &[(
            "docker-compose.yml:5:5",
            "LC201",
            "gunicorn may take 30s to stop (the default --graceful-timeout), but stop_grace_period 10s (the default), which leaves it 10s; it wants 35s (5s to spare)",
        )],
    ),
    (
        "lc201-pos-celery",
        &[(
            "compose.yaml:4:5",
            "LC201",
            "celery waits for running work without a limit, but stop_grace_period 1m, which leaves it 1m; set --time-limit below 55s",
        )],
    ),
    (
        "lc201-pos-lastcall",
        &[(
            "task-definition.json:9:54",
            "LC201",
            "sidekiq may take 8s to stop (-t) + 5s to push unfinished jobs back, but lastcall sends TERM@-12s at 18s at the latest (unready 0s + closing 0s) and SIGKILLs at 29s, which leaves it 11s; it wants 14s (1s to spare)",
        )],
    ),
    (
        "lc201-pos-puma",
        &[(
            "config/puma.rb:13:25",
            "LC201",
            "puma may take 1m to stop (worker_shutdown_timeout), but stopTimeout 45s, which leaves it 45s; it wants 65s (5s to spare)",
        )],
    ),
    (
        "lc201-pos-spring",
        &[(
            "src/main/resources/application.yml:8:33",
            "LC201",
            "Spring Boot may take 45s to stop (spring.lifecycle.timeout-per-shutdown-phase), but terminationGracePeriodSeconds 30s (the default), which leaves it 30s; it wants 50s (5s to spare)",
        )],
    ),
    ("lc201-neg", &[]),
    ("lc201-neg-sidekiq", &[]),
    (
        "lc202-pos",
        &[(
            "task-definition.json:12:22",
            "LC202",
            "stopTimeout 180 is above Fargate's maximum of 120s",
        )],
    ),
    ("lc202-neg", &[]),
    (
        "lc203-pos",
        &[(
            "template.yaml:26:3",
            "LC203",
            "service Service runs on FARGATE_SPOT, but deregistration delay 300s (the default) + stopTimeout 30s = 330s exceed the 2-minute interruption notice",
        )],
    ),
    ("lc203-neg", &[]),
    (
        "lc204-pos",
        &[(
            "template.yaml:11:3",
            "LC204",
            "deregistration delay 300s (the default) for service Service, whose tasks stop within 30s: deploys and scale-ins wait up to 5 minutes per task; set deregistration_delay.timeout_seconds",
        )],
    ),
    ("lc204-neg", &[]),
    (
        "lc205-pos",
        &[(
            "template.yaml:21:35",
            "LC205",
            "the target group notices an unhealthy target after 30s × 3 = 90s, longer than lastcall's unready phase of 20s: new requests still arrive after the app stopped taking them",
        )],
    ),
    (
        "lc205-pos-image",
        &[(
            "template.yaml:13:3",
            "LC205",
            "the target group notices an unhealthy target after 30s × 2 = 1m, longer than lastcall's unready phase of 15s: new requests still arrive after the app stopped taking them",
        )],
    ),
    ("lc205-neg", &[]),
    (
        "lc206-pos",
        &[(
            "deployment.yaml:20:44",
            "LC206",
            "preStop sleeps 30s but terminationGracePeriodSeconds 30s (the default) ends then: the app gets SIGTERM and SIGKILL together",
        )],
    ),
    ("lc206-neg", &[]),
    (
        "lc207-pos",
        &[(
            "statefulset.yaml:18:55",
            "LC207",
            "gunicorn may take 20s to stop (--graceful-timeout), but terminationGracePeriodSeconds 30s minus the preStop sleep 15s, which leaves it 15s; it wants 25s (5s to spare)",
        )],
    ),
    ("lc207-neg", &[]),
    (
        "lc208-pos",
        &[(
            "task-definition.json:8:98",
            "LC208",
            "lastcall run would refuse to start: signal plan step TERM@+40s fires at 40s after the stop began, at or after lastcall's SIGKILL at 29s (--stop-timeout 30s minus --kill-margin); give it a smaller offset or raise --stop-timeout",
        )],
    ),
    (
        "lc208-pos-env",
        &[(
            "Dockerfile:4:5",
            "LC208",
            "lastcall run would refuse to start: invalid value '30x' for '--stop-timeout <DURATION>': invalid duration `30x`: unknown unit (use ms, s, m or h) (write e.g. 500ms, 30s, 2m or 1m30s)",
        )],
    ),
    ("lc208-neg", &[]),
    (
        "lc209-pos",
        &[(
            "deployment.yaml:16:21",
            "LC209",
            "lastcall plans a 30s (its default) stop, but terminationGracePeriodSeconds 20s SIGKILLs after 20s; set --stop-timeout 20s",
        )],
    ),
    ("lc209-neg", &[]),
];

fn check_json(dir: &Path) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .args(["check", "--format", "json"])
        .arg(dir)
        .output()
        .unwrap();
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    (out.status.code().unwrap(), json)
}

#[test]
fn each_case_reports_exactly_its_findings() {
    let mut failures = Vec::new();
    for (case, want) in CASES {
        let dir = Path::new(FIXTURES).join(case);
        let (code, json) = check_json(&dir);
        let prefix = format!("{}/", dir.display());
        let got: Vec<(String, String, String)> = json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let path = f["path"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(&prefix)
                    .to_string();
                (
                    format!("{path}:{}:{}", f["line"], f["column"]),
                    f["rule"].as_str().unwrap().to_string(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        if got != want {
            failures.push(format!("{case}:\n  want {want:#?}\n  got  {got:#?}"));
        }
        assert_eq!(
            json["errors"].as_array().unwrap().len(),
            0,
            "{case}: {json}"
        );
        let expect_code = if want.is_empty() { 0 } else { 1 };
        assert_eq!(code, expect_code, "{case}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_has_a_positive_and_a_negative_case() {
    let out = Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .args(["check", "--list-rules"])
        .output()
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(ids.len() >= 15, "{list}");
    for id in ids {
        let has = |neg: bool| {
            CASES.iter().any(|(case, findings)| {
                case.starts_with(&id.to_ascii_lowercase())
                    && (neg == findings.is_empty())
                    && (neg || findings.iter().any(|f| f.1 == id))
            })
        };
        assert!(has(false), "{id} has no positive case");
        assert!(has(true), "{id} has no negative case");
    }
}

/// Pod, DaemonSet, Job, CronJob and a ReplicaSet inside a List, in one multi-document
/// file: each pod template is found and its app's timeout checked.
#[test]
fn every_kubernetes_workload_kind_is_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check/kinds");
    let (code, json) = check_json(&dir);
    let got: Vec<String> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{} {} {}",
                f["line"],
                f["column"],
                f["rule"].as_str().unwrap(),
                f["message"]
                    .as_str()
                    .unwrap()
                    .split(" may take")
                    .next()
                    .unwrap()
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "10:7 LC201 sidekiq",
            "26:11 LC201 gunicorn",
            "39:71 LC201 celery",
            "56:81 LC201 uvicorn",
            "75:33 LC201 Spring Boot"
        ]
    );
    assert_eq!(code, 1);
}
