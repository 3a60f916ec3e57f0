//! The generated CRDs install, accept valid Rollouts, and make the API server reject each kind
//! of invalid spec with a message that names the field and the reason.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use rollgate_crds::Rollout;
use rollgate_testsupport::{TestNamespace, shared_cluster};
use serde_json::{Value, json};

fn valid_canary(name: &str) -> Value {
    json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web",
                    "image": "registry.example/web@sha256:0f6b5c2d9a1e3f4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
                }]}
            },
            "strategy": {"canary": {
                "stableService": "web-stable",
                "canaryService": "web-canary",
                "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
                "maxSurge": "25%",
                "maxUnavailable": 0,
                "steps": [
                    {"setWeight": 20},
                    {"pause": {"duration": "30s"}},
                    {"approval": {}},
                    {"analysis": {"templates": [{"templateName": "error-rate"}],
                                  "args": [{"name": "service", "value": "web"}]}},
                    {"setWeight": 100},
                    {"pause": {}}
                ]
            }},
            "approval": {"requiredApprovals": 2, "approvers": {"groups": ["release-managers"]},
                         "expiresAfter": "24h"}
        }
    })
}

struct Rollouts {
    api: Api<DynamicObject>,
    _namespace: TestNamespace,
}

async fn rollouts(prefix: &str) -> anyhow::Result<Rollouts> {
    let cluster = shared_cluster();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, prefix).await?;
    let resource = ApiResource::erase::<Rollout>(&());
    let api = Api::namespaced_with(client, namespace.name(), &resource);
    Ok(Rollouts {
        api,
        _namespace: namespace,
    })
}

impl Rollouts {
    async fn create(&self, value: Value) -> Result<DynamicObject, kube::Error> {
        let object: DynamicObject = serde_json::from_value(value).expect("a Rollout object");
        self.api.create(&PostParams::default(), &object).await
    }

    /// Creates `value`, asserts the API server refused it and stored nothing, and returns the
    /// refusal's message.
    async fn rejection(&self, value: Value) -> String {
        let name = value["metadata"]["name"].as_str().expect("name").to_owned();
        let error = self
            .create(value)
            .await
            .expect_err("the API server should reject this spec");
        let message = match &error {
            kube::Error::Api(status) => {
                assert_eq!(
                    status.code, 422,
                    "an invalid spec is 422 Unprocessable: {error}"
                );
                status.message.clone()
            }
            other => panic!("expected an API error, got {other}"),
        };
        assert!(
            self.api.get_opt(&name).await.expect("get").is_none(),
            "a rejected Rollout must not be stored"
        );
        message
    }
}

fn with(mut value: Value, pointer: &str, replacement: Value) -> Value {
    *value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} exists")) = replacement;
    value
}

fn assert_names(message: &str, field: &str, reason: &str) {
    assert!(
        message.contains(field),
        "message should name {field}: {message}"
    );
    assert!(
        message.contains(reason),
        "message should say {reason:?}: {message}"
    );
}

#[tokio::test]
async fn valid_canary_and_blue_green_rollouts_are_accepted() -> anyhow::Result<()> {
    let rollouts = rollouts("crd-valid").await?;
    let created = rollouts.create(valid_canary("canary")).await?;
    assert_eq!(
        created.data["spec"]["strategy"]["canary"]["steps"]
            .as_array()
            .map(Vec::len),
        Some(6)
    );

    let blue_green = with(
        valid_canary("blue-green"),
        "/spec/strategy",
        json!({"blueGreen": {"activeService": "web", "previewService": "web-preview",
                             "previewReplicaCount": 1, "scaleDownDelaySeconds": 30,
                             "prePromotionAnalysis": {"templates": [{"templateName": "smoke"}]}}}),
    );
    rollouts.create(blue_green).await?;

    // The stored object reads back as the typed Rollout the controller will use.
    let client = shared_cluster().client().await?;
    let typed: Api<Rollout> = Api::namespaced(client, rollouts._namespace.name());
    let canary = typed.get("canary").await?;
    assert_eq!(canary.spec.desired_replicas(), 4);
    assert_eq!(
        canary.spec.strategy.canary.as_ref().map(|c| c.steps.len()),
        Some(6)
    );
    Ok(())
}

