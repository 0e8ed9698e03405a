//! `lastcall drill` (issue 4): rehearse a container stop under load behind a simulated load
//! balancer, and count every request that failed.
//!
//! The drill starts the app as a *task* (PID 1 of a PID namespace when allowed, see
//! [`task`]), bare or wrapped in `lastcall run` with its drain proxy, next to an
//! always-healthy *peer* backend. An in-process load balancer ([`lb`]) balances steady load
//! ([`load`]) between them with health checks and no retries. After a warm-up the
//! platform's stop choreography runs ([`platform`]); the drill keeps the load on until the
//! LB has stopped routing to the task, then reports per variant ([`report`], [`json`],
//! [`chart`]). With no COMMAND it drills a built-in demo app ([`demo`]) bare and under
//! lastcall, side by side.
//!
//! Exit status: 0 when every lastcall-wrapped variant (or the bare one, when only bare ran)
//! lost nothing and needed no SIGKILL; 1 otherwise; 2 for usage errors.

pub mod chart;
pub mod demo;
pub mod events;
pub mod json;
pub mod lb;
pub mod load;
pub mod platform;
pub mod report;
pub mod task;
pub mod variant;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::duration;
use crate::supervise::signals::{self, Signals};
use platform::{Choreography, Platform};
use task::Isolation;
use variant::{Kind, Plan};

/// Flags of `lastcall drill`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "With no COMMAND, drills a built-in demo app bare and under lastcall (--compare). \
Platform durations are the documented defaults, multiplied by --time-scale."
)]
pub struct DrillArgs {
    /// Whose stop to rehearse.
    #[arg(long, value_enum, default_value_t = Platform::EcsAlb)]
    pub platform: Platform,
    /// Run the app bare only (no lastcall).
    #[arg(long, conflicts_with_all = ["compare", "wrap"])]
    pub bare: bool,
    /// Run the app under `lastcall run`, adding these options (one string, split at spaces).
    #[arg(long, value_name = "OPTIONS", num_args = 0..=1, default_missing_value = "", allow_hyphen_values = true)]
    pub wrap: Option<String>,
    /// Run bare, then under lastcall, and compare (the default without COMMAND).
    #[arg(long)]
    pub compare: bool,
    /// Port the task listens on, where the LB sends traffic (default: a free port).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Port the app listens on behind lastcall (default: a free port). The app gets it as $PORT.
    #[arg(long, value_name = "PORT")]
    pub app_port: Option<u16>,
    /// The app's health path: the LB checks it when bare; under lastcall, lastcall answers
    /// the LB's checks itself and asks the app here while serving.
    #[arg(long, value_name = "PATH", default_value = "/health", value_parser = crate::health::path_arg)]
    pub health_path: String,
    /// Path of the requests the load sends.
    #[arg(long, value_name = "PATH", default_value = "/", value_parser = crate::health::path_arg)]
    pub request_path: String,
    /// Requests per second, sent at a constant rate through the LB.
    #[arg(long, value_name = "N", default_value_t = 200.0)]
    pub rate: f64,
    /// Response time of the built-in demo app and of the peer.
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = duration::arg)]
    pub latency: Duration,
    /// The demo app closes keep-alive connections idle this long, as Node (5s) and Go
    /// servers with an IdleTimeout do: the keep-alive race with the LB (default: never).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub app_idle_timeout: Option<Duration>,
    /// Steady load before the stop begins (not scaled).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration::arg)]
    pub warmup: Duration,
    /// Load kept on after the LB stopped routing to the task (not scaled).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration::arg)]
    pub tail: Duration,
    /// Multiply every platform duration by this, so a drill lasts seconds (1 = real time).
    #[arg(long, value_name = "FACTOR", default_value_t = 0.1)]
    pub time_scale: f64,
    /// ECS stopTimeout / k8s terminationGracePeriodSeconds (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub stop_timeout: Option<Duration>,
    /// Health-check interval (ALB 30s, k8s readiness periodSeconds 10s).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub health_interval: Option<Duration>,
    /// Health-check timeout (ALB 5s, k8s 1s).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub health_timeout: Option<Duration>,
    /// Failed checks in a row before the target is unhealthy (ALB 2, k8s 3).
    #[arg(long, value_name = "N")]
    pub unhealthy_threshold: Option<u32>,
    /// Passed checks in a row before an unhealthy target is healthy again (ALB 5, k8s 1).
    #[arg(long, value_name = "N")]
    pub healthy_threshold: Option<u32>,
    /// ALB deregistration delay that ECS waits out before SIGTERM (default 5s, AWS's advice
    /// for sub-second responses; the target group's own default is 300s).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub deregistration_delay: Option<Duration>,
    /// How long the LB keeps routing new requests after deregistration / endpoint removal
    /// (ALB 10s, k8s 5s: observed, not documented).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub propagation_delay: Option<Duration>,
    /// ALB nodes, each probing from its own address and routing on its own results
    /// (default 2: an ALB has a node per zone and needs two zones). k8s has one prober.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub lb_nodes: u8,
    /// k8s: preStop sleep before SIGTERM, inside the grace period (default 0).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub pre_stop_sleep: Option<Duration>,
    /// fargate-spot: SIGKILL this long after the interruption notice (default 2m).
    #[arg(long, value_name = "DURATION", value_parser = duration::arg)]
    pub hard_limit: Option<Duration>,
    /// The LB gives up on a request after this (not scaled; it counts as a timeout).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::arg)]
    pub request_timeout: Duration,
    /// How long the task may take to answer its health check with 200 (not scaled).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration::arg)]
    pub ready_timeout: Duration,
    /// Write the full record (every request and event) as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw requests over time, by outcome, with the stop events, as SVG here.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// Run the task as a plain child process, not PID 1 of a PID namespace.
    #[arg(long)]
    pub no_namespace: bool,
    /// The app to drill, started with $PORT set; without it, a built-in demo app.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// Exit codes.
