//! Steady load through the LB: a constant arrival rate (an open model: a request is sent on
//! schedule whether or not earlier ones have answered, as real users do), for the whole
//! drill, every request recorded — when it started and ended, which target the LB chose,
//! and its status or the cause of its failure.
//!
//! Bounded in time (the caller stops it) and in concurrency (at most [`MAX_OUTSTANDING`]
//! requests open; past that, sending waits, so a hung target cannot grow memory without
//! end). Requests still open when the load stops are awaited, each bounded by the LB's
//! request timeout, so every request sent has an outcome: `sent = ok + failed`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::events::Clock;
use super::lb::{Backend, Lb, Outcome};

/// Why a request failed. Every failed request has exactly one cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// Connection refused: nothing listened on the target's port any more.
    Refused,
    /// The connection was reset under the request.
    Reset,
    /// The connection was closed before a response (keep-alive race, or the app exited).
    Closed,
    /// No response within the request timeout.
    Timeout,
    /// The target answered 5xx (lastcall's closing phase answers 503).
    #[serde(rename = "5xx")]
    Status5xx,
    /// The LB had no target to route to and answered 503 itself.
    NoTarget,
    /// Anything else.
    Other,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Refused => "refused",
            Cause::Reset => "reset",
            Cause::Closed => "closed",
            Cause::Timeout => "timeout",
            Cause::Status5xx => "5xx",
            Cause::NoTarget => "no-target",
            Cause::Other => "other",
        }
    }

    pub const ALL: [Cause; 7] = [
        Cause::Refused,
        Cause::Reset,
        Cause::Closed,
        Cause::Timeout,
        Cause::Status5xx,
        Cause::NoTarget,
        Cause::Other,
    ];
}

/// One request, start to end.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub start_ms: f64,
    pub end_ms: f64,
    /// `task` or `peer`; absent when the LB had no target.
    pub backend: Option<Backend>,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// Why it failed; absent for a successful request.
    pub cause: Option<Cause>,
}

impl Record {
    pub fn ok(&self) -> bool {
        self.cause.is_none()
    }
}

/// Counts over a list of records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub failed_by_cause: BTreeMap<&'static str, u64>,
}

impl Counts {
    pub fn of(records: &[Record]) -> Counts {
        let mut c = Counts::default();
        for r in records {
            c.sent += 1;
            match r.cause {
                None => c.ok += 1,
                Some(cause) => {
                    c.failed += 1;
                    *c.failed_by_cause.entry(cause.as_str()).or_default() += 1;
                }
            }
        }
        c
    }
}

/// At most this many requests open at once.
pub const MAX_OUTSTANDING: usize = 4096;

/// The running load; [`Load::finish`] stops it and returns every record.
#[derive(Debug)]
pub struct Load {
    records: Arc<Mutex<Vec<Record>>>,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Start sending `rate` requests per second through `lb`.
    pub fn start(lb: Arc<Lb>, rate: f64, clock: Clock) -> Load {
        let records = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let recs = records.clone();
        let handle = tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(MAX_OUTSTANDING));
            let mut open = JoinSet::new();
            let mut next = Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => {}
                    _ = stopped.changed() => break,
                }
                if *stopped.borrow() {
                    break;
                }
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (lb, recs) = (lb.clone(), recs.clone());
                open.spawn(async move {
                    let start = clock.now();
                    let (backend, outcome) = lb.forward().await;
                    let end = clock.now();
                    drop(slot);
                    let (status, cause) = match outcome {
                        Outcome::Ok(s) => (Some(s), None),
                        Outcome::Failed(c, s) => (s, Some(c)),
                    };
                    let rec = Record {
                        start_ms: start,
                        end_ms: end,
                        backend,
                        status,
                        cause,
                    };
                    match recs.lock() {
                        Ok(mut r) => r.push(rec),
                        Err(p) => p.into_inner().push(rec),
                    }
                });
                // Reap finished requests as we go so the set stays small.
                while open.try_join_next().is_some() {}
                next += period;
                // After a stall (a noisy machine), catch up with a burst rather than
                // silently sending fewer requests than the rate promised.
            }
            while open.join_next().await.is_some() {}
        });
        Load {
            records,
            stop,
            handle,
        }
    }

    /// Requests sent so far that have ended, and how many failed (for the progress bar).
    pub fn progress(&self) -> (u64, u64) {
        let r = match self.records.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        let failed = r.iter().filter(|r| !r.ok()).count() as u64;
        (r.len() as u64, failed)
    }

    /// Stop sending, wait for the requests still open, and return every record by start.
    pub async fn finish(self) -> Vec<Record> {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        let mut v = match self.records.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        };
        v.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        v
    }
}
