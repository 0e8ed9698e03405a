//! Shared scaffolding for the integration tests: start the real `lastcall` binary (optionally
//! as PID 1 of a new PID namespace, like a container), read its log as it is written, send
//! it signals, and wait for conditions with generous timeouts instead of fixed sleeps.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_lastcall");

/// Poll `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Can this machine give a test its own PID namespace? Prints why not, once per test.
pub fn pid_namespaces() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIP: cannot create a PID namespace here (unshare --pid --fork --mount-proc refused)"
        );
    }
    ok
}

/// A running `lastcall`, with its stderr collected line by line.
pub struct Lastcall {
    pub child: Child,
    log: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
    in_namespace: bool,
    pub started: Instant,
}

impl Lastcall {
    /// `lastcall ARGS…` as a plain child of the test.
    pub fn start(args: &[&str]) -> Lastcall {
        Self::spawn(Command::new(BIN), args, false, &[])
    }

    /// `lastcall ARGS…` with extra environment.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Lastcall {
        Self::spawn(Command::new(BIN), args, false, env)
    }

    /// `lastcall ARGS…` as PID 1 of a new PID namespace, as in a container.
    pub fn start_as_pid1(args: &[&str]) -> Lastcall {
        Self::start_as_pid1_env(args, &[])
    }

    /// The same, with extra environment.
    pub fn start_as_pid1_env(args: &[&str], env: &[(&str, &str)]) -> Lastcall {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", BIN]);
        Self::spawn(cmd, args, true, env)
    }

    /// SIGKILL the namespace's PID 1, which takes every process of the "container" with it,
    /// as the orchestrator does at the end of the grace period.
    pub fn kill_namespace(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }

    fn spawn(
        mut cmd: Command,
        args: &[&str],
        in_namespace: bool,
        env: &[(&str, &str)],
    ) -> Lastcall {
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start lastcall");
        let log = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for stream in [
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            readers.push(thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            }));
        }
        Lastcall {
            child,
            log,
            readers,
            in_namespace,
            started: Instant::now(),
        }
    }

    /// Everything lastcall (and the app) printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log contains `needle`; panics with the log if it never does.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        if !wait_until(timeout, || self.log().contains(needle)) {
            panic!(
                "no `{needle}` in the log within {timeout:?}:\n{}",
                self.log()
            );
        }
        self.log()
    }

    /// The pid lastcall runs as, seen from the test: the namespace's PID 1 when in one.
    pub fn pid(&self) -> i32 {
        let outer = self.child.id() as i32;
        if !self.in_namespace {
            return outer;
        }
        let mut found = None;
        wait_until(Duration::from_secs(5), || {
            found = children_of(outer).first().copied();
            found.is_some()
        });
        found.expect("unshare's child (lastcall as PID 1)")
    }

    /// Send a signal to lastcall itself.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Wait for lastcall to exit; panics with the log after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The last lines are in once the readers reach end of file (every
                // process holding the pipes is gone); a leftover that still holds them
                // must not hang the test, so this wait is bounded.
                wait_until(Duration::from_secs(5), || {
                    self.readers.iter().all(thread::JoinHandle::is_finished)
                });
                return status;
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                panic!("lastcall did not exit within {timeout:?}:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Lastcall {
    fn drop(&mut self) {
        if self.in_namespace {
            // unshare --kill-child takes the namespace down with it.
            let _ = self.child.kill();
        } else if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.wait();
    }
}

/// Direct children of `pid`, from /proc.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// A port that was free a moment ago on 127.0.0.1, for an app that must be told its port.
pub fn free_port() -> u16 {
    // Outside the ephemeral range: see lastcall::net::free_port.
    lastcall::net::free_port().unwrap()
}

/// A temporary directory for one test, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Write an executable script into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The number in lastcall's log line `health endpoint on http://ADDR/...`.
pub fn health_addr(log: &str) -> std::net::SocketAddr {
    let rest = log
        .split("health endpoint on http://")
        .nth(1)
        .expect("health line");
    let addr = rest.split('/').next().unwrap();
    addr.parse().unwrap()
}

/// CLOCK_MONOTONIC in seconds: the same clock python's time.monotonic() reads, so test and
/// app timestamps compare.
pub fn monotonic() -> f64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    ts.tv_sec() as f64 + ts.tv_nsec() as f64 / 1e9
}
