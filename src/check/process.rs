//! What runs as the container's PID 1: the effective command line (Docker's rules for
//! ENTRYPOINT/CMD overrides), the init in front of the app if any, and — when the init
//! is lastcall — its `run` flags, parsed by the very same clap definition `lastcall run`
//! uses so that check and run can never disagree about what a flag means.

use clap::{CommandFactory, FromArgMatches};

use super::apps::{base, program_index};
use super::model::{Argv, Container, Env, Image, Loc, Spanned};
use crate::cli::Cli;
use crate::run::RunArgs;

/// The init in front of the app.
#[derive(Debug, Clone)]
pub struct Init {
    pub name: String,
    pub loc: Loc,
    /// Does it signal the app's whole process group? Then shells and package managers in
    /// between do no harm: the app gets the signal too.
    pub group: bool,
}

/// lastcall as PID 1 and how it was configured.
#[derive(Debug, Clone)]
pub struct Lastcall {
    pub loc: Loc,
    /// How the command line starts, for messages: `lastcall run`, or `lastcall` when
    /// it names no subcommand lastcall has.
    pub command: &'static str,
    /// What `lastcall run` would make of its flags and `LASTCALL_*` variables.
    pub args: Result<Box<RunArgs>, String>,
    /// Where each flag was set (`stop-timeout` → the word or env var).
    pub set_at: Vec<(String, Loc)>,
}

impl Lastcall {
    pub fn at(&self, flag: &str) -> Option<Loc> {
        self.set_at.iter().find(|(f, _)| f == flag).map(|(_, l)| *l)
    }
}

/// How the container starts.
#[derive(Debug, Clone)]
pub struct Launch {
    pub words: Vec<Spanned<String>>,
    /// The ENTRYPOINT/CMD/command that starts it (for messages and locations).
    pub head: Argv,
    pub init: Option<Init>,
    pub lastcall: Option<Lastcall>,
    /// The command the init starts (all of `words` when there is no init).
    pub app: Vec<Spanned<String>>,
    /// The container replaces only CMD and its image's Dockerfile is not among the
    /// files: whatever ENTRYPOINT the image has (an init, often) is unknown.
    pub entrypoint_unknown: bool,
}

/// The effective command line, by Docker's rules: a container `entrypoint` replaces the
/// image's ENTRYPOINT and drops its CMD; `command` replaces CMD; a shell-form ENTRYPOINT
/// ignores CMD.
pub fn launch(image: Option<&Image>, c: Option<&Container>, env: &Env) -> Option<Launch> {
    let ep = c.and_then(|c| c.entrypoint.as_ref()).or_else(|| {
        if c.is_some_and(|c| c.entrypoint.is_some()) {
            None
        } else {
            image.and_then(|i| i.entrypoint.as_ref())
        }
    });
    let cmd = c.and_then(|c| c.command.as_ref()).or_else(|| {
        if c.is_some_and(|c| c.entrypoint.is_some()) {
            None
        } else {
            image.and_then(|i| i.cmd.as_ref())
        }
    });
    let head = ep.or(cmd)?.clone();
    let mut words = head.words.clone();
    if let (Some(ep), Some(cmd)) = (ep, cmd)
        && !ep.shell_form
    {
        words.extend(cmd.words.iter().cloned());
    }
    if words.is_empty() {
        return None;
    }
    let platform_init = c.and_then(|c| c.platform_init).map(|loc| Init {
        name: "the platform's init".into(),
        loc,
        group: false,
    });
    let (init, lastcall, app) = match init_in(&words, env) {
        Some((init, lastcall, app)) => (Some(init), lastcall, app),
        None => (platform_init, None, words.clone()),
    };
    let entrypoint_unknown = image.is_none() && c.is_some_and(|c| c.entrypoint.is_none());
    Some(Launch {
        words,
        head,
        init,
        lastcall,
        app,
        entrypoint_unknown,
    })
}

