//! App servers and workers whose own shutdown timeout decides whether a stop fits: read
//! from their command line and environment, else their documented default.
//!
//! | app | setting | default |
//! |---|---|---|
//! | sidekiq | `-t` / `--timeout`, `:timeout:` in its config | 25 s, + ~5 s to push unfinished jobs back |
//! | gunicorn | `--graceful-timeout`, `GUNICORN_CMD_ARGS` | 30 s |
//! | puma / rails server | `worker_shutdown_timeout` in `config/puma.rb` | 30 s |
//! | uvicorn | `--timeout-graceful-shutdown` | none (not checked) |
//! | celery worker | `--time-limit` | none: warm shutdown waits for running tasks |
//! | Spring Boot | `spring.lifecycle.timeout-per-shutdown-phase` (args, env, application.*) | 30 s, when `server.shutdown=graceful` |
//!
//! Config files come from [`super::appconfig`], read next to the image's Dockerfile.

use std::time::Duration;

use super::appconfig;
use super::model::{Env, Facts, FileId, Loc, Spanned, env_get};
use super::shell;

/// The app config files of the image, if its Dockerfile is known.
#[derive(Debug, Clone, Copy)]
pub struct Configs<'a> {
    pub facts: &'a Facts,
    pub files: &'a [(String, FileId)],
}

/// How long an app may take to stop once it got its stop signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStop {
    pub app: &'static str,
    /// `None`: it waits for running work without a limit.
    pub timeout: Option<Duration>,
    /// What it still does after its timeout (Sidekiq pushing jobs back).
    pub after: Duration,
    /// The setting, for messages (`-t`, `--graceful-timeout`).
    pub setting: &'static str,
    /// Where the timeout was set; `None` when it is the default.
    pub at: Option<Loc>,
}

/// The program an argv runs once wrappers are peeled off (`bundle exec`, `python -m`,
/// `poetry run`, `exec`, `VAR=value`). Returns the index of the program word.
pub fn program_index(argv: &[Spanned<String>]) -> Option<usize> {
    let mut i = 0;
    while i < argv.len() {
        let w = base(&argv[i].value);
        let next = argv.get(i + 1).map(|n| n.value.as_str());
        match (w, next) {
            ("exec" | "env" | "nice" | "gosu" | "su-exec", _) => {
                i += if matches!(w, "gosu" | "su-exec") {
                    2
                } else {
                    1
                }
            }
            ("bundle" | "poetry" | "pipenv" | "pdm" | "uv", Some("exec" | "run")) => i += 2,
            (p, Some("-m")) if p.starts_with("python") => i += 2,
            (_, _) if argv[i].value.contains('=') && !argv[i].value.starts_with('-') => i += 1,
            _ => return Some(i),
        }
    }
    None
}

/// The last path component: `/usr/local/bin/node` → `node`.
pub fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Value of `--flag V`, `--flag=V`, or `-tV` for a short flag.
fn flag(argv: &[Spanned<String>], names: &[&str]) -> Option<Spanned<String>> {
    for (i, w) in argv.iter().enumerate() {
        for name in names {
            if w.value == *name {
                return argv.get(i + 1).cloned();
            }
            if let Some(v) = w.value.strip_prefix(name) {
                let v = if name.starts_with("--") {
                    v.strip_prefix('=')
                } else {
                    Some(v.trim_start_matches('='))
                };
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    return Some(Spanned::new(v.to_string(), w.loc));
                }
            }
        }
    }
    None
}

fn secs(v: &Spanned<String>) -> Option<(Duration, Loc)> {
    crate::duration::parse(&v.value).ok().map(|d| (d, v.loc))
}

