//! The task: the app (bare, or wrapped in `lastcall run`) started the way a container runtime
//! starts it — as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`) when
//! the system allows it, else as a plain child process, and the report says which.
//!
//! PID 1 matters: the kernel drops signals that PID 1 has no handler for, and when PID 1
//! exits every other process of the namespace is killed, exactly as in a container. The
//! platform's signals go to the namespace's PID 1 (seen from here as `unshare`'s child),
//! never to `unshare` itself, which does not forward them.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;

use super::events::Clock;

/// How the task is isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// PID 1 of a new PID namespace, like a container.
    PidNamespace,
    /// A plain child process; the reason namespaces were not used.
    PlainChild(String),
}

impl Isolation {
    /// Find out once whether `unshare` can make a PID namespace here.
    pub fn detect(disabled: bool) -> Isolation {
        if disabled {
            return Isolation::PlainChild("--no-namespace".to_string());
        }
        let out = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child", "true"])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => Isolation::PidNamespace,
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let why = err.lines().next().unwrap_or("refused").trim().to_string();
                Isolation::PlainChild(format!("unshare refused: {why}"))
            }
            Err(e) => Isolation::PlainChild(format!("cannot run unshare: {e}")),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Isolation::PidNamespace => {
                "PID 1 of a new PID namespace (unshare --pid --fork --mount-proc), like a container"
                    .to_string()
            }
            Isolation::PlainChild(why) => format!("a plain child process ({why})"),
        }
    }
}

/// The task could not be started or did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("cannot start {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("the task's PID 1 did not appear in its namespace within 5s")]
    NoPid1,
    #[error("{what} exited before it was ready ({status}){output}")]
    ExitedEarly {
        what: String,
        status: String,
        code: Option<i32>,
        output: String,
    },
    #[error(
        "{what} did not answer GET {path} with 200 on {addr} within {timeout} (is it listening on $PORT? raise --ready-timeout if it starts slowly){output}"
    )]
    NotReady {
        what: String,
        path: String,
        addr: String,
        timeout: String,
        output: String,
    },
}

/// How the task ended, once it has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exit {
    pub at_ms: f64,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) if c > 128 && c < 160 => {
                let sig = Signal::try_from(c - 128)
                    .map(crate::budget::signal_name)
                    .unwrap_or("?");
                format!("exit status {c} (128+{sig})")
            }
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => {
                let sig = Signal::try_from(s)
                    .map(crate::budget::signal_name)
                    .unwrap_or("?");
                format!("killed by SIG{sig}")
            }
            (None, None) => "ended".to_string(),
        }
    }

    /// Did SIGKILL end it (the platform's, or lastcall's escalation seen as 128+9)?
    pub fn by_sigkill(&self) -> bool {
        self.signal == Some(9) || self.code == Some(137)
    }
}

/// A line the task printed, with when it was read.
pub type OutputLine = (f64, String);

/// A running task.
#[derive(Debug)]
pub struct Task {
    pid1: Pid,
    /// The process we started (`unshare`, or the app itself), leader of its own group.
    outer: Pid,
    exit: watch::Receiver<Option<Exit>>,
    output: Arc<Mutex<Vec<OutputLine>>>,
    /// How many of stdout and stderr are still open.
    open_pipes: watch::Receiver<usize>,
}

/// Keep at most this many output lines per task (a chatty app must not grow memory).
const MAX_LINES: usize = 2000;

