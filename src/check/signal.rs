//! Stop signals as Dockerfiles (`STOPSIGNAL`), Compose (`stop_signal`) and Kubernetes
//! (`lifecycle.stopSignal`) write them: a name with or without `SIG` in any case
//! (`SIGQUIT`, `quit`), a realtime signal (`SIGRTMIN+3`, which systemd wants), or a
//! number. Docker accepts any number at build time and fails at `docker stop`, so
//! a number counts only if Linux has that signal (1–64).

use nix::sys::signal::Signal;

/// Linux's realtime signals as Docker numbers them (glibc keeps 32 and 33 for itself).
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// The signal's number, or `None` when there is no such signal.
pub fn number(text: &str) -> Option<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    // `RTMIN`, `RTMIN+3`, `RTMAX`, `RTMAX-1`.
    let realtime = |rest: &str, sign: char| -> Option<i32> {
        if rest.is_empty() {
            return Some(0);
        }
        rest.strip_prefix(sign)?.parse::<u8>().ok().map(i32::from)
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        RTMIN + realtime(rest, '+')?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        RTMAX - realtime(rest, '-')?
    } else {
        let alias = match name {
            "IOT" => "ABRT",
            "POLL" => "IO",
            "CLD" => "CHLD",
            other => other,
        };
        return format!("SIG{alias}")
            .parse::<Signal>()
            .ok()
            .map(|s| s as i32);
    };
    (RTMIN..=RTMAX).contains(&n).then_some(n)
}

/// Is it SIGQUIT?
pub fn is_quit(text: &str) -> bool {
    number(text) == Some(Signal::SIGQUIT as i32)
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn names_numbers_and_realtime_signals() {
        let table: &[(&str, Option<i32>)] = &[
            ("SIGTERM", Some(15)),
            ("TERM", Some(15)),
            ("sigquit", Some(3)),
            (" SIGQUIT ", Some(3)),
            ("3", Some(3)),
            ("SIGWINCH", Some(28)),
            ("SIGIOT", Some(6)),
            ("SIGPOLL", Some(29)),
            ("SIGCLD", Some(17)),
            ("SIGRTMIN", Some(34)),
            ("SIGRTMIN+3", Some(37)),
            ("RTMIN+30", Some(64)),
            ("SIGRTMAX", Some(64)),
            ("SIGRTMAX-1", Some(63)),
            ("64", Some(64)),
            ("SIGFOO", None),
            ("SIG", None),
            ("", None),
            ("0", None),
            ("65", None),
            ("999", None),
            ("-15", None),
            ("SIGRTMIN+31", None),
            ("SIGRTMIN-1", None),
            ("SIGRTMAX+1", None),
            ("SIGRTMINX", None),
            ("SIGTERM,SIGINT", None),
        ];
        for (text, want) in table {
            assert_eq!(number(text), *want, "{text:?}");
        }
    }
}
