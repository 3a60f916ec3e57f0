//! Rollout manifests for tests and benchmarks: one app container, pinned by digest.

use rollgate_crds::Rollout;
use serde_json::{Value, json};

/// The image reference of the test app at `digest` (64 hex digits).
pub fn app_image(digest: &str) -> String {
    format!("registry.example/app@sha256:{digest}")
}

/// A Rollout named `name` (pods labelled `app: <name>`) with `replicas` pods of the app image
/// at `digest`, released by `strategy` (the JSON of `spec.strategy`).
pub fn rollout(
    name: &str,
    replicas: i32,
    digest: &str,
    strategy: Value,
) -> anyhow::Result<Rollout> {
    let template = json!({"spec": {"containers": [{"name": "app", "image": app_image(digest)}]}});
    Ok(serde_json::from_value(rollout_manifest(
        name, replicas, template, strategy,
    ))?)
}

/// The JSON of a Rollout named `name` with `replicas` pods of the pod template `template`
/// (its labels get `app: <name>`, which the selector matches), released by `strategy` (the
/// JSON of `spec.strategy`). Callers add what else they need (`spec.verification`, ...).
pub fn rollout_manifest(name: &str, replicas: i32, mut template: Value, strategy: Value) -> Value {
    template["metadata"]["labels"]["app"] = json!(name);
    json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
            "strategy": strategy
        }
    })
}
