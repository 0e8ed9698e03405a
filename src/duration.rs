//! Durations as people write them in task definitions and env vars: `500ms`, `30s`, `2m`,
//! `1m30s`, `1.5s`. A bare number is seconds, because ECS and Kubernetes count in seconds
//! (`stopTimeout: 30`, `terminationGracePeriodSeconds: 30`).

use std::time::Duration;

/// Why a duration could not be read. The message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {why} (write e.g. 500ms, 30s, 2m or 1m30s)")]
pub struct DurationError {
    input: String,
    why: &'static str,
}

/// Parse a human duration; see the module docs for the accepted forms.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s.starts_with('-') {
        return Err(err("it is negative"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return from_secs(secs).ok_or_else(|| err("it is negative or too large"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("a number needs a unit"))?;
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| err("expected a number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "us" | "µs" => 0.000_001,
            _ => return Err(err("unknown unit (use ms, s, m or h)")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    from_secs(total).ok_or_else(|| err("it is negative or too large"))
}

fn from_secs(secs: f64) -> Option<Duration> {
    // A week is far beyond any grace period; larger values are typos.
    (secs.is_finite() && (0.0..=604_800.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// Format a duration the way `parse` reads it back, compactly: `1.5s`, `250ms`, `2m`.
pub fn fmt(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 && !d.is_zero() {
        return format!("{}us", d.as_micros());
    }
    if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.3}s", d.as_secs_f64())
            .trim_end_matches('0')
            .to_string()
    }
}

/// clap value parser, so flags and env vars share one reading and one message.
pub fn arg(input: &str) -> Result<Duration, String> {
    parse(input).map_err(|e| e.to_string())
}

/// For clap: a duration that must be more than zero (a timeout of 0 fails everything; a
/// kill margin of 0 lets the orchestrator's SIGKILL arrive first).
pub fn positive_arg(input: &str) -> Result<Duration, String> {
    match parse(input) {
        Ok(d) if d.is_zero() => Err(DurationError {
            input: input.to_string(),
            why: "it must be more than 0",
        }
        .to_string()),
        other => other.map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_people_write() {
        let table: &[(&str, u64)] = &[
            ("500ms", 500),
            ("30s", 30_000),
            ("2m", 120_000),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            ("30", 30_000),
            ("0", 0),
            ("0.25", 250),
            ("1h", 3_600_000),
        ];
        for (input, ms) in table {
            assert_eq!(parse(input), Ok(Duration::from_millis(*ms)), "{input}");
        }
    }

    #[test]
    fn rejects_with_a_message_that_says_how_to_fix() {
        let table: &[(&str, &str)] = &[
            (
                "",
                "invalid duration ``: it is empty (write e.g. 500ms, 30s, 2m or 1m30s)",
            ),
            (
                "30x",
                "invalid duration `30x`: unknown unit (use ms, s, m or h) (write e.g. 500ms, 30s, 2m or 1m30s)",
            ),
            (
                "s",
                "invalid duration `s`: expected a number (write e.g. 500ms, 30s, 2m or 1m30s)",
            ),
            (
                "-1",
                "invalid duration `-1`: it is negative (write e.g. 500ms, 30s, 2m or 1m30s)",
            ),
            (
                "-1s",
                "invalid duration `-1s`: it is negative (write e.g. 500ms, 30s, 2m or 1m30s)",
            ),
            (
                "10s5",
                "invalid duration `10s5`: a number needs a unit (write e.g. 500ms, 30s, 2m or 1m30s)",
            ),
        ];
        for (input, msg) in table {
            assert_eq!(
                parse(input).map_err(|e| e.to_string()),
                Err(msg.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0u64, 1, 250, 1000, 1500, 30_000, 60_000, 90_000, 120_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&fmt(d)), Ok(d), "{}", fmt(d));
        }
    }
}
