//! The stop timeline: one model of how a container's stop is spent, shared by `lastcall run`
//! (its deadlines), `lastcall drill` (what it expects to see) and `lastcall check` (what it
//! cross-checks in task definitions and manifests).
//!
//! A stop begins at `t = 0` with the first stop signal. The orchestrator's SIGKILL comes at
//! `t = stop_timeout` (the *deadline*). lastcall spends the time in phases:
//!
//! ```text
//! 0 ── unready ──▶ u ── closing ──▶ c ── stopping ──────────────▶ kill_at ─ margin ─▶ deadline
//!      health 503      new requests 503    signal plan runs       SIGKILL what's left
//!      traffic flows   in-flight finishes  app shuts down          lastcall exits
//! ```
//!
//! `u` and `c` are *caps*: unready usually ends early (the load balancer stopped probing
//! successfully), closing ends as soon as nothing is in flight. The plan must fit even when
//! both phases run to their caps, so validation assumes the worst case. Steps of the signal
//! plan are either relative to the start of stopping (`TERM@+0`) or to the deadline
//! (`TERM@-12s`: "give the app the last 12 s").
//!
//! Defaults, when caps are not given: the stopping phase keeps a reserve of
//! `max(stop_timeout / 6, what the plan needs)`; the rest before `kill_at` is the drain
//! window, two thirds of which go to unready and one third to closing when both exist.
//! For a 30 s stop timeout with a health endpoint and the proxy: margin 1 s, reserve 5 s,
//! window 24 s → unready ≤ 16 s, closing ≤ 8 s, stopping ≥ 5 s.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::duration;

/// Anything that makes a stop plan impossible. Messages are shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("invalid signal plan step `{step}`: {why} (write e.g. TERM@+0 or TSTP@+0,TERM@-12s)")]
    PlanSyntax { step: String, why: String },
    #[error("unknown signal `{0}` (write a name like TERM, INT, QUIT, TSTP, USR1 or a number)")]
    UnknownSignal(String),
    #[error(
        "--kill-margin {margin} must be shorter than --stop-timeout {timeout} (lastcall must act before the orchestrator's SIGKILL)"
    )]
    MarginTooLarge { margin: String, timeout: String },
    #[error(
        "signal plan step {step} fires at {at} after the stop began, at or after lastcall's SIGKILL at {kill_at} (--stop-timeout {timeout} minus --kill-margin); give it a smaller offset or raise --stop-timeout"
    )]
    StepTooLate {
        step: String,
        at: String,
        kill_at: String,
        timeout: String,
    },
    #[error(
        "signal plan step {step} fires at {at} after the stop began, but stopping may begin as late as {latest} (unready {unready} + closing {closing}); lower --deregistration-delay (or --pre-stop-delay) / --drain-timeout or raise --stop-timeout"
    )]
    StepBeforeStopping {
        step: String,
        at: String,
        latest: String,
        unready: String,
        closing: String,
    },
    #[error(
        "signal plan step {step} is {offset} before the deadline, but --stop-timeout is only {timeout}; raise --stop-timeout or shorten the offset"
    )]
    StepBeforeStop {
        step: String,
        offset: String,
        timeout: String,
    },
    #[error(
        "unready {unready} + closing {closing} leave the app no time before lastcall's SIGKILL at {kill_at} (--stop-timeout {timeout} minus --kill-margin); lower --deregistration-delay (or --pre-stop-delay) / --drain-timeout or raise --stop-timeout"
    )]
    NoTimeToStop {
        unready: String,
        closing: String,
        kill_at: String,
        timeout: String,
    },
}

/// Where a plan step sits on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// After the stopping phase begins.
    AfterStopping(Duration),
    /// Before the orchestrator's deadline.
    BeforeDeadline(Duration),
}

/// One signal the app gets during stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub signal: Signal,
    pub offset: Offset,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = signal_name(self.signal);
        match self.offset {
            Offset::AfterStopping(d) => write!(f, "{name}@+{}", duration::fmt(d)),
            Offset::BeforeDeadline(d) => write!(f, "{name}@-{}", duration::fmt(d)),
        }
    }
}

/// Which signals the app gets and when, e.g. `TSTP@+0,TERM@-12s` for Sidekiq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalPlan {
    steps: Vec<Step>,
}

