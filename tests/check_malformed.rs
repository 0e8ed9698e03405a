#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! Malformed input yields one error naming the file and position, never a panic: a
//! hand-made corpus with its exact messages, then a bounded randomized mutation run of
//! every fixture through every reader, all rules and all output formats.
//!
//! The cargo-fuzz targets in fuzz/ do the same with coverage guidance; this test keeps a
//! cheap version of it in every `cargo test`.

use std::path::Path;
use std::process::Command;

use lastcall::check::check_text;
use lastcall::check::scan::Kind;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_malformed_corpus_gives_one_clear_error_per_file() {
    let dir = Path::new(ROOT).join("tests/fixtures/check/malformed");
    let out = Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .current_dir(&dir)
        .args(["check", "."])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        "\
lastcall: Dockerfile.nofrom:2:1: RUN before the first FROM; a Dockerfile starts with FROM (ARG may come before it)
lastcall: compose.yaml:3:14: cannot parse YAML: invalid indentation in quoted scalar
lastcall: deep.json:1:256: cannot parse JSON: recursion limit exceeded
lastcall: laughs.yaml:8:45: cannot parse YAML: the document has too many values (over a million, after expanding aliases)
lastcall: truncated.json:3:1: cannot parse JSON: while parsing a flow mapping, did not find expected ',' or '}'
lastcall: unknown-alias.yaml:6:16: cannot parse YAML: while parsing node, found unknown anchor
lastcall: unterminated.yaml:1:6: cannot parse YAML: while scanning a quoted scalar, found unexpected end of stream
"
    );
    assert_eq!(out.status.code(), Some(2));
}

/// xorshift64*: a fixed seed, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "- ",
    "\"",
    "'",
    "\\",
    "\n",
    "\t",
    "  ",
    "&a ",
    "*a",
    "!Ref ",
    "<<: *a",
    "---\n",
    "#",
    "null",
    "-1",
    "99999999999999999999",
    "1e400",
    "\u{0}",
    "é",
    "$(",
    "&&",
    "exec ",
    "\"$@\"",
    "lastcall run --signal-plan TERM@-99s -- ",
    "FROM ",
    "ENTRYPOINT ",
    "CMD ",
    "\\\n",
    "<<EOF\n",
    "stopTimeout",
    "terminationGracePeriodSeconds: ",
    "preStop",
    "sleep",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 => chars.truncate(at),
            1 => {
                let end = (at + rng.below(40)).min(chars.len());
                chars.drain(at..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = at.min(chars.len());
                chars.splice(at..at, t.chars());
            }
            _ => {
                if at < chars.len() {
                    chars[at] = char::from_u32(rng.below(0x80) as u32).unwrap_or('x');
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn fixtures() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![
        Path::new(ROOT).join("tests/fixtures/check/rules"),
        Path::new(ROOT).join("examples"),
    ];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                out.push((p.file_name().unwrap().to_string_lossy().to_string(), t));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn mutated_fixtures_never_panic() {
    let kinds = [
        None,
        Some(Kind::Dockerfile),
        Some(Kind::Compose),
        Some(Kind::Ecs),
        Some(Kind::Cloudformation),
        Some(Kind::K8s),
    ];
    let mut rng = Rng(0x5EED_1A57_CA11);
    let mut runs = 0;
    let mut errors = 0;
    for (name, text) in fixtures() {
        for _ in 0..40 {
            let input = mutate(&mut rng, &text);
            for kind in kinds {
                let (report, outputs) = check_text(&name, &input, kind);
                runs += 1;
                errors += report.errors.len();
                for e in &report.errors {
                    // One line, naming the file.
                    let line = e.to_string();
                    assert!(line.starts_with(&name) && !line.contains('\n'), "{line}");
                }
                assert!(
                    outputs[1..].iter().all(|o| o.starts_with("{")),
                    "json and sarif are always documents"
                );
            }
        }
    }
    assert!(runs > 5000, "{runs}");
    assert!(errors > 100, "mutations should break many files: {errors}");
}
