//! A YAML/JSON document tree that remembers where every value is, so findings can point
//! at the line and column of the value they are about.
//!
//! yaml-rust2's own `Yaml` tree drops positions, so the tree is built here from its
//! event stream, which carries a marker per event. JSON is read by the same parser (JSON
//! is close enough to YAML 1.2 flow style for task definitions and templates); tabs,
//! which YAML forbids as indentation but JSON files use, are replaced by spaces first,
//! which keeps every line and column where it was.
//!
//! The builder keeps its own stack (no recursion), caps nesting depth and the number of
//! nodes (aliases are expanded by copying, so a "billion laughs" file would otherwise
//! exhaust memory): hostile input yields an error, never a crash.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::Marker;

use super::model::Span;

/// Deeper nesting than this is not a deployment file.
const MAX_DEPTH: usize = 200;
/// More values than this (after alias expansion) is not a deployment file either.
const MAX_NODES: usize = 1_000_000;

/// One value of a document and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    /// A local tag such as CloudFormation's `!Ref` (without the `!`).
    pub tag: Option<String>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// Why a document could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    pub span: Span,
    pub message: String,
}

impl Node {
    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Key and value under `key` in a mapping (the key's span is where a finding about
    /// a missing or defaulted value points).
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// Follow a path of keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn seq(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// A scalar read as a whole number (`30`, `"30"`).
    pub fn u64(&self) -> Option<u64> {
        self.str().and_then(|s| s.trim().parse().ok())
    }

    /// A scalar read as a boolean (`true`, `"true"`).
    pub fn bool(&self) -> Option<bool> {
        match self.str()?.trim() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    /// A sequence of scalars, each with its span (command lines).
    pub fn words(&self) -> Option<Vec<(String, Span)>> {
        match &self.value {
            Value::Seq(items) => items
                .iter()
                .map(|n| n.str().map(|s| (s.to_string(), n.span)))
                .collect(),
            _ => None,
        }
    }
}

/// Parse every document of a YAML stream (or one JSON document).
pub fn parse(text: &str) -> Result<Vec<Node>, TreeError> {
    let text = text.replace('\t', " ");
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(&text);
    let loaded = parser.load(&mut builder, true);
    if let Some(err) = builder.error {
        return Err(err);
    }
    loaded.map_err(|e| TreeError {
        span: span_of(e.marker()),
        message: e.info().to_string(),
    })?;
    Ok(builder.docs)
}

fn span_of(m: &Marker) -> Span {
    Span {
        line: m.line().max(1),
        col: m.col() + 1,
    }
}

enum Open {
    Seq(Node),
    /// A mapping and the key waiting for its value.
    Map(Node, Option<Node>),
}

#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    stack: Vec<(Open, usize)>,
    anchors: std::collections::HashMap<usize, Node>,
    nodes: usize,
    error: Option<TreeError>,
}

impl Builder {
    fn fail(&mut self, span: Span, message: &str) {
        if self.error.is_none() {
            self.error = Some(TreeError {
                span,
                message: message.to_string(),
            });
        }
    }

    fn count(&mut self, n: usize, span: Span) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.fail(
                span,
                "the document has too many values (over a million, after expanding aliases)",
            );
            return false;
        }
        true
    }

    /// A finished value goes into its parent, or becomes a document.
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some((Open::Seq(parent), _)) => {
                if let Value::Seq(items) = &mut parent.value {
                    items.push(node);
                }
            }
            Some((Open::Map(parent, pending), _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Value::Map(entries) = &mut parent.value {
                        entries.push((key, node));
                    }
                }
            },
        }
    }

    fn open(&mut self, open: Open, anchor: usize, span: Span) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(span, "values are nested too deeply (over 200 levels)");
            return;
        }
        self.stack.push((open, anchor));
    }

    fn close(&mut self) {
        if let Some((open, anchor)) = self.stack.pop() {
            let node = match open {
                Open::Seq(n) | Open::Map(n, _) => n,
            };
            self.push(node, anchor);
        }
    }
}

fn local_tag(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| match t.handle.as_str() {
        "!" => t.suffix,
        _ => format!("{}{}", t.handle, t.suffix),
    })
}

fn node_size(node: &Node) -> usize {
    let mut n = 0;
    let mut todo = vec![node];
    while let Some(node) = todo.pop() {
        n += 1;
        match &node.value {
            Value::Scalar(_) => {}
            Value::Seq(items) => todo.extend(items.iter()),
            Value::Map(entries) => {
                for (k, v) in entries {
                    todo.push(k);
                    todo.push(v);
                }
            }
        }
    }
    n
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let span = span_of(&mark);
        match ev {
            Event::Scalar(s, _, anchor, tag) => {
                if self.count(1, span) {
                    let node = Node {
                        span,
                        tag: local_tag(tag),
                        value: Value::Scalar(s),
                    };
                    self.push(node, anchor);
                }
            }
            Event::SequenceStart(anchor, tag) => {
                let node = Node {
                    span,
                    tag: local_tag(tag),
                    value: Value::Seq(Vec::new()),
                };
                if self.count(1, span) {
                    self.open(Open::Seq(node), anchor, span);
                }
            }
            Event::MappingStart(anchor, tag) => {
                let node = Node {
                    span,
                    tag: local_tag(tag),
                    value: Value::Map(Vec::new()),
                };
                if self.count(1, span) {
                    self.open(Open::Map(node, None), anchor, span);
                }
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    if self.count(node_size(&node), span) {
                        node.span = span;
                        self.push(node, 0);
                    }
                }
                None => self.fail(span, "alias to an unknown anchor"),
            },
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_values() {
        let docs = parse("a:\n  b: 30\n---\n{\"c\": [1,\n\t\"x\"]}\n").unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].at(&["a", "b"]).unwrap();
        assert_eq!((b.span.line, b.span.col, b.u64()), (2, 6, Some(30)));
        let x = &docs[1].get("c").unwrap().seq()[1];
        assert_eq!((x.span.line, x.span.col, x.str()), (5, 2, Some("x")));
    }

    #[test]
    fn tags_are_kept() {
        let docs = parse("TaskDefinition: !Ref Task\n").unwrap();
        let n = docs[0].get("TaskDefinition").unwrap();
        assert_eq!((n.tag.as_deref(), n.str()), (Some("Ref"), Some("Task")));
    }

    #[test]
    fn hostile_input_is_an_error() {
        let deep = "[".repeat(5000);
        assert!(parse(&deep).is_err());
        let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            laughs.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse(&laughs).is_err());
    }
}
