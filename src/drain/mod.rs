//! The drain state machine: one explicit phase for the whole process, shared by the
//! supervisor, the health endpoint, the proxy and the admin API.
//!
//! ```text
//! starting ─▶ serving ─▶ unready ─▶ closing ─▶ stopping ─▶ exited
//!  (app not     (all       (health    (new        (signal     (lastcall
//!   ready yet)   normal)    says 503)  requests    plan runs)  exits)
//!                                      get 503)
//! ```
//!
//! Phases only move forward. A stop request (SIGTERM, `POST /drain`, a trigger file) starts
//! the stop clock once; repeating it changes nothing. [`Drain::drive`] walks the drain
//! phases (unready, closing) against their caps from the [`Budget`]; the supervisor owns
//! stopping and exited. Everything that serves traffic asks the machine what to do instead
//! of keeping its own notion of "shutting down", so the health answer, the proxy's 503s and
//! the log line about them can never disagree.

mod probers;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use self::probers::Probers;
use crate::budget::Budget;
use crate::duration;

/// Where the container is in its life. Ordered: a later phase compares greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The app is not ready yet; health answers 503.
    Starting,
    /// Everything is proxied; health answers from the app.
    Serving,
    /// A stop began: health answers 503 so the load balancer lets go; traffic still flows.
    Unready,
    /// New requests get 503; requests in flight finish.
    Closing,
    /// The signal plan runs against the app.
    Stopping,
    /// lastcall is about to exit.
    Exited,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Starting,
        Phase::Serving,
        Phase::Unready,
        Phase::Closing,
        Phase::Stopping,
        Phase::Exited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Serving => "serving",
            Phase::Unready => "unready",
            Phase::Closing => "closing",
            Phase::Stopping => "stopping",
            Phase::Exited => "exited",
        }
    }

    /// Has a stop begun?
    pub fn is_stopping(self) -> bool {
        self >= Phase::Unready
    }

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(i: u8) -> Phase {
        Phase::ALL
            .get(usize::from(i))
            .copied()
            .unwrap_or(Phase::Exited)
    }
}

/// When the stop began and when the orchestrator will SIGKILL.
#[derive(Debug, Clone, Copy)]
pub struct StopClock {
    pub began: Instant,
    pub deadline: Instant,
}

impl StopClock {
    pub fn since(&self) -> Duration {
        self.began.elapsed()
    }

    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The moment `offset` after the stop began.
    pub fn at(&self, offset: Duration) -> Instant {
        self.began + offset
    }
}

/// Knobs of the drain phases that are not part of the timeline itself.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Consecutive 503s each prober must see before unready may end (ALB default: 2).
    pub unhealthy_threshold: u32,
    /// With a proxy: unready also ends when no non-health request arrived for this long
    /// after the first failed probe.
    pub quiet_period: Option<Duration>,
    /// Begin in `starting` (a proxy waits for the app) instead of `serving`.
    pub start_in_starting: bool,
    /// Created when the stop begins, whatever began it (seed 000's flag file for apps
    /// that check one); it holds what began the stop.
    pub drain_file: Option<PathBuf>,
    /// A health endpoint (or the proxy) tells the load balancer; without one, unready is
    /// only `--pre-stop-delay`, and the logs say so.
    pub health: bool,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            unhealthy_threshold: 2,
            quiet_period: None,
            start_in_starting: false,
            drain_file: None,
            health: true,
        }
    }
}

/// What a health probe should be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// Serving: answer from the app (or 200 without an app health check).
    Pass,
    /// Answer 503: starting, or a stop began.
    Fail,
}

/// See [`Drain::settled_at`]: measured with HAProxy under load, the last requests arrive
/// within a few milliseconds of the last 503 probe; this leaves ample room.
const SETTLE: Duration = Duration::from_millis(250);
const SETTLE_MAX: Duration = Duration::from_secs(1);

/// Handle to the one drain state machine; cheap to clone.
#[derive(Debug, Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    budget: Budget,
    opts: DrainOptions,
    phase: watch::Sender<Phase>,
    /// The phase again, for readers on the request path: a load of a byte that changes a
    /// handful of times per process, where the watch channel's borrow takes a lock that
    /// every proxy thread would contend on.
    now: AtomicU8,
    clock: OnceLock<StopClock>,
    stop_reason: OnceLock<String>,
    stop_requested: Notify,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Wakes the driver when a probe or a request might have ended unready early.
    activity: Notify,
    state: Mutex<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    probers: Probers,
    last_request: Option<Instant>,
    /// When each phase was entered, for logs and metrics.
    entered: [Option<Instant>; 6],
}

