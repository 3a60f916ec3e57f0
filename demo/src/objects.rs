//! The objects the demo applies, as a platform team and an app team would write them: the
//! ImagePolicy, the error-rate AnalysisTemplate, the app's Services and its Rollout of real
//! pods (the signed demo-app image, see `rollgate_testsupport::demo_workload`).

use anyhow::Result;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use rollgate_crds::revision::revision_hash;
use rollgate_testsupport::demo_workload::{demo_pod_template, demo_services};
use serde_json::{Value, json};

/// The demo's namespace.
pub const NAMESPACE: &str = "shop";
/// The Rollout's name.
pub const ROLLOUT: &str = "checkout";
/// The group allowed to approve.
pub const APPROVERS_GROUP: &str = "release-managers";
/// The release manager who approves (a user with a client certificate, in that group).
pub const APPROVER: &str = "dana";
/// The AnalysisTemplate's name.
pub const TEMPLATE: &str = "error-rate";
/// The Service in front of every pod of the app, the one clients call.
pub const SERVICE: &str = ROLLOUT;
/// The Rollout's replica count (one pod is 20%).
pub const REPLICAS: i32 = 5;

/// The canary's error ratio over the last 10 seconds (0 when it served no errors); the
/// controller fills in `{{revision.canary}}`, and Prometheus labels each pod's series with the
/// pod's `rollgate.io/revision`.
pub const ERROR_RATIO: &str = r#"(sum(rate(http_requests_total{revision="{{revision.canary}}",code="500"}[10s])) or vector(0)) / sum(rate(http_requests_total{revision="{{revision.canary}}"}[10s]))"#;

/// A namespace.
pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// The cluster default ImagePolicy: images of `registry` need a signature by `public_pem`.
pub fn image_policy(registry: &str, public_pem: &str) -> Value {
    json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {
            "name": "release-signing",
            "annotations": {"rollgate.io/default-policy": "true"}
        },
        "spec": {
            "images": [format!("{registry}/{NAMESPACE}/**")],
            "authorities": [{"name": "release-team", "keys": [{"pem": public_pem}]}]
        }
    })
}

/// The SLO: the canary's error ratio stays under 5%, measured three times, two seconds apart,
/// the first after 15 seconds: time for Prometheus to find the new pod (its discovery hands new
/// targets to the scrapes at most every 5 s) and take the two samples `rate` needs.
pub fn analysis_template(prometheus_url: &str) -> Value {
    json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": TEMPLATE, "namespace": NAMESPACE},
        "spec": {"metrics": [{
            "name": "error-ratio",
            "interval": "2s",
            "count": 3,
            "initialDelay": "15s",
            "provider": {"prometheus": {
                "address": prometheus_url,
                "query": ERROR_RATIO,
                "timeout": "5s"
            }},
            "successCondition": "result < 0.05"
        }]}
    })
}

/// The app's Services: `checkout` in front of every pod, `checkout-stable` and
/// `checkout-canary` pointed at the revisions by the Rollout.
pub fn services() -> Value {
    demo_services(SERVICE, NAMESPACE)
}

/// The pod template of the revision running `image`, failing `error_rate` of its requests.
pub fn template(image: &str, error_rate: f64) -> Value {
    demo_pod_template(image, &[("app", ROLLOUT)], error_rate)
}

/// The revision hash of the template running `image`, as the controller computes it.
pub fn revision_of(image: &str, error_rate: f64) -> Result<String> {
    let template: PodTemplateSpec = serde_json::from_value(template(image, error_rate))?;
    Ok(revision_hash(&template)?)
}

/// The Rollout running `image`: a canary of 20% (one pod in five, one more pod at most during
/// a change), the error-rate analysis, an approval gate (one approval from the release
/// managers' group), then 100%. Who requested the revision is not written here: the admission
/// policy stamps it (`rollgate.io/requested-by`).
pub fn rollout(image: &str, error_rate: f64) -> Value {
    json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": ROLLOUT, "namespace": NAMESPACE},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": ROLLOUT}},
            "template": template(image, error_rate),
            "strategy": {"canary": {
                "stableService": format!("{SERVICE}-stable"),
                "canaryService": format!("{SERVICE}-canary"),
                "maxSurge": 1,
                "maxUnavailable": 0,
                "steps": [
                    {"setWeight": 20},
                    {"analysis": {"templates": [{"templateName": TEMPLATE}]}},
                    {"approval": {}},
                    {"setWeight": 100}
                ]
            }},
            "approval": {
                "requiredApprovals": 1,
                "approvers": {"groups": [APPROVERS_GROUP]}
            }
        }
    })
}
