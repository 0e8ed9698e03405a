//! The rules about time (LC2xx): does the app's own shutdown fit the grace period the
//! platform gives it, and do the load balancer's delays fit the platform's limits. When
//! lastcall is PID 1 the app's window comes from [`crate::budget::Budget`], the same
//! arithmetic `lastcall run` uses for its deadlines.

use std::time::Duration;

use super::apps::AppStop;
use super::lint::Finding;
use super::model::{Container, Deployment, Facts, Loc, Platform, TargetGroup};
use super::process::Launch;
use crate::budget::signal_name;
use crate::duration::fmt;

/// What the app needs beyond its own timeout before it counts as comfortable: 5 s
/// before the platform's SIGKILL; 1 s before lastcall's, which already keeps its kill
/// margin before the platform's deadline and ends the stop in order.
pub const SPARE: Duration = Duration::from_secs(5);
const SPARE_UNDER_LASTCALL: Duration = Duration::from_secs(1);
/// Fargate's longest stopTimeout, and a Spot interruption's notice.
const FARGATE_MAX: Duration = Duration::from_secs(120);

/// The container's grace period and where it is set (`None`: the platform default).
fn stop_timeout(dep: &Deployment, c: &Container) -> (Duration, Option<Loc>) {
    match c.stop_timeout.as_ref().or(dep.grace.as_ref()) {
        Some(s) => (s.value, Some(s.loc)),
        None => (dep.platform.default_stop_timeout(), None),
    }
}

fn setting(dep: &Deployment, at: Option<Loc>, d: Duration) -> String {
    let name = dep.platform.stop_timeout_name();
    match at {
        Some(_) => format!("{name} {}", fmt(d)),
        None => format!("{name} {} (the default)", fmt(d)),
    }
}

/// LC208 for an image no deployment uses: its lastcall flags must still be ones
/// `lastcall run` accepts, with the stop timeout they name.
pub fn lastcall_rules(launch: &Launch, out: &mut Vec<Finding>) {
    let Some(lc) = &launch.lastcall else { return };
    match &lc.args {
        Err(e) => out.push(refused(lc, e)),
        Ok(args) => {
            if let Err(e) = args.budget() {
                let at = lc
                    .at("signal-plan")
                    .or(lc.at("stop-timeout"))
                    .unwrap_or(lc.loc);
                out.push(Finding::new(
                    "LC208",
                    at,
                    format!("lastcall run would refuse to start: {e}"),
                ));
            }
        }
    }
}

/// LC208 for a command line or environment lastcall refuses.
fn refused(lc: &super::process::Lastcall, error: &str) -> Finding {
    Finding::new(
        "LC208",
        blamed(lc, error),
        format!("{} would refuse to start: {error}", lc.command),
    )
}

/// Where the flag a lastcall error names was set (its word or its `LASTCALL_*`
/// variable), else lastcall itself.
fn blamed(lc: &super::process::Lastcall, error: &str) -> Loc {
    lc.set_at
        .iter()
        .find(|(flag, _)| {
            error.contains(&format!("'--{flag} ")) || error.contains(&format!("'--{flag}'"))
        })
        .map_or(lc.loc, |(_, loc)| *loc)
}

/// Rules that need no command line: Fargate's limit and the preStop sleep.
pub fn container_rules_without_command(dep: &Deployment, c: &Container, out: &mut Vec<Finding>) {
    let (stop, stop_at) = stop_timeout(dep, c);
    if let (Platform::Ecs { fargate: true }, Some(at)) = (dep.platform, stop_at)
        && stop > FARGATE_MAX
    {
        out.push(Finding::new(
            "LC202",
            at,
            format!(
                "stopTimeout {} is above Fargate's maximum of 120s",
                stop.as_secs()
            ),
        ));
    }
    if let Some(pre) = &c.pre_stop_sleep
        && pre.value >= stop
    {
        out.push(
            Finding::new(
                "LC206",
                pre.loc,
                format!(
                    "preStop sleeps {} but {} ends then: the app gets SIGTERM and SIGKILL together",
                    fmt(pre.value),
                    setting(dep, stop_at, stop)
                ),
            )
            .related(stop_at, "the grace period"),
        );
    }
}

