//! Finding and reading the files: directories are walked (hidden directories,
//! node_modules, vendor and target are skipped; links to directories are not followed;
//! only regular files are read; each file once), each file's kind is told from its name
//! and content, and its facts are added to [`Facts`]. A file that cannot be read or parsed
//! yields one [`FileError`]; the others are still read.

use std::io::Read;
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

/// A file found for reading.
struct Found {
    path: PathBuf,
    explicit: bool,
    /// Reached through a symbolic link found in a directory.
    link: bool,
    /// (device, inode): the same file under two names is read once.
    id: Option<(u64, u64)>,
}

impl Found {
    /// Which of two names of one file to keep: the one the user named, else the file's
    /// own name rather than a link's.
    fn rank(&self) -> (bool, bool) {
        (self.explicit, !self.link)
    }
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// The files to read: (path, named explicitly?), each file once.
pub fn collect(
    paths: &[PathBuf],
    config: &Config,
    errors: &mut Vec<FileError>,
) -> Vec<(PathBuf, bool)> {
    let mut found = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            found.push(Found {
                path: p.clone(),
                explicit: true,
                link: false,
                id: None,
            });
            continue;
        }
        // A path the user names is read whatever it is (a pipe such as /dev/fd/63 from
        // `<(…)`, a device); only directories found inside a walk are held to more.
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, p, config, &mut found, errors, 0),
            Ok(m) => found.push(Found {
                path: p.clone(),
                explicit: true,
                link: false,
                id: Some(file_id(&m)),
            }),
            Err(e) => errors.push(FileError {
                path: p.clone(),
                span: None,
                message: if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file or directory".into()
                } else {
                    format!("cannot read: {e}")
                },
            }),
        }
    }
    let mut keep: std::collections::HashMap<(u64, u64), usize> = Default::default();
    for (i, f) in found.iter().enumerate() {
        if let Some(id) = f.id {
            let k = keep.entry(id).or_insert(i);
            if found[*k].rank() < f.rank() {
                *k = i;
            }
        }
    }
    found
        .into_iter()
        .enumerate()
        .filter(|(i, f)| f.id.is_none_or(|id| keep.get(&id) == Some(i)))
        .map(|(_, f)| (f.path, f.explicit))
        .collect()
}

/// Walk `dir` like ripgrep does by default: symbolic links to directories are not
/// followed (so a link loop such as `ln -s . a` cannot repeat the tree), a link to a
/// file is read (once, under the file's own name when the walk meets that too), and only
/// regular files are read: a FIFO named `x.yaml` would block the scan forever.
fn walk(
    root: &Path,
    dir: &Path,
    config: &Config,
    out: &mut Vec<Found>,
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
        .filter_map(|e| {
            let path = e.path();
            let path = path
                .strip_prefix(".")
                .map(Path::to_path_buf)
                .unwrap_or(path);
            Some((path, e.file_type().ok()?))
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, ty) in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if config.excluded_below(root, &path) {
            continue;
        }
        if ty.is_dir() {
            if !(name.starts_with('.')
                || matches!(name.as_str(), "node_modules" | "vendor" | "target"))
            {
                walk(root, &path, config, out, errors, depth + 1);
            }
            continue;
        }
        if !(is_dockerfile_name(&name) || is_data_name(&name)) {
            continue;
        }
        // A link is followed to see what it names; anything but a regular file is skipped.
        let meta = if ty.is_symlink() {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        };
        if let Some(m) = meta.ok().filter(std::fs::Metadata::is_file) {
            out.push(Found {
                path,
                explicit: false,
                link: ty.is_symlink(),
                id: Some(file_id(&m)),
            });
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
        std::io::stdin()
            .read_to_string(&mut s)
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
        // A pipe or device has no length to go by: read at most one byte over the limit.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| err(None, format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_BYTES {
            return Err(err(
                None,
                "more than 4 MiB, larger than a deployment file may be".to_string(),
            ));
        }
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

/// The text without a leading UTF-8 byte-order mark, which Windows editors write and
/// BuildKit, YAML and kubectl all skip; columns then count from the first visible character.
pub(crate) fn without_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
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
    let text = without_bom(text);
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
