//! Finding and reading the files: directories are walked (hidden directories,
//! node_modules, vendor and target are skipped), each file's kind is told from its name
//! and content, and its facts are added to [`Facts`]. A file that cannot be read or parsed
//! yields one [`FileError`]; the others are still read.

use std::path::{Path, PathBuf};

use super::config::Config;
use super::model::{Facts, FileError};
use super::tree::{self, Node};
use super::{cloudformation, compose, dockerfile, ecs, k8s};

/// The kinds of input, for `--kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Dockerfile,
    Compose,
    Ecs,
    Cloudformation,
    K8s,
}

/// Files larger than this are not deployment files.
const MAX_BYTES: u64 = 4 << 20;

/// Endings that make `dockerfile.*` a source or data file about Dockerfiles (a parser's
/// `dockerfile.rs`, a `dockerfile.md`), not a Dockerfile variant like `Dockerfile.prod`.
const NOT_DOCKERFILE: [&str; 16] = [
    "rs", "go", "py", "rb", "js", "ts", "java", "kt", "c", "h", "sh", "md", "txt", "json", "yaml",
    "yml",
];

fn is_dockerfile_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let variant = lower
        .strip_prefix("dockerfile.")
        .is_some_and(|suffix| !NOT_DOCKERFILE.contains(&suffix));
    lower == "dockerfile" || variant || lower.ends_with(".dockerfile") || lower == "containerfile"
}

fn is_data_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".json", ".yaml", ".yml", ".template"]
        .iter()
        .any(|e| lower.ends_with(e))
        && lower != super::config::FILE_NAME
}

/// The files to read: (path, named explicitly?).
pub fn collect(
    paths: &[PathBuf],
    config: &Config,
    errors: &mut Vec<FileError>,
) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, p, config, &mut out, errors, 0);
        } else if p.as_os_str() == "-" || p.is_file() {
            out.push((p.clone(), true));
        } else {
            errors.push(FileError {
                path: p.clone(),
                span: None,
                message: "no such file or directory".into(),
            });
        }
    }
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    config: &Config,
    out: &mut Vec<(PathBuf, bool)>,
    errors: &mut Vec<FileError>,
    depth: usize,
) {
    // Excludes prune what a directory scan finds; a path the user names is always checked,
    // as with other linters.
    if depth > 12 {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(FileError {
                path: dir.to_path_buf(),
                span: None,
                message: format!("cannot read the directory: {e}"),
            });
            return;
        }
    };
    // `lastcall check .` shows `Dockerfile`, not `./Dockerfile`.
    let mut entries: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .map(|p| p.strip_prefix(".").map(Path::to_path_buf).unwrap_or(p))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if config.excluded_below(root, &path) {
            continue;
        }
        if path.is_dir() {
            if !(name.starts_with('.')
                || matches!(name.as_str(), "node_modules" | "vendor" | "target"))
            {
                walk(root, &path, config, out, errors, depth + 1);
            }
        } else if is_dockerfile_name(&name) || is_data_name(&name) {
            out.push((path, false));
        }
    }
}

