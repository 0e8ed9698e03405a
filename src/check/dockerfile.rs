//! Dockerfiles: the final stage's ENTRYPOINT, CMD, STOPSIGNAL, SHELL and ENV, following
//! `FROM <earlier stage>` so a stage inherits what its parent set, and the entrypoint
//! scripts it copies from the build context.
//!
//! This is not a full BuildKit parser: it reads what decides how the container is started
//! and stopped, and it must never fail on what it does not understand (unknown
//! instructions, heredocs, ONBUILD) — only on a file that has no FROM at all.

use std::path::{Path, PathBuf};

use super::model::{Argv, Env, FileError, FileId, Image, Loc, Span, Spanned};

/// One instruction after joining continuation lines.
struct Instr {
    keyword: String,
    args: String,
    /// Where the arguments start.
    at: Span,
    /// Where the keyword is.
    start: Span,
    /// Did it continue over several lines? (Then columns inside it are not exact.)
    multiline: bool,
}

#[derive(Clone, Default)]
struct Stage {
    name: Option<String>,
    base: String,
    entrypoint: Option<Argv>,
    cmd: Option<Argv>,
    stop_signal: Option<Spanned<String>>,
    shell: Vec<String>,
    env: Env,
    /// (path in the image, path in the build context)
    copies: Vec<(String, String)>,
    workdir: String,
}