pub fn container_rules(
    dep: &Deployment,
    c: &Container,
    launch: &Launch,
    app: Option<&AppStop>,
    out: &mut Vec<Finding>,
) {
    container_rules_without_command(dep, c, out);
    let (stop, stop_at) = stop_timeout(dep, c);
    let pre = c
        .pre_stop_sleep
        .as_ref()
        .map_or(Duration::ZERO, |p| p.value);
    // The stop signal comes after preStop, but the grace period started before it.
    let platform_window = stop.saturating_sub(pre);
    let grace = setting(dep, stop_at, stop);
    // (when the app gets its signal, when it is killed, how that was worked out)
    let mut window = (Duration::ZERO, platform_window, String::new());
    if let Some(lc) = &launch.lastcall {
        let args = match &lc.args {
            Ok(a) => a,
            Err(e) => {
                out.push(refused(lc, e));
                return;
            }
        };
        let st_at = lc.at("stop-timeout");
        if args.stop_timeout > platform_window {
            let pre_note = if pre.is_zero() {
                String::new()
            } else {
                format!(" minus the preStop sleep {}", fmt(pre))
            };
            let given = if st_at.is_some() {
                String::new()
            } else {
                " (its default)".to_string()
            };
            out.push(
                Finding::new("LC209", st_at.unwrap_or(lc.loc), format!("lastcall plans a {}{given} stop, but {grace}{pre_note} SIGKILLs after {}; set --stop-timeout {}", fmt(args.stop_timeout), fmt(platform_window), fmt(platform_window)))
                    .related(stop_at, "the platform's grace period"),
            );
        }
        let budget = match args.budget() {
            Ok(b) => b,
            Err(e) => {
                let at = lc.at("signal-plan").or(st_at).unwrap_or(lc.loc);
                out.push(Finding::new(
                    "LC208",
                    at,
                    format!("lastcall run would refuse to start: {e}"),
                ));
                return;
            }
        };
        let steps = budget.plan.steps();
        let step = steps
            .iter()
            .find(|s| matches!(signal_name(s.signal), "TERM" | "INT" | "QUIT"))
            .or(steps.last());
        if let Some(step) = step {
            let at = budget.step_at(step, budget.latest_stopping());
            let kill = budget.kill_at().min(platform_window);
            let how = format!(
                "lastcall sends {step} at {} at the latest (unready {} + closing {}) and SIGKILLs at {}",
                fmt(at),
                fmt(budget.unready_cap),
                fmt(budget.closing_cap),
                fmt(kill)
            );
            window = (at, kill, how);
        }
    }
    let Some(app) = app else { return };
    let (signal_at, kill_at, how) = window;
    let avail = kill_at.saturating_sub(signal_at);
    let how = if how.is_empty() {
        if pre.is_zero() {
            grace.clone()
        } else {
            format!("{grace} minus the preStop sleep {}", fmt(pre))
        }
    } else {
        how
    };
    let k8s_pre =
        dep.platform == Platform::Kubernetes && !pre.is_zero() && launch.lastcall.is_none();
    let id = if k8s_pre { "LC207" } else { "LC201" };
    let at = app.at.unwrap_or(launch.head.loc);
    let spare = if launch.lastcall.is_some() {
        SPARE_UNDER_LASTCALL
    } else {
        SPARE
    };
    let Some(timeout) = app.timeout else {
        out.push(
            Finding::new(id, at, format!("{} waits for running work without a limit, but {how}, which leaves it {}; set {} below {}", app.app, fmt(avail), app.setting, fmt(avail.saturating_sub(spare))))
                .related(stop_at, "the grace period"),
        );
        return;
    };
    let need = timeout + app.after + spare;
    if need > avail {
        let origin = if app.at.is_some() {
            format!(" ({})", app.setting)
        } else {
            format!(" (the default {})", app.setting)
        };
        let after = if app.after.is_zero() {
            String::new()
        } else {
            format!(" + {} to push unfinished jobs back", fmt(app.after))
        };
        out.push(
            Finding::new(id, at, format!("{} may take {} to stop{origin}{after}, but {how}, which leaves it {}; it wants {} ({} to spare)", app.app, fmt(timeout), fmt(avail), fmt(need), fmt(spare)))
                .related(stop_at, "the grace period"),
        );
    }
}

