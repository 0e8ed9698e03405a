//! PID 1 duties: start the app, reap every zombie, forward signals, run the stop plan and
//! exit with the app's status.
//!
//! The supervisor is one event loop over three sources: signals (read from a signalfd, see
//! [`signals`]), phase changes of the [`Drain`] machine, and its own timers (plan steps,
//! SIGKILL escalation, the orphan grace). It never blocks and never panics: a PID 1 that
//! dies takes the container with it.
//!
//! Two things set it apart from tini and dumb-init:
//! - it does not exit when the main child exits during a stop: it waits for every
//!   descendant (a worker still pushing jobs back to Redis) until the deadline;
//! - it never lets the orchestrator's SIGKILL arrive: whatever is left at
//!   `deadline - kill margin` is killed by lastcall, so the exit status and the last log
//!   line say what happened.

pub mod procs;
pub mod signals;

use std::ffi::OsString;
use std::io;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::time::{Instant, sleep_until};

use crate::budget::signal_name;
use crate::drain::{Drain, Phase};
use crate::duration;
use procs::{ExitStatus, signal_group, signal_pid};
use signals::Signals;

/// Who gets forwarded signals and plan signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SignalMode {
    /// The app's whole process group (everything it started that did not leave it).
    #[default]
    Group,
    /// Only the main child.
    Child,
}

/// What the supervisor needs beyond the drain machine.
#[derive(Debug, Clone)]
pub struct SuperviseOptions {
    pub command: Vec<OsString>,
    pub signal_mode: SignalMode,
    /// Signals that begin a stop instead of being forwarded (TERM and INT, and more).
    pub stop_signals: Vec<Signal>,
    pub orphan_grace: Duration,
}

/// The app could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{cmd}: command not found (check the name and PATH)")]
    NotFound { cmd: String },
    #[error("{cmd}: permission denied (is it executable? chmod +x)")]
    NotExecutable { cmd: String },
    #[error("{cmd}: is a directory, not a program (name the program inside it)")]
    Directory { cmd: String },
    #[error("{cmd}: cannot run: {source}")]
    Other { cmd: String, source: io::Error },
    #[error("no COMMAND given (write: lastcall run [OPTIONS] -- COMMAND [ARGS...])")]
    Empty,
}

impl SpawnError {
    /// tini's and the shell's codes: 127 not found, 126 found but not runnable.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::NotExecutable { .. }
            | SpawnError::Directory { .. }
            | SpawnError::Other { .. } => 126,
            SpawnError::Empty => 2,
        }
    }
}

/// A running app under supervision.
#[derive(Debug)]
pub struct Supervisor {
    opts: SuperviseOptions,
    drain: Drain,
    child: Pid,
    is_pid1: bool,
    tty: bool,
    main_status: Option<ExitStatus>,
    /// The app ended after lastcall's SIGKILL went out (so a SIGKILL status is ours).
    main_after_kill: bool,
    ctrl_c: u32,
    plan: Vec<(Instant, Signal)>,
    kill_at: Option<Instant>,
    orphan_kill_at: Option<Instant>,
    /// Why lastcall sent SIGKILL, once it has.
    killed: Option<&'static str>,
    give_up_at: Option<Instant>,
}

enum Timer {
    PlanStep,
    Kill,
    OrphanKill,
    GiveUp,
}

/// After SIGKILL, how long to wait for the kernel to tear processes down before exiting
/// anyway (a process stuck in uninterruptible sleep must not hold the container).
const AFTER_KILL: Duration = Duration::from_millis(500);