#[tokio::test]
async fn both_or_neither_strategy_is_rejected() -> anyhow::Result<()> {
    let rollouts = rollouts("crd-strategy").await?;
    let mut both = valid_canary("both");
    both["spec"]["strategy"]["blueGreen"] = json!({"activeService": "web"});
    let neither = with(valid_canary("neither"), "/spec/strategy", json!({}));
    for spec in [both, neither] {
        let message = rollouts.rejection(spec).await;
        assert_names(
            &message,
            "spec.strategy",
            "exactly one of canary or blueGreen must be set",
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_step_with_zero_or_two_kinds_is_rejected() -> anyhow::Result<()> {
    let rollouts = rollouts("crd-steps").await?;
    let empty = with(
        valid_canary("empty-step"),
        "/spec/strategy/canary/steps/1",
        json!({}),
    );
    let two = with(
        valid_canary("two-kinds"),
        "/spec/strategy/canary/steps/1",
        json!({"setWeight": 10, "pause": {}}),
    );
    for spec in [empty, two] {
        let message = rollouts.rejection(spec).await;
        assert_names(
            &message,
            "spec.strategy.canary.steps[1]",
            "a step sets exactly one of setWeight, pause, approval or analysis",
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_weight_outside_0_to_100_is_rejected() -> anyhow::Result<()> {
    let rollouts = rollouts("crd-weight").await?;
    let field = "spec.strategy.canary.steps[0].setWeight";
    let over = with(
        valid_canary("over"),
        "/spec/strategy/canary/steps/0/setWeight",
        json!(101),
    );
    assert_names(
        &rollouts.rejection(over).await,
        field,
        "less than or equal to 100",
    );
    let under = with(
        valid_canary("under"),
        "/spec/strategy/canary/steps/0/setWeight",
        json!(-1),
    );
    assert_names(
        &rollouts.rejection(under).await,
        field,
        "greater than or equal to 0",
    );
    Ok(())
}

#[tokio::test]
async fn negative_replicas_are_rejected() -> anyhow::Result<()> {
    let rollouts = rollouts("crd-replicas").await?;
    let negative = with(valid_canary("negative"), "/spec/replicas", json!(-1));
    assert_names(
        &rollouts.rejection(negative).await,
        "spec.replicas",
        "greater than or equal to 0",
    );
    Ok(())
}

#[tokio::test]
async fn a_pause_duration_that_does_not_parse_is_rejected() -> anyhow::Result<()> {
    let rollouts = rollouts("crd-duration").await?;
    for bad in ["5 minutes", "10", "1.5h", "1d"] {
        let spec = with(
            valid_canary("bad-duration"),
            "/spec/strategy/canary/steps/1/pause/duration",
            json!(bad),
        );
        assert_names(
            &rollouts.rejection(spec).await,
            "spec.strategy.canary.steps[1].pause.duration",
            "must be a duration such as 30s, 5m, 1h30m or 250ms",
        );
    }
    Ok(())
}

#[tokio::test]
async fn inconsistent_selectors_and_routing_are_rejected() -> anyhow::Result<()> {
    let rollouts = rollouts("crd-consistency").await?;
    let mismatch = with(
        valid_canary("mismatch"),
        "/spec/selector/matchLabels/app",
        json!("api"),
    );
    assert_names(
        &rollouts.rejection(mismatch).await,
        "spec.selector",
        "selector.matchLabels must match template.metadata.labels",
    );
    let mut unrouted = valid_canary("unrouted");
    unrouted["spec"]["strategy"]["canary"]
        .as_object_mut()
        .expect("canary")
        .remove("canaryService");
    assert_names(
        &rollouts.rejection(unrouted).await,
        "spec.strategy.canary",
        "trafficRouting needs both stableService and canaryService",
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_explain_shows_the_doc_comments() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let output = cluster.kubectl(&["explain", "rollout.spec.strategy"])?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl explain failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for doc in [
        "How a new revision is released: exactly one of `canary` or `blueGreen`.",
        "Shift traffic to the new revision step by step.",
        "Run the new revision beside the active one and switch all traffic at",
    ] {
        assert!(text.contains(doc), "explain should show {doc:?}:\n{text}");
    }
    let steps = cluster.kubectl(&["explain", "rollout.spec.strategy.canary.steps.setWeight"])?;
    let steps = String::from_utf8_lossy(&steps.stdout);
    assert!(
        steps.contains("Percent of traffic (0 to 100) to send to the canary."),
        "{steps}"
    );
    Ok(())
}