/// Fargate Spot, the deregistration delay and health checks: a service with its task
/// definition and target groups.
pub fn service_rules(facts: &Facts, out: &mut Vec<Finding>) {
    for svc in &facts.services {
        let task = svc
            .task
            .as_ref()
            .and_then(|t| facts.deployments.iter().find(|d| d.refs.contains(t)));
        let max_stop = task
            .map(|d| {
                d.containers
                    .iter()
                    .map(|c| stop_timeout(d, c).0)
                    .max()
                    .unwrap_or(Duration::from_secs(30))
            })
            .unwrap_or(Duration::from_secs(30));
        for tg in svc
            .target_groups
            .iter()
            .filter_map(|n| facts.target_groups.iter().find(|t| &t.name == n))
        {
            let delay = tg
                .deregistration_delay
                .as_ref()
                .map_or(TargetGroup::DEFAULT_DELAY, |d| d.value);
            let delay_d = Duration::from_secs(delay);
            let delay_at = tg.deregistration_delay.as_ref().map_or(tg.loc, |d| d.loc);
            let delay_text = if tg.deregistration_delay.is_some() {
                format!("{delay}s")
            } else {
                format!("{delay}s (the default)")
            };
            if let Some(spot) = svc.spot {
                if delay_d >= FARGATE_MAX || delay_d + max_stop > FARGATE_MAX {
                    out.push(
                        Finding::new("LC203", delay_at, format!("service {} runs on FARGATE_SPOT, but deregistration delay {delay_text} + stopTimeout {} = {} exceed the 2-minute interruption notice", svc.name, fmt(max_stop), fmt(delay_d + max_stop)))
                            .related(Some(spot), "FARGATE_SPOT"),
                    );
                }
            } else if delay == TargetGroup::DEFAULT_DELAY && max_stop <= Duration::from_secs(60) {
                out.push(
                    Finding::new("LC204", delay_at, format!("deregistration delay {delay_text} for service {}, whose tasks stop within {}: deploys and scale-ins wait up to 5 minutes per task; set deregistration_delay.timeout_seconds", svc.name, fmt(max_stop)))
                        .related(Some(svc.loc), "the service"),
                );
            }
            detection_rule(facts, svc.spot.is_some(), tg, task, max_stop, out);
        }
    }
}

/// LC205: interval × unhealthy threshold against the time the container gives the load
/// balancer to notice it is going away.
fn detection_rule(
    facts: &Facts,
    spot: bool,
    tg: &TargetGroup,
    task: Option<&Deployment>,
    max_stop: Duration,
    out: &mut Vec<Finding>,
) {
    let interval = tg
        .interval
        .as_ref()
        .map_or(TargetGroup::DEFAULT_INTERVAL, |v| v.value);
    let threshold = tg
        .unhealthy_threshold
        .as_ref()
        .map_or(TargetGroup::DEFAULT_UNHEALTHY, |v| v.value);
    let detection = Duration::from_secs(interval.saturating_mul(threshold));
    let at = tg
        .interval
        .as_ref()
        .or(tg.unhealthy_threshold.as_ref())
        .map_or(tg.loc, |v| v.loc);
    let unready = task
        .into_iter()
        .flat_map(|d| d.containers.iter().map(move |c| (d, c)))
        .filter_map(|(d, c)| {
            let image = super::lint::image_for(facts, d, c).map(|i| &facts.images[i]);
            let mut env = image.map(|i| i.env.clone()).unwrap_or_default();
            env.extend(c.env.iter().cloned());
            let launch = super::process::launch(image, Some(c), &env)?;
            let args = launch.lastcall?.args.ok()?;
            let b = args.budget().ok()?;
            (!b.unready_cap.is_zero()).then_some(b.unready_cap)
        });
    let (window, what) = match unready.min() {
        Some(u) => (u, "lastcall's unready phase"),
        None if spot => (
            max_stop,
            "the stop timeout (on Fargate Spot SIGTERM comes before deregistration)",
        ),
        None => return,
    };
    if detection > window {
        out.push(Finding::new(
            "LC205",
            at,
            format!("the target group notices an unhealthy target after {interval}s × {threshold} = {}, longer than {what} of {}: new requests still arrive after the app stopped taking them", fmt(detection), fmt(window)),
        ));
    }
}
