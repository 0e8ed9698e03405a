//! What lastcall knows about the processes below it: reaping, exit statuses and the list of
//! its own children (orphans re-parented to it included), read from /proc.

use std::fs;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// A process that ended, as `waitpid` told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub pid: Pid,
    pub status: ExitStatus,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(Signal),
}

impl ExitStatus {
    /// The shell convention every orchestrator reads: the code, or 128 + N for signal N.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s as i32,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with status {c}"),
            ExitStatus::Signal(s) => write!(f, "was killed by {}", s.as_str()),
        }
    }
}

/// Outcome of one reaping pass.
#[derive(Debug, Default)]
pub struct Reaped {
    pub ended: Vec<Ended>,
    /// `waitpid` said there are no children left at all: every descendant is gone.
    pub none_left: bool,
}

/// Collect every child that has ended, without blocking. As PID 1 or a subreaper, every
/// orphan below lastcall ends up here, so this is what keeps zombies from piling up.
pub fn reap() -> Reaped {
    let mut out = Reaped::default();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.ended.push(Ended {
                pid,
                status: ExitStatus::Code(code),
            }),
            Ok(WaitStatus::Signaled(pid, sig, _)) => out.ended.push(Ended {
                pid,
                status: ExitStatus::Signal(sig),
            }),
            Ok(WaitStatus::StillAlive) => return out,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => {
                out.none_left = true;
                return out;
            }
            Err(e) => {
                tracing::warn!("waitpid failed: {e}");
                return out;
            }
        }
    }
}

/// Direct children of `parent`, from /proc. Orphans re-parented to lastcall are among them,
/// including those that left the app's process group.
pub fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent.as_raw()))
        .map(Pid::from_raw)
        .collect()
}

/// How many live processes /proc shows besides lastcall: as PID 1 of a PID namespace,
/// every other process of the container.
pub fn all_but_self() -> usize {
    let me = std::process::id();
    let Ok(dir) = fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| u32::try_from(*pid).ok() != Some(me) && parent_of(*pid).is_some())
        .count()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" {
        // Already dead; reaping will collect it.
        return None;
    }
    fields.next()?.parse().ok()
}

/// Send `sig` to a process group; a group with no members left is not an error.
pub fn signal_group(pgid: Pid, sig: Signal) {
    match killpg(pgid, sig) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(
            "could not send {} to process group {pgid}: {e}",
            sig.as_str()
        ),
    }
}

/// Send `sig` to one process; one that is already gone is not an error.
pub fn signal_pid(pid: Pid, sig: Signal) {
    match kill(pid, sig) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!("could not send {} to {pid}: {e}", sig.as_str()),
    }
}
