//! `--chart FILE.svg`: requests per 100 ms (by start time), stacked by outcome, one panel
//! per variant on a shared scale, with the stop events as labelled vertical lines. Every
//! colour is named in the panel itself and every line carries its own label, so the chart
//! reads without a separate legend. Plain SVG 1.1, no scripts, no external resources.

use std::fmt::Write as _;

use super::Settings;
use super::events::{Event, EventKind};
use super::load::Cause;
use super::variant::Outcome;

const BUCKET_MS: f64 = 100.0;
const WIDTH: f64 = 960.0;
const PANEL_H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 112.0;
const LABEL_ROWS: usize = 6;
const PLOT_H: f64 = 150.0;

const OK_COLOUR: &str = "#4caf50";

fn cause_colour(c: Cause) -> &'static str {
    match c {
        Cause::Refused => "#d32f2f",
        Cause::Reset => "#f57c00",
        Cause::Closed => "#fbc02d",
        Cause::Timeout => "#6d4c41",
        Cause::Status5xx => "#7b1fa2",
        Cause::NoTarget => "#455a64",
        Cause::Other => "#000000",
    }
}

/// Escape text for XML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// A short label for the line on the chart.
fn short(e: &Event) -> String {
    match e.kind {
        EventKind::InterruptionNotice => "Spot notice".into(),
        EventKind::StopBegan => "stop began".into(),
        EventKind::Deregistered => "deregistered".into(),
        EventKind::EndpointRemoved => "endpoint removed".into(),
        EventKind::Unhealthy => "LB: unhealthy".into(),
        EventKind::RoutingStopped => "LB stops routing".into(),
        EventKind::Sigterm => "SIGTERM".into(),
        EventKind::Sigkill => "SIGKILL".into(),
        EventKind::LastcallPhase => e.label.split(':').take(2).collect::<Vec<_>>().join(":"),
        EventKind::LastcallSignal => {
            let sig = e
                .label
                .trim_start_matches("lastcall: sending ")
                .split(' ')
                .next()
                .unwrap_or("a signal");
            format!("lastcall sends {sig}")
        }
        EventKind::LastServed => "last served".into(),
        EventKind::AppExit => "app exit".into(),
    }
}

/// The SVG document for all variants.
pub fn svg(s: &Settings, outcomes: &[Outcome]) -> String {
    let span_ms = outcomes
        .iter()
        .map(|o| o.ended_ms - o.load_started_ms)
        .fold(1000.0, f64::max);
    let buckets = (span_ms / BUCKET_MS).ceil() as usize;
    let counted: Vec<Vec<(usize, Vec<usize>)>> =
        outcomes.iter().map(|o| bucketize(o, buckets)).collect();
    let max = counted
        .iter()
        .flatten()
        .map(|(ok, f)| ok + f.iter().sum::<usize>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let height = 40.0 + PANEL_H * outcomes.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        esc(&format!(
            "lastcall drill: {} at {} req/s (time scale {}): requests per 100 ms by outcome",
            s.chore.platform.as_str(),
            s.args.rate,
            s.args.time_scale
        ))
    );
    for (i, (o, counts)) in outcomes.iter().zip(&counted).enumerate() {
        panel(&mut out, 40.0 + PANEL_H * i as f64, o, counts, max, span_ms);
    }
    out.push_str("</svg>\n");
    out
}

/// Per bucket: ok count and failed counts by cause (in `Cause::ALL` order).
fn bucketize(o: &Outcome, buckets: usize) -> Vec<(usize, Vec<usize>)> {
    let mut v = vec![(0usize, vec![0usize; Cause::ALL.len()]); buckets.max(1)];
    for r in &o.records {
        let i = ((r.start_ms - o.load_started_ms).max(0.0) / BUCKET_MS) as usize;
        let Some(b) = v.get_mut(i) else { continue };
        match r.cause {
            None => b.0 += 1,
            Some(c) => {
                if let Some(slot) = Cause::ALL.iter().position(|x| *x == c) {
                    b.1[slot] += 1;
                }
            }
        }
    }
    v
}