impl Default for SignalPlan {
    fn default() -> Self {
        SignalPlan {
            steps: vec![Step {
                signal: Signal::SIGTERM,
                offset: Offset::AfterStopping(Duration::ZERO),
            }],
        }
    }
}

impl fmt::Display for SignalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{step}")?;
        }
        Ok(())
    }
}

impl FromStr for SignalPlan {
    type Err = BudgetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut steps = Vec::new();
        for raw in s.split(',').map(str::trim) {
            let syntax = |why: &str| BudgetError::PlanSyntax {
                step: raw.to_string(),
                why: why.to_string(),
            };
            if raw.is_empty() {
                return Err(syntax("it is empty"));
            }
            let (name, offset) = match raw.split_once('@') {
                None => (raw, Offset::AfterStopping(Duration::ZERO)),
                Some((name, at)) => {
                    let parse = |d: &str| duration::parse(d).map_err(|e| syntax(&e.to_string()));
                    if let Some(d) = at.strip_prefix('+') {
                        (name, Offset::AfterStopping(parse(d)?))
                    } else if let Some(d) = at.strip_prefix('-') {
                        (name, Offset::BeforeDeadline(parse(d)?))
                    } else {
                        return Err(syntax(
                            "the offset needs a sign: +D after stopping begins, -D before the deadline",
                        ));
                    }
                }
            };
            steps.push(Step {
                signal: parse_signal(name)?,
                offset,
            });
        }
        Ok(SignalPlan { steps })
    }
}

impl SignalPlan {
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// clap value parser for `--signal-plan`.
pub fn plan_arg(s: &str) -> Result<SignalPlan, String> {
    s.parse().map_err(|e: BudgetError| e.to_string())
}

/// clap value parser for signal names (`--stop-signals`).
pub fn signal_arg(s: &str) -> Result<Signal, String> {
    parse_signal(s).map_err(|e| e.to_string())
}

/// For clap: a signal that begins a stop. It must be one lastcall can catch, and not the
/// one it reaps by.
pub fn stop_signal_arg(s: &str) -> Result<Signal, String> {
    let sig = signal_arg(s)?;
    match sig {
        Signal::SIGKILL | Signal::SIGSTOP => Err(format!(
            "{} cannot begin a stop: no process can catch it (TERM and INT already do; add e.g. QUIT or USR2)",
            signal_name(sig)
        )),
        Signal::SIGCHLD => Err(
            "CHLD cannot begin a stop: every exiting child sends it (add e.g. QUIT or USR2)"
                .to_string(),
        ),
        _ => Ok(sig),
    }
}

/// `TERM`, `SIGTERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal, BudgetError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| BudgetError::UnknownSignal(s.to_string()));
    }
    let upper = t.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).map_err(|_| BudgetError::UnknownSignal(s.to_string()))
}

/// `TERM` for SIGTERM: how people write signals in plans and logs.
pub fn signal_name(sig: Signal) -> &'static str {
    let full = sig.as_str();
    full.strip_prefix("SIG").unwrap_or(full)
}

/// What the user asked for; `None` means "derive it from the stop timeout".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetInput {
    pub stop_timeout: Duration,
    pub kill_margin: Duration,
    /// Is there anything to be unready for (a health endpoint or a pre-stop delay)?
    pub unready: bool,
    /// Is there a drain proxy that has a closing phase?
    pub closing: bool,
    pub unready_cap: Option<Duration>,
    pub closing_cap: Option<Duration>,
    pub plan: SignalPlan,
}

impl Default for BudgetInput {
    fn default() -> Self {
        BudgetInput {
            stop_timeout: Duration::from_secs(30),
            kill_margin: Duration::from_secs(1),
            unready: false,
            closing: false,
            unready_cap: None,
            closing_cap: None,
            plan: SignalPlan::default(),
        }
    }
}

/// A checked stop timeline. All offsets are from the moment the stop began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub stop_timeout: Duration,
    pub kill_margin: Duration,
    pub unready_cap: Duration,
    pub closing_cap: Duration,
    pub plan: SignalPlan,
}

