//! Compose files: each service's image or build context, entrypoint, command, `init`,
//! `stop_signal`, `stop_grace_period` (default 10 s) and environment.
//!
//! A string `command:` is split into words by Compose itself — it is not run by a shell —
//! so it is read with shell quoting rules but kept in exec form.

use std::path::Path;

use super::model::{Argv, Container, Deployment, Env, FileId, Loc, Platform, Spanned};
use super::shell;
use super::tree::Node;

/// Is this document a compose file?
pub fn is_compose(doc: &Node) -> bool {
    doc.get("services")
        .is_some_and(|s| s.is_map() && s.entries().iter().all(|(_, v)| v.is_map()))
}

pub fn read(doc: &Node, file: FileId, path: &Path) -> Deployment {
    let loc = |n: &Node| Loc { file, span: n.span };
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut containers = Vec::new();
    for (name, svc) in doc.get("services").map(Node::entries).unwrap_or_default() {
        let argv = |key: &str, what: &'static str| {
            let (k, v) = svc.entry(key)?;
            let words = match v.str() {
                Some(s) => shell::split(s)
                    .into_iter()
                    .map(|w| Spanned::new(w, loc(v)))
                    .collect(),
                None => v
                    .words()?
                    .into_iter()
                    .map(|(w, span)| Spanned::new(w, Loc { file, span }))
                    .collect(),
            };
            Some(Argv {
                words,
                shell_form: false,
                loc: loc(k),
                what,
            })
        };
        let mut env: Env = Vec::new();
        if let Some(e) = svc.get("environment") {
            for (k, v) in e.entries() {
                if let (Some(key), Some(value)) = (k.str(), v.str()) {
                    env.push((key.to_string(), Spanned::new(value.to_string(), loc(v))));
                }
            }
            for item in e.seq() {
                if let Some((k, v)) = item.str().and_then(|s| s.split_once('=')) {
                    env.push((k.to_string(), Spanned::new(v.to_string(), loc(item))));
                }
            }
        }
        let build = svc.get("build").and_then(|b| {
            b.str()
                .or_else(|| b.get("context").and_then(Node::str))
                .map(|c| {
                    let df = b
                        .get("dockerfile")
                        .and_then(Node::str)
                        .unwrap_or("Dockerfile");
                    dir.join(c).join(df)
                })
        });
        containers.push(Container {
            name: name.str().unwrap_or("(unnamed)").to_string(),
            loc: loc(name),
            image: svc
                .get("image")
                .and_then(|n| n.str().map(|s| Spanned::new(s.to_string(), loc(n)))),
            entrypoint: argv("entrypoint", "entrypoint"),
            command: argv("command", "command"),
            env,
            platform_init: svc.get("init").filter(|n| n.bool() == Some(true)).map(loc),
            stop_signal: svc
                .get("stop_signal")
                .and_then(|n| n.str().map(|s| Spanned::new(s.to_string(), loc(n)))),
            stop_timeout: svc.get("stop_grace_period").and_then(|n| {
                n.str()
                    .and_then(|s| crate::duration::parse(s).ok())
                    .map(|d| Spanned::new(d, loc(n)))
            }),
            pre_stop_sleep: None,
            build,
        });
    }
    Deployment {
        platform: Platform::Compose,
        name: path.display().to_string(),
        refs: Vec::new(),
        loc: loc(doc.entry("services").map(|(k, _)| k).unwrap_or(doc)),
        containers,
        grace: None,
    }
}
