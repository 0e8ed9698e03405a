//! The HTTP drain proxy (issue 3): stands in front of the app on `--listen` and follows the
//! drain machine's phases. Not built yet: `--listen` is refused with a clear message.

use std::net::SocketAddr;
use std::time::Duration;

use crate::drain::Drain;
use crate::{addr, duration};

/// Flags of the drain proxy, part of `lastcall run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Listen here and proxy HTTP to --upstream, draining it on stop (turns the proxy on).
    #[arg(long, env = "LASTCALL_LISTEN", value_name = "ADDR", value_parser = addr::listen, requires = "upstream")]
    pub listen: Option<SocketAddr>,
    /// Where the app listens.
    #[arg(long, env = "LASTCALL_UPSTREAM", value_name = "ADDR", value_parser = addr::connect)]
    pub upstream: Option<SocketAddr>,
    /// The app's own health path; without it, readiness is a TCP connect to --upstream.
    #[arg(long, env = "LASTCALL_UPSTREAM_HEALTH_PATH", value_name = "PATH")]
    pub upstream_health_path: Option<String>,
    /// How long the app may take to become ready before lastcall gives up.
    #[arg(long, env = "LASTCALL_READY_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = duration::arg)]
    pub ready_timeout: Duration,
    /// Unready also ends when no request came for this long after the first failed probe.
    #[arg(long, env = "LASTCALL_QUIET_PERIOD", value_name = "DURATION", default_value = "1s", value_parser = duration::arg)]
    pub quiet_period: Duration,
    /// Cap of the closing phase (default: derived from --stop-timeout).
    #[arg(long, env = "LASTCALL_DRAIN_TIMEOUT", value_name = "DURATION", value_parser = duration::arg)]
    pub drain_timeout: Option<Duration>,
}

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--listen is not available yet: the drain proxy is being built (issue 3)")]
    NotBuilt,
}

/// Bind the listener and start serving; returns once the proxy runs in the background.
pub async fn start(args: &ProxyArgs, health_path: &str, drain: &Drain) -> Result<(), ProxyError> {
    let _ = (args, health_path, drain);
    Err(ProxyError::NotBuilt)
}
