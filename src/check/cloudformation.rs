//! CloudFormation templates (JSON or YAML): `AWS::ECS::TaskDefinition`,
//! `AWS::ECS::Service` (launch type, capacity provider strategy, load balancers) and
//! `AWS::ElasticLoadBalancingV2::TargetGroup` (deregistration delay, health check).
//!
//! Values are often intrinsics. `Ref` to a parameter is followed to its `Default`, so a
//! template that makes the stop timeout a parameter is still checked; anything else
//! (`!Sub`, `!GetAtt`, `!If`) is unknown, and rules about unknown values stay silent.

use super::ecs::{self, Keys, ref_name};
use super::model::{Facts, FileId, Loc, Service, Spanned, TargetGroup};
use super::tree::Node;

/// Is this document a CloudFormation template?
pub fn is_template(doc: &Node) -> bool {
    doc.get("AWSTemplateFormatVersion").is_some()
        || doc.get("Resources").is_some_and(|r| {
            r.entries().iter().any(|(_, v)| {
                v.get("Type")
                    .and_then(Node::str)
                    .is_some_and(|t| t.starts_with("AWS::"))
            })
        })
}

pub fn read(doc: &Node, file: FileId, facts: &mut Facts) {
    let loc = |n: &Node| Loc { file, span: n.span };
    let keys = Keys {
        pascal: true,
        params: doc.get("Parameters"),
    };
    let resolve = |n| keys.resolve(n);
    let Some(resources) = doc.get("Resources") else {
        return;
    };
    for (id_node, res) in resources.entries() {
        let Some(id) = id_node.str() else { continue };
        let props = res.get("Properties");
        match res.get("Type").and_then(Node::str) {
            Some("AWS::ECS::TaskDefinition") => {
                if let Some(props) = props {
                    let mut d = ecs::task_definition(props, &keys, file, id.to_string());
                    d.loc = loc(id_node);
                    d.refs.push(id.to_string());
                    facts.deployments.push(d);
                }
            }
            Some("AWS::ECS::Service") => {
                let props = props.unwrap_or(res);
                let spot = props
                    .get("CapacityProviderStrategy")
                    .map(Node::seq)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|s| s.get("CapacityProvider").and_then(&resolve))
                    .find(|p| p.str() == Some("FARGATE_SPOT"))
                    .map(loc);
                let target_groups = props
                    .get("LoadBalancers")
                    .map(Node::seq)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|lb| lb.get("TargetGroupArn").and_then(ref_name))
                    .map(str::to_string)
                    .collect();
                facts.services.push(Service {
                    name: id.to_string(),
                    loc: loc(id_node),
                    task: props
                        .get("TaskDefinition")
                        .and_then(ref_name)
                        .map(str::to_string),
                    spot,
                    target_groups,
                });
            }
            Some("AWS::ElasticLoadBalancingV2::TargetGroup") => {
                let num = |key: &str| {
                    props
                        .and_then(|p| p.get(key))
                        .and_then(&resolve)
                        .and_then(|n| n.u64().map(|v| Spanned::new(v, loc(n))))
                };
                let delay = props
                    .and_then(|p| p.get("TargetGroupAttributes"))
                    .map(Node::seq)
                    .unwrap_or_default()
                    .iter()
                    .find(|a| {
                        a.get("Key").and_then(Node::str)
                            == Some("deregistration_delay.timeout_seconds")
                    })
                    .and_then(|a| a.get("Value"))
                    .and_then(&resolve)
                    .and_then(|n| n.u64().map(|v| Spanned::new(v, loc(n))));
                facts.target_groups.push(TargetGroup {
                    name: id.to_string(),
                    loc: loc(id_node),
                    deregistration_delay: delay,
                    interval: num("HealthCheckIntervalSeconds"),
                    unhealthy_threshold: num("UnhealthyThresholdCount"),
                });
            }
            _ => {}
        }
    }
}