/// Read a Dockerfile. `context` is where COPY sources are looked up.
pub fn parse(
    file: FileId,
    path: &Path,
    text: &str,
) -> Result<(Image, Vec<(String, PathBuf)>), FileError> {
    let loc = |span: Span| Loc { file, span };
    let mut stages: Vec<Stage> = Vec::new();
    for ins in instructions(text) {
        let kw = ins.keyword.as_str();
        if kw == "FROM" {
            let mut words = ins.args.split_whitespace().filter(|w| !w.starts_with("--"));
            let base = words.next().unwrap_or_default().to_string();
            let name = match (words.next(), words.next()) {
                (Some(a), Some(n)) if a.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
                _ => None,
            };
            let parent = stages
                .iter()
                .rev()
                .find(|s| s.name.as_deref() == Some(base.to_ascii_lowercase().as_str()))
                .cloned();
            let mut stage = match parent {
                Some(p) => Stage { name: None, ..p },
                None => Stage {
                    base,
                    shell: vec!["/bin/sh".into(), "-c".into()],
                    workdir: "/".into(),
                    ..Stage::default()
                },
            };
            stage.name = name;
            stages.push(stage);
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            if kw == "ARG" {
                continue;
            }
            return Err(FileError {
                path: path.to_path_buf(),
                span: Some(ins.start),
                message: format!(
                    "{kw} before the first FROM; a Dockerfile starts with FROM (ARG may come before it)"
                ),
            });
        };
        match kw {
            "ENTRYPOINT" | "CMD" => {
                let what = if kw == "CMD" { "CMD" } else { "ENTRYPOINT" };
                let argv = command(&ins, &stage.shell, loc(ins.start), what, file);
                if kw == "CMD" {
                    stage.cmd = Some(argv);
                } else {
                    stage.entrypoint = Some(argv);
                    // Docker resets an inherited CMD when ENTRYPOINT is set.
                    stage.cmd = None;
                }
            }
            "STOPSIGNAL" => {
                stage.stop_signal = Some(Spanned::new(ins.args.trim().to_string(), loc(ins.at)));
            }
            "SHELL" => {
                if let Ok(words) = serde_json::from_str::<Vec<String>>(ins.args.trim()) {
                    stage.shell = words;
                }
            }
            "ENV" => env_pairs(&ins.args, loc(ins.at), &mut stage.env),
            "WORKDIR" => {
                let dir = ins.args.trim().trim_matches('"');
                stage.workdir = if dir.starts_with('/') {
                    dir.to_string()
                } else {
                    format!("{}/{}", stage.workdir.trim_end_matches('/'), dir)
                };
            }
            "COPY" | "ADD" => {
                let words: Vec<&str> = ins.args.split_whitespace().collect();
                if words.iter().any(|w| w.starts_with("--from"))
                    || words.first().is_some_and(|w| w.starts_with('['))
                {
                    continue;
                }
                let words: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
                if let Some((dest, srcs)) = words.split_last() {
                    let dest = if dest.starts_with('/') {
                        dest.to_string()
                    } else {
                        format!("{}/{}", stage.workdir.trim_end_matches('/'), dest)
                    };
                    for src in srcs {
                        let src = src.trim_start_matches("./");
                        let base = src.rsplit('/').next().unwrap_or(src);
                        let in_image = if dest.ends_with('/')
                            || srcs.len() > 1
                            || src == "."
                            || src.ends_with('/')
                        {
                            format!("{}/{}", dest.trim_end_matches('/'), base)
                        } else {
                            dest.clone()
                        };
                        stage.copies.push((in_image, src.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    let Some(last) = stages.pop() else {
        return Err(FileError {
            path: path.to_path_buf(),
            span: None,
            message: "no FROM instruction; is this a Dockerfile?".into(),
        });
    };
    let context = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let scripts = entrypoint_scripts(&last, &context);
    let image = Image {
        file,
        context,
        base: last.base,
        entrypoint: last.entrypoint,
        cmd: last.cmd,
        stop_signal: last.stop_signal,
        env: last.env,
        scripts: Vec::new(),
        configs: Vec::new(),
    };
    Ok((image, scripts))
}

/// The scripts in the build context that the final stage's command runs: (path in the
/// image as the command names it, path on disk). The caller reads them.
fn entrypoint_scripts(stage: &Stage, context: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let programs = [&stage.entrypoint, &stage.cmd]
        .into_iter()
        .flatten()
        .flat_map(|a| a.words.iter().take(3))
        .map(|w| w.value.clone());
    for prog in programs {
        if prog.starts_with('-')
            || prog.contains(' ')
            || !(prog.ends_with(".sh") || prog.contains('/'))
        {
            continue;
        }
        let abs = if prog.starts_with('/') {
            prog.clone()
        } else {
            format!(
                "{}/{}",
                stage.workdir.trim_end_matches('/'),
                prog.trim_start_matches("./")
            )
        };
        let base = prog.rsplit('/').next().unwrap_or(&prog).to_string();
        let copied = stage
            .copies
            .iter()
            .find(|(img, _)| *img == abs)
            .map(|(_, src)| src.clone());
        let candidates: Vec<PathBuf> = match copied {
            Some(src) if src != "." => vec![context.join(src)],
            _ => vec![
                context.join(&base),
                context.join("docker").join(&base),
                context.join("scripts").join(&base),
                context.join("bin").join(&base),
            ],
        };
        if let Some(p) = candidates.into_iter().find(|p| p.is_file())
            && !found.iter().any(|(n, _): &(String, PathBuf)| *n == prog)
        {
            found.push((prog, p));
        }
    }
    found
}

/// Exec form (a JSON array) or shell form (run by the stage's SHELL).
fn command(ins: &Instr, shell: &[String], loc: Loc, what: &'static str, file: FileId) -> Argv {
    let at = Loc { file, span: ins.at };
    let args = ins.args.trim();
    if args.starts_with('[')
        && let Ok(words) = serde_json::from_str::<Vec<String>>(args)
    {
        let starts = string_starts(args);
        let exact = !ins.multiline && starts.len() == words.len();
        let word_loc = |i: usize| match starts.get(i) {
            Some(off) if exact => Loc {
                file,
                span: Span {
                    line: ins.at.line,
                    col: ins.at.col + off,
                },
            },
            _ => at,
        };
        return Argv {
            words: words
                .into_iter()
                .enumerate()
                .map(|(i, w)| Spanned::new(w, word_loc(i)))
                .collect(),
            shell_form: false,
            loc,
            what,
        };
    }
    let mut words: Vec<Spanned<String>> =
        shell.iter().map(|w| Spanned::new(w.clone(), at)).collect();
    words.push(Spanned::new(args.to_string(), at));
    Argv {
        words,
        shell_form: true,
        loc,
        what,
    }
}

/// Character offsets of the string literals in a JSON array of strings.
fn string_starts(json: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in json.chars().enumerate() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_string = false,
            (false, '"') => {
                starts.push(i);
                in_string = true;
            }
            _ => {}
        }
    }
    starts
}

/// `ENV A=1 B="two words"` or the old `ENV A 1`.
fn env_pairs(args: &str, loc: Loc, env: &mut Env) {
    let args = args.trim();
    let first = args.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        if let Some((k, v)) = args.split_once(char::is_whitespace) {
            env.push((k.to_string(), Spanned::new(v.trim().to_string(), loc)));
        }
        return;
    }
    for word in super::shell::split(args) {
        if let Some((k, v)) = word.split_once('=') {
            env.push((k.to_string(), Spanned::new(v.to_string(), loc)));
        }
    }
}

/// Split the file into instructions: join continuation lines, drop comments, skip heredoc
/// bodies, honour the `# escape=` directive.
fn instructions(text: &str) -> Vec<Instr> {
    let mut escape = '\\';
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    let mut in_directives = true;
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            if in_directives {
                let d = trimmed.trim_start_matches('#').trim();
                if let Some(v) = d
                    .strip_prefix("escape=")
                    .or_else(|| d.strip_prefix("escape ="))
                {
                    escape = v.trim().chars().next().unwrap_or('\\');
                }
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        in_directives = false;
        let indent = line.len() - trimmed.len();
        let (keyword, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let keyword = keyword.to_ascii_uppercase();
        let rest_trim = rest.trim_start();
        let at = Span {
            line: i + 1,
            col: indent + keyword.len() + (rest.len() - rest_trim.len()) + 2,
        };
        let start = Span {
            line: i + 1,
            col: indent + 1,
        };
        let mut args = String::new();
        let mut cur = rest_trim.to_string();
        let mut multiline = false;
        loop {
            let t = cur.trim_end();
            if let Some(body) = t.strip_suffix(escape) {
                multiline = true;
                args.push_str(body);
                args.push(' ');
                // Comment lines inside a continuation are dropped by Docker.
                let mut next = None;
                for (_, l) in lines.by_ref() {
                    if l.trim_start().starts_with('#') {
                        continue;
                    }
                    next = Some(l.to_string());
                    break;
                }
                match next {
                    Some(l) => cur = l,
                    None => break,
                }
            } else {
                args.push_str(t);
                break;
            }
        }
        for word in heredoc_words(&args) {
            for (_, l) in lines.by_ref() {
                if l.trim() == word {
                    break;
                }
            }
        }
        out.push(Instr {
            keyword,
            args,
            at,
            start,
            multiline,
        });
    }
    out
}

/// The terminators of `<<EOF`, `<<-EOF` and `<<"EOF"` heredocs in an instruction.
fn heredoc_words(args: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = args;
    while let Some(i) = rest.find("<<") {
        rest = &rest[i + 2..];
        let w: String = rest
            .trim_start_matches('-')
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !w.is_empty() {
            words.push(w);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(text: &str) -> Image {
        parse(0, Path::new("/nonexistent/Dockerfile"), text)
            .unwrap()
            .0
    }

    #[test]
    fn final_stage_inherits_from_its_parent_stage() {
        let img = image(
            "FROM node:20 AS base\nCMD [\"node\", \"a.js\"]\nSTOPSIGNAL SIGINT\nFROM golang AS build\nRUN go build\nFROM base\nENV A=1 \\\n    B=\"two words\"\n",
        );
        let cmd = img.cmd.unwrap();
        assert_eq!(
            cmd.words
                .iter()
                .map(|w| w.value.as_str())
                .collect::<Vec<_>>(),
            ["node", "a.js"]
        );
        assert_eq!(img.stop_signal.unwrap().value, "SIGINT");
        assert_eq!(img.base, "node:20");
        assert_eq!(img.env.len(), 2);
        assert_eq!(img.env[1].1.value, "two words");
    }

    #[test]
    fn shell_form_uses_the_stage_shell() {
        let img = image(
            "FROM x\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nENTRYPOINT ./run.sh && \\\n  node a.js\n",
        );
        let ep = img.entrypoint.unwrap();
        assert!(ep.shell_form);
        assert_eq!(ep.words[0].value, "/bin/bash");
        assert_eq!(ep.words[4].value, "./run.sh &&    node a.js");
        assert_eq!((ep.loc.span.line, ep.loc.span.col), (3, 1));
        assert_eq!(
            (ep.words[4].loc.span.line, ep.words[4].loc.span.col),
            (3, 12)
        );
    }

    #[test]
    fn exec_form_words_point_at_their_strings() {
        // Over several lines, every word points at where the arguments start.
        let img = image("FROM x\nENTRYPOINT [\"a\", \\\n  \"b\"]\n");
        let cols: Vec<usize> = img
            .entrypoint
            .unwrap()
            .words
            .iter()
            .map(|w| w.loc.span.col)
            .collect();
        assert_eq!(cols, [12, 12]);
        let img = image("FROM x\nCMD [\"gunicorn\", \"--graceful-timeout\", \"10\"]\n");
        let cols: Vec<usize> = img
            .cmd
            .unwrap()
            .words
            .iter()
            .map(|w| w.loc.span.col)
            .collect();
        assert_eq!(cols, [6, 18, 40]);
    }

    #[test]
    fn heredocs_are_skipped_and_no_from_is_an_error() {
        let img = image("FROM x\nRUN <<EOF\nCMD not-this\nEOF\nCMD [\"app\"]\n");
        assert_eq!(img.cmd.unwrap().words[0].value, "app");
        let err = parse(0, Path::new("Dockerfile"), "# hi\nRUN x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Dockerfile:2:1: RUN before the first FROM; a Dockerfile starts with FROM (ARG may come before it)"
        );
    }
}
