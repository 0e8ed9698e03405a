//! What happened during a drill, on one clock: the stop events (from the platform, the load
//! balancer, the task and lastcall's own log) and every request. Times are milliseconds
//! since the load started, so the report, the JSON and the chart agree to the millisecond.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// The drill's clock: milliseconds since the load started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock { t0: Instant::now() }
    }

    pub fn ms(&self, at: Instant) -> f64 {
        // Microsecond resolution is plenty and keeps the JSON readable.
        let ms = at.saturating_duration_since(self.t0).as_secs_f64() * 1000.0;
        (ms * 1000.0).round() / 1000.0
    }

    pub fn now(&self) -> f64 {
        self.ms(Instant::now())
    }
}

/// The kinds of stop events; stable names for the JSON and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Fargate Spot's interruption notice: SIGKILL within the hard limit.
    InterruptionNotice,
    /// The platform began stopping the task.
    StopBegan,
    /// ECS deregistered the target from the target group.
    Deregistered,
    /// Kubernetes removed the pod from the Service's endpoints.
    EndpointRemoved,
    /// The LB's (or kubelet's) health checks saw the task fail `threshold` times in a row.
    Unhealthy,
    /// The LB sends no new request to the task any more.
    RoutingStopped,
    /// The platform sent SIGTERM to the task's PID 1.
    Sigterm,
    /// The platform sent SIGKILL: the grace period ran out.
    Sigkill,
    /// lastcall (wrapped variant) entered a phase, from its own log.
    LastcallPhase,
    /// lastcall (wrapped variant) sent a signal to the app, from its own log.
    LastcallSignal,
    /// The task's last successful answer to a request the LB routed to it.
    LastServed,
    /// The task's PID 1 exited.
    AppExit,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::InterruptionNotice => "interruption-notice",
            EventKind::StopBegan => "stop-began",
            EventKind::Deregistered => "deregistered",
            EventKind::EndpointRemoved => "endpoint-removed",
            EventKind::Unhealthy => "unhealthy",
            EventKind::RoutingStopped => "routing-stopped",
            EventKind::Sigterm => "sigterm",
            EventKind::Sigkill => "sigkill",
            EventKind::LastcallPhase => "lastcall-phase",
            EventKind::LastcallSignal => "lastcall-signal",
            EventKind::LastServed => "last-served",
            EventKind::AppExit => "app-exit",
        }
    }
}

/// One stop event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at_ms: f64,
    pub kind: EventKind,
    /// What a person reads in the report and on the chart.
    pub label: String,
}

/// The events of one variant, appended from several tasks.
#[derive(Debug, Clone)]
pub struct Events {
    clock: Clock,
    list: Arc<Mutex<Vec<Event>>>,
}

impl Events {
    pub fn new(clock: Clock) -> Events {
        Events {
            clock,
            list: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Record `kind` now.
    pub fn add(&self, kind: EventKind, label: impl Into<String>) {
        self.add_at(self.clock.now(), kind, label);
    }

    pub fn add_at(&self, at_ms: f64, kind: EventKind, label: impl Into<String>) {
        let event = Event {
            at_ms,
            kind,
            label: label.into(),
        };
        match self.list.lock() {
            Ok(mut l) => l.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }

    pub fn has(&self, kind: EventKind) -> bool {
        self.snapshot().iter().any(|e| e.kind == kind)
    }

    /// All events so far, in time order.
    pub fn snapshot(&self) -> Vec<Event> {
        let mut v = match self.list.lock() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        v.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        v
    }
}
