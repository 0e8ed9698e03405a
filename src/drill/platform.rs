//! Stop choreographies: the order and timing in which ECS, Kubernetes and Fargate Spot stop
//! a task, with each platform's documented defaults (see the platform table in README.md for the sources),
//! and the real-world causes of loss that documentation leaves out but field reports show.
//!
//! | platform | what happens at the stop |
//! |---|---|
//! | `ecs-alb` | deregister → deregistration delay → SIGTERM → stopTimeout → SIGKILL; ALB nodes keep routing for the propagation delay after deregistration |
//! | `ecs-essential-exit` | SIGTERM at once (an essential sidecar died); the target stays registered until health checks fail or the task has stopped |
//! | `k8s` | endpoint removal and preStop/SIGTERM at once; routing continues for the endpoint-propagation delay; SIGKILL at terminationGracePeriodSeconds |
//! | `fargate-spot` | interruption notice, then as `ecs-alb`, with SIGKILL at the 120 s hard limit whatever the rest says |
//!
//! `--time-scale` multiplies every platform duration; thresholds stay counts. lastcall's own
//! timeline (unready and closing caps) comes from [`crate::budget`] for the scaled stop
//! timeout — the drill checks it against the platform before running and says why a setup
//! cannot work.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::events::{EventKind, Events};
use super::lb::{HealthCheck, Lb};
use super::task::Task;
use crate::budget::{Budget, BudgetInput};
use crate::duration::fmt;

/// Which orchestrator stops the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    /// ECS service behind an ALB target group (a deployment or scale-in).
    EcsAlb,
    /// ECS task whose essential sidecar exited: SIGTERM with no deregistration first.
    EcsEssentialExit,
    /// Kubernetes pod deletion (rollout, scale-in, eviction).
    K8s,
    /// Fargate Spot interruption: a 2-minute notice, then a hard stop.
    FargateSpot,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::EcsAlb => "ecs-alb",
            Platform::EcsEssentialExit => "ecs-essential-exit",
            Platform::K8s => "k8s",
            Platform::FargateSpot => "fargate-spot",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Platform::EcsAlb => "ECS service behind an ALB",
            Platform::EcsEssentialExit => "ECS task whose essential sidecar exited",
            Platform::K8s => "Kubernetes pod deletion",
            Platform::FargateSpot => "Fargate Spot interruption behind an ALB",
        }
    }

    /// The platform's documented defaults (unscaled).
    pub fn defaults(self) -> Params {
        let secs = Duration::from_secs;
        match self {
            Platform::EcsAlb | Platform::EcsEssentialExit | Platform::FargateSpot => Params {
                stop_timeout: secs(30),
                health_interval: secs(30),
                health_timeout: secs(5),
                unhealthy_threshold: 2,
                healthy_threshold: 5,
                deregistration_delay: secs(5),
                propagation_delay: secs(10),
                pre_stop: Duration::ZERO,
                hard_limit: (self == Platform::FargateSpot).then(|| secs(120)),
            },
            Platform::K8s => Params {
                stop_timeout: secs(30),
                health_interval: secs(10),
                health_timeout: secs(1),
                unhealthy_threshold: 3,
                healthy_threshold: 1,
                deregistration_delay: Duration::ZERO,
                propagation_delay: secs(5),
                pre_stop: Duration::ZERO,
                hard_limit: None,
            },
        }
    }
}

/// Every number of a stop choreography.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Params {
    /// ECS stopTimeout / k8s terminationGracePeriodSeconds: SIGTERM (k8s: stop) to SIGKILL.
    #[serde(serialize_with = "ser_ms", rename = "stop_timeout_ms")]
    pub stop_timeout: Duration,
    #[serde(serialize_with = "ser_ms", rename = "health_interval_ms")]
    pub health_interval: Duration,
    #[serde(serialize_with = "ser_ms", rename = "health_timeout_ms")]
    pub health_timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// ALB target group deregistration delay (ECS waits it out before SIGTERM).
    #[serde(serialize_with = "ser_ms", rename = "deregistration_delay_ms")]
    pub deregistration_delay: Duration,
    /// How long the LB keeps routing new requests after deregistration / endpoint removal.
    #[serde(serialize_with = "ser_ms", rename = "propagation_delay_ms")]
    pub propagation_delay: Duration,
    /// k8s preStop sleep before SIGTERM (inside the grace period).
    #[serde(serialize_with = "ser_ms", rename = "pre_stop_ms")]
    pub pre_stop: Duration,
    /// Fargate Spot: SIGKILL this long after the notice, whatever else is going on.
    #[serde(serialize_with = "ser_opt_ms", rename = "hard_limit_ms")]
    pub hard_limit: Option<Duration>,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn ser_opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis() as u64),
        None => s.serialize_none(),
    }
}

