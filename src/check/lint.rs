//! The rules about PID 1 and its stop signal (LC1xx), and the driver that reads all facts together: each
//! container of each deployment is matched with the Dockerfile that builds its image, so
//! that a task definition's `command` is judged with the image's ENTRYPOINT and a compose
//! `init: true` excuses the Dockerfile's missing init. A Dockerfile no deployment uses is
//! judged on its own. Timing rules (LC2xx) are in [`super::timing`].

use std::path::Path;

use super::apps::{self, AppStop};
use super::model::{Container, Deployment, Env, Facts, Image, Loc, Platform, Spanned};
use super::process::{self, Launch};
use super::rules::{Rule, Severity, rule};
use super::{shell, signal, timing};

/// One problem found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: &'static Rule,
    pub severity: Severity,
    pub loc: Loc,
    pub message: String,
    /// Other places that take part (the stop timeout a timeout is compared with).
    pub related: Vec<(Loc, String)>,
}

impl Finding {
    pub fn new(id: &str, loc: Loc, message: String) -> Finding {
        let rule = rule(id);
        Finding {
            rule,
            severity: rule.severity,
            loc,
            message,
            related: Vec::new(),
        }
    }

    pub fn related(mut self, loc: Option<Loc>, what: impl Into<String>) -> Finding {
        if let Some(loc) = loc {
            self.related.push((loc, what.into()));
        }
        self
    }
}

/// Run every rule over what was found.
pub fn lint(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut used = vec![false; facts.images.len()];
    for dep in &facts.deployments {
        for c in &dep.containers {
            let img = image_for(facts, dep, c);
            if let Some(i) = img {
                used[i] = true;
            }
            let image = img.map(|i| &facts.images[i]);
            let mut env: Env = image.map(|i| i.env.clone()).unwrap_or_default();
            env.extend(c.env.iter().cloned());
            if let Some(launch) = process::launch(image, Some(c), &env) {
                let app = pid1_rules(facts, &launch, image, Some(c), &env, &mut out);
                timing::container_rules(dep, c, &launch, app.as_ref(), &mut out);
            } else {
                timing::container_rules_without_command(dep, c, &mut out);
            }
        }
    }
    for (i, image) in facts.images.iter().enumerate() {
        if !used[i]
            && let Some(launch) = process::launch(Some(image), None, &image.env)
        {
            pid1_rules(facts, &launch, Some(image), None, &image.env, &mut out);
            timing::lastcall_rules(&launch, &mut out);
        }
    }
    for image in &facts.images {
        stop_signal_rule(image.stop_signal.as_ref(), "STOPSIGNAL", &mut out);
    }
    for dep in &facts.deployments {
        let setting = match dep.platform {
            Platform::Kubernetes => "stopSignal",
            Platform::Compose | Platform::Ecs { .. } => "stop_signal",
        };
        for c in &dep.containers {
            stop_signal_rule(c.stop_signal.as_ref(), setting, &mut out);
        }
    }
    timing::service_rules(facts, &mut out);
    out.sort_by(|a, b| (a.loc, a.rule.id).cmp(&(b.loc, b.rule.id)));
    out.dedup_by(|a, b| a.loc == b.loc && a.rule.id == b.rule.id);
    out
}

/// LC107: a stop signal that names no signal.
fn stop_signal_rule(sig: Option<&Spanned<String>>, setting: &str, out: &mut Vec<Finding>) {
    let Some(sig) = sig.filter(|s| signal::number(&s.value).is_none()) else {
        return;
    };
    out.push(Finding::new(
        "LC107",
        sig.loc,
        format!(
            "{setting} {} is not a signal; use a signal name such as SIGTERM or SIGQUIT, or a number from 1 to 64",
            sig.value.trim()
        ),
    ));
}

/// Which Dockerfile builds this container's image: the compose `build:` one; else the one
/// in a directory named like the image's repository; else the only Dockerfile there is,
/// when the container is the task's only one or its image comes from the account's own
/// registry (ECR) rather than a public image such as a sidecar.
pub(crate) fn image_for(facts: &Facts, dep: &Deployment, c: &Container) -> Option<usize> {
    let same = |a: &Path, b: &Path| a.components().eq(b.components());
    if let Some(build) = &c.build {
        return facts
            .images
            .iter()
            .position(|i| same(&facts.files[i.file].path, build));
    }
    let repo = c.image.as_ref().map(|i| {
        let no_tag = i.value.split('@').next().unwrap_or_default();
        let last = no_tag.rsplit('/').next().unwrap_or(no_tag);
        last.split(':').next().unwrap_or(last).to_string()
    });
    if let Some(repo) = repo.as_deref().filter(|r| !r.is_empty()) {
        let named = facts.images.iter().position(|i| {
            i.context
                .file_name()
                .is_some_and(|n| n.to_string_lossy() == repo)
        });
        if named.is_some() {
            return named;
        }
    }
    // Otherwise only a Dockerfile from the same project: the deployment file's directory
    // holds the Dockerfile's, or the other way round.
    let dep_dir = facts.files[dep.loc.file]
        .path
        .parent()
        .unwrap_or(Path::new(""));
    let near: Vec<usize> = (0..facts.images.len())
        .filter(|&i| {
            let ctx = &facts.images[i].context;
            ctx.starts_with(dep_dir) || dep_dir.starts_with(ctx)
        })
        .collect();
    let own = c.image.as_ref().is_none_or(|i| {
        i.value.contains(".dkr.ecr.") || i.value.contains("${") || i.value.contains("{{")
    });
    match near.as_slice() {
        [only] if dep.containers.len() == 1 || own => Some(*only),
        _ => None,
    }
}

