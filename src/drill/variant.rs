//! One run of the drill: the app (bare or under lastcall) as a task behind the LB, with the
//! peer beside it, steady load, the platform's stop, and everything recorded.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::net::TcpListener;

use super::demo::{self, Behaviour};
use super::events::{Clock, Event, EventKind, Events};
use super::lb::Lb;
use super::load::{Counts, Load, Record};
use super::platform::Choreography;
use super::report::Progress;
use super::task::{Exit, Isolation, OutputLine, Task, TaskError};

/// Bare app, or the app under `lastcall run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bare,
    Lastcall,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Lastcall => "lastcall",
        }
    }
}

/// Everything a variant needs to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    /// The full command line of the task (the app, or `lastcall run … -- app`).
    pub command: Vec<OsString>,
    /// Where the LB sends traffic and health checks.
    pub task_addr: SocketAddr,
    /// `PORT` for the app.
    pub app_port: u16,
    /// Where the LB health-checks the task (the app's path, or lastcall's).
    pub health_path: String,
    pub request_path: String,
    pub rate: f64,
    pub latency: Duration,
    pub warmup: Duration,
    pub tail: Duration,
    pub request_timeout: Duration,
    pub ready_timeout: Duration,
    pub isolation: Isolation,
    pub chore: Choreography,
    pub lb_nodes: u8,
    pub progress: bool,
}

/// What one variant recorded.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    pub command: Vec<String>,
    pub counts: Counts,
    pub killed: bool,
    pub exit: Option<Exit>,
    pub events: Vec<Event>,
    pub records: Vec<Record>,
    pub load_started_ms: f64,
    pub stop_began_ms: f64,
    pub ended_ms: f64,
    pub output: Vec<OutputLine>,
}

impl Outcome {
    /// Nothing lost and no SIGKILL needed.
    pub fn passed(&self) -> bool {
        self.counts.failed == 0 && !self.killed
    }
}

/// How long after the stop the LB may still route to the task, at most; the drill keeps
/// the load on that long (then the tail) so that every loss the stop causes is seen.
fn routing_cap(c: &Choreography) -> Duration {
    let p = &c.p;
    let detection = p.health_interval * (p.unhealthy_threshold + 1) + p.health_timeout;
    let after = p.deregistration_delay + p.stop_timeout + p.propagation_delay;
    detection.max(after) + Duration::from_secs(2)
}

