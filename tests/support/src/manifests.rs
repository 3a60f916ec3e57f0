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
    Ok(serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": app_image(digest)}]}
            },
            "strategy": strategy
        }
    }))?)
}
