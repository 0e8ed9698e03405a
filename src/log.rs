//! Log lines that always say where the stop is: the phase, the time since the stop began
//! and the time left before the orchestrator's SIGKILL. Text by default, one JSON object a
//! line with `--log-format json`. Everything goes to stderr so the app's stdout stays its own.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::drain::{Phase, StopClock};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

static CLOCK: OnceLock<StopClock> = OnceLock::new();
static PHASE: AtomicU8 = AtomicU8::new(Phase::Serving as u8);

/// Called once when the stop begins, so every later line carries its timing.
pub fn set_clock(clock: StopClock) {
    let _ = CLOCK.set(clock);
}

pub fn set_phase(phase: Phase) {
    PHASE.store(phase as u8, Ordering::Relaxed);
}

fn phase() -> Phase {
    let i = PHASE.load(Ordering::Relaxed) as usize;
    Phase::ALL.get(i).copied().unwrap_or(Phase::Serving)
}

/// Install the global logger. `quiet` keeps only warnings and errors.
pub fn init(format: LogFormat, quiet: bool) {
    let level = if quiet { Level::WARN } else { Level::INFO };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A log line that cannot be written is dropped. By default the subscriber reports
        // the failure with `eprintln!`, which panics when stderr is a closed pipe, and a
        // panic in PID 1 would orphan the app it supervises.
        .log_internal_errors(false)
        .with_max_level(level)
        .event_format(Format(format));
    // A second init (tests, or a library user that set its own) keeps the first one.
    let _ = builder.try_init();
}

/// Print one line on stderr, or nothing if stderr is gone. Never panics, unlike
/// `eprintln!`, which panics on a closed pipe (a log collector that died, `| head`).
pub fn say(line: impl fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Write `text` to stdout; false when stdout is gone (a closed pipe: the reader has
/// what it wanted, so the caller just stops writing).
pub fn out(text: &str) -> bool {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).is_ok() && stdout.flush().is_ok()
}

struct Format(LogFormat);

#[derive(Default)]
struct Fields {
    message: String,
    extra: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.extra.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.extra.push((field.name(), format!("{value:?}")));
        }
    }
}

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        let phase = phase().as_str();
        let clock = CLOCK.get();
        match self.0 {
            LogFormat::Text => {
                write!(w, "lastcall[{phase}")?;
                if let Some(c) = clock {
                    write!(
                        w,
                        " +{:.3}s, {:.3}s left",
                        c.since().as_secs_f64(),
                        c.left().as_secs_f64()
                    )?;
                }
                write!(w, "]")?;
                if level <= Level::WARN {
                    write!(w, " {}:", level.as_str().to_ascii_lowercase())?;
                }
                write!(w, " {}", fields.message)?;
                for (k, v) in &fields.extra {
                    write!(w, " {k}={v}")?;
                }
                writeln!(w)
            }
            LogFormat::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert("level".into(), level.as_str().to_ascii_lowercase().into());
                obj.insert("phase".into(), phase.into());
                if let Some(c) = clock {
                    obj.insert(
                        "since_stop_ms".into(),
                        (c.since().as_millis() as u64).into(),
                    );
                    obj.insert("left_ms".into(), (c.left().as_millis() as u64).into());
                }
                obj.insert("msg".into(), fields.message.into());
                for (k, v) in fields.extra {
                    obj.insert(k.into(), v.into());
                }
                writeln!(w, "{}", serde_json::Value::Object(obj))
            }
        }
    }
}