/// Read one file (or stdin for `-`) into `facts`.
pub fn read(
    path: &Path,
    explicit: bool,
    kind: Option<Kind>,
    facts: &mut Facts,
) -> Result<(), FileError> {
    let stdin = path.as_os_str() == "-";
    let path = if stdin { Path::new("<stdin>") } else { path };
    let err = |span, message: String| FileError {
        path: path.to_path_buf(),
        span,
        message,
    };
    let text = if stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| err(None, format!("cannot read stdin: {e}")))?;
        s
    } else {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len > MAX_BYTES {
            return Err(err(
                None,
                format!("file is {len} bytes, larger than the 4 MiB a deployment file may be"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
        String::from_utf8(bytes).map_err(|e| {
            err(
                None,
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?
    };
    read_text(path, text, explicit, kind, facts)
}

/// Read one file's text into `facts` (the part of [`read`] after the bytes are in hand;
/// the fuzz targets start here).
pub fn read_text(
    path: &Path,
    text: String,
    explicit: bool,
    kind: Option<Kind>,
    facts: &mut Facts,
) -> Result<(), FileError> {
    let err = |span, message: String| FileError {
        path: path.to_path_buf(),
        span,
        message,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let kind = kind.or_else(|| is_dockerfile_name(&name).then_some(Kind::Dockerfile));
    if kind == Some(Kind::Dockerfile) {
        let file = facts.add_file(path.to_path_buf(), text);
        let parsed = dockerfile::parse(file, path, &facts.files[file].text);
        let (mut image, scripts) = parsed?;
        for (in_image, on_disk) in scripts {
            if let Ok(t) = std::fs::read_to_string(&on_disk) {
                let id = facts.add_file(on_disk, t);
                image.scripts.push((in_image, id));
            }
        }
        let named: Vec<String> = [&image.entrypoint, &image.cmd]
            .into_iter()
            .flatten()
            .flat_map(|a| a.words.windows(2))
            .filter(|w| w[0].value == "-C" || w[0].value == "--config")
            .map(|w| w[1].value.clone())
            .collect();
        image.configs = super::appconfig::load(&image.context, &named, facts);
        facts.images.push(image);
        return Ok(());
    }
    let docs = match tree::parse(&text) {
        Ok(d) => d,
        // A Helm or Jinja template is not YAML until rendered; only complain if asked.
        Err(_) if !explicit && text.contains("{{") => return Ok(()),
        Err(e) => {
            let what = if name.to_ascii_lowercase().ends_with(".json") {
                "JSON"
            } else {
                "YAML"
            };
            return Err(err(
                Some(e.span),
                format!("cannot parse {what}: {}", e.message),
            ));
        }
    };
    let file = facts.add_file(path.to_path_buf(), text);
    let mut known = false;
    for doc in &docs {
        let k = kind.or_else(|| detect(doc));
        known |= k.is_some();
        match k {
            Some(Kind::Ecs) => {
                let root = ecs::task_root(doc).unwrap_or(doc);
                let family = root
                    .get("family")
                    .and_then(Node::str)
                    .unwrap_or("(task definition)")
                    .to_string();
                facts
                    .deployments
                    .push(ecs::task_definition(root, &ecs::Keys::API, file, family));
            }
            Some(Kind::Cloudformation) => cloudformation::read(doc, file, facts),
            Some(Kind::K8s) => k8s::read(doc, file, &mut facts.deployments),
            Some(Kind::Compose) => facts.deployments.push(compose::read(doc, file, path)),
            Some(Kind::Dockerfile) | None => {}
        }
    }
    if !known && explicit && !docs.is_empty() {
        return Err(err(
            None,
            "not a task definition, CloudFormation template, Kubernetes manifest or compose file; pass --kind if it is one".into(),
        ));
    }
    Ok(())
}

fn detect(doc: &Node) -> Option<Kind> {
    if ecs::task_root(doc).is_some() {
        Some(Kind::Ecs)
    } else if cloudformation::is_template(doc) {
        Some(Kind::Cloudformation)
    } else if k8s::is_manifest(doc) {
        Some(Kind::K8s)
    } else if compose::is_compose(doc) {
        Some(Kind::Compose)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::is_dockerfile_name;

    #[test]
    fn dockerfile_names() {
        let table = [
            ("Dockerfile", true),
            ("Dockerfile.prod", true),
            ("dockerfile.dev", true),
            ("api.Dockerfile", true),
            ("Containerfile", true),
            ("dockerfile.rs", false),
            ("Dockerfile.md", false),
            ("dockerfile.go", false),
            ("Dockerfiles", false),
        ];
        for (name, is) in table {
            assert_eq!(is_dockerfile_name(name), is, "{name}");
        }
    }
}