/// Does the shell run a `-c` string? Returns the index of the string.
fn shell_c(app: &[Spanned<String>]) -> Option<usize> {
    let i = apps::program_index(app)?;
    if !matches!(
        apps::base(&app[i].value),
        "sh" | "bash" | "ash" | "dash" | "zsh" | "ksh"
    ) {
        return None;
    }
    let mut j = i + 1;
    while let Some(w) = app.get(j) {
        if !w.value.starts_with('-') {
            return None;
        }
        if w.value.trim_start_matches('-').contains('c') && !w.value.starts_with("--") {
            return (j + 1 < app.len()).then_some(j + 1);
        }
        j += 1;
    }
    None
}

/// Words of a shell command, all placed where the shell string is.
fn words_at(cmd: &str, loc: Loc) -> Vec<Spanned<String>> {
    shell::simple_argv(cmd)
        .into_iter()
        .map(|w| Spanned::new(w, loc))
        .collect()
}

/// The PID 1 rules. Returns the app's shutdown timeout, when the app is one we know.
fn pid1_rules(
    facts: &Facts,
    launch: &Launch,
    image: Option<&Image>,
    c: Option<&Container>,
    env: &Env,
    out: &mut Vec<Finding>,
) -> Option<AppStop> {
    let head = &launch.head;
    let group = launch.init.as_ref().is_some_and(|i| i.group);
    // Who gets the stop signal when the wrapper does not pass it on.
    let victim = match &launch.init {
        Some(init) => format!("{} signals only its direct child, the shell", init.name),
        None => "the shell is PID 1 and does not pass SIGTERM on".to_string(),
    };
    let mut app = launch.app.clone();
    let mut flagged = false;
    if let Some(k) = shell_c(&app) {
        let script = app[k].value.clone();
        let at = if head.shell_form {
            head.loc
        } else {
            app[k].loc
        };
        let last = shell::last_command(&script).to_string();
        if !shell::is_exec(&last) && !group {
            let what = if head.shell_form {
                format!("shell-form {}", head.what)
            } else {
                format!("{} runs `sh -c`", head.what)
            };
            let f = match shell::compound_operator(&script) {
                Some(op) => Finding::new(
                    "LC102",
                    at,
                    format!(
                        "{what} with `{op}`: {victim}, so the app never gets it and is SIGKILLed at the deadline"
                    ),
                ),
                None => Finding::new(
                    "LC101",
                    at,
                    format!(
                        "{what}: a shell starts `{}`; write it in exec form so the app itself gets SIGTERM",
                        shorten(&script)
                    ),
                ),
            };
            out.push(f);
            flagged = true;
        }
        app = words_at(&last, app[k].loc);
    }
    if let Some((script, file)) = script_of(&app, image) {
        let text = &facts.files[file].text;
        if let Some((span, last)) = script_end(text) {
            let handled = text.contains("trap") && text.contains("TERM") && text.contains("wait");
            if !shell::is_exec(&last) && !handled && !group {
                let loc = Loc { file, span };
                out.push(
                    Finding::new("LC103", loc, format!("{script} ends with `{}` without exec: {victim}, and the app is SIGKILLed at the deadline", shorten(&last)))
                        .related(Some(head.loc), format!("{} runs {script}", head.what)),
                );
                flagged = true;
            }
            let args: Vec<Spanned<String>> = app
                .iter()
                .skip_while(|w| !w.value.ends_with(&script))
                .skip(1)
                .cloned()
                .collect();
            let mut next = Vec::new();
            for w in shell::simple_argv(&last) {
                if w == "$@" || w == "${@}" {
                    next.extend(args.iter().cloned());
                } else {
                    next.push(Spanned::new(w, Loc { file, span }));
                }
            }
            app = next;
        }
    }
    if let Some(i) = apps::program_index(&app) {
        let prog = apps::base(&app[i].value);
        let sub = app.get(i + 1).map(|w| w.value.as_str()).unwrap_or_default();
        if matches!(prog, "npm" | "yarn" | "pnpm")
            && matches!(sub, "start" | "run" | "run-script" | "dev" | "serve")
            && !group
        {
            let at = if app[i].loc.file == head.loc.file {
                head.loc
            } else {
                app[i].loc
            };
            out.push(Finding::new("LC104", at, format!("`{prog} {sub}` is PID 1 (or the init's only child): it may not pass SIGTERM to node or wait for it; run `node` directly")));
            flagged = true;
        }
    }
    if launch.init.is_none() && !launch.entrypoint_unknown && !flagged && apps::needs_init(&app) {
        let prog = apps::program_index(&app)
            .map(|i| apps::base(&app[i].value).to_string())
            .unwrap_or_default();
        out.push(Finding::new("LC105", head.loc, format!("`{prog}` runs as PID 1 without an init: unless the code handles SIGTERM itself it ignores the stop signal, and nothing reaps orphans")));
    }
    if apps::is_nginx(&app) {
        nginx_signal(launch, image, c, out);
    }
    let configs = image.map(|i| apps::Configs {
        facts,
        files: &i.configs,
    });
    apps::recognise(&app, env, configs)
}

