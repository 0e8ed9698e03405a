//! `lastcall run`: wire the pieces together — the stop budget, the drain machine, the
//! health endpoint, the proxy and admin API when asked for, and the supervisor — then hand
//! control to the supervisor's event loop until every process is gone.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper::Uri;
use nix::sys::signal::Signal;
use tokio::net::TcpListener;

use crate::budget::{self, Budget, BudgetInput, SignalPlan};
use crate::drain::{Drain, DrainOptions};
use crate::log::LogFormat;
use crate::supervise::signals::{self, Signals};
use crate::supervise::{SignalMode, SuperviseOptions, Supervisor};
use crate::{addr, admin, duration, health, proxy};

/// Usage errors exit with this code, as with every other CLI mistake.
pub const USAGE: i32 = 2;

/// Flags of `lastcall run`. Every flag can also come from its `LASTCALL_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The orchestrator's grace period between SIGTERM and SIGKILL (ECS stopTimeout, k8s
    /// terminationGracePeriodSeconds). Everything lastcall does ends before it.
    #[arg(long, env = "LASTCALL_STOP_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = duration::arg)]
    pub stop_timeout: Duration,
    /// lastcall SIGKILLs what is left this long before the deadline, so the exit is its own.
    #[arg(long, env = "LASTCALL_KILL_MARGIN", value_name = "DURATION", default_value = "1s", value_parser = duration::positive_arg)]
    pub kill_margin: Duration,
    /// Which signals the app gets during stopping and when: +D after stopping begins, -D
    /// before the deadline. Sidekiq: TSTP@+0,TERM@-12s.
    #[arg(long, env = "LASTCALL_SIGNAL_PLAN", value_name = "PLAN", default_value = "TERM@+0", value_parser = budget::plan_arg)]
    pub signal_plan: SignalPlan,
    /// More signals that begin a stop, besides TERM and INT (comma-separated).
    #[arg(long, env = "LASTCALL_STOP_SIGNALS", value_name = "SIGNALS", value_delimiter = ',', value_parser = budget::stop_signal_arg)]
    pub stop_signals: Vec<Signal>,
    /// Send signals to the app's whole process group, or to the main child only.
    #[arg(long, env = "LASTCALL_SIGNAL_MODE", value_name = "MODE", value_enum, default_value_t = SignalMode::Group)]
    pub signal_mode: SignalMode,
    /// When the app exits on its own, what it left behind gets SIGTERM, then SIGKILL after this.
    #[arg(long, env = "LASTCALL_ORPHAN_GRACE", value_name = "DURATION", default_value = "2s", value_parser = duration::arg)]
    pub orphan_grace: Duration,
    /// Serve the health endpoint here (e.g. :8081); it answers 503 as soon as a stop begins.
    #[arg(long, env = "LASTCALL_HEALTH_LISTEN", value_name = "ADDR", value_parser = addr::listen)]
    pub health_listen: Option<SocketAddr>,
    /// Path of the health endpoint, on --health-listen and on the proxy's --listen.
    #[arg(
        long,
        env = "LASTCALL_HEALTH_PATH",
        value_name = "PATH",
        default_value = "/health",
        value_parser = health::path_arg
    )]
    pub health_path: String,
    /// While serving, pass the app's own health answer through (e.g. http://127.0.0.1:3000/health).
    #[arg(long, env = "LASTCALL_HEALTH_UPSTREAM", value_name = "URL", value_parser = health::upstream_arg)]
    pub health_upstream: Option<Uri>,
    /// Consecutive 503s each prober must see before unready may end (ALB default: 2).
    #[arg(
        long,
        env = "LASTCALL_UNHEALTHY_THRESHOLD",
        value_name = "N",
        default_value_t = 2
    )]
    pub unhealthy_threshold: u32,
    /// Longest time unready may last (default: derived from --stop-timeout).
    #[arg(long, env = "LASTCALL_DEREGISTRATION_DELAY", value_name = "DURATION", value_parser = duration::arg)]
    pub deregistration_delay: Option<Duration>,
    /// Without a health endpoint: stay unready this long before stopping (k8s preStop sleep).
    #[arg(long, env = "LASTCALL_PRE_STOP_DELAY", value_name = "DURATION", value_parser = duration::arg)]
    pub pre_stop_delay: Option<Duration>,
    /// Create this file when the stop begins, for apps that check a flag file.
    #[arg(long, env = "LASTCALL_DRAIN_FILE", value_name = "PATH")]
    pub drain_file: Option<PathBuf>,
    /// A stop begins when this file appears.
    #[arg(long, env = "LASTCALL_DRAIN_TRIGGER_FILE", value_name = "PATH")]
    pub drain_trigger_file: Option<PathBuf>,
    /// Serve /status, /metrics and POST /drain here (loopback unless an address is given).
    #[arg(long, env = "LASTCALL_ADMIN_LISTEN", value_name = "ADDR", value_parser = addr::admin)]
    pub admin_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub proxy: proxy::ProxyArgs,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, env = "LASTCALL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log only warnings and errors.
    /// In the environment: 1/0, true/false, yes/no, on/off.
    #[arg(long, short, env = "LASTCALL_QUIET", value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
    /// The app and its arguments, started directly (no shell).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