const PASS: i32 = 0;
const FAIL: i32 = 1;
const USAGE: i32 = 2;

/// Checked settings of one drill.
#[derive(Debug, Clone)]
pub struct Settings {
    pub args: DrillArgs,
    pub chore: Choreography,
    pub unscaled: platform::Params,
    pub kinds: Vec<Kind>,
    pub wrap_opts: Vec<String>,
    pub isolation: Isolation,
    pub notes: Vec<String>,
    pub demo: bool,
}

fn usage(msg: &str) -> i32 {
    crate::log::say(format_args!("lastcall: {msg}"));
    USAGE
}

/// A number as the user would have written it: `0.1`, and `1e-300` rather than 300 digits.
fn show_number(x: f64) -> String {
    if x == 0.0 || (1e-4..1e6).contains(&x.abs()) {
        x.to_string()
    } else {
        format!("{x:e}")
    }
}

/// Resolve the flags into a drill, or say what is wrong with them.
pub fn settings(args: DrillArgs) -> Result<Settings, String> {
    if !(args.rate > 0.0 && args.rate <= 5000.0) {
        return Err(format!(
            "--rate {} is out of range (write a number of requests per second from 1 to 5000)",
            show_number(args.rate)
        ));
    }
    if !(0.01..=10.0).contains(&args.time_scale) {
        return Err(format!(
            "--time-scale {} is out of range (write a factor from 0.01 to 10, e.g. 0.1 for a tenth of real time)",
            show_number(args.time_scale)
        ));
    }
    for (flag, port) in [("--port", args.port), ("--app-port", args.app_port)] {
        if port == Some(0) {
            return Err(format!(
                "{flag} 0 is not a port to reach the task on (leave {flag} out for a free port)"
            ));
        }
    }
    // Checked before the drill runs: finding out after a minute of load is too late.
    for (flag, path) in [("--json", &args.json), ("--chart", &args.chart)] {
        let Some(path) = path else { continue };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "{flag} {}: there is no directory {} to write it in (create it first)",
                path.display(),
                dir.display()
            ));
        }
    }
    if args.port.is_some() && args.port == args.app_port {
        return Err("--port and --app-port must differ (lastcall listens on --port and forwards to the app on --app-port)".to_string());
    }
    if let Some(first) = args.command.first().map(|c| c.to_string_lossy())
        && first.starts_with('-')
        && !std::env::args_os().any(|a| a == "--")
    {
        return Err(format!(
            "unknown option '{first}' for lastcall drill (options go before COMMAND; write -- before a COMMAND that starts with -)"
        ));
    }
    if args.app_idle_timeout.is_some() && !args.command.is_empty() {
        return Err("--app-idle-timeout configures the built-in demo app; with a COMMAND, set your app's own idle timeout".to_string());
    }
    let d = args.platform.defaults();
    let unscaled = platform::Params {
        stop_timeout: args.stop_timeout.unwrap_or(d.stop_timeout),
        health_interval: args.health_interval.unwrap_or(d.health_interval),
        health_timeout: args.health_timeout.unwrap_or(d.health_timeout),
        unhealthy_threshold: args.unhealthy_threshold.unwrap_or(d.unhealthy_threshold),
        healthy_threshold: args.healthy_threshold.unwrap_or(d.healthy_threshold),
        deregistration_delay: args.deregistration_delay.unwrap_or(d.deregistration_delay),
        propagation_delay: args.propagation_delay.unwrap_or(d.propagation_delay),
        pre_stop: args.pre_stop_sleep.unwrap_or(d.pre_stop),
        hard_limit: args.hard_limit.or(d.hard_limit),
    };
    if unscaled.unhealthy_threshold == 0 || unscaled.healthy_threshold == 0 {
        return Err(
            "--unhealthy-threshold and --healthy-threshold must be at least 1 (ALB's are 2 and 5)"
                .to_string(),
        );
    }
    if unscaled.health_interval.is_zero() || unscaled.health_timeout.is_zero() {
        return Err(
            "--health-interval and --health-timeout must be above 0 (write e.g. 5s and 2s)"
                .to_string(),
        );
    }
    if unscaled.pre_stop >= unscaled.stop_timeout && args.platform == Platform::K8s {
        return Err(format!(
            "--pre-stop-sleep {} must be shorter than the grace period {} (the kubelet counts preStop inside terminationGracePeriodSeconds)",
            duration::fmt(unscaled.pre_stop),
            duration::fmt(unscaled.stop_timeout)
        ));
    }
    let chore = Choreography {
        platform: args.platform,
        p: unscaled.scaled(args.time_scale),
    };
    let demo = args.command.is_empty();
    let kinds = if args.compare || (demo && !args.bare && args.wrap.is_none()) {
        vec![Kind::Bare, Kind::Lastcall]
    } else if args.bare {
        vec![Kind::Bare]
    } else {
        vec![Kind::Lastcall]
    };
    let wrap_opts: Vec<String> = args
        .wrap
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if kinds.contains(&Kind::Lastcall) {
        check_wrap(&wrap_opts)?;
    }
    let budget = if kinds.contains(&Kind::Lastcall) {
        let b = chore
            .lastcall_budget(kill_margin(args.time_scale))
            .map_err(|e| {
                format!(
                    "the grace period {} at --time-scale {} is {}, too short for lastcall: {e}",
                    duration::fmt(unscaled.stop_timeout),
                    args.time_scale,
                    duration::fmt(chore.grace_after_sigterm())
                )
            })?;
        Some(b)
    } else {
        None
    };
    let notes = chore.notes(budget.as_ref());
    Ok(Settings {
        isolation: Isolation::detect(args.no_namespace),
        args,
        chore,
        unscaled,
        kinds,
        wrap_opts,
        notes,
        demo,
    })
}

