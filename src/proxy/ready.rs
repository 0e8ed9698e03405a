//! Starting → serving: poll the app until it answers, so a new task gets no traffic (its
//! health answers 503) before the app can take it. Readiness is the app's own health path
//! answering 2xx, or without one a TCP connect to the upstream address.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

use crate::drain::{Drain, Phase};
use crate::duration;
use crate::health::HealthCheck;

/// How often the app is asked while it starts; a start takes seconds, this is noise.
const POLL: Duration = Duration::from_millis(100);
/// A TCP connect that takes longer than this counts as not ready.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `health` is the app's own health check, the same one health probes pass through.
pub(crate) async fn wait(drain: Drain, upstream: SocketAddr, health: HealthCheck, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if drain.phase() != Phase::Starting {
            return;
        }
        let last = if let Some(uri) = health.upstream() {
            match health.ask().await {
                Ok(status) if status.is_success() => None,
                Ok(status) => Some(format!("{uri} answered {status}")),
                Err(why) => Some(why),
            }
        } else {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("connect to {upstream}: {e}")),
                Err(_) => Some(format!(
                    "connect to {upstream}: no answer within {}",
                    duration::fmt(CONNECT_TIMEOUT)
                )),
            }
        };
        let Some(last) = last else {
            drain.mark_ready();
            return;
        };
        if Instant::now() >= deadline {
            tracing::error!(
                "the app was not ready within --ready-timeout {} ({last}); stopping",
                duration::fmt(limit)
            );
            drain.request_stop("--ready-timeout");
            return;
        }
    }
}
