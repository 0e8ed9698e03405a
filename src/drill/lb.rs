//! An in-process load balancer that behaves like an ALB target group (or a Kubernetes
//! Service) as far as a stop is concerned:
//!
//! - two targets: the task being stopped and an always-healthy peer (the other task of the
//!   service), so capacity remains and only the stop can cause failures;
//! - several *nodes* (an ALB has one per enabled zone, at least two), taking requests in
//!   turn; each balances round robin, health-checks the task on its own from its own source
//!   address (127.0.0.1, 127.0.0.2, …) out of phase with the others, and acts on its own
//!   results — so lastcall sees several probers, as behind a real ALB;
//! - keep-alive connections to each target, one pool per node, reused as ALB reuses them
//!   (where the keep-alive race happens when a target closes an idle connection);
//! - health checks with interval, timeout, unhealthy and healthy thresholds, each on a
//!   fresh connection; success is a 200 (ALB's default matcher);
//! - deregistration: no new request after a propagation delay (ALB nodes and kube-proxy
//!   learn of it late), requests in flight continue;
//! - **never retries**: a failed request is a failed request, as with ALB.
//!
//! For Kubernetes there is one prober (the kubelet's readiness probe) and a failed probe
//! stops routing only after the endpoint-propagation delay.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
use tokio::net::TcpSocket;

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
    /// Who probes, for the event label ("ALB node", "kubelet readiness probe").
    pub prober: &'static str,
}

/// The task as every node sees it: deregistration and endpoint removal reach all nodes.
#[derive(Debug, Default)]
struct TaskState {
    /// When routing stops because of a deregistration or a removal (the earliest wins).
    remove_at: Option<Instant>,
    removed: bool,
    probing: bool,
    last_ok: Option<Instant>,
    /// "Routing stopped" was recorded.
    reported: bool,
}

/// One LB node's own view of the task, from its own health checks.
#[derive(Debug)]
struct NodeView {
    healthy: bool,
    fails: u32,
    passes: u32,
    probed: bool,
}

/// An LB node: its own source address (so lastcall sees one prober per node, as with the
/// several nodes of an ALB), its own health checks and its own keep-alive pool.
#[derive(Debug)]
struct Node {
    ip: Ipv4Addr,
    view: Mutex<NodeView>,
    next: AtomicUsize,
    client: Client<HttpConnector, Empty<Bytes>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The load balancer. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Lb {
    task_addr: SocketAddr,
    peer_addr: SocketAddr,
    task: Mutex<TaskState>,
    nodes: Vec<Node>,
    request_path: String,
    next_node: AtomicUsize,
    request_timeout: Duration,
    events: Events,
}

impl Lb {
    /// An LB of `nodes` nodes (at least one), probing from 127.0.0.1, 127.0.0.2, ….
    pub fn new(
        task: SocketAddr,
        peer: SocketAddr,
        nodes: u8,
        request_path: String,
        request_timeout: Duration,
        events: Events,
    ) -> Lb {
        let nodes = (0..nodes.max(1))
            .map(|i| {
                let ip = Ipv4Addr::new(127, 0, 0, 1 + i);
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(request_timeout));
                connector.set_local_address(Some(IpAddr::V4(ip)));
                let client = Client::builder(TokioExecutor::new())
                    // ALB does not retry; hyper's pool would silently resend a request
                    // whose pooled connection was closed under it, hiding exactly the
                    // race the drill looks for.
                    .retry_canceled_requests(false)
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build(connector);
                Node {
                    ip,
                    view: Mutex::new(NodeView {
                        healthy: true,
                        fails: 0,
                        passes: 0,
                        probed: false,
                    }),
                    next: AtomicUsize::new(0),
                    client,
                }
            })
            .collect();
        Lb {
            task_addr: task,
            peer_addr: peer,
            task: Mutex::new(TaskState {
                probing: true,
                ..TaskState::default()
            }),
            nodes,
            request_path,
            next_node: AtomicUsize::new(0),
            request_timeout,
            events,
        }
    }

    /// Has every node finished at least one health check? Before that, lastcall has not
    /// seen every prober yet — unlike a task that has been in service for a while.
    pub fn all_probed(&self) -> bool {
        self.nodes.iter().all(|n| lock(&n.view).probed)
    }

    /// Does any node still send new requests to the task?
    pub fn routes_to_task(&self) -> bool {
        self.refresh();
        !lock(&self.task).removed && self.nodes.iter().any(|n| lock(&n.view).healthy)
    }

    /// When the task last answered a request successfully.
    pub fn task_last_ok(&self) -> Option<Instant> {
        lock(&self.task).last_ok
    }

    /// Stop routing to the task `after` from now (deregistration or endpoint removal);
    /// stop health-checking it when `stop_probing` (ALB does not check draining targets).
    pub fn remove_task(&self, after: Duration, stop_probing: bool) {
        let at = Instant::now() + after;
        {
            let mut st = lock(&self.task);
            st.remove_at = Some(st.remove_at.map_or(at, |t| t.min(at)));
            if stop_probing {
                st.probing = false;
            }
        }
        self.refresh();
    }

