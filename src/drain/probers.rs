//! Who health-checks this target, and whether they have let go of it.
//!
//! Every load balancer node probes on its own (an ALB has one per zone, often more), so
//! lastcall keeps one record per prober address: when it last probed, how often it
//! probes, and how many 503s in a row it has seen. The load balancer has let go when
//! either
//!
//! - every prober still checking has seen the unhealthy threshold of 503s in a row: the
//!   target is marked unhealthy and gets no new requests (the seed-000 path, and
//!   Kubernetes' readiness probe); or
//! - every prober that checked at a steady rhythm stopped checking: the target was
//!   deregistered, which is what ECS does before it sends SIGTERM, and a draining target
//!   gets no health checks. No 503 probe will come; waiting for one would only sit out
//!   the unready cap.
//!
//! With no prober ever seen, nothing is known, and unready lasts its cap.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// A prober is forgotten when it has not probed for this long: the load balancer node is
/// gone, and waiting for it would only hold the drain until its cap.
const PROBER_MEMORY: Duration = Duration::from_secs(60);

/// A prober that checked at a steady rhythm and then missed this many of its probes has
/// stopped checking this target.
const SILENT_INTERVALS: u32 = 3;
/// ... and at least this long: two probes close together (a person with curl, a prober's
/// retry) say nothing about a rhythm. Real intervals are 1 s (Kubernetes' minimum), 2 s
/// (HAProxy's default), 5–300 s (ALB).
const SILENT_MIN: Duration = Duration::from_secs(3);

/// Records kept at most. The health path may be reachable by any client (through the
/// proxy's listener); a flood of distinct addresses must not grow memory without bound.
/// The least recently seen is dropped to make room.
const MAX_PROBERS: usize = 1024;

/// Why the load balancer is known to have let go of this target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LetGo {
    /// Every prober still checking has seen the unhealthy threshold of 503s.
    Threshold,
    /// Every prober stopped checking: the target was deregistered.
    Silent,
}

impl LetGo {
    pub(super) fn why(self) -> &'static str {
        match self {
            LetGo::Threshold => "every prober has seen the unhealthy threshold of 503s",
            LetGo::Silent => {
                "the load balancer stopped health-checking this target (it was deregistered)"
            }
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Probers {
    by_addr: HashMap<IpAddr, Prober>,
    first_failed: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Prober {
    last_seen: Instant,
    /// The gap between its last two probes: how often it checks.
    interval: Option<Duration>,
    failed_in_a_row: u32,
}

impl Prober {
    /// From when a missing probe means this prober stopped checking; `None` while its
    /// rhythm is unknown (a single probe).
    fn silent_from(&self) -> Option<Instant> {
        let interval = self.interval?;
        Some(self.last_seen + (interval * SILENT_INTERVALS).max(SILENT_MIN))
    }

    /// Still checking this target: seen lately, and not past its rhythm.
    fn active(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) < PROBER_MEMORY
            && self.silent_from().is_none_or(|s| now < s)
    }

    /// When `active` turns false if no other probe comes.
    fn expires(&self) -> Instant {
        let memory = self.last_seen + PROBER_MEMORY;
        self.silent_from().map_or(memory, |s| s.min(memory))
    }
}

impl Probers {
    /// A probe from `peer` at `now`, answered 503 when `failed`.
    pub(super) fn record(&mut self, peer: IpAddr, now: Instant, failed: bool) {
        if self.by_addr.len() >= MAX_PROBERS
            && !self.by_addr.contains_key(&peer)
            && let Some(oldest) = self
                .by_addr
                .iter()
                .min_by_key(|(_, p)| p.last_seen)
                .map(|(addr, _)| *addr)
        {
            self.by_addr.remove(&oldest);
        }
        let prober = match self.by_addr.entry(peer) {
            Entry::Occupied(seen) => {
                let prober = seen.into_mut();
                prober.interval = Some(now.duration_since(prober.last_seen));
                prober.last_seen = now;
                prober
            }
            Entry::Vacant(new) => new.insert(Prober {
                last_seen: now,
                interval: None,
                failed_in_a_row: 0,
            }),
        };
        if failed {
            prober.failed_in_a_row = prober.failed_in_a_row.saturating_add(1);
            self.first_failed.get_or_insert(now);
        } else {
            prober.failed_in_a_row = 0;
        }
    }

    /// When the first probe was answered 503.
    pub(super) fn first_failed(&self) -> Option<Instant> {
        self.first_failed
    }

    /// Has the load balancer let go (see the module docs)? Also returns when to look again
    /// if the answer may change without another probe (a prober falling silent).
    pub(super) fn let_go(&self, now: Instant, threshold: u32) -> (Option<LetGo>, Option<Instant>) {
        let (mut active, mut failed, mut rhythm) = (false, true, false);
        let mut recheck: Option<Instant> = None;
        for p in self.by_addr.values() {
            rhythm |= p.interval.is_some();
            if p.active(now) {
                active = true;
                failed &= p.failed_in_a_row >= threshold;
                let at = p.expires();
                recheck = Some(recheck.map_or(at, |r| r.min(at)));
            }
        }
        match (active, failed, rhythm) {
            (true, true, _) => (Some(LetGo::Threshold), None),
            (true, false, _) => (None, recheck),
            (false, _, true) => (Some(LetGo::Silent), None),
            (false, _, false) => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_addresses_keeps_the_most_recent_probers() {
        let t0 = Instant::now();
        let mut probers = Probers::default();
        for i in 0..(MAX_PROBERS as u32 + 10) {
            let at = t0 + Duration::from_millis(u64::from(i));
            probers.record(IpAddr::from(i.to_be_bytes()), at, false);
        }
        assert_eq!(probers.by_addr.len(), MAX_PROBERS);
        assert!(
            !probers
                .by_addr
                .contains_key(&IpAddr::from(0u32.to_be_bytes()))
        );
        let newest = MAX_PROBERS as u32 + 9;
        assert!(
            probers
                .by_addr
                .contains_key(&IpAddr::from(newest.to_be_bytes()))
        );
    }
}
