//! The rule registry: stable IDs, default severities and the text `--explain` prints.
//! IDs never change meaning; a retired rule keeps its number unused.
//! LC1xx: how the container's PID 1 gets the stop signal. LC2xx: whether the stop fits
//! the time the platform gives it.

use std::fmt;

/// How bad a finding is; `--fail-on` compares against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

impl Severity {
    /// SARIF's `level`.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Info => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// One line: what is wrong.
    pub title: &'static str,
    /// Why it loses requests or jobs.
    pub why: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id.eq_ignore_ascii_case(id))
}

/// Look a rule up by an ID the code itself uses.
pub(crate) fn rule(id: &str) -> &'static Rule {
    find(id).unwrap_or(&RULES[0])
}

pub static RULES: &[Rule] = &[
    Rule {
        id: "LC101",
        severity: Severity::Warning,
        title: "shell-form command: a shell is PID 1",
        why: "A shell-form ENTRYPOINT or CMD (or `sh -c \"…\"`) starts /bin/sh, which starts the app. Most shells exec a single simple command and get out of the way, but not all do (busybox ash in some versions, bash with traps or `-l`), and CMD arguments are silently ignored after a shell-form ENTRYPOINT. When the shell stays, it receives SIGTERM, does not forward it, and the app is SIGKILLed at the deadline with requests and jobs in flight.",
        fix: "Use the exec form: ENTRYPOINT [\"app\", \"--flag\"]. If you need the shell for variables, end with `exec`: sh -c 'exec app --port \"$PORT\"'.",
    },
    Rule {
        id: "LC102",
        severity: Severity::Error,
        title: "compound shell command as PID 1: the app never gets SIGTERM",
        why: "With `;`, `&&`, `||`, `|`, `&` or `$(…)` the shell cannot exec the app: it stays as PID 1 (or as the only child an init signals), ignores or swallows SIGTERM, and the app runs on until the SIGKILL at the deadline. Every stop then drops what was in flight.",
        fix: "Move setup into an entrypoint script that ends with `exec \"$@\"`, or end the command with `exec`: sh -c 'migrate && exec app'. Or put an init that signals the whole process group in front (lastcall run, dumb-init, tini -g).",
    },
    Rule {
        id: "LC103",
        severity: Severity::Error,
        title: "entrypoint script does not exec the app",
        why: "A script that runs the app as its last command without `exec` stays as the app's parent. The stop signal goes to the shell, which does not forward it; the app is SIGKILLed at the deadline.",
        fix: "Start the last command with exec (`exec \"$@\"`, `exec gunicorn …`), or trap TERM in the script, forward it to the child and `wait`.",
    },
    Rule {
        id: "LC104",
        severity: Severity::Warning,
        title: "npm/yarn/pnpm as PID 1",
        why: "`npm start`, `npm run …` and `yarn start` run the script through a shell in a child process. Depending on the version, the package manager does not forward SIGTERM, or forwards it and exits before the app has finished, so in-flight requests are cut off; the exit code is lost too.",
        fix: "Run node directly: CMD [\"node\", \"server.js\"]. Or put an init that signals the whole process group in front (lastcall run, dumb-init).",
    },
    Rule {
        id: "LC105",
        severity: Severity::Warning,
        title: "no init in front of an app that needs one",
        why: "PID 1 gets no default signal handlers: a program that does not install its own SIGTERM handler (node, python and ruby scripts, shells) ignores the stop signal as PID 1 and is SIGKILLed at the deadline. PID 1 must also reap orphaned children, or zombies pile up.",
        fix: "Put an init in front: ENTRYPOINT [\"lastcall\", \"run\", \"--\"] (or tini, dumb-init); on ECS set linuxParameters.initProcessEnabled, in compose `init: true`.",
    },
    Rule {
        id: "LC106",
        severity: Severity::Warning,
        title: "nginx is stopped with SIGTERM (its fast stop)",
        why: "For nginx, SIGTERM means fast shutdown: open connections are closed at once. SIGQUIT is its graceful stop, which lets in-flight requests finish.",
        fix: "Set STOPSIGNAL SIGQUIT in the Dockerfile (the official image does), `stop_signal: SIGQUIT` in compose, or a lastcall plan that sends QUIT: --signal-plan QUIT@+0.",
    },
    Rule {
        id: "LC107",
        severity: Severity::Error,
        title: "the stop signal is not a signal",
        why: "A STOPSIGNAL, compose stop_signal or Kubernetes stopSignal must name a signal Linux has. An unknown name (SIGFOO, a typo such as SIGTREM) is refused when the image is built, the container created or the manifest applied; a number with no signal behind it (999) gets past Docker's checks, but the stop signal can then never be sent: the app gets nothing and is SIGKILLed at the end of the grace period with requests and jobs in flight.",
        fix: "Name a signal, with or without SIG, in any case: SIGTERM (the default), SIGQUIT for nginx, SIGINT, SIGRTMIN+3 for systemd; or give its number, 1 to 64.",
    },
    Rule {
        id: "LC201",
        severity: Severity::Error,
        title: "app shutdown timeout not comfortably below the stop timeout",
        why: "An app that may take as long as the platform's grace period to stop (plus the few seconds it needs after its own timeout, e.g. Sidekiq pushing unfinished jobs back to Redis) is SIGKILLed in the middle of that work. Sidekiq's default 25 s timeout plus ~5 s of pushing jobs back does not fit ECS's default 30 s stopTimeout. lastcall check wants 5 s between the app's timeout (and what follows it) and the SIGKILL; 1 s under lastcall, which keeps its own kill margin.",
        fix: "Lower the app's timeout (sidekiq -t, gunicorn --graceful-timeout, …) or raise the grace period (stopTimeout, terminationGracePeriodSeconds, stop_grace_period) so that app timeout + 5 s fits.",
    },
    Rule {
        id: "LC202",
        severity: Severity::Error,
        title: "Fargate stopTimeout above 120 s",
        why: "Fargate allows at most 120 s between SIGTERM and SIGKILL. A larger stopTimeout is rejected or capped, so the shutdown you planned for does not happen.",
        fix: "Set stopTimeout to 120 or less and make the app's shutdown fit, or run the task on EC2 capacity.",
    },
    Rule {
        id: "LC203",
        severity: Severity::Error,
        title: "Fargate Spot: deregistration delay + stopTimeout exceed the 2-minute notice",
        why: "A Fargate Spot task gets a 2-minute interruption notice. Deregistration from the target group and the stop timeout both have to fit in it, or the task is killed mid-drain. A deregistration delay left at its 300 s default cannot fit at all.",
        fix: "Set deregistration_delay.timeout_seconds well below 120 (e.g. 30) and keep delay + stopTimeout ≤ 120.",
    },
    Rule {
        id: "LC204",
        severity: Severity::Warning,
        title: "deregistration delay left at its 300 s default",
        why: "The target group waits up to 300 s for connections to close before ECS stops the task, far longer than the app's stop timeout needs. Deploys and scale-ins crawl, and on Spot or after StopTask the task is gone long before deregistration ends.",
        fix: "Set deregistration_delay.timeout_seconds to how long requests may really take (often 15–60 s).",
    },
    Rule {
        id: "LC205",
        severity: Severity::Warning,
        title: "health checks notice the stop later than the drain window",
        why: "When the container turns unhealthy to get out of the load balancer (lastcall's unready phase, or Fargate Spot's SIGTERM before deregistration), the load balancer keeps routing until interval × unhealthy threshold has passed. If that is longer than the drain window, new requests arrive after the app has stopped accepting them.",
        fix: "Lower HealthCheckIntervalSeconds or UnhealthyThresholdCount, or give the unready phase more time (--deregistration-delay, a longer stop timeout).",
    },
    Rule {
        id: "LC206",
        severity: Severity::Error,
        title: "preStop sleep uses up the termination grace period",
        why: "The preStop hook runs inside terminationGracePeriodSeconds. A sleep as long as the grace period leaves the app no time: SIGTERM and SIGKILL arrive together.",
        fix: "Make the preStop sleep a few seconds (5–15 s) and the grace period longer than sleep + the app's shutdown.",
    },
    Rule {
        id: "LC207",
        severity: Severity::Error,
        title: "preStop sleep + app shutdown timeout exceed the grace period",
        why: "Kubernetes sends SIGTERM only after preStop ends, but the grace period started before it. Whatever the sleep takes is missing from the app's shutdown, which is SIGKILLed before its own timeout.",
        fix: "Raise terminationGracePeriodSeconds to at least preStop sleep + app timeout + 5 s, or shorten one of them.",
    },
    Rule {
        id: "LC208",
        severity: Severity::Error,
        title: "lastcall run would reject this configuration",
        why: "lastcall checks its command line, its `LASTCALL_*` variables and its stop timeline before it starts the app, and refuses to start when they cannot work: an unknown option (`--stop-timout`, which would otherwise be run as the app), a missing `run` subcommand (`lastcall -- app`), a bad duration, a switch variable that is not a boolean (`LASTCALL_QUIET=maybe`; 1/0, true/false, yes/no, on/off, y/n, t/f are), a signal plan that cannot fit the stop timeout. The container would exit at once. check parses the command line with lastcall's own definition of it, and reads only the container's environment.",
        fix: "Fix the flag or environment variable named in the message; `lastcall run --help` lists them. Options go between `run` and the app, and `--` before the app: ENTRYPOINT [\"/lastcall\", \"run\", \"--stop-timeout\", \"25s\", \"--\", \"app\"].",
    },
    Rule {
        id: "LC209",
        severity: Severity::Error,
        title: "lastcall's --stop-timeout is longer than the platform's grace period",
        why: "lastcall plans the stop against --stop-timeout (default 30 s). If the platform's SIGKILL comes earlier, the plan's last steps never run and lastcall cannot SIGKILL cleanly before the platform does.",
        fix: "Set --stop-timeout (LASTCALL_STOP_TIMEOUT) to the platform's grace period (minus a Kubernetes preStop sleep), or raise the grace period.",
    },
];