/// Recognise the app of an argv (already past any init and shell).
pub fn recognise(
    argv: &[Spanned<String>],
    env: &Env,
    configs: Option<Configs<'_>>,
) -> Option<AppStop> {
    let i = program_index(argv)?;
    let args = &argv[i..];
    let prog = base(&args[0].value);
    let sub = args.get(1).map(|s| s.value.as_str());
    let stop = |app, default: Option<u64>, setting, found: Option<(Duration, Loc)>| AppStop {
        app,
        timeout: found.map(|f| f.0).or(default.map(Duration::from_secs)),
        after: Duration::ZERO,
        setting,
        at: found.map(|f| f.1),
    };
    match (prog, sub) {
        ("sidekiq", _) => {
            let config = flag(args, &["--config", "-C"]);
            let path = config.as_ref().map(|s| s.value.as_str());
            let found = flag(args, &["--timeout", "-t"])
                .or_else(|| configs.and_then(|c| appconfig::sidekiq(c.facts, c.files, path)));
            Some(AppStop {
                after: Duration::from_secs(5),
                ..stop("sidekiq", Some(25), "-t", found.as_ref().and_then(secs))
            })
        }
        ("gunicorn", _) => {
            let from_env = env_get(env, "GUNICORN_CMD_ARGS").and_then(|v| {
                let words: Vec<_> = shell::split(&v.value)
                    .into_iter()
                    .map(|w| Spanned::new(w, v.loc))
                    .collect();
                flag(&words, &["--graceful-timeout"])
            });
            let found = flag(args, &["--graceful-timeout"]).or(from_env);
            Some(stop(
                "gunicorn",
                Some(30),
                "--graceful-timeout",
                found.as_ref().and_then(secs),
            ))
        }
        ("puma", _) | ("rails", Some("server" | "s")) => {
            let config = flag(args, &["--config", "-C"]);
            let path = config.as_ref().map(|s| s.value.as_str());
            let found = configs.and_then(|c| appconfig::puma(c.facts, c.files, path));
            Some(stop(
                "puma",
                Some(30),
                "worker_shutdown_timeout",
                found.as_ref().and_then(secs),
            ))
        }
        ("uvicorn", _) => {
            let found = flag(args, &["--timeout-graceful-shutdown"])
                .or_else(|| env_get(env, "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN").cloned());
            let found = found.as_ref().and_then(secs)?;
            Some(stop(
                "uvicorn",
                None,
                "--timeout-graceful-shutdown",
                Some(found),
            ))
        }
        ("celery", _) if args.iter().any(|a| a.value == "worker") => Some(stop(
            "celery",
            None,
            "--time-limit",
            flag(args, &["--time-limit"]).as_ref().and_then(secs),
        )),
        ("java", _) => spring(args, env, configs),
        _ => None,
    }
}

/// Spring Boot's graceful shutdown: only on when `server.shutdown=graceful` (or a phase
/// timeout is set); a bare number in Spring is milliseconds.
fn spring(args: &[Spanned<String>], env: &Env, configs: Option<Configs<'_>>) -> Option<AppStop> {
    // Lowest precedence first: config files, then environment and command line.
    let mut props: Vec<(String, Spanned<String>)> = configs
        .map(|c| appconfig::spring(c.facts, c.files))
        .unwrap_or_default();
    let mut add = |s: &str, loc: Loc| {
        let s = s.trim_start_matches("-D").trim_start_matches("--");
        if let Some((k, v)) = s.split_once('=') {
            props.push((
                k.to_ascii_lowercase().replace(['-', '_', '.'], ""),
                Spanned::new(v.to_string(), loc),
            ));
        }
    };
    for a in args {
        add(&a.value, a.loc);
    }
    for (k, v) in env {
        if k == "JAVA_TOOL_OPTIONS" || k == "JAVA_OPTS" {
            for w in shell::split(&v.value) {
                add(&w, v.loc);
            }
        } else if k.starts_with("SPRING_") || k.starts_with("SERVER_") {
            add(&format!("{k}={}", v.value), v.loc);
        }
    }
    let get = |key: &str| props.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
    let timeout = get("springlifecycletimeoutpershutdownphase");
    let graceful = get("servershutdown").is_some_and(|v| v.value.eq_ignore_ascii_case("graceful"));
    if timeout.is_none() && !graceful {
        return None;
    }
    let found = timeout.and_then(|v| {
        let d = if v.value.chars().all(|c| c.is_ascii_digit()) {
            v.value.parse().ok().map(Duration::from_millis)
        } else {
            crate::duration::parse(&v.value).ok()
        };
        d.map(|d| (d, v.loc))
    });
    Some(AppStop {
        app: "Spring Boot",
        timeout: Some(found.map_or(Duration::from_secs(30), |f| f.0)),
        after: Duration::ZERO,
        setting: "spring.lifecycle.timeout-per-shutdown-phase",
        at: found.map(|f| f.1),
    })
}

