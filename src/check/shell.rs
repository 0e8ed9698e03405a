//! Just enough shell to judge a command line: split words the way `sh` would (quotes and
//! backslashes, no expansion), tell a single command from a compound one, and find the
//! command that runs last. Used for shell-form instructions, `sh -c` strings, compose's
//! string commands and entrypoint scripts.

/// Split into words, honouring quotes and backslashes; operators stay inside words.
pub fn split(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// What makes a shell stay around as the parent of the app: lists, pipes, background
/// jobs, command substitution. Only outside single quotes.
pub fn compound_operator(s: &str) -> Option<&'static str> {
    let mut quote: Option<char> = None;
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => i += 1,
            (Some('"'), '"') => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (_, '$') if next == Some('(') => return Some("$(…)"),
            (_, '`') => return Some("`…`"),
            (None, ';') => return Some(";"),
            (None, '\n') => return Some("a newline"),
            (None, '&') if next == Some('&') => return Some("&&"),
            (None, '&') => return Some("&"),
            (None, '|') if next == Some('|') => return Some("||"),
            (None, '|') => return Some("|"),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The last command of a list (`a && b; c` → `c`), trimmed. Pipes and substitutions are
/// not split: the point is whether the shell ends by `exec`ing something.
pub fn last_command(s: &str) -> &str {
    let mut quote: Option<u8> = None;
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(b'\''), _) => {}
            (_, b'\\') => i += 1,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(c),
            (None, b';' | b'\n') => start = i + 1,
            (None, b'&' | b'|') if bytes.get(i + 1) == Some(&c) => {
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    s.get(start..).unwrap_or("").trim()
}

/// Does this command replace the shell (`exec app`, `exec "$@"`)?
pub fn is_exec(cmd: &str) -> bool {
    let cmd = cmd.trim_start();
    cmd == "exec" || cmd.starts_with("exec ") || cmd.starts_with("exec\t")
}

/// The program and arguments a `sh -c` string runs when it is a single command, with
/// leading `exec` and `VAR=value` assignments removed.
pub fn simple_argv(s: &str) -> Vec<String> {
    let mut words = split(last_command(s));
    while words.first().is_some_and(|w| {
        w == "exec" || (w.contains('=') && !w.starts_with('-') && !w.starts_with('='))
    }) {
        words.remove(0);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_sh() {
        assert_eq!(
            split(r#"gunicorn -b ":8000" 'app:create()' a\ b"#),
            ["gunicorn", "-b", ":8000", "app:create()", "a b"]
        );
    }

    #[test]
    fn finds_compound_commands() {
        let table = [
            ("node server.js", None),
            ("npm run migrate && npm start", Some("&&")),
            ("a; b", Some(";")),
            ("app | tee /log", Some("|")),
            ("node $(cat flags)", Some("$(…)")),
            ("echo 'a && b'", None),
            ("echo \"$(date)\"", Some("$(…)")),
        ];
        for (s, want) in table {
            assert_eq!(compound_operator(s), want, "{s}");
        }
    }

    #[test]
    fn finds_the_last_command() {
        assert_eq!(last_command("cd /app && exec node a.js"), "exec node a.js");
        assert_eq!(last_command("a; b || c"), "c");
        assert_eq!(last_command("echo 'x; y'"), "echo 'x; y'");
        assert_eq!(
            simple_argv("cd /x && PORT=1 exec gunicorn app"),
            ["gunicorn", "app"]
        );
    }
}