/// Parse `--wrap` as `lastcall run` will, so that a mistake is a usage error now rather than
/// a task that fails to start (clap would take an unknown option before `--` for COMMAND).
fn check_wrap(opts: &[String]) -> Result<(), String> {
    let argv = ["lastcall", "run"]
        .into_iter()
        .map(String::from)
        .chain(opts.iter().cloned())
        .chain(["--".to_string(), "app".to_string()]);
    let bad = |detail: String| format!("--wrap '{}': {detail}", opts.join(" "));
    match <crate::cli::Cli as clap::Parser>::try_parse_from(argv) {
        Ok(crate::cli::Cli {
            command: crate::cli::Command::Run(run),
        }) => match run.command.first().and_then(|c| c.to_str()) {
            Some("app") => Ok(()),
            Some(other) => Err(bad(format!(
                "unknown option '{other}' for lastcall run (see lastcall run --help)"
            ))),
            None => Err(bad("no COMMAND".to_string())),
        },
        Ok(_) => Err(bad("not options of lastcall run".to_string())),
        Err(e) => Err(bad(crate::cli::one_line(&e.to_string()))),
    }
}

/// The path lastcall answers the LB's health checks on. It must not be the path the load
/// requests: lastcall answers its health path itself (503 once a stop began), so traffic
/// sent there would never reach the app. An app whose only path is `/` keeps `/` as its own
/// health check behind lastcall.
fn lastcall_health_path(args: &DrillArgs) -> String {
    if args.health_path != args.request_path {
        args.health_path.clone()
    } else {
        "/lastcall/health".to_string()
    }
}