impl RunArgs {
    /// Mistakes that only show in how flags combine.
    fn conflicts(&self) -> Option<String> {
        if self.health_upstream.is_some()
            && self.health_listen.is_none()
            && self.proxy.listen.is_none()
        {
            return Some(
                "--health-upstream needs --health-listen ADDR or --listen ADDR (where the load balancer probes)"
                    .to_string(),
            );
        }
        let upstream = self.proxy.upstream?;
        let own = [
            ("--listen", self.proxy.listen),
            ("--health-listen", self.health_listen),
            ("--admin-listen", self.admin_listen),
        ];
        own.into_iter().find_map(|(flag, addr)| {
            let addr = addr?;
            let same = addr.port() == upstream.port()
                && (addr.ip().is_unspecified() || addr.ip() == upstream.ip());
            same.then(|| {
                format!(
                    "--upstream {upstream} is lastcall's own {flag} {addr}: requests would loop back into lastcall (point --upstream at the port the app listens on)"
                )
            })
        })
    }

    /// The stop timeline these flags describe, or why it cannot work.
    pub fn budget(&self) -> Result<Budget, budget::BudgetError> {
        let has_health = self.health_listen.is_some() || self.proxy.listen.is_some();
        Budget::new(BudgetInput {
            stop_timeout: self.stop_timeout,
            kill_margin: self.kill_margin,
            unready: has_health || self.pre_stop_delay.is_some(),
            closing: self.proxy.listen.is_some(),
            unready_cap: if has_health {
                self.deregistration_delay.or(self.pre_stop_delay)
            } else {
                self.pre_stop_delay
            },
            closing_cap: self.proxy.drain_timeout,
            plan: self.signal_plan.clone(),
        })
    }
}

/// Run the app under supervision; returns lastcall's exit code.
pub fn run(args: RunArgs) -> i32 {
    crate::log::init(args.log_format, args.quiet);
    let separator = std::env::args_os().any(|a| a == "--");
    if let Some(mistake) = mistyped_flag(separator, &args.command) {
        return usage(&mistake);
    }
    if let Some(mistake) = args.conflicts() {
        return usage(&mistake);
    }
    let budget = match args.budget() {
        Ok(b) => b,
        Err(e) => return usage(&e.to_string()),
    };
    // Before any thread exists, so that every thread inherits the mask and no signal can
    // be delivered to a thread that would act on it with the default disposition.
    if let Err(e) = signals::block_all() {
        crate::log::say(format_args!("lastcall: cannot block signals: {e}"));
        return 1;
    }
    if nix::unistd::getpid().as_raw() != 1
        && let Err(e) = nix::sys::prctl::set_child_subreaper(true)
    {
        tracing::warn!("cannot become a child subreaper ({e}): orphans will not be reaped");
    }
    // One thread is all the supervisor, health and admin endpoints need (and the RSS stays
    // small); the proxy runs its own single-threaded runtime per CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            crate::log::say(format_args!("lastcall: cannot start the runtime: {e}"));
            return 1;
        }
    };
    runtime.block_on(supervise(args, budget))
}

