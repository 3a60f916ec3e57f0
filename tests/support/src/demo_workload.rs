//! The demo app as a workload of real pods (on the real node), as the real-install tests and
//! the demo deploy it: the pod template of a revision and the Services in front of it.
//!
//! The pod runs the signed `rollgate-demo-app` image's `serve` on [`APP_PORT`], labels its
//! metrics with its own `rollgate.io/revision` (read through the downward API), is scraped by
//! Prometheus through the `prometheus.io/*` annotations, and runs non-root with a read-only
//! root filesystem and no capabilities.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The port the demo app listens on in its pods.
pub const APP_PORT: u16 = 8080;

/// The pod template of a revision of the demo app running `image` (by digest), with the extra
/// pod `labels` (a change of one is a new revision) and failing `error_rate` of its requests
/// (0 to 1). The Rollout adds its `app` label.
pub fn demo_pod_template(image: &str, labels: &[(&str, &str)], error_rate: f64) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    json!({
        "metadata": {
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": APP_PORT.to_string()
            }
        },
        "spec": {
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true},
            "containers": [{
                "name": "app",
                "image": image,
                "args": ["serve"],
                "env": [
                    {"name": "DEMO_LISTEN", "value": format!("0.0.0.0:{APP_PORT}")},
                    {"name": "DEMO_ERROR_RATE", "value": error_rate.to_string()},
                    {"name": "DEMO_REVISION", "valueFrom": {"fieldRef": {
                        "fieldPath": "metadata.labels['rollgate.io/revision']"}}}
                ],
                "ports": [{"name": "http", "containerPort": APP_PORT}],
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": APP_PORT},
                    "periodSeconds": 1
                },
                "securityContext": {
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    })
}

/// The Services of the demo app `name` in `namespace`: `<name>` in front of every pod (what
/// clients call), and `<name>-stable` and `<name>-canary`, which the Rollout `name` points at
/// its revisions (the `rollgate.io/managed-by-rollout` annotation lets it).
pub fn demo_services(name: &str, namespace: &str) -> Value {
    let service = |service: String| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service, "namespace": namespace,
                         "annotations": {"rollgate.io/managed-by-rollout": name}},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": APP_PORT}]}
        })
    };
    json!({"apiVersion": "v1", "kind": "List", "items": [
        service(name.to_owned()),
        service(format!("{name}-stable")),
        service(format!("{name}-canary")),
    ]})
}

/// Whether `pod` serves: its Ready condition is True and it is not being deleted (a terminating
/// pod leaves its Service's endpoints).
pub fn serves(pod: &Pod) -> bool {
    let ready = pod
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        });
    ready && pod.metadata.deletion_timestamp.is_none()
}