fn panel(
    out: &mut String,
    y0: f64,
    o: &Outcome,
    counts: &[(usize, Vec<usize>)],
    max: f64,
    span_ms: f64,
) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let base = y0 + TOP + PLOT_H;
    let x_of = |ms: f64| LEFT + (ms - o.load_started_ms) / span_ms * plot_w;
    let y_scale = PLOT_H / max;
    let _ = writeln!(
        out,
        r#"<g class="panel" data-variant="{}">"#,
        o.kind.as_str()
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
        y0 + 16.0,
        esc(&format!(
            "{}: sent {}, ok {}, failed {}{}",
            o.kind.as_str(),
            o.counts.sent,
            o.counts.ok,
            o.counts.failed,
            if o.killed { ", SIGKILL needed" } else { "" }
        ))
    );
    // Inline key: only the outcomes that occur in this panel, plus ok.
    let mut kx = LEFT;
    let mut key = vec![("ok".to_string(), OK_COLOUR)];
    for (cause, n) in &o.counts.failed_by_cause {
        if let Some(c) = Cause::ALL.iter().find(|c| c.as_str() == *cause) {
            key.push((format!("failed: {cause} ({n})"), cause_colour(*c)));
        }
    }
    for (label, colour) in key {
        let _ = writeln!(
            out,
            r#"<rect x="{kx}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            y0 + 24.0,
            kx + 14.0,
            y0 + 33.0,
            esc(&label)
        );
        kx += 24.0 + 6.5 * label.len() as f64;
    }
    // Axes.
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#333"/><line x1="{LEFT}" y1="{}" x2="{LEFT}" y2="{base}" stroke="#333"/>"##,
        WIDTH - RIGHT,
        y0 + TOP
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text>"#,
        LEFT - 4.0,
        y0 + TOP + 4.0,
        max as u64,
        LEFT - 4.0,
        base + 4.0
    );
    let seconds = (span_ms / 1000.0).floor() as u64;
    for sec in 0..=seconds {
        let x = x_of(o.load_started_ms + sec as f64 * 1000.0);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{base}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle">{sec}s</text>"##,
            base + 4.0,
            base + 16.0
        );
    }
    // Bars.
    let bw = plot_w / (span_ms / BUCKET_MS);
    for (i, (ok, failed)) in counts.iter().enumerate() {
        let x = LEFT + i as f64 * bw;
        let mut top = base;
        let mut stack = vec![(*ok, OK_COLOUR)];
        for (slot, n) in failed.iter().enumerate() {
            stack.push((*n, cause_colour(Cause::ALL[slot])));
        }
        for (n, colour) in stack {
            if n == 0 {
                continue;
            }
            let h = n as f64 * y_scale;
            top -= h;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/>"#,
                (bw - 0.5).max(0.5)
            );
        }
    }
    // Stop events: a dashed line each. Labels go on the first row where they do not run
    // into the previous label, so events a few milliseconds apart stay readable.
    let mut row_end = [f64::MIN; LABEL_ROWS];
    for e in o.events.iter().filter(|e| e.at_ms >= o.load_started_ms) {
        let x = x_of(e.at_ms);
        let label = short(e);
        let width = 5.6 * label.chars().count() as f64 + 6.0;
        let row = (0..LABEL_ROWS)
            .find(|&r| row_end[r] <= x)
            .unwrap_or_else(|| {
                (0..LABEL_ROWS)
                    .min_by(|&a, &b| row_end[a].total_cmp(&row_end[b]))
                    .unwrap_or(0)
            });
        row_end[row] = x + width;
        let ly = y0 + TOP - 4.0 - 11.0 * (LABEL_ROWS - 1 - row) as f64;
        let _ = writeln!(
            out,
            r##"<g class="event" data-kind="{}"><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{base}" stroke="#222" stroke-dasharray="3,3"/><text x="{:.1}" y="{ly:.1}" font-size="10">{}</text></g>"##,
            e.kind.as_str(),
            ly + 2.0,
            x + 2.0,
            esc(&label)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" fill="gray">seconds since the load started</text>"#,
        WIDTH - RIGHT,
        base + 30.0
    );
    out.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
