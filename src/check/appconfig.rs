//! App config files in the build context, where shutdown timeouts usually live:
//! `config/puma.rb` (`worker_shutdown_timeout`), `config/sidekiq.yml` (`:timeout:`) and
//! Spring Boot's `application.properties` / `application.yml`
//! (`spring.lifecycle.timeout-per-shutdown-phase`, `server.shutdown`).
//!
//! They are read next to a Dockerfile (its build context is what `COPY . .` puts in the
//! image's WORKDIR); the command line and environment still win over them, as they do
//! in the apps themselves.

use std::path::Path;

use super::model::{Facts, FileId, Loc, Span, Spanned};
use super::tree::{self, Node};

/// Where each app looks by default, relative to the build context.
pub const DEFAULT_PATHS: &[&str] = &[
    "config/puma.rb",
    "config/sidekiq.yml",
    "config/sidekiq.yaml",
    "src/main/resources/application.properties",
    "src/main/resources/application.yml",
    "src/main/resources/application.yaml",
    "application.properties",
    "application.yml",
];

/// Read the default config files and any named by `-C`/`--config` in the context.
pub fn load(context: &Path, named: &[String], facts: &mut Facts) -> Vec<(String, FileId)> {
    let mut out = Vec::new();
    // Sidekiq setups often have several (config/sidekiq_critical.yml …), chosen by -C.
    let mut sidekiqs: Vec<String> = std::fs::read_dir(context.join("config"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| {
                    n.starts_with("sidekiq") && (n.ends_with(".yml") || n.ends_with(".yaml"))
                })
                .map(|n| format!("config/{n}"))
                .collect()
        })
        .unwrap_or_default();
    sidekiqs.sort();
    let names = DEFAULT_PATHS
        .iter()
        .map(|s| s.to_string())
        .chain(named.iter().cloned())
        .chain(sidekiqs);
    for rel in names {
        let rel = rel.trim_start_matches("./").to_string();
        if out.iter().any(|(r, _)| *r == rel) || rel.starts_with('/') || rel.contains("..") {
            continue;
        }
        let path = context.join(&rel);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > 1 << 20 {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.push((rel, facts.add_file(path, super::scan::without_bom(text))));
        }
    }
    out
}

/// A config file's text by its path relative to the context.
fn find<'a>(
    facts: &'a Facts,
    configs: &[(String, FileId)],
    rel: &str,
) -> Option<(FileId, &'a str)> {
    let rel = rel.trim_start_matches("./");
    configs
        .iter()
        .find(|(r, _)| r == rel)
        .and_then(|(_, id)| facts.files.get(*id).map(|f| (*id, f.text.as_str())))
}

/// `worker_shutdown_timeout 20` in a puma config (Ruby), not commented out.
pub fn puma(
    facts: &Facts,
    configs: &[(String, FileId)],
    path: Option<&str>,
) -> Option<Spanned<String>> {
    let (file, text) = find(facts, configs, path.unwrap_or("config/puma.rb"))?;
    // The last setting wins, as in Ruby.
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().enumerate().rev().find_map(|(i, line)| {
        let code = line.split('#').next().unwrap_or_default();
        let at = code.find("worker_shutdown_timeout")?;
        let rest = &code[at + "worker_shutdown_timeout".len()..];
        let value = rest.trim_start_matches([' ', '(']);
        let digits: String = value
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if digits.is_empty() {
            return None;
        }
        let col = code.len() - value.len() + 1;
        Some(Spanned::new(
            digits,
            Loc {
                file,
                span: Span { line: i + 1, col },
            },
        ))
    })
}

/// `:timeout: 20` (or `timeout: 20`) at the top of a Sidekiq config.
pub fn sidekiq(
    facts: &Facts,
    configs: &[(String, FileId)],
    path: Option<&str>,
) -> Option<Spanned<String>> {
    let (file, text) = find(facts, configs, path.unwrap_or("config/sidekiq.yml"))?;
    let docs = tree::parse(text).ok()?;
    let n = docs
        .first()?
        .get(":timeout")
        .or_else(|| docs.first()?.get("timeout"))?;
    Some(Spanned::new(
        n.str()?.to_string(),
        Loc { file, span: n.span },
    ))
}

/// Spring Boot properties from `application.properties` / `application.yml`, as
/// (normalised key, value): keys lower-cased without `-`, `_` and `.`, as relaxed binding
/// compares them.
pub fn spring(facts: &Facts, configs: &[(String, FileId)]) -> Vec<(String, Spanned<String>)> {
    let mut out = Vec::new();
    let norm = |k: &str| k.to_ascii_lowercase().replace(['-', '_', '.'], "");
    for (rel, id) in configs {
        let Some(file) = facts.files.get(*id) else {
            continue;
        };
        if rel.ends_with(".properties") {
            for (i, line) in file.text.lines().enumerate() {
                let t = line.trim_start();
                if t.starts_with('#') || t.starts_with('!') {
                    continue;
                }
                if let Some((k, v)) = t.split_once(['=', ':']) {
                    let col = line.len() - v.trim_start().len() + 1;
                    out.push((
                        norm(k.trim()),
                        Spanned::new(
                            v.trim().to_string(),
                            Loc {
                                file: *id,
                                span: Span { line: i + 1, col },
                            },
                        ),
                    ));
                }
            }
        } else if rel.contains("application.y") {
            let Ok(docs) = tree::parse(&file.text) else {
                continue;
            };
            for doc in &docs {
                flatten(doc, String::new(), *id, &mut out, &norm);
            }
        }
    }
    out
}

fn flatten(
    node: &Node,
    prefix: String,
    file: FileId,
    out: &mut Vec<(String, Spanned<String>)>,
    norm: &dyn Fn(&str) -> String,
) {
    // Spring config is shallow; the depth cap keeps hostile files cheap.
    if prefix.len() > 200 {
        return;
    }
    for (k, v) in node.entries() {
        let Some(k) = k.str() else { continue };
        let key = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        match v.str() {
            Some(s) => out.push((
                norm(&key),
                Spanned::new(s.to_string(), Loc { file, span: v.span }),
            )),
            None => flatten(v, key, file, out, norm),
        }
    }
}
