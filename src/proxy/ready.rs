//! Starting → serving: poll the app until it answers, so a new task gets no traffic (its
//! health answers 503) before the app can take it. Readiness is the app's own health path
//! answering 2xx, or without one a TCP connect to the upstream address.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

use crate::drain::{Drain, Phase};
use crate::duration;

/// How often the app is asked while it starts; a start takes seconds, this is noise.
const POLL: Duration = Duration::from_millis(100);
/// One readiness check that takes longer than this counts as not ready.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn wait(drain: Drain, upstream: SocketAddr, health: Option<Uri>, limit: Duration) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let deadline = Instant::now() + limit;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if drain.phase() != Phase::Starting {
            return;
        }
        let check = async {
            match &health {
                Some(uri) => match client.get(uri.clone()).await {
                    Ok(resp) if resp.status().is_success() => Ok(()),
                    Ok(resp) => Err(format!("{uri} answered {}", resp.status())),
                    Err(e) => Err(format!("{uri}: {e}")),
                },
                None => TcpStream::connect(upstream)
                    .await
                    .map(drop)
                    .map_err(|e| format!("connect to {upstream}: {e}")),
            }
        };
        let last = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(())) => {
                drain.mark_ready();
                return;
            }
            Ok(Err(why)) => why,
            Err(_) => format!("no answer within {}", duration::fmt(CHECK_TIMEOUT)),
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