impl Task {
    /// Start `command` with `env` added, isolated as `isolation` says.
    pub fn spawn(
        command: &[OsString],
        env: &[(String, String)],
        isolation: &Isolation,
        clock: Clock,
    ) -> Result<Task, TaskError> {
        let mut argv: Vec<OsString> = Vec::new();
        if *isolation == Isolation::PidNamespace {
            for a in ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] {
                argv.push(a.into());
            }
        }
        argv.extend(command.iter().cloned());
        let Some((program, args)) = argv.split_first() else {
            return Err(TaskError::Spawn {
                cmd: String::new(),
                source: std::io::Error::other("empty command"),
            });
        };
        let shown = program.to_string_lossy().into_owned();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Default signal dispositions, an empty mask and a session of its own, as a
        // container runtime gives its PID 1.
        crate::sys::prepare_child(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| TaskError::Spawn {
            cmd: shown.clone(),
            source,
        })?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (pipes_tx, open_pipes) = watch::channel(2usize);
        let pipes_tx = Arc::new(pipes_tx);
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ] {
            match pipe {
                Some(p) => read_lines(p, output.clone(), clock, pipes_tx.clone()),
                None => pipes_tx.send_modify(|n| *n -= 1),
            }
        }
        let outer = Pid::from_raw(child.id() as i32);
        let (tx, exit) = watch::channel(None);
        wait_in_thread(child, tx, clock);
        let pid1 = if *isolation == Isolation::PidNamespace {
            find_child(outer, &exit)?
        } else {
            outer
        };
        Ok(Task {
            pid1,
            outer,
            exit,
            output,
            open_pipes,
        })
    }

    /// Send `sig` to the task's PID 1, as a container runtime does.
    pub fn signal(&self, sig: Signal) {
        if self.exited().is_none() {
            let _ = kill(self.pid1, sig);
        }
    }

    pub fn exited(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Wait until the task has exited.
    pub async fn wait(&self) -> Option<Exit> {
        let mut rx = self.exit.clone();
        rx.wait_for(Option::is_some).await.ok().and_then(|e| *e)
    }

    pub fn output(&self) -> Vec<OutputLine> {
        match self.output.lock() {
            Ok(o) => o.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The last lines the task printed, indented, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output();
        if out.is_empty() {
            return String::new();
        }
        let start = out.len().saturating_sub(n);
        let mut s = String::from("; its last output:");
        for (_, line) in &out[start..] {
            s.push_str("\n    ");
            s.push_str(line);
        }
        s
    }

    /// Poll `GET path` until it answers 200, the task exits, or `timeout` passes.
    pub async fn wait_ready(
        &self,
        what: &str,
        addr: std::net::SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<(), TaskError> {
        let give_up = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.exited() {
                // Its last words (often the reason) may still be in the pipe.
                let mut pipes = self.open_pipes.clone();
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), pipes.wait_for(|n| *n == 0)).await;
                return Err(TaskError::ExitedEarly {
                    what: what.to_string(),
                    status: exit.describe(),
                    code: exit.code,
                    output: self.tail(8),
                });
            }
            if health_ok(addr, path).await {
                return Ok(());
            }
            if Instant::now() >= give_up {
                return Err(TaskError::NotReady {
                    what: what.to_string(),
                    path: path.to_string(),
                    addr: addr.to_string(),
                    timeout: crate::duration::fmt(timeout),
                    output: self.tail(8),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Make sure nothing of the task outlives the drill.
    pub async fn kill_and_wait(&self) {
        if self.exited().is_none() {
            let _ = kill(self.pid1, Signal::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(5), self.wait()).await;
        }
    }
}

/// A drill that ends early (Ctrl-C, an error) must not leave the task running: kill its
/// PID 1 (which takes a PID namespace down with it) and the group we started.
impl Drop for Task {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = kill(self.pid1, Signal::SIGKILL);
            let _ = nix::sys::signal::killpg(self.outer, Signal::SIGKILL);
        }
    }
}

async fn health_ok(addr: std::net::SocketAddr, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        Some(head.split(' ').nth(1) == Some("200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}

fn read_lines(
    r: Box<dyn Read + Send>,
    into: Arc<Mutex<Vec<OutputLine>>>,
    clock: Clock,
    done: Arc<watch::Sender<usize>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let mut v = match into.lock() {
                Ok(v) => v,
                Err(p) => p.into_inner(),
            };
            if v.len() < MAX_LINES {
                v.push((clock.now(), line));
            }
        }
        done.send_modify(|n| *n = n.saturating_sub(1));
    });
}

fn wait_in_thread(mut child: Child, tx: watch::Sender<Option<Exit>>, clock: Clock) {
    use std::os::unix::process::ExitStatusExt;
    std::thread::spawn(move || {
        let exit = match child.wait() {
            Ok(st) => Exit {
                at_ms: clock.now(),
                code: st.code(),
                signal: st.signal(),
            },
            Err(_) => Exit {
                at_ms: clock.now(),
                code: None,
                signal: None,
            },
        };
        let _ = tx.send(Some(exit));
    });
}

/// The namespace's PID 1 as seen from here: the child of `unshare`.
fn find_child(parent: Pid, exit: &watch::Receiver<Option<Exit>>) -> Result<Pid, TaskError> {
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up {
        if exit.borrow().is_some() {
            // It is gone already; the caller reports how it ended.
            return Ok(parent);
        }
        if let Some(pid) = child_of(parent) {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(TaskError::NoPid1)
}

fn child_of(parent: Pid) -> Option<Pid> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may contain anything; fields follow
        // the last ')': state, then the parent's pid.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(parent.as_raw()) {
            return Some(Pid::from_raw(pid));
        }
    }
    None
}