/// Run one variant to the end.
pub async fn run(plan: &Plan) -> Result<Outcome, TaskError> {
    let clock = Clock::start();
    let events = Events::new(clock);

    let peer_listener =
        TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| TaskError::Spawn {
                cmd: "the peer backend".to_string(),
                source,
            })?;
    let peer_addr = peer_listener
        .local_addr()
        .map_err(|source| TaskError::Spawn {
            cmd: "the peer backend".to_string(),
            source,
        })?;
    let peer = tokio::spawn(demo::serve(
        peer_listener,
        Arc::new(Behaviour::new("peer", plan.latency, Vec::new())),
    ));

    let env = vec![("PORT".to_string(), plan.app_port.to_string())];
    let task = match Task::spawn(&plan.command, &env, &plan.isolation, clock) {
        Ok(t) => t,
        Err(e) => {
            peer.abort();
            return Err(e);
        }
    };
    let what = match plan.kind {
        Kind::Bare => "the app",
        Kind::Lastcall => "lastcall run (with the app behind it)",
    };
    if let Err(e) = task
        .wait_ready(what, plan.task_addr, &plan.health_path, plan.ready_timeout)
        .await
    {
        task.kill_and_wait().await;
        peer.abort();
        return Err(e);
    }

    let lb = Arc::new(Lb::new(
        plan.task_addr,
        peer_addr,
        plan.lb_nodes,
        plan.request_path.clone(),
        plan.request_timeout,
        events.clone(),
    ));
    let watcher = tokio::spawn(lb.clone().watch());
    let checks = tokio::spawn(
        lb.clone()
            .health_checks(plan.chore.health_check(&plan.health_path)),
    );
    let load_started_ms = clock.now();
    let load = Arc::new(tokio::sync::Mutex::new(Some(Load::start(
        lb.clone(),
        plan.rate,
        clock,
    ))));
    let progress = plan
        .progress
        .then(|| Progress::start(plan.kind.as_str(), load.clone(), clock, expected(plan)));

    tokio::time::sleep(plan.warmup).await;
    // A task in service has been probed by every LB node; wait for that too, so that
    // lastcall knows every prober before the stop (bounded by one round of checks).
    let hc = plan.chore.health_check(&plan.health_path);
    let probed_by = tokio::time::Instant::now() + hc.interval + hc.timeout + Duration::from_secs(1);
    while !lb.all_probed() && tokio::time::Instant::now() < probed_by {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stop_began_ms = clock.now();
    plan.chore.stop(&lb, &task, &events).await;
    task.kill_and_wait().await;

    let cap = tokio::time::Instant::now() + routing_cap(&plan.chore);
    while lb.routes_to_task() && tokio::time::Instant::now() < cap {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(plan.tail).await;

    let records = match load.lock().await.take() {
        Some(l) => l.finish().await,
        None => Vec::new(),
    };
    let ended_ms = clock.now();
    if let Some(p) = progress {
        p.finish().await;
    }
    checks.abort();
    watcher.abort();
    peer.abort();

    let mut exit = task.exited();
    // A PID namespace's PID 1 can only die of a signal by SIGKILL from outside, and
    // `unshare` reports that as a plain "exit 1" (it fails to re-raise SIGKILL): when the
    // task was alive at the platform's SIGKILL and gone after it, SIGKILL is what ended it.
    let sigkill_at = events
        .snapshot()
        .iter()
        .find(|e| e.kind == EventKind::Sigkill)
        .map(|e| e.at_ms);
    if let (Some(e), Some(k)) = (exit.as_mut(), sigkill_at)
        && e.at_ms >= k
        && e.signal.is_none()
        && plan.isolation == Isolation::PidNamespace
    {
        e.code = None;
        e.signal = Some(Signal::SIGKILL as i32);
    }
    if let Some(e) = exit {
        events.add_at(
            e.at_ms,
            EventKind::AppExit,
            format!("the task exited: {}", e.describe()),
        );
    }
    if let Some(at) = lb.task_last_ok() {
        events.add_at(
            clock.ms(at),
            EventKind::LastServed,
            "last request served by the task",
        );
    }
    let output = task.output();
    if plan.kind == Kind::Lastcall {
        lastcall_events(&output, &events);
    }
    let killed = events.has(EventKind::Sigkill) || exit.is_some_and(|e| e.by_sigkill());
    Ok(Outcome {
        kind: plan.kind,
        command: plan
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        counts: Counts::of(&records),
        killed,
        exit,
        events: events.snapshot(),
        records,
        load_started_ms,
        stop_began_ms,
        ended_ms,
        output,
    })
}

/// A guess of the variant's length for the progress bar.
fn expected(plan: &Plan) -> Duration {
    let p = &plan.chore.p;
    plan.warmup + p.deregistration_delay + p.propagation_delay.max(p.stop_timeout / 2) + plan.tail
}

/// lastcall logs one JSON object per line (`--log-format json`); its phase changes and the
/// signals it sends become events of the timeline.
fn lastcall_events(output: &[OutputLine], events: &Events) {
    for (at, line) in output {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(msg) = v.get("msg").and_then(|m| m.as_str()) else {
            continue;
        };
        if let Some(rest) = msg.strip_prefix("phase ") {
            events.add_at(*at, EventKind::LastcallPhase, format!("lastcall: {rest}"));
        } else if msg.starts_with("sending ") {
            events.add_at(*at, EventKind::LastcallSignal, format!("lastcall: {msg}"));
        }
    }
}