    /// Apply a removal whose time has come, and record the moment the last node stopped
    /// routing to the task. Called on every routing decision, after every health-check
    /// result and by [`Lb::watch`].
    fn refresh(&self) {
        let mut st = lock(&self.task);
        let now = Instant::now();
        if !st.removed
            && let Some(at) = st.remove_at
            && now >= at
        {
            st.removed = true;
        }
        if st.reported {
            return;
        }
        let stopped_at = if st.removed {
            st.remove_at
        } else if self.nodes.iter().all(|n| !lock(&n.view).healthy) {
            Some(now)
        } else {
            None
        };
        if let Some(at) = stopped_at {
            st.reported = true;
            drop(st);
            self.events.add_at(
                self.events.clock().ms(at),
                EventKind::RoutingStopped,
                "LB stopped routing to the task",
            );
        }
    }

    /// Record "routing stopped" on time even when no request comes to notice it.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            self.refresh();
        }
    }

    /// Send one request through the LB: a node, then a target, round robin; never retry.
    pub async fn forward(&self) -> (Option<Backend>, Outcome) {
        let n = self.next_node.fetch_add(1, Ordering::Relaxed) % self.nodes.len();
        let node = &self.nodes[n];
        self.refresh();
        let task_ok = !lock(&self.task).removed && lock(&node.view).healthy;
        let take_task = node.next.fetch_add(1, Ordering::Relaxed).is_multiple_of(2);
        // With the task out of rotation, the peer takes everything (it is always healthy,
        // so ALB's fail-open with no healthy target never applies).
        let backend = if take_task && task_ok {
            Backend::Task
        } else {
            Backend::Peer
        };
        let addr = match backend {
            Backend::Task => self.task_addr,
            Backend::Peer => self.peer_addr,
        };
        let outcome = self.send(&node.client, addr).await;
        if backend == Backend::Task && matches!(outcome, Outcome::Ok(_)) {
            lock(&self.task).last_ok = Some(Instant::now());
        }
        (Some(backend), outcome)
    }

    async fn send(
        &self,
        client: &Client<HttpConnector, Empty<Bytes>>,
        addr: SocketAddr,
    ) -> Outcome {
        let uri = format!("http://{addr}{}", self.request_path);
        let req = match Request::get(uri).body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(_) => return Outcome::Failed(Cause::Other, None),
        };
        let exchange = async {
            let resp = client.request(req).await.map_err(|e| classify(&e))?;
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

    /// Health-check the task from every node until the drill ends. Nodes probe out of
    /// phase with each other, spread over one interval, as independent ALB nodes do.
    pub async fn health_checks(self: Arc<Self>, hc: HealthCheck) {
        let mut set = tokio::task::JoinSet::new();
        let count = self.nodes.len() as u32;
        for i in 0..self.nodes.len() {
            let (lb, hc) = (self.clone(), hc.clone());
            let offset = hc.interval * i as u32 / count;
            set.spawn(async move { lb.node_checks(i, hc, offset).await });
        }
        while set.join_next().await.is_some() {}
    }

    async fn node_checks(&self, i: usize, hc: HealthCheck, offset: Duration) {
        let node = &self.nodes[i];
        let who = if self.nodes.len() > 1 {
            format!("{} {}", hc.prober, node.ip)
        } else {
            hc.prober.to_string()
        };
        tokio::time::sleep(offset).await;
        let mut tick = tokio::time::interval(hc.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !lock(&self.task).probing {
                return;
            }
            let result = probe(node.ip, self.task_addr, &hc.path, hc.timeout).await;
            if !lock(&self.task).probing {
                return;
            }
            let mut view = lock(&node.view);
            view.probed = true;
            match result {
                Ok(()) => {
                    view.fails = 0;
                    view.passes = view.passes.saturating_add(1);
                    if !view.healthy && view.passes >= hc.healthy_threshold {
                        view.healthy = true;
                    }
                }
                Err(why) => {
                    view.passes = 0;
                    view.fails = view.fails.saturating_add(1);
                    if view.fails == hc.unhealthy_threshold {
                        // ALB: this node stops routing at once, on its own result.
                        // Kubernetes: the readiness result travels to every node's
                        // endpoints, which takes the propagation delay.
                        if hc.removal_delay.is_zero() {
                            view.healthy = false;
                        }
                        drop(view);
                        self.events.add(
                            EventKind::Unhealthy,
                            format!(
                                "{who} saw {} failed checks in a row ({why})",
                                hc.unhealthy_threshold
                            ),
                        );
                        if !hc.removal_delay.is_zero() {
                            self.remove_task(hc.removal_delay, false);
                        }
                        self.refresh();
                    }
                }
            }
        }
    }
}

/// One health check on a fresh connection; Ok only for a 200 within the timeout.
async fn probe(
    from: Ipv4Addr,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let socket = TcpSocket::new_v4().map_err(|e| io_cause(&e))?;
        socket
            .bind(SocketAddr::new(IpAddr::V4(from), 0))
            .map_err(|e| io_cause(&e))?;
        let mut stream = socket.connect(addr).await.map_err(|e| io_cause(&e))?;
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
