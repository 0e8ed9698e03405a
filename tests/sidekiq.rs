//! A real Sidekiq worker (Debian's ruby-sidekiq) with a real Redis, started through
//! `sh -c` as in seed 001, stopped the way ECS stops a task: SIGTERM, then SIGKILL to the
//! whole container 10 s later. Under lastcall not one job may be lost: every job either
//! finished or was pushed back to the queue.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use support::{Lastcall, wait_until};

const JOBS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sidekiq/jobs.rb");
const COUNT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/sidekiq/count.rb"
);
const ENQUEUED: usize = 40;

struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Redis {
        let port = support::free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let redis = Redis {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
        };
        assert!(wait_until(Duration::from_secs(10), || redis.cli(&["ping"]) == "PONG"));
        redis
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-u")
            .arg(&self.url)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn ruby(&self, args: &[&str]) -> String {
        let out = Command::new("ruby")
            .args(args)
            .env("REDIS_URL", &self.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Enqueue 40 jobs of `1 + i % longest` seconds, stop the task ECS-style while Sidekiq is
/// busy, and count.
fn stop_a_busy_worker(longest: usize) {
    if !support::pid_namespaces() {
        return;
    }
    let redis = Redis::start();
    let enqueue = format!("{ENQUEUED}.times {{ |i| SlowJob.perform_async(i, 1 + i % {longest}) }}");
    redis.ruby(&["-r", "sidekiq", "-r", JOBS, "-e", &enqueue]);

    // `sh -c` as in seed 001: sh is the main child and dies on TERM.
    let sidekiq = format!("sidekiq -r {JOBS} -t 5 -c 10; echo sidekiq exited");
    let mut cmd = vec![
        "run",
        "--stop-timeout",
        "10s",
        "--signal-plan",
        "TSTP@+0,TERM@-8s",
    ];
    cmd.extend(["--", "sh", "-c", &sidekiq]);
    let mut lc = Lastcall::start_as_pid1_env(&cmd, &[("REDIS_URL", redis.url.as_str())]);
    let busy = wait_until(Duration::from_secs(30), || {
        redis
            .cli(&["llen", "queue:default"])
            .parse::<usize>()
            .unwrap_or(ENQUEUED)
            <= ENQUEUED - 10
    });
    assert!(busy, "sidekiq never took jobs\n{}", lc.log());

    // ECS: SIGTERM, then SIGKILL to every process of the task after stopTimeout.
    lc.signal(Signal::SIGTERM);
    let exited = wait_until(Duration::from_secs(10), || {
        lc.child.try_wait().unwrap().is_some()
    });
    if !exited {
        lc.kill_namespace();
    }
    let counts = redis.ruby(&[COUNT, &ENQUEUED.to_string()]);
    eprintln!("{counts}");
    let log = lc.log();
    assert!(
        exited,
        "lastcall was still running at the orchestrator's SIGKILL\n{log}"
    );
    assert!(counts.ends_with(" lost=0"), "{counts}\n{log}");
    // The plan's first step is Sidekiq's quiet signal: it must have arrived.
    assert!(
        log.contains("Received TSTP, no longer accepting new work"),
        "Sidekiq never went quiet\n{log}"
    );
    assert!(
        !log.contains("sending SIGKILL before the orchestrator does"),
        "the worker needed SIGKILL\n{log}"
    );
    assert!(
        log.contains("sidekiq exited") || log.contains("the app was killed by SIGTERM"),
        "{log}"
    );
}

#[test]
fn no_job_is_lost_when_every_job_fits_the_sidekiq_timeout() {
    stop_a_busy_worker(4);
}

#[test]
fn no_job_is_lost_when_sidekiq_must_push_jobs_back() {
    // Jobs of up to 8 s outlast -t 5 after the TERM at +2 s: Sidekiq pushes them back to
    // Redis, which is exactly the work tini and dumb-init cut short.
    stop_a_busy_worker(8);
}