impl Budget {
    /// Derive the caps the user left open and check that the plan fits.
    pub fn new(input: BudgetInput) -> Result<Budget, BudgetError> {
        let fmt = duration::fmt;
        let timeout = input.stop_timeout;
        if input.kill_margin >= timeout {
            return Err(BudgetError::MarginTooLarge {
                margin: fmt(input.kill_margin),
                timeout: fmt(timeout),
            });
        }
        let kill_at = timeout - input.kill_margin;
        let reserve = (timeout / 6)
            .max(plan_need(&input.plan, timeout))
            .min(kill_at);
        let window = kill_at - reserve;
        let (unready_cap, closing_cap) = match (input.unready, input.closing) {
            (false, false) => (Duration::ZERO, Duration::ZERO),
            (true, false) => (input.unready_cap.unwrap_or(window), Duration::ZERO),
            (false, true) => (Duration::ZERO, input.closing_cap.unwrap_or(window)),
            (true, true) => match (input.unready_cap, input.closing_cap) {
                (Some(u), Some(c)) => (u, c),
                (Some(u), None) => (u, window.saturating_sub(u)),
                (None, Some(c)) => (window.saturating_sub(c), c),
                (None, None) => (window * 2 / 3, window - window * 2 / 3),
            },
        };
        let budget = Budget {
            stop_timeout: timeout,
            kill_margin: input.kill_margin,
            unready_cap,
            closing_cap,
            plan: input.plan,
        };
        budget.validate()?;
        Ok(budget)
    }

    /// When lastcall SIGKILLs whatever is left and exits.
    pub fn kill_at(&self) -> Duration {
        self.stop_timeout - self.kill_margin
    }

    /// The latest moment stopping can begin: both drain phases ran to their caps.
    pub fn latest_stopping(&self) -> Duration {
        self.unready_cap + self.closing_cap
    }

    /// When a step fires, for a stopping phase that began at `stopping`.
    pub fn step_at(&self, step: &Step, stopping: Duration) -> Duration {
        match step.offset {
            Offset::AfterStopping(d) => stopping + d,
            Offset::BeforeDeadline(d) => self.stop_timeout.saturating_sub(d).max(stopping),
        }
    }

    fn validate(&self) -> Result<(), BudgetError> {
        let fmt = duration::fmt;
        let latest = self.latest_stopping();
        if latest >= self.kill_at() {
            return Err(BudgetError::NoTimeToStop {
                unready: fmt(self.unready_cap),
                closing: fmt(self.closing_cap),
                kill_at: fmt(self.kill_at()),
                timeout: fmt(self.stop_timeout),
            });
        }
        for step in self.plan.steps() {
            if let Offset::BeforeDeadline(d) = step.offset {
                if d >= self.stop_timeout {
                    return Err(BudgetError::StepBeforeStop {
                        step: step.to_string(),
                        offset: fmt(d),
                        timeout: fmt(self.stop_timeout),
                    });
                }
                let at = self.stop_timeout.saturating_sub(d);
                if at < latest {
                    return Err(BudgetError::StepBeforeStopping {
                        step: step.to_string(),
                        at: fmt(at),
                        latest: fmt(latest),
                        unready: fmt(self.unready_cap),
                        closing: fmt(self.closing_cap),
                    });
                }
            }
            let at = self.step_at(step, latest);
            if at >= self.kill_at() {
                return Err(BudgetError::StepTooLate {
                    step: step.to_string(),
                    at: fmt(at),
                    kill_at: fmt(self.kill_at()),
                    timeout: fmt(self.stop_timeout),
                });
            }
        }
        Ok(())
    }
}

