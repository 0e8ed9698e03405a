//! The command line: `lastcall run`, `lastcall drill`, `lastcall check`.

use clap::{Parser, Subcommand};

use crate::{check, drill, run};

/// lastcall: a container ENTRYPOINT that makes stopping a container lose nothing.
#[derive(Debug, Parser)]
#[command(name = "lastcall", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND as PID 1: reap, forward signals, drain and stop it within the deadline.
    Run(Box<run::RunArgs>),
    /// Rehearse a container stop under load behind a simulated load balancer.
    Drill(Box<drill::DrillArgs>),
    /// Audit Dockerfiles, ECS, CloudFormation, compose and k8s files for shutdown mistakes.
    Check(check::CheckArgs),
    /// The drill's built-in demo app: HTTP with some latency, exits at once on SIGTERM.
    #[command(hide = true)]
    DemoApp(drill::demo::DemoArgs),
}

/// Parse the command line and run; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Drill(args) => drill::run(*args),
        Command::Check(args) => check::run(args),
        Command::DemoApp(args) => drill::demo::run(args),
    }
}

/// Help and version go to stdout as clap prints them; mistakes become one line on stderr.
fn clap_error(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            run::USAGE
        } else {
            0
        };
    }
    let mut line = one_line(&e.to_string());
    if let Some((arg, var)) = from_environment(e) {
        // In a task definition the value sits in `environment`, not in the command: say
        // where to look.
        let named = format!("'{arg}'");
        line = line.replacen(&named, &format!("{named} (set by {var})"), 1);
    }
    crate::log::say(format_args!("lastcall: {line}"));
    run::USAGE
}

/// The flag as clap names it and the environment variable its rejected value came from,
/// when it was not on the command line.
fn from_environment(e: &clap::Error) -> Option<(String, String)> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let flag = format!("--{long}");
    let on_command_line = std::env::args_os().any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    if on_command_line {
        return None;
    }
    let cmd = Cli::command();
    let var = std::iter::once(&cmd)
        .chain(cmd.get_subcommands())
        .flat_map(clap::Command::get_arguments)
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_string_lossy()
        .into_owned();
    std::env::var_os(&var).is_some().then(|| (arg.clone(), var))
}

/// clap's message without its "error:" prefix, usage block and hint, on one line.
pub fn one_line(rendered: &str) -> String {
    let mut out = String::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') || line.starts_with('[') {
                " "
            } else {
                "; "
            });
        }
        out.push_str(line);
    }
    out.push_str(" (see lastcall --help)");
    out
}
