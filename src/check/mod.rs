//! `lastcall check`: lint Dockerfiles, compose files, ECS task definitions,
//! CloudFormation templates and Kubernetes manifests for graceful-shutdown mistakes.
//!
//! # Design
//!
//! Three stages, each in its own modules:
//!
//! 1. **Read** ([`scan`]): find files, tell their kind, and parse them into [`model`]
//!    facts — how each container is started and stopped — with the line and column of
//!    every value ([`tree`] is a span-keeping YAML/JSON tree; [`dockerfile`] reads
//!    Dockerfiles; [`ecs`], [`cloudformation`], [`k8s`], [`compose`] read the rest).
//! 2. **Judge** ([`lint`], [`timing`]): all facts together, so a task definition's
//!    command meets the image's ENTRYPOINT and a service meets its target group. What
//!    runs as PID 1 is worked out in [`process`] (lastcall's own flags are parsed by the
//!    clap definition of `lastcall run`), app shutdown timeouts in [`apps`], and timing
//!    uses [`crate::budget`], the model `lastcall run` takes its deadlines from.
//! 3. **Report** ([`output`]): human, JSON or SARIF; [`config`] applies ignores.
//!
//! Rules live in [`rules`] with stable IDs and their `--explain` text.

pub mod appconfig;
pub mod apps;
pub mod cloudformation;
pub mod compose;
pub mod config;
pub mod dockerfile;
pub mod ecs;
pub mod k8s;
pub mod lint;
pub mod model;
pub mod output;
pub mod process;
pub mod rules;
pub mod scan;
pub mod shell;
pub mod signal;
pub mod timing;
pub mod tree;

use std::io::IsTerminal;
use std::path::PathBuf;

use lint::Finding;
use model::{Facts, FileError};
use output::Format;
use rules::Severity;
use scan::Kind;

/// Flags of `lastcall check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Files or directories to check (default: the current directory); `-` reads stdin
    /// (needs --kind).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Treat every file as this kind instead of telling from name and content.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Exit 1 when a finding is at least this severe (default: warning, or the config's).
    #[arg(long, value_enum)]
    pub fail_on: Option<Severity>,
    /// Config file (default: .lastcall-check.yaml in the current directory, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Explain a rule (why it matters and how to fix it) and exit.
    #[arg(long, value_name = "ID")]
    pub explain: Option<String>,
    /// List every rule and exit.
    #[arg(long)]
    pub list_rules: bool,
}

/// What a check found, before printing.
#[derive(Debug)]
pub struct Report {
    pub facts: Facts,
    pub findings: Vec<Finding>,
    pub errors: Vec<FileError>,
}

/// Read the files and judge them; `config` decides what is ignored.
pub fn check(paths: &[PathBuf], kind: Option<Kind>, config: &config::Config) -> Report {
    let mut errors = Vec::new();
    let mut files = scan::collect(paths, config, &mut errors);
    let mut seen = std::collections::HashSet::new();
    files.retain(|(p, _)| {
        let normal: PathBuf = p
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        seen.insert(normal)
    });
    let mut facts = Facts::default();
    for (path, explicit) in files {
        if let Err(e) = scan::read(&path, explicit, kind, &mut facts) {
            errors.push(e);
        }
    }
    let mut findings = lint::lint(&facts);
    let ignores: Vec<Vec<(usize, Vec<String>)>> = facts
        .files
        .iter()
        .map(|f| config::inline_ignores(&f.text))
        .collect();
    findings.retain(|f| {
        let inline = ignores.get(f.loc.file).is_some_and(|list| {
            list.iter()
                .any(|(line, ids)| *line == f.loc.span.line && ids.iter().any(|i| i == f.rule.id))
        });
        !inline && !config.ignore.iter().any(|i| i == f.rule.id)
    });
    for f in &mut findings {
        if let Some((_, sev)) = config.severity.iter().find(|(id, _)| id == f.rule.id) {
            f.severity = *sev;
        }
    }
    Report {
        facts,
        findings,
        errors,
    }
}

/// Check one text as a file of the given kind and render every output format: the
/// whole pipeline without the file system, for fuzzing and tests.
pub fn check_text(name: &str, text: &str, kind: Option<Kind>) -> (Report, [String; 3]) {
    let mut facts = Facts::default();
    let mut errors = Vec::new();
    let path = std::path::Path::new(name);
    if let Err(e) = scan::read_text(path, text.to_string(), true, kind, &mut facts) {
        errors.push(e);
    }
    let findings = lint::lint(&facts);
    let outputs = [
        output::human(&facts, &findings, true),
        output::json(&facts, &findings, &errors),
        output::sarif(&facts, &findings, &errors),
    ];
    (
        Report {
            facts,
            findings,
            errors,
        },
        outputs,
    )
}

/// `lastcall check --explain ID`.
pub fn explain(id: &str) -> Option<String> {
    let r = rules::find(id)?;
    Some(format!(
        "{} ({}): {}\n\nWhy: {}\n\nFix: {}\n",
        r.id, r.severity, r.title, r.why, r.fix
    ))
}

fn usage(msg: &str) -> i32 {
    crate::log::say(format_args!("lastcall: {msg}"));
    crate::run::USAGE
}

/// Run the check; returns the exit code: 0 clean, 1 findings at or above --fail-on,
/// 2 usage errors or unreadable input.
pub fn run(args: CheckArgs) -> i32 {
    if args.list_rules {
        let mut out = String::new();
        for r in rules::RULES {
            out.push_str(&format!(
                "{}  {:<7}  {}\n",
                r.id,
                r.severity.to_string(),
                r.title
            ));
        }
        crate::log::out(&out);
        return 0;
    }
    if let Some(id) = &args.explain {
        return match explain(id) {
            Some(text) => {
                crate::log::out(&text);
                0
            }
            None => usage(&format!(
                "unknown rule `{id}` for --explain (see lastcall check --list-rules)"
            )),
        };
    }
    if args.paths.iter().any(|p| p.as_os_str() == "-") && args.kind.is_none() {
        return usage(
            "reading stdin (-) needs --kind (dockerfile, compose, ecs, cloudformation or k8s)",
        );
    }
    let config = match config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let report = check(&paths, args.kind, &config);
    let text = match args.format {
        Format::Human => {
            for e in &report.errors {
                crate::log::say(format_args!("lastcall: {e}"));
            }
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            output::human(&report.facts, &report.findings, colour)
        }
        Format::Json => output::json(&report.facts, &report.findings, &report.errors),
        Format::Sarif => output::sarif(&report.facts, &report.findings, &report.errors),
    };
    crate::log::out(&text);
    let fail_on = args.fail_on.or(config.fail_on).unwrap_or(Severity::Warning);
    if !report.errors.is_empty() {
        crate::run::USAGE
    } else if report.findings.iter().any(|f| f.severity >= fail_on) {
        1
    } else {
        0
    }
}