impl Params {
    /// Every duration multiplied by `k`.
    pub fn scaled(&self, k: f64) -> Params {
        let m = |d: Duration| d.mul_f64(k);
        Params {
            stop_timeout: m(self.stop_timeout),
            health_interval: m(self.health_interval),
            health_timeout: m(self.health_timeout),
            unhealthy_threshold: self.unhealthy_threshold,
            healthy_threshold: self.healthy_threshold,
            deregistration_delay: m(self.deregistration_delay),
            propagation_delay: m(self.propagation_delay),
            pre_stop: m(self.pre_stop),
            hard_limit: self.hard_limit.map(m),
        }
    }
}

/// A platform with its (scaled) numbers.
#[derive(Debug, Clone)]
pub struct Choreography {
    pub platform: Platform,
    pub p: Params,
}

impl Choreography {
    /// The health checks the task gets: the ALB's, or the kubelet's readiness probe.
    pub fn health_check(&self, path: &str) -> HealthCheck {
        let k8s = self.platform == Platform::K8s;
        HealthCheck {
            path: path.to_string(),
            interval: self.p.health_interval,
            timeout: self.p.health_timeout,
            unhealthy_threshold: self.p.unhealthy_threshold,
            healthy_threshold: self.p.healthy_threshold,
            removal_delay: if k8s {
                self.p.propagation_delay
            } else {
                Duration::ZERO
            },
            prober: if k8s {
                "kubelet readiness probe"
            } else {
                "ALB node"
            },
        }
    }

    /// From SIGTERM to the platform's SIGKILL: what `lastcall run --stop-timeout` gets.
    pub fn grace_after_sigterm(&self) -> Duration {
        let p = &self.p;
        match self.platform {
            Platform::EcsAlb | Platform::EcsEssentialExit => p.stop_timeout,
            Platform::K8s => p.stop_timeout.saturating_sub(p.pre_stop),
            Platform::FargateSpot => {
                let left = p
                    .hard_limit
                    .unwrap_or(Duration::MAX)
                    .saturating_sub(p.deregistration_delay);
                p.stop_timeout.min(left)
            }
        }
    }

    /// One line: the documented order, with the numbers in use.
    pub fn summary(&self) -> String {
        let p = &self.p;
        match self.platform {
            Platform::EcsAlb => format!(
                "deregister → deregistration delay {} → SIGTERM → stopTimeout {} → SIGKILL; ALB keeps routing {} after deregistration; health checks every {} (timeout {}, unhealthy after {})",
                fmt(p.deregistration_delay),
                fmt(p.stop_timeout),
                fmt(p.propagation_delay),
                fmt(p.health_interval),
                fmt(p.health_timeout),
                p.unhealthy_threshold
            ),
            Platform::EcsEssentialExit => format!(
                "SIGTERM at once → stopTimeout {} → SIGKILL; the target stays registered until ALB health checks fail (every {}, timeout {}, unhealthy after {}) or ECS deregisters the stopped task (+{} propagation)",
                fmt(p.stop_timeout),
                fmt(p.health_interval),
                fmt(p.health_timeout),
                p.unhealthy_threshold,
                fmt(p.propagation_delay)
            ),
            Platform::K8s => format!(
                "endpoint removal and preStop {} at once → SIGTERM → SIGKILL at terminationGracePeriodSeconds {}; endpoints propagate in {}; readiness probe every {} (timeout {}, failure threshold {})",
                fmt(p.pre_stop),
                fmt(p.stop_timeout),
                fmt(p.propagation_delay),
                fmt(p.health_interval),
                fmt(p.health_timeout),
                p.unhealthy_threshold
            ),
            Platform::FargateSpot => format!(
                "notice → deregister → deregistration delay {} → SIGTERM → stopTimeout {} → SIGKILL, and SIGKILL {} after the notice at the latest; ALB keeps routing {} after deregistration",
                fmt(p.deregistration_delay),
                fmt(p.stop_timeout),
                fmt(p.hard_limit.unwrap_or_default()),
                fmt(p.propagation_delay)
            ),
        }
    }

