//! ECS task definitions in JSON, both the shape `aws ecs register-task-definition
//! --cli-input-json` takes and the one `aws ecs describe-task-definition` prints (wrapped
//! in `"taskDefinition"`). CloudFormation's `AWS::ECS::TaskDefinition` has the same
//! fields in PascalCase; [`Keys`] lets both share one reader.

use std::time::Duration;

use super::model::{Argv, Container, Deployment, Env, FileId, Loc, Platform, Spanned};
use super::tree::Node;

/// Field names: camelCase for the ECS API, PascalCase for CloudFormation. Values may be
/// CloudFormation intrinsics, so reads go through [`Keys::resolve`]: a `Ref` to a
/// template parameter becomes the parameter's `Default`; other intrinsics (`!Sub`,
/// `!GetAtt`, `!If`) are unknown values.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub pascal: bool,
    /// The template's `Parameters`.
    pub params: Option<&'a Node>,
}

/// The name a `Ref` points to, in either spelling (`!Ref X`, `{"Ref": "X"}`).
pub fn ref_name(n: &Node) -> Option<&str> {
    if n.tag.as_deref() == Some("Ref") {
        return n.str();
    }
    match n.entries() {
        [(k, v)] if k.str() == Some("Ref") => v.str(),
        _ => None,
    }
}

impl<'a> Keys<'a> {
    pub const API: Keys<'static> = Keys {
        pascal: false,
        params: None,
    };

    pub fn resolve(&self, n: &'a Node) -> Option<&'a Node> {
        if let Some(name) = ref_name(n) {
            return self
                .params
                .and_then(|p| p.get(name))
                .and_then(|p| p.get("Default"));
        }
        let intrinsic = n.tag.is_some()
            || matches!(n.entries(), [(k, _)] if k.str().is_some_and(|k| k.starts_with("Fn::")));
        (!intrinsic).then_some(n)
    }

    fn key(&self, camel: &str) -> String {
        if !self.pascal {
            return camel.to_string();
        }
        let mut c = camel.chars();
        match c.next() {
            Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
            None => String::new(),
        }
    }

    pub fn get(&self, node: &'a Node, camel: &str) -> Option<&'a Node> {
        node.get(&self.key(camel)).and_then(|n| self.resolve(n))
    }
}

/// Is this JSON document a task definition?
pub fn task_root(doc: &Node) -> Option<&Node> {
    if doc.get("containerDefinitions").is_some() {
        Some(doc)
    } else {
        doc.get("taskDefinition")
            .filter(|t| t.get("containerDefinitions").is_some())
    }
}

/// Read a task definition (either key style).
pub fn task_definition<'a>(
    root: &'a Node,
    keys: &Keys<'a>,
    file: FileId,
    name: String,
) -> Deployment {
    let loc = |n: &Node| Loc { file, span: n.span };
    let fargate = keys.get(root, "requiresCompatibilities").is_some_and(|n| {
        n.seq()
            .iter()
            .any(|c| keys.resolve(c).and_then(Node::str) == Some("FARGATE"))
    });
    let containers = keys
        .get(root, "containerDefinitions")
        .map(|defs| {
            defs.seq()
                .iter()
                .filter(|c| c.is_map())
                .map(|c| container(c, keys, file))
                .collect()
        })
        .unwrap_or_default();
    Deployment {
        platform: Platform::Ecs { fargate },
        name,
        refs: Vec::new(),
        loc: loc(root),
        containers,
        grace: None,
    }
}

fn container<'a>(c: &'a Node, keys: &Keys<'a>, file: FileId) -> Container {
    let loc = |n: &Node| Loc { file, span: n.span };
    let s = |n: &'a Node| Spanned::new(n.str().unwrap_or_default().to_string(), loc(n));
    let argv = |camel: &str, what: &'static str| {
        let (k, v) = c.entry(&keys.key(camel))?;
        let v = keys.resolve(v)?;
        let words = v
            .seq()
            .iter()
            .filter_map(|w| keys.resolve(w))
            .filter_map(|w| w.str().map(|t| Spanned::new(t.to_string(), loc(w))))
            .collect();
        Some(Argv {
            words,
            shell_form: false,
            loc: loc(k),
            what,
        })
    };
    let mut env: Env = Vec::new();
    if let Some(list) = keys.get(c, "environment") {
        for e in list.seq() {
            let name = keys.get(e, "name").and_then(Node::str);
            let value = keys.get(e, "value");
            if let (Some(name), Some(value)) = (name, value) {
                env.push((name.to_string(), s(value)));
            }
        }
    }
    let init = keys
        .get(c, "linuxParameters")
        .and_then(|lp| keys.get(lp, "initProcessEnabled"))
        .filter(|n| n.bool() == Some(true))
        .map(loc);
    Container {
        name: keys
            .get(c, "name")
            .and_then(Node::str)
            .unwrap_or("(unnamed)")
            .to_string(),
        loc: loc(c),
        image: keys.get(c, "image").filter(|n| n.str().is_some()).map(s),
        entrypoint: argv("entryPoint", "entryPoint"),
        command: argv("command", "command"),
        env,
        platform_init: init,
        stop_signal: None,
        stop_timeout: keys.get(c, "stopTimeout").and_then(|n| {
            n.u64()
                .map(|v| Spanned::new(Duration::from_secs(v), loc(n)))
        }),
        pre_stop_sleep: None,
        build: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tree;

    #[test]
    fn reads_both_api_shapes() {
        let register = r#"{"family": "web", "requiresCompatibilities": ["FARGATE"],
          "containerDefinitions": [{"name": "app", "image": "x", "stopTimeout": 45,
            "command": ["bundle", "exec", "sidekiq"],
            "environment": [{"name": "A", "value": "1"}],
            "linuxParameters": {"initProcessEnabled": true}}]}"#;
        let describe = format!("{{\"taskDefinition\": {register}, \"tags\": []}}");
        for text in [register.to_string(), describe] {
            let doc = &tree::parse(&text).unwrap()[0];
            let keys = Keys::API;
            let d = task_definition(task_root(doc).unwrap(), &keys, 0, "web".into());
            assert_eq!(d.platform, Platform::Ecs { fargate: true });
            let c = &d.containers[0];
            assert_eq!(
                c.stop_timeout.as_ref().unwrap().value,
                Duration::from_secs(45)
            );
            assert_eq!(c.command.as_ref().unwrap().words.len(), 3);
            assert!(c.platform_init.is_some());
            assert_eq!(c.env[0].1.value, "1");
        }
    }
}