/// An init at the start of the command line, and what it starts.
fn init_in(
    words: &[Spanned<String>],
    env: &Env,
) -> Option<(Init, Option<Lastcall>, Vec<Spanned<String>>)> {
    let i = program_index(words)?;
    let prog = base(&words[i].value);
    let rest = &words[i + 1..];
    let loc = words[i].loc;
    let has = |f: &str| {
        rest.iter()
            .take_while(|w| w.value.starts_with('-'))
            .any(|w| w.value == f)
    };
    let env_set = |k: &str| {
        env.iter()
            .any(|(n, v)| n == k && !v.value.is_empty() && v.value != "0")
    };
    let (group, takes_value): (bool, &[&str]) = match prog {
        "tini" | "tini-static" | "docker-init" => (
            has("-g") || env_set("TINI_KILL_PROCESS_GROUP"),
            &["-p", "-e"],
        ),
        "dumb-init" => (
            {
                let single = has("-c") || has("--single-child");
                let no_setsid = env
                    .iter()
                    .any(|(n, v)| n == "DUMB_INIT_SETSID" && v.value == "0");
                !single && !no_setsid
            },
            &["-r", "--rewrite"],
        ),
        "catatonit" => (has("-g"), &[]),
        "init" | "s6-svscan" | "supervisord" | "runsvdir" | "my_init" => (true, &[]),
        "lastcall" if rest.first().is_none_or(|w| w.value != "run") => {
            // `lastcall -- app`, `lastcall app`: no subcommand lastcall has, and the
            // container exits at once. A real one (`lastcall check`) is no init.
            let error = refused_without_run(&words[i..])?;
            let at = rest
                .iter()
                .find(|w| error.contains(&format!("'{}'", w.value)))
                .map_or(loc, |w| w.loc);
            let lc = Lastcall {
                loc: at,
                command: "lastcall",
                args: Err(error),
                set_at: Vec::new(),
            };
            return Some((
                Init {
                    name: "lastcall".into(),
                    loc,
                    group: true,
                },
                Some(lc),
                Vec::new(),
            ));
        }
        "lastcall" => {
            let lc = lastcall(loc, &rest[1..], env);
            let group = lc.args.as_ref().map_or(true, |a| {
                a.signal_mode == crate::supervise::SignalMode::Group
            });
            let app = lc
                .args
                .as_ref()
                .map(|a| app_words(&rest[1..], a.command.len()))
                .unwrap_or_default();
            return Some((
                Init {
                    name: "lastcall".into(),
                    loc,
                    group,
                },
                Some(lc),
                app,
            ));
        }
        _ => return None,
    };
    let mut j = 0;
    while j < rest.len() && rest[j].value.starts_with('-') {
        if rest[j].value == "--" {
            j += 1;
            break;
        }
        j += if takes_value.contains(&rest[j].value.as_str()) {
            2
        } else {
            1
        };
    }
    let app = rest.get(j..).unwrap_or_default().to_vec();
    Some((
        Init {
            name: prog.to_string(),
            loc,
            group,
        },
        None,
        app,
    ))
}

/// The last `n` words (lastcall's COMMAND), keeping their spans.
fn app_words(words: &[Spanned<String>], n: usize) -> Vec<Spanned<String>> {
    words[words.len().saturating_sub(n)..].to_vec()
}

