//! Turning findings off: inline comments and the config file.
//!
//! Inline: `# lastcall ignore=LC101,LC105 reason` on the line of the finding, or alone on
//! the line before it (Dockerfiles, YAML, shell scripts; JSON has no comments — use the
//! config file).
//!
//! Config file `.lastcall-check.yaml` (in the current directory, or `--config PATH`):
//!
//! ```yaml
//! fail-on: error          # default: warning
//! ignore: [LC204]         # rules turned off everywhere
//! severity: {LC101: error}
//! exclude: [vendor/, legacy/task.json]   # path prefixes not checked
//! ```

use std::path::{Path, PathBuf};

use super::rules::{self, Severity};
use super::tree::{self, Node};

pub const FILE_NAME: &str = ".lastcall-check.yaml";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub fail_on: Option<Severity>,
    pub ignore: Vec<String>,
    pub severity: Vec<(String, Severity)>,
    pub exclude: Vec<String>,
}

impl Config {
    /// Is this path excluded? Entries are path prefixes relative to the current
    /// directory; absolute paths under it are compared relative to it.
    pub fn excluded(&self, path: &Path) -> bool {
        self.excluded_below(Path::new(""), path)
    }

    /// Is `path`, found while scanning the directory `root` the user named, excluded? An
    /// entry that covers `root` itself does not count: naming a directory inside an
    /// excluded tree asks for it to be checked.
    pub fn excluded_below(&self, root: &Path, path: &Path) -> bool {
        let (root, path) = (relative(root), relative(path));
        self.exclude.iter().any(|e| {
            let e = e.trim_start_matches("./");
            path.starts_with(e) && (root.is_empty() || !root.starts_with(e))
        })
    }
}

/// `path` relative to the current directory, without a leading `./`.
fn relative(path: &Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf());
    let p = relative.to_string_lossy();
    p.trim_start_matches("./").to_string()
}

/// Read the config: the given path must exist; the default one may not.
pub fn load(explicit: Option<&Path>) -> Result<Config, String> {
    let path: PathBuf = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new(FILE_NAME).is_file() => PathBuf::from(FILE_NAME),
        None => return Ok(Config::default()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: cannot read the config file: {e}", path.display()))?;
    parse(&super::scan::without_bom(text)).map_err(|e| format!("{}:{e}", path.display()))
}

/// Parse the config text; errors read `line:col: what (how to fix)`.
pub fn parse(text: &str) -> Result<Config, String> {
    let docs =
        tree::parse(text).map_err(|e| format!("{}:{}: {}", e.span.line, e.span.col, e.message))?;
    let mut config = Config::default();
    let Some(doc) = docs.first() else {
        return Ok(config);
    };
    let bad = |n: &Node, what: &str| format!("{}:{}: {what}", n.span.line, n.span.col);
    if !doc.is_map() {
        return Err(bad(
            doc,
            "the config file must be a mapping (keys fail-on, ignore, severity, exclude)",
        ));
    }
    let rule_id = |n: &Node| -> Result<String, String> {
        let id = n.str().unwrap_or_default();
        rules::find(id).map(|r| r.id.to_string()).ok_or_else(|| {
            bad(
                n,
                &format!("unknown rule `{id}` (see lastcall check --list-rules)"),
            )
        })
    };
    let severity = |n: &Node| -> Result<Severity, String> {
        let s = n.str().unwrap_or_default();
        <Severity as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            bad(
                n,
                &format!("unknown severity `{s}` (use info, warning or error)"),
            )
        })
    };
    for (k, v) in doc.entries() {
        match k.str().unwrap_or_default() {
            "fail-on" => config.fail_on = Some(severity(v)?),
            "ignore" => {
                for n in v.seq() {
                    config.ignore.push(rule_id(n)?);
                }
            }
            "severity" => {
                for (id, sev) in v.entries() {
                    config.severity.push((rule_id(id)?, severity(sev)?));
                }
            }
            "exclude" => {
                for n in v.seq() {
                    config.exclude.push(n.str().unwrap_or_default().to_string());
                }
            }
            other => {
                return Err(bad(
                    k,
                    &format!("unknown key `{other}` (use fail-on, ignore, severity, exclude)"),
                ));
            }
        }
    }
    Ok(config)
}

/// The inline ignores of one file: (line, rule ids) pairs.
pub fn inline_ignores(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        let ids = line.find("lastcall ignore=").map(|at| {
            line[at + "lastcall ignore=".len()..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|s| s.to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        });
        let comment_only = t.starts_with('#');
        match ids {
            Some(ids) if comment_only => pending.extend(ids),
            Some(ids) => {
                let mut ids = ids;
                ids.append(&mut pending);
                out.push((i + 1, ids));
            }
            None if t.is_empty() || comment_only => {}
            None => {
                if !pending.is_empty() {
                    out.push((i + 1, std::mem::take(&mut pending)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_ignores_apply_to_their_line_or_the_next() {
        let text = "FROM x\n# lastcall ignore=LC101 we exec in the script\n\nCMD node a.js\nCMD x # lastcall ignore=lc105,LC104 reason\n";
        assert_eq!(
            inline_ignores(text),
            vec![
                (4, vec!["LC101".to_string()]),
                (5, vec!["LC105".to_string(), "LC104".to_string()])
            ]
        );
    }

    #[test]
    fn config_errors_say_where_and_how() {
        let table = [
            (
                "fail-on: fatal\n",
                "1:10: unknown severity `fatal` (use info, warning or error)",
            ),
            (
                "ignore: [LC999]\n",
                "1:10: unknown rule `LC999` (see lastcall check --list-rules)",
            ),
            (
                "ignores: []\n",
                "1:1: unknown key `ignores` (use fail-on, ignore, severity, exclude)",
            ),
            (
                "- a\n",
                "1:1: the config file must be a mapping (keys fail-on, ignore, severity, exclude)",
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse(text).unwrap_err(), want, "{text}");
        }
        let c = parse(
            "fail-on: error\nignore: [lc204]\nseverity: {LC101: error}\nexclude: [vendor/]\n",
        )
        .unwrap();
        assert_eq!(c.fail_on, Some(Severity::Error));
        assert_eq!(c.ignore, ["LC204"]);
        assert!(c.excluded(Path::new("./vendor/x/Dockerfile")));
    }

    #[test]
    fn a_named_directory_inside_an_excluded_tree_is_checked() {
        let c = parse("exclude: [fixtures/, fixtures/a/skip/]\n").unwrap();
        let table = [
            (".", "fixtures/a/Dockerfile", true),
            ("fixtures/a", "fixtures/a/Dockerfile", false),
            ("fixtures/a", "fixtures/a/skip/Dockerfile", true),
            ("src", "src/Dockerfile", false),
        ];
        for (root, path, excluded) in table {
            assert_eq!(
                c.excluded_below(Path::new(root), Path::new(path)),
                excluded,
                "{root} {path}"
            );
        }
    }
}