/// How much of the stop the plan needs after stopping begins, at the least: a `+D` step
/// needs D (and a moment to act on it), a `-D` step needs stopping to have begun D before
/// the deadline.
fn plan_need(plan: &SignalPlan, timeout: Duration) -> Duration {
    plan.steps()
        .iter()
        .map(|s| match s.offset {
            Offset::AfterStopping(d) => d + Duration::from_secs(1),
            Offset::BeforeDeadline(d) => d.min(timeout),
        })
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn worked_example_from_the_docs() {
        let b = Budget::new(BudgetInput {
            unready: true,
            closing: true,
            ..BudgetInput::default()
        })
        .unwrap();
        assert_eq!(
            (b.unready_cap, b.closing_cap, b.kill_at()),
            (secs(16), secs(8), secs(29))
        );
    }

    #[test]
    fn plans_parse_and_print() {
        let table = [
            ("TERM", "TERM@+0s"),
            ("TSTP@+0,TERM@-12s", "TSTP@+0s,TERM@-12s"),
            ("sigquit@+500ms", "QUIT@+500ms"),
            ("15@+1s", "TERM@+1s"),
        ];
        for (input, shown) in table {
            let plan: SignalPlan = input.parse().unwrap();
            assert_eq!(plan.to_string(), shown);
        }
    }

    #[test]
    fn plan_errors_say_how_to_fix() {
        let table = [
            (
                "TERM@12s",
                "invalid signal plan step `TERM@12s`: the offset needs a sign: +D after stopping begins, -D before the deadline (write e.g. TERM@+0 or TSTP@+0,TERM@-12s)",
            ),
            (
                "NOPE@+0",
                "unknown signal `NOPE` (write a name like TERM, INT, QUIT, TSTP, USR1 or a number)",
            ),
            (
                "TERM,",
                "invalid signal plan step ``: it is empty (write e.g. TERM@+0 or TSTP@+0,TERM@-12s)",
            ),
            // A multi-byte character where the sign goes once panicked the parser.
            (
                "TERM@µs",
                "invalid signal plan step `TERM@µs`: the offset needs a sign: +D after stopping begins, -D before the deadline (write e.g. TERM@+0 or TSTP@+0,TERM@-12s)",
            ),
            (
                "TERM@+é",
                "invalid signal plan step `TERM@+é`: invalid duration `é`: expected a number (write e.g. 500ms, 30s, 2m or 1m30s) (write e.g. TERM@+0 or TSTP@+0,TERM@-12s)",
            ),
        ];
        for (input, msg) in table {
            assert_eq!(input.parse::<SignalPlan>().unwrap_err().to_string(), msg);
        }
    }

    #[test]
    fn sidekiq_plan_fits_a_worker_without_drain_phases() {
        let b = Budget::new(BudgetInput {
            plan: "TSTP@+0,TERM@-12s".parse().unwrap(),
            ..BudgetInput::default()
        })
        .unwrap();
        let term = b.plan.steps()[1];
        assert_eq!(b.step_at(&term, Duration::ZERO), secs(18));
    }

    #[test]
    fn plans_that_cannot_fit_are_rejected() {
        let table: &[(&str, u64, bool, &str)] = &[
            (
                "TERM@+29s",
                30,
                false,
                "signal plan step TERM@+29s fires at 29s after the stop began, at or after lastcall's SIGKILL at 29s (--stop-timeout 30s minus --kill-margin); give it a smaller offset or raise --stop-timeout",
            ),
            (
                "TERM@-1s",
                30,
                false,
                "signal plan step TERM@-1s fires at 29s after the stop began, at or after lastcall's SIGKILL at 29s (--stop-timeout 30s minus --kill-margin); give it a smaller offset or raise --stop-timeout",
            ),
            (
                "TERM@-25s",
                30,
                true,
                "signal plan step TERM@-25s fires at 5s after the stop began, but stopping may begin as late as 10s (unready 10s + closing 0s); lower --deregistration-delay (or --pre-stop-delay) / --drain-timeout or raise --stop-timeout",
            ),
        ];
        for (plan, timeout, unready, msg) in table {
            let err = Budget::new(BudgetInput {
                stop_timeout: secs(*timeout),
                unready: *unready,
                unready_cap: unready.then(|| secs(10)),
                plan: plan.parse().unwrap(),
                ..BudgetInput::default()
            })
            .unwrap_err();
            assert_eq!(err.to_string(), *msg, "{plan}");
        }
    }

    #[test]
    fn margin_must_leave_room() {
        let err = Budget::new(BudgetInput {
            stop_timeout: secs(1),
            kill_margin: secs(1),
            ..BudgetInput::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--kill-margin 1s must be shorter than --stop-timeout 1s (lastcall must act before the orchestrator's SIGKILL)"
        );
    }

    #[test]
    fn caps_that_eat_the_whole_stop_are_rejected() {
        let err = Budget::new(BudgetInput {
            unready: true,
            unready_cap: Some(secs(29)),
            ..BudgetInput::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unready 29s + closing 0s leave the app no time")
        );
    }
}
