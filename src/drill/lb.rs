//! An in-process load balancer that behaves like an ALB target group (or a Kubernetes
//! Service) as far as a stop is concerned:
//!
//! - two targets, round robin: the task being stopped and an always-healthy peer (the other
//!   task of the service), so capacity remains and only the stop can cause failures;
//! - keep-alive connections to each target, reused from a pool, as ALB keeps them (this is
//!   where the keep-alive race happens when a target closes an idle connection);
//! - active health checks with interval, timeout, unhealthy and healthy thresholds, each on
//!   a fresh connection; success is a 200 (ALB's default matcher);
//! - deregistration: no new request after a propagation delay (ALB nodes and kube-proxy
//!   learn of it late), requests in flight continue;
//! - **never retries**: a failed request is a failed request, as with ALB.
//!
//! Health-check results act at once on routing for an ALB (every ALB node probes on its own
//! and acts on what it saw), and after the propagation delay for Kubernetes (the kubelet's
//! readiness result travels through the API server to every node's endpoints).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::events::{EventKind, Events};
use super::load::Cause;
use crate::duration;

/// Which target a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Task,
    Peer,
}

/// How the LB answered one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok(u16),
    Failed(Cause, Option<u16>),
}

/// Health-check settings (already scaled).
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// How long a failed check takes to stop routing: zero for ALB, the endpoint
    /// propagation delay for Kubernetes.
    pub removal_delay: Duration,
    /// Who probes, for the event label ("ALB", "kubelet readiness probe").
    pub prober: &'static str,
}

#[derive(Debug, Default)]
struct TargetState {
    routable: bool,
    probing: bool,
    healthy: bool,
    fails: u32,
    passes: u32,
    /// When routing stops because of a deregistration or a failed check (the earliest wins).
    remove_at: Option<Instant>,
    last_ok: Option<Instant>,
}

#[derive(Debug)]
struct Target {
    backend: Backend,
    addr: SocketAddr,
    state: Mutex<TargetState>,
}

impl Target {
    fn lock(&self) -> MutexGuard<'_, TargetState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// The load balancer. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Lb {
    targets: [Target; 2],
    next: AtomicUsize,
    client: Client<HttpConnector, Empty<Bytes>>,
    request_timeout: Duration,
    events: Events,
}