impl Supervisor {
    /// Start COMMAND with execve semantics (never through a shell) in a session of its own.
    pub fn spawn(opts: SuperviseOptions, drain: Drain) -> Result<Supervisor, SpawnError> {
        let Some((program, args)) = opts.command.split_first() else {
            return Err(SpawnError::Empty);
        };
        let cmd_name = program.to_string_lossy().into_owned();
        let mut cmd = Command::new(program);
        cmd.args(args);
        crate::sys::prepare_child(&mut cmd);
        let child = cmd.spawn().map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SpawnError::NotFound {
                cmd: cmd_name.clone(),
            },
            // execve says EACCES for a directory too; tell the two apart.
            io::ErrorKind::PermissionDenied if std::path::Path::new(program).is_dir() => {
                SpawnError::Directory {
                    cmd: cmd_name.clone(),
                }
            }
            io::ErrorKind::PermissionDenied => SpawnError::NotExecutable {
                cmd: cmd_name.clone(),
            },
            _ => SpawnError::Other {
                cmd: cmd_name.clone(),
                source,
            },
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        // The Child handle is dropped without waiting: lastcall reaps with waitpid(-1).
        drop(child);
        tracing::info!("started {cmd_name} as pid {pid}");
        Ok(Supervisor {
            opts,
            drain,
            child: pid,
            is_pid1: nix::unistd::getpid().as_raw() == 1,
            tty: nix::unistd::isatty(std::io::stdin()).unwrap_or(false),
            main_status: None,
            main_after_kill: false,
            ctrl_c: 0,
            plan: Vec::new(),
            kill_at: None,
            orphan_kill_at: None,
            killed: None,
            give_up_at: None,
        })
    }

    pub fn child(&self) -> Pid {
        self.child
    }