/// lastcall's default kill margin (1 s), scaled like every other duration.
fn kill_margin(scale: f64) -> Duration {
    Duration::from_secs(1)
        .mul_f64(scale)
        .max(Duration::from_millis(20))
}

/// The value `--wrap` gives `flag`, if it does (`--flag V` or `--flag=V`).
fn wrap_value(opts: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    for (i, o) in opts.iter().enumerate() {
        if o == flag {
            return opts.get(i + 1).cloned();
        }
        if let Some(v) = o.strip_prefix(&prefix) {
            return Some(v.to_string());
        }
    }
    None
}

/// The task's command line for a variant.
fn command_for(s: &Settings, kind: Kind, task_port: u16, app_port: u16) -> Vec<OsString> {
    let exe = std::env::current_exe()
        .map(OsString::from)
        .unwrap_or_else(|_| OsString::from("lastcall"));
    let listen_port = match kind {
        Kind::Bare => task_port,
        Kind::Lastcall => app_port,
    };
    let app: Vec<OsString> = if s.demo {
        let mut app: Vec<OsString> = vec![
            exe.clone(),
            "demo-app".into(),
            "--port".into(),
            listen_port.to_string().into(),
            "--latency".into(),
            duration::fmt(s.args.latency).into(),
        ];
        if let Some(idle) = s.args.app_idle_timeout {
            app.push("--idle-timeout".into());
            app.push(duration::fmt(idle).into());
        }
        app
    } else {
        s.args.command.clone()
    };
    if kind == Kind::Bare {
        return app;
    }
    let scale = s.args.time_scale;
    let defaults: Vec<(&str, String)> = vec![
        ("--listen", format!("127.0.0.1:{task_port}")),
        ("--upstream", format!("127.0.0.1:{app_port}")),
        ("--health-path", lastcall_health_path(&s.args)),
        ("--upstream-health-path", s.args.health_path.clone()),
        (
            "--stop-timeout",
            duration::fmt(s.chore.grace_after_sigterm()),
        ),
        ("--kill-margin", duration::fmt(kill_margin(scale))),
        (
            "--unhealthy-threshold",
            s.chore.p.unhealthy_threshold.to_string(),
        ),
        (
            "--quiet-period",
            duration::fmt(Duration::from_secs(1).mul_f64(scale)),
        ),
        ("--log-format", "json".to_string()),
    ];
    let mut argv: Vec<OsString> = vec![exe, "run".into()];
    for (flag, value) in defaults {
        if wrap_value(&s.wrap_opts, flag).is_none() {
            argv.push(flag.into());
            argv.push(value.into());
        }
    }
    argv.extend(s.wrap_opts.iter().map(OsString::from));
    argv.push("--".into());
    argv.extend(app);
    argv
}