/// Parse `lastcall run` flags plus the container's `LASTCALL_*` variables, exactly as
/// `lastcall run` would, without looking at the environment of `lastcall check` itself.
fn lastcall(loc: Loc, flags: &[Spanned<String>], env: &Env) -> Lastcall {
    let cmd = Cli::command();
    let run = cmd.find_subcommand("run").cloned();
    let mut set_at = Vec::new();
    let mut argv: Vec<String> = vec!["run".into()];
    let mut explicit = Vec::new();
    // Where each flag's value is: the word after `--flag`, or `--flag=value` itself.
    let mut i = 0;
    while let Some(w) = flags.get(i) {
        let Some(body) = w.value.strip_prefix("--").filter(|b| !b.is_empty()) else {
            break;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, _)) => (n.to_string(), true),
            None => (body.to_string(), false),
        };
        let takes_value = run
            .as_ref()
            .and_then(|r| {
                r.get_arguments()
                    .find(|a| a.get_long() == Some(name.as_str()))
            })
            .is_some_and(|a| a.get_action().takes_values());
        let at = match flags.get(i + 1) {
            Some(value) if takes_value && !inline => {
                i += 1;
                value.loc
            }
            _ => w.loc,
        };
        explicit.push(name.clone());
        set_at.push((name, at));
        i += 1;
    }
    // The container's `LASTCALL_*` variables become flags: clap reads `env` only from the
    // process environment, and that is the environment check runs in, not the container's.
    let mut env_error = None;
    if let Some(run) = &run {
        for (k, v) in env {
            let Some(arg) = run
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == k.as_str()))
            else {
                continue;
            };
            let Some(long) = arg.get_long() else { continue };
            let short = arg.get_short().map(|c| format!("-{c}"));
            let on_command_line = explicit.iter().any(|e| e == long)
                || short.is_some_and(|s| {
                    flags
                        .iter()
                        .take_while(|w| w.value != "--")
                        .any(|w| w.value == s)
                });
            if on_command_line {
                continue;
            }
            set_at.push((long.to_string(), v.loc));
            if arg.get_action().takes_values() {
                argv.push(format!("--{long}={}", v.value));
                continue;
            }
            match switch(run, &v.value) {
                Some(true) => argv.push(format!("--{long}")),
                Some(false) => {}
                None => {
                    env_error.get_or_insert(format!(
                        "invalid value '{}' for '--{long}' in {k} (use true or false, yes or no, on or off, 1 or 0)",
                        v.value
                    ));
                }
            }
        }
    }
    argv.extend(flags.iter().map(|w| w.value.clone()));
    let args = match (run, env_error) {
        (None, _) => Err("lastcall has no run subcommand".to_string()),
        (Some(_), Some(e)) => Err(e),
        (Some(run), None) => {
            // Only what the container sets counts, not the environment check runs in.
            let run = run
                .no_binary_name(true)
                .mut_args(|a| a.env(None::<&'static str>));
            run.try_get_matches_from(&argv[1..])
                .and_then(|m| RunArgs::from_arg_matches(&m))
                .map_err(|e| clap_line(&e))
                .and_then(|a| {
                    let separator = flags.iter().any(|w| w.value == "--");
                    match crate::run::mistyped_flag(separator, &a.command) {
                        Some(mistake) => Err(mistake),
                        None => Ok(Box::new(a)),
                    }
                })
        }
    };
    Lastcall {
        loc,
        command: "lastcall run",
        args,
        set_at,
    }
}

/// A switch's value in the environment, as `lastcall run` reads it: clap's
/// [`BoolishValueParser`](clap::builder::BoolishValueParser), case-insensitive
/// y/yes/t/true/on/1 and n/no/f/false/off/0; anything else (`None`) stops lastcall from
/// starting.
fn switch(run: &clap::Command, value: &str) -> Option<bool> {
    use clap::builder::TypedValueParser;
    clap::builder::BoolishValueParser::new()
        .parse_ref(run, None, std::ffi::OsStr::new(value))
        .ok()
}

/// Why lastcall would exit at once when its first argument is not `run`, by lastcall's
/// own clap definition; `None` when it would start (`lastcall check`, `--version`).
fn refused_without_run(words: &[Spanned<String>]) -> Option<String> {
    use clap::error::ErrorKind;
    let mut cli = Cli::command();
    let names: Vec<String> = cli
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        cli = cli.mut_subcommand(name, |c| c.mut_args(|a| a.env(None::<&'static str>)));
    }
    let argv = words.iter().map(|w| w.value.as_str());
    let e = cli.try_get_matches_from(argv).err()?;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => None,
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            Some("no subcommand; write `lastcall run [OPTIONS] -- COMMAND`".to_string())
        }
        _ => Some(clap_line(&e)),
    }
}

/// clap's message on one line, without its "error:" prefix and usage block.
fn clap_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut out = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        // A tip is a sentence of its own ("a similar subcommand exists: 'run'").
        let sep = if line.starts_with("tip:") { "; " } else { " " };
        if !out.is_empty() {
            out.push_str(sep);
        }
        out.push_str(line);
    }
    out
}