    /// Run until every process below lastcall is gone; returns lastcall's exit code.
    pub async fn run(mut self, signals: Signals) -> i32 {
        let mut phases = self.drain.subscribe();
        loop {
            let timer = self.next_timer();
            let wake = timer.as_ref().map(|(at, _)| *at);
            tokio::select! {
                sig = signals.next() => match sig {
                    Ok(sig) => {
                        if self.on_signal(sig) {
                            return self.finish();
                        }
                    }
                    Err(e) => {
                        // Without signals lastcall cannot reap or stop; kill rather than hang.
                        tracing::error!("reading signals failed: {e}; killing the app");
                        self.kill_everything("lastcall could not read signals");
                        return self.finish();
                    }
                },
                changed = phases.changed() => {
                    if changed.is_ok() && *phases.borrow_and_update() == Phase::Stopping {
                        self.begin_stopping();
                        if self.reap_and_check() {
                            return self.finish();
                        }
                    }
                }
                _ = sleep_or_never(wake) => {
                    if let Some((_, timer)) = timer
                        && self.on_timer(timer)
                    {
                        return self.finish();
                    }
                    if self.reap_and_check() {
                        return self.finish();
                    }
                }
            }
        }
    }

    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let mut next: Option<(Instant, Timer)> = None;
        let mut consider = |at: Option<Instant>, t: Timer| {
            if let Some(at) = at
                && next.as_ref().is_none_or(|(n, _)| at < *n)
            {
                next = Some((at, t));
            }
        };
        consider(self.plan.first().map(|(at, _)| *at), Timer::PlanStep);
        if self.killed.is_none() {
            consider(self.kill_at, Timer::Kill);
            consider(self.orphan_kill_at, Timer::OrphanKill);
        }
        consider(self.give_up_at, Timer::GiveUp);
        next
    }

    /// Returns true when lastcall should exit now.
    fn on_signal(&mut self, sig: Signal) -> bool {
        match sig {
            Signal::SIGCHLD => return self.reap_and_check(),
            // Raised by lastcall's own writes to closed pipes or sockets, or timers: not
            // meant for the app.
            Signal::SIGPIPE
            | Signal::SIGURG
            | Signal::SIGXFSZ
            | Signal::SIGPROF
            | Signal::SIGVTALRM => {}
            s if self.opts.stop_signals.contains(&s) => self.on_stop_signal(s),
            s @ (Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU) => {
                self.forward(s);
                // Job control on a terminal: the app is suspended, so suspend lastcall too
                // and give the terminal back to the shell. Without a terminal this is a
                // worker's quiet signal (`docker kill -s TSTP`), and a stopped lastcall
                // would never run the stop that follows. PID 1 cannot be stopped.
                if self.tty && !self.is_pid1 {
                    signal_pid(nix::unistd::getpid(), Signal::SIGSTOP);
                }
            }
            s => self.forward(s),
        }
        false
    }

    fn on_stop_signal(&mut self, sig: Signal) {
        if sig == Signal::SIGINT && self.tty {
            self.ctrl_c += 1;
            if self.ctrl_c >= 3 {
                tracing::warn!("third Ctrl-C: killing everything now");
                self.kill_everything("the third Ctrl-C");
                return;
            }
        }
        let name = sig.as_str();
        if self.drain.request_stop(name) && self.tty && sig == Signal::SIGINT {
            tracing::info!("press Ctrl-C twice more to kill at once");
        }
        // The app already exited and its leftovers are in their grace: the orchestrator's
        // deadline now bounds that grace too.
        if let (Some(grace_ends), Some(clock)) = (self.orphan_kill_at, self.drain.clock()) {
            let kill_at = clock.at(self.drain.budget().kill_at());
            if kill_at < grace_ends {
                self.orphan_kill_at = Some(kill_at);
            }
        }
    }

    /// A plan step: to the app (as [`Self::forward`]), and to orphans re-parented to
    /// lastcall that signal would not reach (daemons that left the app's process group
    /// with setsid): they are part of the container too, and get the same chance to stop.
    fn send_step(&self, sig: Signal) {
        self.forward(sig);
        let me = nix::unistd::getpid();
        for pid in procs::children_of(me) {
            let reached = match self.opts.signal_mode {
                SignalMode::Group => nix::unistd::getpgid(Some(pid)).ok() == Some(self.child),
                SignalMode::Child => pid == self.child,
            };
            if !reached {
                signal_pid(pid, sig);
            }
        }
    }

    fn forward(&self, sig: Signal) {
        match self.opts.signal_mode {
            SignalMode::Group => signal_group(self.child, sig),
            SignalMode::Child => {
                if self.main_status.is_none() {
                    signal_pid(self.child, sig);
                }
            }
        }
    }

    /// Stopping began: schedule the plan's signals and the SIGKILL escalation.
    fn begin_stopping(&mut self) {
        if self.kill_at.is_some() {
            return;
        }
        let Some(clock) = self.drain.clock() else {
            return;
        };
        let budget = self.drain.budget().clone();
        let stopping = clock.since();
        self.plan = budget
            .plan
            .steps()
            .iter()
            .map(|s| (clock.at(budget.step_at(s, stopping)), s.signal))
            .collect();
        self.plan.sort_by_key(|(at, _)| *at);
        self.kill_at = Some(clock.at(budget.kill_at()));
        tracing::info!(
            "signal plan {} (SIGKILL at +{})",
            budget.plan,
            duration::fmt(budget.kill_at())
        );
    }

    /// Returns true when lastcall should exit now.
    fn on_timer(&mut self, timer: Timer) -> bool {
        match timer {
            Timer::PlanStep => {
                if !self.plan.is_empty() {
                    let (_, sig) = self.plan.remove(0);
                    tracing::info!("sending {} to the app", signal_name(sig));
                    self.send_step(sig);
                    // A stopped process never acts on TERM: CONT wakes it (systemd does the
                    // same). Never after a stop signal: generating CONT discards a pending
                    // TSTP, and TSTP is Sidekiq's "quiet". A process that does not trap TSTP
                    // is not stopped by it either: the app's process group is orphaned (its
                    // own session), and the kernel discards stop signals there.
                    if !matches!(
                        sig,
                        Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU | Signal::SIGSTOP
                    ) {
                        self.send_step(Signal::SIGCONT);
                    }
                }
            }
            Timer::Kill => {
                tracing::warn!(
                    "{} still running at the kill margin: sending SIGKILL before the orchestrator does",
                    self.count_left()
                );
                self.kill_everything("it did not stop by the kill margin");
            }
            Timer::OrphanKill => {
                tracing::warn!(
                    "{} left after the app exited did not stop within --orphan-grace: SIGKILL",
                    self.count_left()
                );
                self.kill_everything("it was left behind and did not stop within the grace");
            }
            Timer::GiveUp => {
                tracing::warn!(
                    "{} did not go away after SIGKILL (stuck in the kernel?); exiting anyway",
                    self.count_left()
                );
                return true;
            }
        }
        false
    }

    /// "3 processes": as PID 1 every process of the container counts; otherwise lastcall
    /// only sees its own children (descendants below them are not counted).
    fn count_left(&self) -> String {
        let n = self.left();
        match (n, self.is_pid1) {
            (1, true) => "1 process".to_string(),
            (n, true) => format!("{n} processes"),
            (1, false) => "1 child process".to_string(),
            (n, false) => format!("{n} child processes"),
        }
    }

    /// Processes still running: as PID 1 every other process of the container, otherwise
    /// lastcall's own children.
    fn left(&self) -> usize {
        if self.is_pid1 {
            procs::all_but_self()
        } else {
            procs::children_of(nix::unistd::getpid()).len()
        }
    }

    fn kill_everything(&mut self, why: &'static str) {
        self.killed = Some(why);
        self.plan.clear();
        self.give_up_at = Some(Instant::now() + AFTER_KILL);
        signal_group(self.child, Signal::SIGKILL);
        self.sweep();
    }

    /// SIGKILL to every child and its group, and as PID 1 to every process in the PID
    /// namespace. Repeated as processes die: a grandchild is re-parented to lastcall only
    /// when its parent is gone, and then it is lastcall's to kill.
    fn sweep(&self) {
        for pid in procs::children_of(nix::unistd::getpid()) {
            signal_pid(pid, Signal::SIGKILL);
            signal_group(pid, Signal::SIGKILL);
        }
        if self.is_pid1 {
            // In a PID namespace this reaches every process in it except lastcall itself:
            // grandchildren whose parents are still alive included.
            signal_pid(Pid::from_raw(-1), Signal::SIGKILL);
        }
    }

    /// Reap what has ended; returns true when lastcall should exit.
    fn reap_and_check(&mut self) -> bool {
        let reaped = procs::reap();
        for ended in &reaped.ended {
            if ended.pid == self.child {
                self.main_status = Some(ended.status);
                self.main_after_kill = self.killed.is_some();
                self.on_main_exit(ended.status);
            }
        }
        if reaped.none_left && self.main_status.is_some() {
            return true;
        }
        if self.killed.is_some() {
            if reaped.none_left {
                return true;
            }
            if !reaped.ended.is_empty() {
                self.sweep();
            }
        }
        false
    }

    fn on_main_exit(&mut self, status: ExitStatus) {
        let phase = self.drain.phase();
        if phase.is_stopping() || self.drain.clock().is_some() {
            if phase < Phase::Stopping {
                tracing::warn!(
                    "the app {status} during {}: skipping to stopping",
                    phase.as_str()
                );
                self.drain
                    .enter(Phase::Stopping, "the app exited during the drain");
            } else {
                tracing::info!("the app {status}; waiting for the rest of its processes");
            }
            return;
        }
        // The app ended on its own: the container is done. Give what it left behind a
        // short grace, then kill it, so that the container exits instead of hanging.
        tracing::info!("the app {status}");
        self.drain.enter(Phase::Exited, "the app exited on its own");
        let left = procs::children_of(nix::unistd::getpid());
        if !left.is_empty() {
            tracing::info!(
                "{} left behind: SIGTERM, SIGKILL after {}",
                self.count_left(),
                duration::fmt(self.opts.orphan_grace)
            );
            signal_group(self.child, Signal::SIGTERM);
            for pid in left {
                signal_pid(pid, Signal::SIGTERM);
            }
            self.orphan_kill_at = Some(Instant::now() + self.opts.orphan_grace);
        }
    }

    fn finish(&mut self) -> i32 {
        let code = match self.main_status {
            Some(s) => s.code(),
            None => ExitStatus::Signal(Signal::SIGKILL).code(),
        };
        if self.left() == 0 {
            self.drain.enter(Phase::Exited, "every process has exited");
        } else {
            self.drain.enter(
                Phase::Exited,
                "exiting with processes left that survived SIGKILL",
            );
        }
        let killed_by_us = self.main_status.is_none()
            || (self.main_after_kill
                && self.main_status == Some(ExitStatus::Signal(Signal::SIGKILL)));
        match (self.main_status, self.killed) {
            (Some(s), None) => tracing::info!("exit {code}: the app {s}"),
            (Some(s), Some(why)) if !killed_by_us => {
                tracing::warn!("exit {code}: the app {s}; lastcall killed what was left: {why}")
            }
            (_, Some(why)) => {
                tracing::warn!("exit {code}: lastcall killed the app with SIGKILL: {why}")
            }
            (None, None) => tracing::warn!("exit {code}: the app was killed by lastcall"),
        }
        code
    }
}

async fn sleep_or_never(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