/// Run the drill; returns the exit code.
pub fn run(args: DrillArgs) -> i32 {
    let s = match settings(args) {
        Ok(s) => s,
        Err(msg) => return usage(&msg),
    };
    // Signals are read from a signalfd (as `lastcall run` does) so that Ctrl-C ends the
    // drill cleanly: the running task is killed, not left behind. Blocked before the
    // runtime's threads exist so that every thread inherits the mask.
    if let Err(e) = signals::block_all() {
        crate::log::say(format_args!("lastcall: cannot block signals: {e}"));
        return FAIL;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::log::say(format_args!("lastcall: cannot start the runtime: {e}"));
            return FAIL;
        }
    };
    runtime.block_on(async move {
        let signals = match Signals::new() {
            Ok(sig) => sig,
            Err(e) => {
                crate::log::say(format_args!("lastcall: cannot read signals: {e}"));
                return FAIL;
            }
        };
        tokio::select! {
            code = drill(s) => code,
            sig = interrupted(&signals) => {
                crate::log::say(format_args!("\nlastcall: drill interrupted by {sig}; the task was killed"));
                128 + sig as i32
            }
        }
    })
}

/// The first INT, TERM, HUP or QUIT sent to the drill itself.
async fn interrupted(signals: &Signals) -> Signal {
    loop {
        match signals.next().await {
            Ok(sig @ (Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT)) => {
                return sig;
            }
            Ok(_) => continue,
            Err(_) => std::future::pending::<()>().await,
        }
    }
}

async fn drill(s: Settings) -> i32 {
    let progress = std::io::stderr().is_terminal();
    let mut outcomes = Vec::new();
    for &kind in &s.kinds {
        let ports = (
            s.args.port.map_or_else(crate::net::free_port, Ok),
            s.args.app_port.map_or_else(crate::net::free_port, Ok),
        );
        let (task_port, app_port) = match ports {
            (Ok(t), Ok(a)) if t != a => (t, a),
            (Ok(t), Ok(_)) => match crate::net::free_port() {
                Ok(a) => (t, a),
                Err(e) => return usage(&format!("cannot find a free port: {e}")),
            },
            (Err(e), _) | (_, Err(e)) => return usage(&format!("cannot find a free port: {e}")),
        };
        let plan = Plan {
            kind,
            command: command_for(&s, kind, task_port, app_port),
            task_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, task_port)),
            app_port: if kind == Kind::Bare {
                task_port
            } else {
                app_port
            },
            health_path: match kind {
                Kind::Bare => s.args.health_path.clone(),
                Kind::Lastcall => wrap_value(&s.wrap_opts, "--health-path")
                    .unwrap_or_else(|| lastcall_health_path(&s.args)),
            },
            request_path: s.args.request_path.clone(),
            rate: s.args.rate,
            latency: s.args.latency,
            warmup: s.args.warmup,
            tail: s.args.tail,
            request_timeout: s.args.request_timeout,
            ready_timeout: s.args.ready_timeout,
            isolation: s.isolation.clone(),
            chore: s.chore.clone(),
            lb_nodes: if s.chore.platform == Platform::K8s {
                1
            } else {
                s.args.lb_nodes
            },
            progress,
        };
        match variant::run(&plan).await {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                crate::log::say(format_args!("lastcall: drill ({}): {e}", kind.as_str()));
                // lastcall refusing its options is a usage error of --wrap.
                return if kind == Kind::Lastcall
                    && matches!(&e, task::TaskError::ExitedEarly { status, .. } if status == "exit status 2")
                {
                    USAGE
                } else {
                    FAIL
                };
            }
        }
    }
    let judged: Vec<&variant::Outcome> = {
        let wrapped: Vec<_> = outcomes
            .iter()
            .filter(|o| o.kind == Kind::Lastcall)
            .collect();
        if wrapped.is_empty() {
            outcomes.iter().collect()
        } else {
            wrapped
        }
    };
    let code = if judged.iter().all(|o| o.passed()) {
        PASS
    } else {
        FAIL
    };
    crate::log::out(&report::text(&s, &outcomes, code));
    if let Some(path) = &s.args.json {
        let doc = json::document(&s, &outcomes, code);
        if let Err(e) = std::fs::write(path, doc) {
            crate::log::say(format_args!(
                "lastcall: cannot write --json {}: {e}",
                path.display()
            ));
            return FAIL;
        }
    }
    if let Some(path) = &s.args.chart {
        let svg = chart::svg(&s, &outcomes);
        if let Err(e) = std::fs::write(path, svg) {
            crate::log::say(format_args!(
                "lastcall: cannot write --chart {}: {e}",
                path.display()
            ));
            return FAIL;
        }
    }
    code
}
