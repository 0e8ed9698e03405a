//! Kubernetes manifests: every document of a multi-document file (and `List` items) whose
//! kind carries a pod template — Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
//! CronJob.

use std::time::Duration;

use super::model::{Argv, Container, Deployment, Env, FileId, Loc, Platform, Spanned};
use super::shell;
use super::tree::Node;

/// Is this document a Kubernetes object?
pub fn is_manifest(doc: &Node) -> bool {
    doc.get("apiVersion").is_some() && doc.get("kind").is_some()
}

pub fn read(doc: &Node, file: FileId, out: &mut Vec<Deployment>) {
    let kind = doc.get("kind").and_then(Node::str).unwrap_or_default();
    if kind == "List" {
        for item in doc.get("items").map(Node::seq).unwrap_or_default() {
            read(item, file, out);
        }
        return;
    }
    let spec = match kind {
        "Pod" => doc.get("spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            doc.at(&["spec", "template", "spec"])
        }
        "CronJob" => doc.at(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    };
    let Some(spec) = spec else { return };
    let loc = |n: &Node| Loc { file, span: n.span };
    let name = doc
        .at(&["metadata", "name"])
        .and_then(Node::str)
        .unwrap_or("(unnamed)");
    let shared_pid = spec
        .get("shareProcessNamespace")
        .filter(|n| n.bool() == Some(true))
        .map(loc);
    let containers = spec
        .get("containers")
        .map(Node::seq)
        .unwrap_or_default()
        .iter()
        .filter(|c| c.is_map())
        .map(|c| container(c, file, shared_pid))
        .collect();
    out.push(Deployment {
        platform: Platform::Kubernetes,
        name: format!("{kind}/{name}"),
        refs: Vec::new(),
        loc: loc(doc.get("kind").unwrap_or(doc)),
        containers,
        grace: spec.get("terminationGracePeriodSeconds").and_then(|n| {
            n.u64()
                .map(|v| Spanned::new(Duration::from_secs(v), loc(n)))
        }),
    });
}

fn container(c: &Node, file: FileId, shared_pid: Option<Loc>) -> Container {
    let loc = |n: &Node| Loc { file, span: n.span };
    let argv = |key: &str, what: &'static str| {
        let (k, v) = c.entry(key)?;
        Some(Argv {
            words: v
                .words()?
                .into_iter()
                .map(|(w, span)| Spanned::new(w, Loc { file, span }))
                .collect(),
            shell_form: false,
            loc: loc(k),
            what,
        })
    };
    let mut env: Env = Vec::new();
    for e in c.get("env").map(Node::seq).unwrap_or_default() {
        if let (Some(name), Some(value)) = (e.get("name").and_then(Node::str), e.get("value"))
            && let Some(v) = value.str()
        {
            env.push((name.to_string(), Spanned::new(v.to_string(), loc(value))));
        }
    }
    Container {
        name: c
            .get("name")
            .and_then(Node::str)
            .unwrap_or("(unnamed)")
            .to_string(),
        loc: loc(c.entry("name").map(|(k, _)| k).unwrap_or(c)),
        image: c
            .get("image")
            .and_then(|n| n.str().map(|s| Spanned::new(s.to_string(), loc(n)))),
        entrypoint: argv("command", "command"),
        command: argv("args", "args"),
        env,
        platform_init: shared_pid,
        stop_signal: c
            .at(&["lifecycle", "stopSignal"])
            .and_then(|n| n.str().map(|s| Spanned::new(s.to_string(), loc(n)))),
        stop_timeout: None,
        pre_stop_sleep: c
            .at(&["lifecycle", "preStop"])
            .and_then(|p| pre_stop_sleep(p, file)),
        build: None,
    }
}

/// A preStop hook that only waits: `sleep: {seconds: N}`, `exec: [sleep, N]` or a shell
/// running `sleep N`.
fn pre_stop_sleep(hook: &Node, file: FileId) -> Option<Spanned<Duration>> {
    if let Some(n) = hook.at(&["sleep", "seconds"]) {
        return n
            .u64()
            .map(|s| Spanned::new(Duration::from_secs(s), Loc { file, span: n.span }));
    }
    let words = hook.at(&["exec", "command"])?.words()?;
    let (text, span) = match words.as_slice() {
        [(sh, _), (c, _), (script, span)] if sh.ends_with("sh") && c == "-c" => {
            (script.clone(), *span)
        }
        [(_, span), ..] => (
            words
                .iter()
                .map(|(w, _)| w.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            *span,
        ),
        [] => return None,
    };
    let argv = shell::split(&text);
    match argv.as_slice() {
        [sleep, n] if sleep.rsplit('/').next() == Some("sleep") => crate::duration::parse(n)
            .ok()
            .map(|d| Spanned::new(d, Loc { file, span })),
        _ => None,
    }
}
