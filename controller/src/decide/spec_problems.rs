//! Specs the API server accepts but the controller cannot apply: found before anything is
//! written, so such a Rollout goes Degraded with the reason on its first reconcile instead of
//! failing the same write forever. Checks that CEL can make at admission are CEL rules in the
//! CRD (the name's length, the selector's `matchLabels`); these are the ones it cannot:
//!
//! - `selector.matchExpressions` that do not select the template's labels (the ReplicaSet
//!   would be refused: its selector must select its own pods);
//! - pod-template annotations over Kubernetes' 256 KiB limit (the pods would be refused).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use rollgate_crds::Rollout;
use std::collections::BTreeMap;

/// Kubernetes' limit on an object's annotations, keys and values together.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// Why the spec cannot be applied, if it cannot.
pub fn problem(rollout: &Rollout) -> Option<String> {
    let template = rollout.spec.template.metadata.as_ref();
    let empty = BTreeMap::new();
    let labels = template.and_then(|m| m.labels.as_ref()).unwrap_or(&empty);
    let expressions = rollout.spec.selector.match_expressions.iter().flatten();
    for (index, requirement) in expressions.enumerate() {
        if let Err(why) = selects(requirement, labels) {
            return Some(format!(
                "spec.selector.matchExpressions[{index}] ({} {}): {why}, so the ReplicaSets could not select their own pods",
                requirement.key, requirement.operator
            ));
        }
    }
    let annotations = template
        .and_then(|m| m.annotations.as_ref())
        .map_or(0, |annotations| {
            annotations
                .iter()
                .map(|(k, v)| k.len().saturating_add(v.len()))
                .sum()
        });
    if annotations > ANNOTATIONS_LIMIT {
        return Some(format!(
            "spec.template.metadata.annotations: {annotations} bytes, over Kubernetes' limit of {ANNOTATIONS_LIMIT}: the pods would be refused"
        ));
    }
    None
}

/// Whether `requirement` selects `labels`, or why not.
fn selects(
    requirement: &LabelSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> Result<(), String> {
    let value = labels.get(&requirement.key);
    let values = requirement.values.as_deref().unwrap_or_default();
    let ok = match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        other => return Err(format!("unknown operator {other}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "spec.template.metadata.labels does not satisfy it (label {} is {})",
            requirement.key,
            value.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"))
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(expressions: serde_json::Value, annotation_bytes: usize) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "rollgate.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}, "matchExpressions": expressions},
                "template": {"metadata": {"labels": {"app": "web", "tier": "front"},
                                          "annotations": {"big": "x".repeat(annotation_bytes)}}},
                "strategy": {"canary": {"steps": []}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_selector_that_selects_the_template_is_fine() {
        let ok = json!([{"key": "tier", "operator": "In", "values": ["front"]},
                        {"key": "debug", "operator": "DoesNotExist"},
                        {"key": "tier", "operator": "NotIn", "values": ["back"]},
                        {"key": "app", "operator": "Exists"}]);
        assert_eq!(problem(&rollout(ok, 10)), None);
    }

    #[test]
    fn a_selector_that_misses_the_template_names_the_expression() {
        let bad = json!([{"key": "tier", "operator": "In", "values": ["front"]},
                         {"key": "tier", "operator": "In", "values": ["back"]}]);
        let why = problem(&rollout(bad, 10)).unwrap();
        assert!(
            why.starts_with("spec.selector.matchExpressions[1] (tier In)"),
            "{why}"
        );
        let missing = json!([{"key": "zone", "operator": "Exists"}]);
        assert!(
            problem(&rollout(missing, 10))
                .unwrap()
                .contains("label zone is absent")
        );
    }

    #[test]
    fn oversized_annotations_are_named() {
        let why = problem(&rollout(json!([]), 300 * 1024)).unwrap();
        assert!(
            why.starts_with("spec.template.metadata.annotations"),
            "{why}"
        );
    }
}