/// Is the program nginx (which wants SIGQUIT for a graceful stop)?
pub fn is_nginx(argv: &[Spanned<String>]) -> bool {
    program_index(argv)
        .is_some_and(|i| matches!(base(&argv[i].value), "nginx" | "nginx-debug" | "openresty"))
}

/// Programs that install no SIGTERM handler of their own unless the code does, and so
/// ignore SIGTERM as PID 1.
pub fn needs_init(argv: &[Spanned<String>]) -> bool {
    let Some(i) = program_index(argv) else {
        return false;
    };
    let p = base(&argv[i].value);
    matches!(
        p,
        "node" | "nodejs" | "ruby" | "bun" | "deno" | "php" | "sh" | "bash" | "ash" | "dash"
    ) || (p.starts_with("python") && argv.get(i + 1).is_none_or(|a| a.value != "-m"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::model::Span;

    fn argv(s: &str) -> Vec<Spanned<String>> {
        shell::split(s)
            .into_iter()
            .map(|w| {
                Spanned::new(
                    w,
                    Loc {
                        file: 0,
                        span: Span::default(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn recognises_timeouts() {
        type Want = Option<(&'static str, Option<u64>, bool)>;
        type Case = (&'static str, &'static [(&'static str, &'static str)], Want);
        let table: &[Case] = &[
            (
                "bundle exec sidekiq -C config/sidekiq.yml",
                &[],
                Some(("sidekiq", Some(25), false)),
            ),
            ("sidekiq -t 8", &[], Some(("sidekiq", Some(8), true))),
            (
                "bundle exec sidekiq --timeout=20",
                &[],
                Some(("sidekiq", Some(20), true)),
            ),
            (
                "gunicorn app:app --graceful-timeout 20",
                &[],
                Some(("gunicorn", Some(20), true)),
            ),
            (
                "gunicorn app:app",
                &[("GUNICORN_CMD_ARGS", "--bind :80 --graceful-timeout=10")],
                Some(("gunicorn", Some(10), true)),
            ),
            (
                "python -m gunicorn app:app",
                &[],
                Some(("gunicorn", Some(30), false)),
            ),
            (
                "bundle exec puma -C config/puma.rb",
                &[],
                Some(("puma", Some(30), false)),
            ),
            (
                "uvicorn app:app --timeout-graceful-shutdown 20",
                &[],
                Some(("uvicorn", Some(20), true)),
            ),
            ("uvicorn app:app", &[], None),
            (
                "celery -A proj worker -l info",
                &[],
                Some(("celery", None, false)),
            ),
            (
                "java -Dserver.shutdown=graceful -jar app.jar",
                &[],
                Some(("Spring Boot", Some(30), false)),
            ),
            (
                "java -jar app.jar",
                &[("SPRING_LIFECYCLE_TIMEOUT_PER_SHUTDOWN_PHASE", "45s")],
                Some(("Spring Boot", Some(45), true)),
            ),
            ("java -jar app.jar", &[], None),
            ("node server.js", &[], None),
        ];
        for (cmd, env, want) in table {
            let env: Env = env
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        argv(v)
                            .into_iter()
                            .next()
                            .map(|mut s| {
                                s.value = v.to_string();
                                s
                            })
                            .unwrap(),
                    )
                })
                .collect();
            let got = recognise(&argv(cmd), &env, None)
                .map(|a| (a.app, a.timeout.map(|d| d.as_secs()), a.at.is_some()));
            assert_eq!(got, *want, "{cmd}");
        }
    }
}