impl Lb {
    pub fn new(
        task: SocketAddr,
        peer: SocketAddr,
        request_timeout: Duration,
        events: Events,
    ) -> Lb {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(request_timeout));
        let client = Client::builder(TokioExecutor::new())
            // ALB does not retry; hyper's pool would silently resend a request whose pooled
            // connection was closed under it, hiding exactly the race the drill looks for.
            .retry_canceled_requests(false)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let target = |backend, addr| Target {
            backend,
            addr,
            state: Mutex::new(TargetState {
                routable: true,
                probing: true,
                healthy: true,
                ..TargetState::default()
            }),
        };
        Lb {
            targets: [target(Backend::Task, task), target(Backend::Peer, peer)],
            next: AtomicUsize::new(0),
            client,
            request_timeout,
            events,
        }
    }

    fn task(&self) -> &Target {
        &self.targets[0]
    }

    /// Does the LB still send new requests to the task?
    pub fn routes_to_task(&self) -> bool {
        self.refresh(self.task());
        self.task().lock().routable
    }

    /// When the task last answered a request successfully.
    pub fn task_last_ok(&self) -> Option<Instant> {
        self.task().lock().last_ok
    }

    /// Stop routing to the task `after` from now (deregistration or endpoint removal);
    /// stop health-checking it when `stop_probing` (ALB does not check draining targets).
    pub fn remove_task(&self, after: Duration, stop_probing: bool) {
        let at = Instant::now() + after;
        {
            let mut st = self.task().lock();
            st.remove_at = Some(st.remove_at.map_or(at, |t| t.min(at)));
            if stop_probing {
                st.probing = false;
            }
        }
        self.refresh(self.task());
    }

    /// Apply a scheduled removal whose time has come. Called on every routing decision and
    /// by [`Lb::watch`], so the event is recorded at the moment routing stopped.
    fn refresh(&self, t: &Target) {
        let mut st = t.lock();
        if st.routable
            && let Some(at) = st.remove_at
            && Instant::now() >= at
        {
            st.routable = false;
            drop(st);
            let label = if t.backend == Backend::Task {
                "LB stopped routing to the task"
            } else {
                "LB stopped routing to the peer"
            };
            self.events
                .add_at(self.events.clock().ms(at), EventKind::RoutingStopped, label);
        }
    }

    /// Record "routing stopped" on time even when no request comes to notice it.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            self.refresh(self.task());
        }
    }

    fn pick(&self) -> Option<&Target> {
        for _ in 0..self.targets.len() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
            let t = &self.targets[i];
            self.refresh(t);
            let st = t.lock();
            if st.routable && st.healthy {
                return Some(t);
            }
        }
        None
    }

    /// Send one request through the LB: pick a target, forward, never retry.
    pub async fn forward(&self) -> (Option<Backend>, Outcome) {
        let Some(target) = self.pick() else {
            // ALB answers 503 itself when a target group has no target to route to.
            return (None, Outcome::Failed(Cause::NoTarget, Some(503)));
        };
        let outcome = self.send(target).await;
        if matches!(outcome, Outcome::Ok(_)) {
            target.lock().last_ok = Some(Instant::now());
        }
        (Some(target.backend), outcome)
    }

    async fn send(&self, target: &Target) -> Outcome {
        let uri = format!("http://{}/", target.addr);
        let req = match Request::get(uri).body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(_) => return Outcome::Failed(Cause::Other, None),
        };
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| classify(&e))?;
            let status = resp.status().as_u16();
            resp.into_body()
                .collect()
                .await
                .map_err(|e| classify_hyper(&e))?;
            Ok::<u16, Cause>(status)
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Err(_) => Outcome::Failed(Cause::Timeout, None),
            Ok(Err(cause)) => Outcome::Failed(cause, None),
            Ok(Ok(status)) if status >= 500 => Outcome::Failed(Cause::Status5xx, Some(status)),
            Ok(Ok(status)) => Outcome::Ok(status),
        }
    }

    /// Health-check the task until the drill ends.
    pub async fn health_checks(self: Arc<Self>, hc: HealthCheck) {
        let task = self.task();
        let mut tick = tokio::time::interval(hc.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !task.lock().probing {
                return;
            }
            let result = probe(task.addr, &hc.path, hc.timeout).await;
            let mut st = task.lock();
            if !st.probing {
                return;
            }
            match result {
                Ok(()) => {
                    st.fails = 0;
                    st.passes = st.passes.saturating_add(1);
                    if !st.healthy && st.passes >= hc.healthy_threshold {
                        st.healthy = true;
                    }
                }
                Err(why) => {
                    st.passes = 0;
                    st.fails = st.fails.saturating_add(1);
                    if st.healthy && st.fails >= hc.unhealthy_threshold {
                        let removal = hc.removal_delay;
                        if removal.is_zero() {
                            st.healthy = false;
                        }
                        drop(st);
                        self.events.add(
                            EventKind::Unhealthy,
                            format!(
                                "{} saw {} failed checks in a row ({why})",
                                hc.prober, hc.unhealthy_threshold
                            ),
                        );
                        self.remove_task(removal, false);
                    }
                }
            }
        }
    }
}

/// One health check on a fresh connection; Ok only for a 200 within the timeout.
async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| io_cause(&e))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| io_cause(&e))?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.contains(&b'\n') {
            let n = stream.read(&mut chunk).await.map_err(|e| io_cause(&e))?;
            if n == 0 {
                return Err("closed".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let status = line.split(' ').nth(1).unwrap_or("?").to_string();
        if status == "200" { Ok(()) } else { Err(status) }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout {}", duration::fmt(timeout))),
    }
}

fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".to_string(),
        std::io::ErrorKind::ConnectionReset => "reset".to_string(),
        _ => e.kind().to_string(),
    }
}

/// Map a client error to the cause a user can act on.
fn classify(e: &hyper_util::client::legacy::Error) -> Cause {
    if let Some(io) = find_io(e) {
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => Cause::Refused,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Cause::Reset,
            std::io::ErrorKind::TimedOut => Cause::Timeout,
            _ => Cause::Other,
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return classify_hyper(h);
        }
        source = s.source();
    }
    if e.is_connect() {
        Cause::Refused
    } else {
        Cause::Other
    }
}

fn classify_hyper(e: &hyper::Error) -> Cause {
    if let Some(io) = find_io(e) {
        return match io.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Cause::Reset,
            std::io::ErrorKind::ConnectionRefused => Cause::Refused,
            _ => Cause::Other,
        };
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        // The connection ended before a response: the target closed it (keep-alive race,
        // or the app exited) without a reset.
        Cause::Closed
    } else if e.is_timeout() {
        Cause::Timeout
    } else {
        Cause::Other
    }
}

fn find_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}
