//! The text report (stdout) and the progress bar (stderr, only on a terminal).
//!
//! The report is written for the person who ran the drill: what was rehearsed, then per
//! variant the counts, failures by cause, the stop timeline and a one-line verdict, then a
//! summary line that says what the exit status means.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use super::Settings;
use super::events::{Clock, EventKind};
use super::load::Load;
use super::variant::{Kind, Outcome};
use crate::duration;

/// The whole report.
pub fn text(s: &Settings, outcomes: &[Outcome], code: i32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lastcall drill: {} ({}), time scale {}",
        s.chore.platform.as_str(),
        s.chore.platform.describe(),
        s.args.time_scale
    );
    let _ = writeln!(out, "  stop:  {}", s.chore.summary());
    let app = if s.demo {
        format!(
            "built-in demo app (answers in {}, exits at once on SIGTERM)",
            duration::fmt(s.args.latency)
        )
    } else {
        s.args
            .command
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(out, "  app:   {app}");
    let _ = writeln!(out, "  task:  {}", s.isolation.describe());
    let via = if s.chore.platform == super::platform::Platform::K8s {
        "a Service (kube-proxy; the kubelet probes readiness)".to_string()
    } else {
        format!("{} ALB nodes, each probing on its own", s.args.lb_nodes)
    };
    let _ = writeln!(
        out,
        "  load:  {} req/s through {via}; keep-alive, round robin between the task and an always-healthy peer; no retries",
        s.args.rate
    );
    for note in &s.notes {
        let _ = writeln!(out, "  note:  {note}");
    }
    for o in outcomes {
        out.push('\n');
        variant(&mut out, o, s.chore.documented_order());
    }
    out.push('\n');
    let _ = writeln!(out, "{}", summary(outcomes, code));
    out
}

fn variant(out: &mut String, o: &Outcome, order: &[EventKind]) {
    let title = match o.kind {
        Kind::Bare => "bare: the app alone",
        Kind::Lastcall => "lastcall: the app under `lastcall run` with the drain proxy",
    };
    let _ = writeln!(out, "{title}");
    let c = &o.counts;
    let _ = write!(out, "  sent {}  ok {}  failed {}", c.sent, c.ok, c.failed);
    if !c.failed_by_cause.is_empty() {
        let causes: Vec<String> = c
            .failed_by_cause
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = write!(out, " ({})", causes.join(", "));
    }
    out.push('\n');
    let _ = writeln!(out, "  timeline (from the start of the stop):");
    for e in &o.events {
        let _ = writeln!(
            out,
            "    {:>+9.3}s  {}",
            (e.at_ms - o.stop_began_ms) / 1000.0,
            e.label
        );
    }
    if let Some((first, last)) = failure_window(o) {
        let _ = writeln!(
            out,
            "  the failed requests were sent between {:+.3}s and {:+.3}s",
            (first - o.stop_began_ms) / 1000.0,
            (last - o.stop_began_ms) / 1000.0
        );
    }
    let _ = writeln!(out, "  order: {}", order_check(o, order));
    let _ = writeln!(out, "  verdict: {}", verdict(o));
}

/// Did the platform's own events happen in its documented order?
fn order_check(o: &Outcome, order: &[EventKind]) -> String {
    let names: Vec<&str> = order.iter().map(|k| k.as_str()).collect();
    let mut last = f64::MIN;
    for kind in order {
        let Some(e) = o.events.iter().find(|e| e.kind == *kind) else {
            return format!(
                "{} never happened (documented: {})",
                kind.as_str(),
                names.join(" → ")
            );
        };
        if e.at_ms < last {
            return format!(
                "{} came out of the documented order {}",
                kind.as_str(),
                names.join(" → ")
            );
        }
        last = e.at_ms;
    }
    format!("as documented ({})", names.join(" → "))
}

fn failure_window(o: &Outcome) -> Option<(f64, f64)> {
    let mut failed = o.records.iter().filter(|r| !r.ok());
    let first = failed.next()?;
    let last = o
        .records
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.start_ms)
        .fold(first.start_ms, f64::max);
    Some((first.start_ms, last))
}

/// One line: what this variant's result means.
pub fn verdict(o: &Outcome) -> String {
    let c = &o.counts;
    let pct = if c.sent > 0 {
        100.0 * c.failed as f64 / c.sent as f64
    } else {
        0.0
    };
    match (c.failed, o.killed) {
        (0, false) => format!("PASS: lost nothing ({} of {} requests ok)", c.ok, c.sent),
        (0, true) => "FAIL: lost no request, but the task needed SIGKILL".to_string(),
        (n, false) => format!("FAIL: lost {n} of {} requests ({pct:.1}%)", c.sent),
        (n, true) => format!(
            "FAIL: lost {n} of {} requests ({pct:.1}%) and the task needed SIGKILL",
            c.sent
        ),
    }
}

fn summary(outcomes: &[Outcome], code: i32) -> String {
    let part = |k: Kind| {
        outcomes.iter().find(|o| o.kind == k).map(|o| {
            format!(
                "{} lost {} of {}{}",
                k.as_str(),
                o.counts.failed,
                o.counts.sent,
                if o.killed { " (SIGKILL)" } else { "" }
            )
        })
    };
    let parts: Vec<String> = [part(Kind::Bare), part(Kind::Lastcall)]
        .into_iter()
        .flatten()
        .collect();
    let judged = if outcomes.iter().any(|o| o.kind == Kind::Lastcall) {
        "the lastcall variant"
    } else {
        "the app"
    };
    let meaning = if code == 0 {
        format!("exit 0: {judged} lost nothing")
    } else {
        format!("exit {code}: {judged} lost requests or needed SIGKILL")
    };
    format!("summary: {}; {meaning}", parts.join(", "))
}

/// A one-line progress bar on stderr, redrawn every 100 ms.
#[derive(Debug)]
pub struct Progress {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(
        name: &'static str,
        load: Arc<tokio::sync::Mutex<Option<Load>>>,
        clock: Clock,
        expected: Duration,
    ) -> Progress {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let (done, failed) = match load.lock().await.as_ref() {
                    Some(l) => l.progress(),
                    None => break,
                };
                let elapsed = clock.now() / 1000.0;
                let frac = (elapsed / expected.as_secs_f64().max(0.1)).min(1.0);
                let width = 30;
                let filled = (frac * width as f64) as usize;
                let bar: String = "#".repeat(filled) + &" ".repeat(width - filled);
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r  {name:<8} [{bar}] {elapsed:5.1}s  answered {done:>6}  failed {failed:>5}"
                );
                let _ = err.flush();
            }
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{:80}\r", "");
            let _ = err.flush();
        });
        Progress { stop, handle }
    }

    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}