    /// lastcall's own timeline for this platform: the budget `lastcall run` will derive
    /// from the grace it gets (with a health endpoint and the drain proxy).
    pub fn lastcall_budget(
        &self,
        kill_margin: Duration,
    ) -> Result<Budget, crate::budget::BudgetError> {
        Budget::new(BudgetInput {
            stop_timeout: self.grace_after_sigterm(),
            kill_margin,
            unready: true,
            closing: true,
            ..BudgetInput::default()
        })
    }

    /// Why this setup loses requests whatever the app does, or why the bare app will, in
    /// plain words (empty when nothing stands out).
    pub fn notes(&self, budget: Option<&Budget>) -> Vec<String> {
        let p = &self.p;
        let mut notes = Vec::new();
        // Worst case for health checks to fail: the stop lands just after a passed check.
        let detection = p.health_interval * p.unhealthy_threshold + p.health_timeout;
        // How long the LB may route after SIGTERM to an app that exits at once, and how
        // long lastcall must stay unready for the LB to let go.
        let (bare, lastcall) = match self.platform {
            Platform::EcsAlb | Platform::FargateSpot => {
                let d = p.propagation_delay.saturating_sub(p.deregistration_delay);
                (d, d)
            }
            Platform::K8s => {
                let d = p.propagation_delay.saturating_sub(p.pre_stop);
                (d, d)
            }
            // ECS deregisters the task only once it has stopped: until then only failed
            // health checks take it out of rotation.
            Platform::EcsEssentialExit => (detection.min(p.propagation_delay), detection),
        };
        if !bare.is_zero() {
            notes.push(format!(
                "the LB may route new requests to the task for up to {} after SIGTERM: an app that exits on SIGTERM loses them",
                fmt(bare)
            ));
        }
        if let Some(b) = budget
            && !lastcall.is_zero()
            && lastcall >= b.unready_cap
        {
            notes.push(format!(
                "lastcall's unready phase is capped at {} by a {} grace period, but the LB may route to the task for {} after SIGTERM: requests will be lost even under lastcall (raise the stop timeout, or shorten the health-check interval / propagation)",
                fmt(b.unready_cap),
                fmt(self.grace_after_sigterm()),
                fmt(lastcall)
            ));
        }
        if let Some(limit) = p.hard_limit
            && p.deregistration_delay + p.stop_timeout > limit
        {
            notes.push(format!(
                "deregistration delay {} + stopTimeout {} exceed the Spot hard limit {}: SIGKILL may come before the app is done (seed 003)",
                fmt(p.deregistration_delay),
                fmt(p.stop_timeout),
                fmt(limit)
            ));
        }
        notes
    }

    /// Stop the task the way the platform does; returns when the platform is done with it
    /// (the task exited or was killed).
    pub async fn stop(&self, lb: &Lb, task: &Task, events: &Events) {
        let p = &self.p;
        match self.platform {
            Platform::EcsAlb | Platform::FargateSpot => {
                let hard_kill = p.hard_limit.map(|l| tokio::time::Instant::now() + l);
                if let Some(limit) = p.hard_limit {
                    events.add(
                        EventKind::InterruptionNotice,
                        format!(
                            "Spot interruption notice: SIGKILL in {} at the latest",
                            fmt(limit)
                        ),
                    );
                }
                events.add(EventKind::StopBegan, "ECS begins stopping the task");
                events.add(
                    EventKind::Deregistered,
                    format!(
                        "ECS deregisters the target (deregistration delay {})",
                        fmt(p.deregistration_delay)
                    ),
                );
                lb.remove_task(p.propagation_delay, true);
                let delay = tokio::time::sleep(p.deregistration_delay);
                if !until_or_hard_kill(delay, hard_kill, task, events).await {
                    return;
                }
                events.add(EventKind::Sigterm, "ECS sends SIGTERM");
                task.signal(Signal::SIGTERM);
                let grace = tokio::time::sleep(p.stop_timeout);
                if !until_or_hard_kill(exit_or(task, grace), hard_kill, task, events).await {
                    return;
                }
                kill_if_alive(task, events, "stopTimeout ran out").await;
            }
            Platform::EcsEssentialExit => {
                events.add(
                    EventKind::StopBegan,
                    "an essential container exited: ECS stops the task",
                );
                events.add(
                    EventKind::Sigterm,
                    "ECS sends SIGTERM (no deregistration first)",
                );
                task.signal(Signal::SIGTERM);
                exit_or(task, tokio::time::sleep(p.stop_timeout)).await;
                kill_if_alive(task, events, "stopTimeout ran out").await;
                events.add(
                    EventKind::Deregistered,
                    "the task stopped: ECS deregisters the target",
                );
                lb.remove_task(p.propagation_delay, true);
            }
            Platform::K8s => {
                events.add(EventKind::StopBegan, "the pod is deleted");
                events.add(
                    EventKind::EndpointRemoved,
                    format!(
                        "the endpoint is removed (reaches every node in {})",
                        fmt(p.propagation_delay)
                    ),
                );
                lb.remove_task(p.propagation_delay, false);
                if !p.pre_stop.is_zero() {
                    exit_or(task, tokio::time::sleep(p.pre_stop)).await;
                }
                if task.exited().is_none() {
                    events.add(EventKind::Sigterm, "the kubelet sends SIGTERM");
                    task.signal(Signal::SIGTERM);
                }
                let left = p.stop_timeout.saturating_sub(p.pre_stop);
                exit_or(task, tokio::time::sleep(left)).await;
                kill_if_alive(task, events, "terminationGracePeriodSeconds ran out").await;
            }
        }
    }

