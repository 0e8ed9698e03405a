//! `--json FILE`: the drill's full record, for CI and for people who want to look closer.
//! The shape is documented in README.md (`lastcall drill`, "The report, the chart, the JSON") and checked by a test; fields
//! are only ever added, never renamed.

use serde::Serialize;

use super::Settings;
use super::events::Event;
use super::load::Record;
use super::platform::Params;
use super::variant::Outcome;

#[derive(Debug, Serialize)]
struct Document<'a> {
    /// Version of this shape.
    schema: u32,
    lastcall_version: &'static str,
    platform: &'static str,
    time_scale: f64,
    /// The platform's numbers as given (unscaled) and as run (scaled), in milliseconds.
    params: Params,
    params_scaled: Params,
    rate: f64,
    latency_ms: u64,
    isolation: String,
    notes: &'a [String],
    passed: bool,
    exit_code: i32,
    variants: Vec<Variant<'a>>,
}

#[derive(Debug, Serialize)]
struct Variant<'a> {
    name: &'static str,
    command: &'a [String],
    sent: u64,
    ok: u64,
    failed: u64,
    failed_by_cause: &'a std::collections::BTreeMap<&'static str, u64>,
    killed: bool,
    passed: bool,
    verdict: String,
    exit: Option<String>,
    exit_code: Option<i32>,
    exit_signal: Option<i32>,
    load_started_ms: f64,
    stop_began_ms: f64,
    ended_ms: f64,
    events: &'a [Event],
    requests: &'a [Record],
    output: Vec<OutputLine<'a>>,
}

#[derive(Debug, Serialize)]
struct OutputLine<'a> {
    at_ms: f64,
    line: &'a str,
}

/// The JSON text of the whole drill.
pub fn document(s: &Settings, outcomes: &[Outcome], code: i32) -> String {
    let doc = Document {
        schema: 1,
        lastcall_version: env!("CARGO_PKG_VERSION"),
        platform: s.chore.platform.as_str(),
        time_scale: s.args.time_scale,
        params: s.unscaled.clone(),
        params_scaled: s.chore.p.clone(),
        rate: s.args.rate,
        latency_ms: s.args.latency.as_millis() as u64,
        isolation: s.isolation.describe(),
        notes: &s.notes,
        passed: code == 0,
        exit_code: code,
        variants: outcomes
            .iter()
            .map(|o| Variant {
                name: o.kind.as_str(),
                command: &o.command,
                sent: o.counts.sent,
                ok: o.counts.ok,
                failed: o.counts.failed,
                failed_by_cause: &o.counts.failed_by_cause,
                killed: o.killed,
                passed: o.passed(),
                verdict: super::report::verdict(o),
                exit: o.exit.map(|e| e.describe()),
                exit_code: o.exit.and_then(|e| e.code),
                exit_signal: o.exit.and_then(|e| e.signal),
                load_started_ms: o.load_started_ms,
                stop_began_ms: o.stop_began_ms,
                ended_ms: o.ended_ms,
                events: &o.events,
                requests: &o.records,
                output: o
                    .output
                    .iter()
                    .map(|(at, line)| OutputLine {
                        at_ms: *at,
                        line: line.as_str(),
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
