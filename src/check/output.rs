//! The three ways to print findings: for people (with the source line and the fix,
//! coloured only on a terminal), JSON for scripts, and SARIF 2.1.0 for code scanning.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::lint::Finding;
use super::model::{Facts, FileError, Loc};
use super::rules::{RULES, Severity};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

fn path_of(facts: &Facts, loc: Loc) -> &Path {
    facts
        .files
        .get(loc.file)
        .map_or(Path::new("?"), |f| f.path.as_path())
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// For people: `path:line:col: severity[ID]: message`, the source line with a caret, and
/// the fix. Errors about unreadable files come first, on their own lines.
pub fn human(facts: &Facts, findings: &[Finding], colour: bool) -> String {
    let paint = Paint(colour);
    let mut out = String::new();
    for f in findings {
        let path = path_of(facts, f.loc).display();
        let sev = match f.severity {
            Severity::Error => paint.wrap("1;31", "error"),
            Severity::Warning => paint.wrap("1;33", "warning"),
            Severity::Info => paint.wrap("1;34", "info"),
        };
        let id = paint.wrap("1", f.rule.id);
        let _ = writeln!(
            out,
            "{path}:{}:{}: {sev}[{id}]: {}",
            f.loc.span.line, f.loc.span.col, f.message
        );
        if let Some(src) = facts
            .files
            .get(f.loc.file)
            .and_then(|file| file.line(f.loc.span.line))
        {
            let n = f.loc.span.line.to_string();
            let pad = " ".repeat(n.len());
            let caret_pad: String = src
                .chars()
                .take(f.loc.span.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{n} | {src}");
            let _ = writeln!(out, "{pad} | {caret_pad}{}", paint.wrap("1;36", "^"));
        }
        for (loc, what) in &f.related {
            let _ = writeln!(
                out,
                "  = note: {what}: {}:{}:{}",
                path_of(facts, *loc).display(),
                loc.span.line,
                loc.span.col
            );
        }
        let _ = writeln!(out, "  = fix: {}", f.rule.fix);
        let _ = writeln!(out, "  = see: lastcall check --explain {}", f.rule.id);
        out.push('\n');
    }
    if !findings.is_empty() {
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let _ = writeln!(
            out,
            "{}, {}, {}",
            plural(count(Severity::Error), "error"),
            plural(count(Severity::Warning), "warning"),
            plural(count(Severity::Info), "note")
        );
    }
    out
}

fn loc_json(facts: &Facts, loc: Loc) -> Value {
    json!({"path": path_of(facts, loc).to_string_lossy(), "line": loc.span.line, "column": loc.span.col})
}

fn error_json(e: &FileError) -> Value {
    json!({
        "path": e.path.to_string_lossy(),
        "line": e.span.map(|s| s.line),
        "column": e.span.map(|s| s.col),
        "message": e.message,
    })
}

/// One JSON document: `{"findings": [...], "errors": [...]}`.
pub fn json(facts: &Facts, findings: &[Finding], errors: &[FileError]) -> String {
    let findings: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut v = loc_json(facts, f.loc);
            v["rule"] = json!(f.rule.id);
            v["severity"] = json!(f.severity.to_string());
            v["title"] = json!(f.rule.title);
            v["message"] = json!(f.message);
            v["fix"] = json!(f.rule.fix);
            v["related"] = f
                .related
                .iter()
                .map(|(loc, what)| {
                    let mut r = loc_json(facts, *loc);
                    r["message"] = json!(what);
                    r
                })
                .collect();
            v
        })
        .collect();
    let errors: Vec<Value> = errors.iter().map(error_json).collect();
    let doc = json!({"findings": findings, "errors": errors});
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// A relative URI reference for a path: forward slashes, reserved bytes percent-encoded.
fn uri(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    let s = s.trim_start_matches("./");
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn physical(path: &Path, line: usize, col: usize) -> Value {
    json!({"physicalLocation": {
        "artifactLocation": {"uri": uri(path)},
        "region": {"startLine": line.max(1), "startColumn": col.max(1)},
    }})
}

/// SARIF 2.1.0: one run, every rule in the driver, findings as results, unreadable files
/// as tool execution notifications.
pub fn sarif(facts: &Facts, findings: &[Finding], errors: &[FileError]) -> String {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": r.why},
                "help": {"text": format!("{}\n\nFix: {}", r.why, r.fix)},
                "defaultConfiguration": {"level": r.severity.sarif_level()},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let index = RULES.iter().position(|r| r.id == f.rule.id).unwrap_or(0);
            let related: Vec<Value> = f
                .related
                .iter()
                .enumerate()
                .map(|(i, (loc, what))| {
                    let mut v = physical(path_of(facts, *loc), loc.span.line, loc.span.col);
                    v["id"] = json!(i);
                    v["message"] = json!({"text": what});
                    v
                })
                .collect();
            let mut r = json!({
                "ruleId": f.rule.id,
                "ruleIndex": index,
                "level": f.severity.sarif_level(),
                "message": {"text": f.message},
                "locations": [physical(path_of(facts, f.loc), f.loc.span.line, f.loc.span.col)],
            });
            if !related.is_empty() {
                r["relatedLocations"] = json!(related);
            }
            r
        })
        .collect();
    let notifications: Vec<Value> = errors
        .iter()
        .map(|e| {
            let span = e.span.unwrap_or_default();
            json!({
                "level": "error",
                "message": {"text": e.message},
                "locations": [physical(&e.path, span.line, span.col)],
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "lastcall",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