async fn supervise(args: RunArgs, budget: Budget) -> i32 {
    let signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            crate::log::say(format_args!("lastcall: cannot read signals: {e}"));
            return 1;
        }
    };
    let mut stop_signals = vec![Signal::SIGTERM, Signal::SIGINT];
    stop_signals.extend(args.stop_signals.iter().copied());
    let drain = Drain::new(
        budget,
        DrainOptions {
            unhealthy_threshold: args.unhealthy_threshold.max(1),
            quiet_period: args.proxy.listen.map(|_| args.proxy.quiet_period),
            start_in_starting: args.proxy.listen.is_some(),
            drain_file: args.drain_file.clone(),
            health: args.health_listen.is_some() || args.proxy.listen.is_some(),
        },
    );

    // Every listener is bound before the app starts: a port that is taken is a usage error
    // the user sees at once, not a half-started container.
    if let Some(addr) = args.health_listen {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => return usage(&format!("cannot listen on --health-listen {addr}: {e}")),
        };
        match listener.local_addr() {
            Ok(bound) => tracing::info!("health endpoint on http://{bound}{}", args.health_path),
            Err(e) => tracing::warn!("health listener has no local address: {e}"),
        }
        let check = health::HealthCheck::new(args.health_upstream.clone());
        tokio::spawn(health::serve(
            listener,
            args.health_path.clone(),
            drain.clone(),
            check,
        ));
    }
    if args.proxy.listen.is_some()
        && let Err(e) = proxy::start(&args.proxy, &args.health_path, &drain).await
    {
        return usage(&e.to_string());
    }
    if let Some(addr) = args.admin_listen
        && let Err(e) = admin::start(addr, &drain).await
    {
        return usage(&format!("cannot serve --admin-listen {addr}: {e}"));
    }
    if let Some(path) = args.drain_trigger_file.clone() {
        tokio::spawn(watch_trigger_file(path, drain.clone()));
    }

    tokio::spawn({
        let drain = drain.clone();
        async move { drain.drive().await }
    });

    let opts = SuperviseOptions {
        command: args.command.clone(),
        signal_mode: args.signal_mode,
        stop_signals,
        orphan_grace: args.orphan_grace,
    };
    let supervisor = match Supervisor::spawn(opts, drain) {
        Ok(s) => s,
        Err(e) => {
            crate::log::say(format_args!("lastcall: {e}"));
            return e.exit_code();
        }
    };
    supervisor.run(signals).await
}

/// Poll for the trigger file; a stop is rare and 200 ms is well inside any drain budget.
async fn watch_trigger_file(path: PathBuf, drain: Drain) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        if path.exists() {
            drain.request_stop(&format!("trigger file {}", path.display()));
            return;
        }
    }
}

/// clap takes everything from the first positional on as COMMAND, so `--stop-timout 5s app`
/// would try to run a program called `--stop-timout`. Without an explicit `--` among the
/// arguments (`separator`), a COMMAND starting with `-` is a mistyped option; this returns
/// the usage error. `lastcall check` applies the same rule to the command lines it reads.
pub(crate) fn mistyped_flag(separator: bool, command: &[OsString]) -> Option<String> {
    let first = command.first()?.to_string_lossy();
    // `run --bogus -- app` reaches here as COMMAND `--bogus -- app`: the `--` that should
    // have ended the options was swallowed with the rest.
    let explicit = separator && !command.iter().any(|a| a == "--");
    (first.starts_with('-') && !explicit).then(|| {
        format!(
            "unknown option '{first}' for lastcall run (options go before COMMAND; write -- before a COMMAND that starts with -)"
        )
    })
}

fn usage(msg: &str) -> i32 {
    crate::log::say(format_args!("lastcall: {msg}"));
    USAGE
}