/// Decrements the in-flight count when the request (and its body) is done.
#[derive(Debug)]
pub struct InFlight {
    drain: Drain,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.drain.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drain.inner.idle.notify_waiters();
        }
    }
}

impl Drain {
    pub fn new(budget: Budget, opts: DrainOptions) -> Drain {
        let first = if opts.start_in_starting {
            Phase::Starting
        } else {
            Phase::Serving
        };
        let (phase, _) = watch::channel(first);
        let mut shared = Shared::default();
        shared.entered[first.index()] = Some(Instant::now());
        Drain {
            inner: Arc::new(Inner {
                budget,
                opts,
                phase,
                now: AtomicU8::new(first as u8),
                clock: OnceLock::new(),
                stop_reason: OnceLock::new(),
                stop_requested: Notify::new(),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                activity: Notify::new(),
                state: Mutex::new(shared),
            }),
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    pub fn phase(&self) -> Phase {
        // SeqCst pairs with the store in `enter` and the in-flight count: see
        // `start_request`.
        Phase::from_index(self.inner.now.load(Ordering::SeqCst))
    }

    /// Follow phase changes (the proxy closes connections on `closing`).
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.inner.phase.subscribe()
    }

    /// The stop clock, once a stop began.
    pub fn clock(&self) -> Option<StopClock> {
        self.inner.clock.get().copied()
    }

    /// What started the stop (`SIGTERM`, `POST /drain`, …), once it began.
    pub fn stop_reason(&self) -> Option<&str> {
        self.inner.stop_reason.get().map(String::as_str)
    }

    /// How long each phase lasted so far (the current one until now).
    pub fn phase_durations(&self) -> Vec<(Phase, Duration)> {
        let entered = self.lock().entered;
        let now = Instant::now();
        let mut out = Vec::new();
        for (i, start) in entered.iter().enumerate() {
            let Some(start) = start else { continue };
            let end = entered[i + 1..]
                .iter()
                .flatten()
                .next()
                .copied()
                .unwrap_or(now);
            out.push((Phase::ALL[i], end.saturating_duration_since(*start)));
        }
        out
    }

    /// Start the stop clock. Returns false when a stop had already begun: the clock is
    /// never restarted, so a repeated SIGTERM cannot push the deadline out.
    pub fn request_stop(&self, reason: &str) -> bool {
        let now = Instant::now();
        let clock = StopClock {
            began: now,
            deadline: now + self.inner.budget.stop_timeout,
        };
        if self.inner.clock.set(clock).is_err() {
            tracing::info!("{reason} again: the stop is already under way");
            return false;
        }
        let _ = self.inner.stop_reason.set(reason.to_string());
        crate::log::set_clock(clock);
        tracing::info!(
            "stop began ({reason}); deadline in {}",
            duration::fmt(self.inner.budget.stop_timeout)
        );
        // Written here, before anything else of the stop happens, so the file exists
        // before the app can get any signal of the plan.
        if let Some(path) = &self.inner.opts.drain_file
            && let Err(e) = std::fs::write(path, format!("{reason}\n"))
        {
            tracing::warn!("could not create --drain-file {}: {e}", path.display());
        }
        // Every waiter: the driver, and whoever acts on a stop (the drain file). Each one
        // created its `Notified` before checking the clock, so none can miss this.
        self.inner.stop_requested.notify_waiters();
        true
    }

    /// Wait until a stop is requested.
    pub async fn stop_requested(&self) {
        loop {
            let notified = self.inner.stop_requested.notified();
            if self.clock().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// The app passed its readiness check: starting → serving.
    pub fn mark_ready(&self) {
        if self.phase() == Phase::Starting {
            self.enter(Phase::Serving, "the app is ready");
        }
    }

    /// Move forward to `next` (never back) and log why.
    pub fn enter(&self, next: Phase, why: &str) {
        let moved = self.inner.phase.send_if_modified(|p| {
            if next > *p {
                *p = next;
                self.inner.now.store(next as u8, Ordering::SeqCst);
                true
            } else {
                false
            }
        });
        if moved {
            self.lock().entered[next.index()] = Some(Instant::now());
            crate::log::set_phase(next);
            tracing::info!("phase {}: {why}", next.as_str());
        }
    }

    /// Record a health probe from `peer` and say how to answer it.
    pub fn probe(&self, peer: IpAddr) -> ProbeAnswer {
        let phase = self.phase();
        let now = Instant::now();
        // The clock is set the instant the stop signal is read, a moment before the driver
        // task enters unready: answer 503 from that instant on.
        let failing = phase.is_stopping() || self.inner.clock.get().is_some();
        self.lock().probers.record(peer, now, failing);
        if failing {
            self.inner.activity.notify_one();
            ProbeAnswer::Fail
        } else if phase == Phase::Starting {
            ProbeAnswer::Fail
        } else {
            ProbeAnswer::Pass
        }
    }

    /// Count a request in flight until the returned guard is dropped.
    ///
    /// The caller reads the phase *after* this: the count and the phase are both SeqCst,
    /// so either closing sees this request in flight and waits for it, or the request sees
    /// closing and is refused.
    pub fn start_request(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        // Arrival times only matter once a stop began (quiet period, settling); before
        // that, the request path takes no lock and reads no clock.
        if self.inner.clock.get().is_some() {
            self.lock().last_request = Some(Instant::now());
        }
        InFlight {
            drain: self.clone(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Wait until nothing is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// When the probers have let go, the load balancer may still have requests on the way
    /// that it dispatched before it read the last 503. Unready ends once no request came
    /// for [`SETTLE`], and at the latest [`SETTLE_MAX`] after the let-go.
    fn settled_at(&self, let_go: Instant) -> Instant {
        let last = self.lock().last_request;
        let quiet = last.map_or(let_go, |r| r + SETTLE);
        quiet.min(let_go + SETTLE_MAX)
    }

    /// The moment unready may end for lack of traffic, if a quiet period is set.
    fn quiet_until(&self) -> Option<Instant> {
        let quiet = self.inner.opts.quiet_period?;
        let st = self.lock();
        let first = st.probers.first_failed()?;
        Some(st.last_request.map_or(first, |r| r.max(first)) + quiet)
    }

    /// Walk the drain phases once a stop was requested: unready until the load balancer
    /// let go (or its cap), closing until nothing is in flight (or its cap), then hand
    /// over to the supervisor by entering `stopping`.
    pub async fn drive(&self) {
        self.stop_requested().await;
        let Some(clock) = self.clock() else { return };
        let budget = self.inner.budget.clone();
        if !budget.unready_cap.is_zero() {
            self.enter(
                Phase::Unready,
                if self.inner.opts.health {
                    "health answers 503 so the load balancer lets go"
                } else {
                    "waiting --pre-stop-delay before the app is signalled (a preStop sleep)"
                },
            );
            let cap = clock.at(budget.unready_cap);
            let mut let_go: Option<Instant> = None;
            let why = loop {
                let woken = self.inner.activity.notified();
                let now = Instant::now();
                let mut wake = cap;
                let threshold = self.inner.opts.unhealthy_threshold;
                // Bound first: the lock must be released before `settled_at` takes it.
                let verdict = self.lock().probers.let_go(now, threshold);
                match verdict {
                    (Some(how), _) => {
                        let settled = self.settled_at(*let_go.get_or_insert(now));
                        if now >= settled {
                            break how.why();
                        }
                        wake = wake.min(settled);
                    }
                    (None, Some(recheck)) => wake = wake.min(recheck),
                    (None, None) => {}
                }
                if now >= cap {
                    break if self.inner.opts.health {
                        "unready reached its cap (deregistration delay)"
                    } else {
                        "the pre-stop delay is over"
                    };
                }
                let quiet = self.quiet_until();
                if quiet.is_some_and(|q| now >= q) {
                    break "no traffic for the quiet period";
                }
                let wake = quiet.map_or(wake, |q| q.min(wake));
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep_until(wake) => {}
                }
            };
            tracing::info!("unready ends: {why}");
        }
        if !budget.closing_cap.is_zero() {
            self.enter(
                Phase::Closing,
                "new requests get 503, in-flight requests finish",
            );
            let cap = clock.at(budget.unready_cap + budget.closing_cap);
            tokio::select! {
                _ = self.idle() => tracing::info!("closing ends: nothing in flight"),
                _ = tokio::time::sleep_until(cap) => tracing::info!(
                    "closing reached its cap with {} request(s) in flight", self.in_flight()
                ),
            }
        }
        self.enter(Phase::Stopping, "the signal plan runs");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A poisoned lock only means another thread panicked mid-update of plain counters;
        // the data is still usable and PID 1 must keep going.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::BudgetInput;

    fn drain(unready: bool, closing: bool, quiet: Option<Duration>) -> Drain {
        let budget = Budget::new(BudgetInput {
            unready,
            closing,
            ..BudgetInput::default()
        })
        .unwrap();
        Drain::new(
            budget,
            DrainOptions {
                quiet_period: quiet,
                ..DrainOptions::default()
            },
        )
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test(start_paused = true)]
    async fn unready_ends_after_threshold_probes_from_every_prober() {
        let d = drain(true, false, None);
        assert_eq!(d.probe(ip(1)), ProbeAnswer::Pass);
        assert_eq!(d.probe(ip(2)), ProbeAnswer::Pass);
        let driver = tokio::spawn({
            let d = d.clone();
            async move { d.drive().await }
        });
        assert!(d.request_stop("SIGTERM"));
        assert!(!d.request_stop("SIGTERM"));
        tokio::task::yield_now().await;
        assert_eq!(d.phase(), Phase::Unready);
        for _ in 0..2 {
            assert_eq!(d.probe(ip(1)), ProbeAnswer::Fail);
        }
        tokio::task::yield_now().await;
        assert_eq!(d.phase(), Phase::Unready, "prober 2 has not let go yet");
        d.probe(ip(2));
        tokio::task::yield_now().await;
        assert_eq!(d.phase(), Phase::Unready);
        d.probe(ip(2));
        driver.await.unwrap();
        assert_eq!(d.phase(), Phase::Stopping);
        let clock = d.clock().unwrap();
        assert!(
            clock.since() < Duration::from_millis(1),
            "no cap was waited for"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unready_lets_requests_already_on_the_way_arrive_after_the_last_probe() {
        let d = drain(true, true, None);
        d.request_stop("SIGTERM");
        let driver = tokio::spawn({
            let d = d.clone();
            async move { d.drive().await }
        });
        tokio::task::yield_now().await;
        let began = Instant::now();
        drop(d.start_request());
        d.probe(ip(1));
        d.probe(ip(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(d.phase(), Phase::Unready, "a request came 0 ms ago");
        drop(d.start_request());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(d.phase(), Phase::Unready, "a request came 200 ms ago");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(d.phase(), Phase::Stopping);
        assert_eq!(began.elapsed(), Duration::from_millis(400));
        driver.await.unwrap();
    }

    /// ECS deregisters the target, the ALB stops checking it, and SIGTERM comes after
    /// the deregistration delay: a prober that fell silent has let go.
    #[tokio::test(start_paused = true)]
    async fn unready_ends_when_every_prober_fell_silent() {
        let cap = drain(true, false, None).budget().unready_cap;
        let s = Duration::from_secs;
        // (probe times, stop time, how long unready lasts, why it ended)
        let table: [(&[u64], u64, Duration, &str); 5] = [
            // every 2 s, then silent: 3 missed probes after the last one, at 10 s
            (&[0, 2, 4], 20, s(0), "silent before the stop"),
            (&[0, 2, 4], 5, s(5), "falls silent during unready"),
            // a single probe shows no rhythm: nothing is known, the cap holds
            (&[0], 20, cap, "one probe"),
            // an interval longer than a minute's memory: forgotten, not silent
            (&[0, 30], 31, cap, "slow prober"),
            // probes close together are no rhythm shorter than SILENT_MIN
            (&[0, 0], 1, s(2), "3 s floor"),
        ];
        for (probes, stop, lasts, case) in table {
            let d = drain(true, false, None);
            let t0 = Instant::now();
            for at in probes {
                tokio::time::sleep_until(t0 + s(*at)).await;
                d.probe(ip(1));
            }
            tokio::time::sleep_until(t0 + s(stop)).await;
            d.request_stop("SIGTERM");
            d.drive().await;
            assert_eq!(d.clock().unwrap().since(), lasts, "{case}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unready_without_probers_waits_for_its_cap() {
        let d = drain(true, false, None);
        d.request_stop("SIGTERM");
        d.drive().await;
        let since = d.clock().unwrap().since();
        assert_eq!(since, d.budget().unready_cap);
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_period_ends_unready_and_closing_waits_for_in_flight() {
        let d = drain(true, true, Some(Duration::from_secs(1)));
        let req = d.start_request();
        d.request_stop("SIGTERM");
        let driver = tokio::spawn({
            let d = d.clone();
            async move { d.drive().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        d.probe(ip(1));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(d.phase(), Phase::Closing);
        assert_eq!(d.in_flight(), 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(req);
        driver.await.unwrap();
        assert_eq!(d.phase(), Phase::Stopping);
        let since = d.clock().unwrap().since();
        assert!(
            since >= Duration::from_millis(3400) && since < Duration::from_millis(3500),
            "{since:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn closing_is_capped() {
        let d = drain(false, true, None);
        let _stuck = d.start_request();
        d.request_stop("POST /drain");
        d.drive().await;
        assert_eq!(d.clock().unwrap().since(), d.budget().closing_cap);
        assert_eq!(d.phase(), Phase::Stopping);
    }

    #[test]
    fn phases_never_go_back() {
        let d = drain(false, false, None);
        d.enter(Phase::Stopping, "test");
        d.enter(Phase::Unready, "test");
        assert_eq!(d.phase(), Phase::Stopping);
        assert_eq!(d.probe(ip(1)), ProbeAnswer::Fail);
    }
}