    /// The documented order of the platform's own events, for checking a recorded run.
    pub fn documented_order(&self) -> &'static [EventKind] {
        use EventKind::*;
        match self.platform {
            Platform::EcsAlb => &[StopBegan, Deregistered, Sigterm],
            Platform::FargateSpot => &[InterruptionNotice, StopBegan, Deregistered, Sigterm],
            Platform::EcsEssentialExit => &[StopBegan, Sigterm, AppExit, Deregistered],
            Platform::K8s => &[StopBegan, EndpointRemoved, Sigterm],
        }
    }
}

/// Wait for the task to exit or for `timer`, whichever first.
async fn exit_or(task: &Task, timer: tokio::time::Sleep) {
    tokio::select! {
        _ = task.wait() => {}
        _ = timer => {}
    }
}

/// Run `step` unless the Spot hard limit comes first; then SIGKILL and return false.
async fn until_or_hard_kill<F: std::future::Future>(
    step: F,
    hard_kill: Option<tokio::time::Instant>,
    task: &Task,
    events: &Events,
) -> bool {
    let Some(at) = hard_kill else {
        step.await;
        return true;
    };
    tokio::select! {
        _ = step => true,
        _ = tokio::time::sleep_until(at) => {
            kill_if_alive(task, events, "the Spot hard limit was reached").await;
            false
        }
    }
}

async fn kill_if_alive(task: &Task, events: &Events, why: &str) {
    if task.exited().is_none() {
        events.add(EventKind::Sigkill, format!("SIGKILL: {why}"));
        task.signal(Signal::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(5), task.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_keeps_counts_and_shrinks_durations() {
        let p = Platform::EcsAlb.defaults().scaled(0.1);
        assert_eq!(p.stop_timeout, Duration::from_secs(3));
        assert_eq!(p.health_interval, Duration::from_secs(3));
        assert_eq!(p.unhealthy_threshold, 2);
        assert_eq!(p.deregistration_delay, Duration::from_millis(500));
    }

    #[test]
    fn spot_grace_is_cut_by_the_hard_limit() {
        let mut p = Platform::FargateSpot.defaults();
        p.deregistration_delay = Duration::from_secs(100);
        let c = Choreography {
            platform: Platform::FargateSpot,
            p,
        };
        assert_eq!(c.grace_after_sigterm(), Duration::from_secs(20));
        assert!(c.notes(None).iter().any(|n| n.contains("Spot hard limit")));
    }

    #[test]
    fn essential_exit_with_alb_defaults_cannot_be_saved_by_a_30s_grace() {
        let c = Choreography {
            platform: Platform::EcsEssentialExit,
            p: Platform::EcsEssentialExit.defaults(),
        };
        let b = c.lastcall_budget(Duration::from_secs(1)).unwrap();
        let notes = c.notes(Some(&b));
        assert!(
            notes.iter().any(|n| n.contains("even under lastcall")),
            "{notes:?}"
        );
    }
}