/// The signal nginx gets: lastcall's plan, else the container's or image's stop signal,
/// else SIGQUIT for images built on the official nginx image (it sets STOPSIGNAL), else
/// SIGTERM.
fn nginx_signal(
    launch: &Launch,
    image: Option<&Image>,
    c: Option<&Container>,
    out: &mut Vec<Finding>,
) {
    if let Some(lc) = &launch.lastcall {
        if let Ok(args) = &lc.args
            && let Some(step) = args.signal_plan.steps().first()
        {
            let name = crate::budget::signal_name(step.signal);
            if name != "QUIT" {
                let at = lc.at("signal-plan").unwrap_or(lc.loc);
                out.push(Finding::new("LC106", at, format!("lastcall's signal plan sends nginx {name} first; nginx stops gracefully only on QUIT (--signal-plan QUIT@+0)")));
            }
        }
        return;
    }
    let set = c
        .and_then(|c| c.stop_signal.as_ref())
        .or_else(|| image.and_then(|i| i.stop_signal.as_ref()));
    // The official nginx and openresty images set STOPSIGNAL SIGQUIT themselves.
    let is_official = |name: &str| {
        let b = name.rsplit('/').next().unwrap_or(name);
        b.starts_with("nginx") || b.starts_with("openresty")
    };
    let official = match image {
        Some(i) => is_official(&i.base),
        None => c
            .and_then(|c| c.image.as_ref())
            .is_some_and(|i| is_official(&i.value)),
    };
    match set {
        // A value that is not a signal at all is LC107's; nothing is known about the stop.
        Some(sig) if signal::number(&sig.value).is_some() && !signal::is_quit(&sig.value) => {
            out.push(Finding::new("LC106", sig.loc, format!("nginx is stopped with {}, its fast stop that drops open connections; use SIGQUIT", sig.value.trim())));
        }
        Some(_) => {}
        None if !official => {
            let at = launch.head.loc;
            out.push(Finding::new("LC106", at, "nginx runs without a stop signal, so it gets SIGTERM (its fast stop, which drops open connections); set STOPSIGNAL SIGQUIT".to_string()));
        }
        None => {}
    }
}

/// The entrypoint script the app argv runs (directly or as `sh script.sh`).
fn script_of(app: &[Spanned<String>], image: Option<&Image>) -> Option<(String, usize)> {
    let image = image?;
    let i = apps::program_index(app)?;
    let mut prog = app[i].value.as_str();
    if matches!(apps::base(prog), "sh" | "bash" | "ash" | "dash") {
        prog = app
            .get(i + 1)
            .map(|w| w.value.as_str())
            .filter(|w| !w.starts_with('-'))?;
    }
    image
        .scripts
        .iter()
        .find(|(p, _)| p == prog)
        .map(|(p, f)| (p.clone(), *f))
}

/// The last command a script runs, and where: the last line that is not blank, a comment,
/// or the end of a block.
pub fn script_end(text: &str) -> Option<(super::model::Span, String)> {
    let mut last = None;
    let mut joined = String::new();
    let mut start = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if start.is_none() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        let col = line.len() - line.trim_start().len() + 1;
        let begin = *start.get_or_insert(super::model::Span { line: i + 1, col });
        if let Some(body) = t.strip_suffix('\\') {
            joined.push_str(body);
            joined.push(' ');
            continue;
        }
        joined.push_str(t);
        let cmd = std::mem::take(&mut joined);
        start = None;
        let cmd = cmd.trim().trim_end_matches(';').trim();
        let first = cmd.split_whitespace().next().unwrap_or_default();
        if matches!(
            first,
            "fi" | "done" | "esac" | "}" | ";;" | "else" | "then" | "do" | "exit" | "wait"
        ) || cmd.ends_with(")") && !cmd.contains(' ')
        {
            continue;
        }
        last = Some((begin, shell::last_command(cmd).to_string()));
    }
    last
}

fn shorten(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(59).collect::<String>())
    } else {
        one_line
    }
}
