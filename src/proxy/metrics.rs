//! Counters of the proxy and their Prometheus text exposition (`GET /metrics` on the admin
//! endpoint).
//!
//! Hand-written rather than the prometheus-client crate: the set is fixed and small (one
//! counter family by phase and status code, upstream errors by kind, a few gauges read
//! from the drain machine), so a static table of atomics and a formatter of ~80 lines
//! cost less binary and no locking on the request path. Counting is one relaxed atomic add
//! per response into a table indexed by phase and status code. Each proxy thread adds into
//! its own copy of the table, summed when scraped: every thread counting into the same
//! slot (serving, 200) would move that cache line between cores on every response.

use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hyper::StatusCode;

use crate::drain::{Drain, Phase};

const CODES: usize = 500; // 100..=599
const PHASES: usize = Phase::ALL.len();

/// Copies of the table; threads beyond this many share them round-robin.
const SHARDS: usize = 4;

type Table = [[AtomicU64; CODES]; PHASES];

static REQUESTS: [Table; SHARDS] =
    [const { [const { [const { AtomicU64::new(0) }; CODES] }; PHASES] }; SHARDS];

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

fn my_table() -> &'static Table {
    let i = SHARD.with(|s| match s.get() {
        Some(i) => i,
        None => {
            let i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(Some(i));
            i
        }
    });
    &REQUESTS[i % SHARDS]
}

/// Why a request could not be answered by the app.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UpstreamError {
    Connect = 0,
    Timeout = 1,
    Other = 2,
}

const ERROR_KINDS: [&str; 3] = ["connect", "timeout", "other"];
static UPSTREAM_ERRORS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// Count one answered request by the phase it arrived in.
pub(crate) fn count(phase: Phase, status: StatusCode) {
    let code = status.as_u16() as usize;
    if let Some(slot) = my_table()[phase as usize].get(code.wrapping_sub(100)) {
        slot.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) fn upstream_error(kind: UpstreamError) {
    UPSTREAM_ERRORS[kind as usize].fetch_add(1, Ordering::Relaxed);
}

/// The Prometheus text format (version 0.0.4) of everything lastcall knows.
pub fn render(drain: &Drain) -> String {
    let mut out = String::with_capacity(2048);
    let w = &mut out;
    family(
        w,
        "lastcall_requests_total",
        "counter",
        "Requests answered by the proxy, by the phase they arrived in and status code.",
    );
    for p in 0..PHASES {
        for i in 0..CODES {
            let n: u64 = REQUESTS
                .iter()
                .map(|t| t[p][i].load(Ordering::Relaxed))
                .sum();
            if n > 0 {
                let phase = Phase::ALL[p].as_str();
                let _ = writeln!(
                    w,
                    "lastcall_requests_total{{phase=\"{phase}\",code=\"{}\"}} {n}",
                    i + 100
                );
            }
        }
    }
    family(
        w,
        "lastcall_upstream_errors_total",
        "counter",
        "Requests the app could not answer: connect failed (502), timed out (504), other (502).",
    );
    for (kind, n) in ERROR_KINDS.iter().zip(&UPSTREAM_ERRORS) {
        let n = n.load(Ordering::Relaxed);
        let _ = writeln!(w, "lastcall_upstream_errors_total{{kind=\"{kind}\"}} {n}");
    }
    family(
        w,
        "lastcall_in_flight",
        "gauge",
        "Requests in flight, streamed bodies and upgraded connections included.",
    );
    let _ = writeln!(w, "lastcall_in_flight {}", drain.in_flight());
    family(w, "lastcall_phase", "gauge", "1 for the current phase.");
    let now = drain.phase();
    for p in Phase::ALL {
        let v = u8::from(p == now);
        let _ = writeln!(w, "lastcall_phase{{phase=\"{}\"}} {v}", p.as_str());
    }
    family(
        w,
        "lastcall_phase_duration_seconds",
        "gauge",
        "How long each phase entered so far lasted (the current one until now).",
    );
    for (p, d) in drain.phase_durations() {
        let _ = writeln!(
            w,
            "lastcall_phase_duration_seconds{{phase=\"{}\"}} {:.3}",
            p.as_str(),
            d.as_secs_f64()
        );
    }
    if let Some(clock) = drain.clock() {
        family(
            w,
            "lastcall_stop_deadline_seconds",
            "gauge",
            "Time left before the orchestrator's SIGKILL.",
        );
        let _ = writeln!(
            w,
            "lastcall_stop_deadline_seconds {:.3}",
            clock.left().as_secs_f64()
        );
    }
    out
}

fn family(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
