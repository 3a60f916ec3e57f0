//! Rollout scenarios on the real cluster with the shared controller: blue-green promotion,
//! abort and retry, rollback, and the progress deadline.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::names::MANAGED_BY_ANNOTATION;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::approvals::approve_current_revision;
use rollgate_testsupport::{TestNamespace, manifests, shared_cluster, shared_controller};
use serde_json::{Value, json};

use crate::rollouts::{
    DIGEST_V1, DIGEST_V2, at, healthy, in_phase, replicas_by_revision, request, set_digest,
    wait_for, wait_for_scale,
};

struct Scenario {
    rollouts: Api<Rollout>,
    replica_sets: Api<ReplicaSet>,
    services: Api<Service>,
    _namespace: TestNamespace,
}

async fn scenario(prefix: &str) -> anyhow::Result<Scenario> {
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, prefix).await?;
    Ok(Scenario {
        rollouts: Api::namespaced(client.clone(), namespace.name()),
        replica_sets: Api::namespaced(client.clone(), namespace.name()),
        services: Api::namespaced(client, namespace.name()),
        _namespace: namespace,
    })
}

fn rollout(name: &str, replicas: i32, strategy: Value) -> anyhow::Result<Rollout> {
    manifests::rollout(name, replicas, DIGEST_V1, strategy)
}

impl Scenario {
    async fn service(&self, name: &str, app: &str) -> anyhow::Result<()> {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {MANAGED_BY_ANNOTATION: app}},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}
        }))?;
        self.services
            .create(&PostParams::default(), &service)
            .await?;
        Ok(())
    }

    async fn selected_revision(&self, service: &str) -> anyhow::Result<Option<String>> {
        let service = self.services.get(service).await?;
        Ok(service
            .spec
            .and_then(|s| s.selector)
            .and_then(|s| s.get("rollgate.io/revision").cloned()))
    }

    async fn revisions(&self, name: &str) -> anyhow::Result<(String, String)> {
        let status = self.rollouts.get(name).await?.status.unwrap_or_default();
        Ok((
            status.stable_revision.unwrap_or_default(),
            status.current_revision.unwrap_or_default(),
        ))
    }
}

#[tokio::test]
async fn blue_green_previews_waits_for_promotion_and_switches_the_active_service()
-> anyhow::Result<()> {
    let s = scenario("bluegreen").await?;
    s.service("pay-active", "pay").await?;
    s.service("pay-preview", "pay").await?;
    let strategy = json!({"blueGreen": {
        "activeService": "pay-active", "previewService": "pay-preview",
        "previewReplicaCount": 1, "scaleDownDelaySeconds": 2
    }});
    s.rollouts
        .create(&PostParams::default(), &rollout("pay", 3, strategy)?)
        .await?;
    // The first revision is gated too: nothing runs before its approval.
    wait_for(
        &s.rollouts,
        "pay",
        "the first revision's gate",
        in_phase(RolloutPhase::AwaitingApproval),
    )
    .await?;
    assert_eq!(
        replicas_by_revision(&s.replica_sets, "pay")
            .await?
            .values()
            .sum::<i32>(),
        0
    );
    approve_current_revision(shared_cluster(), s._namespace.name(), "pay", 1, &[]).await?;
    wait_for(&s.rollouts, "pay", "v1 Healthy", healthy(None)).await?;
    let (v1, _) = s.revisions("pay").await?;
    assert_eq!(s.selected_revision("pay-active").await?, Some(v1.clone()));

    set_digest(&s.rollouts, "pay", DIGEST_V2).await?;
    // Promotion waits for the approval gate (autoPromotion is off by default).
    wait_for(
        &s.rollouts,
        "pay",
        "the promotion gate",
        in_phase(RolloutPhase::AwaitingApproval),
    )
    .await?;
    let (_, v2) = s.revisions("pay").await?;
    wait_for_scale(
        &s.replica_sets,
        "pay",
        BTreeMap::from([(v1.clone(), 3), (v2.clone(), 1)]),
    )
    .await?;
    assert_eq!(
        s.selected_revision("pay-active").await?,
        Some(v1.clone()),
        "active stays on v1"
    );
    assert_eq!(
        s.selected_revision("pay-preview").await?,
        Some(v2.clone()),
        "preview shows v2"
    );

    // Turn on autoPromotion: the gate no longer applies, and the active Service switches.
    let patch = json!({"spec": {"strategy": {"blueGreen": {"autoPromotion": true}}}});
    s.rollouts
        .patch("pay", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_for(&s.rollouts, "pay", "v2 active", healthy(Some(v2.clone()))).await?;
    assert_eq!(s.selected_revision("pay-active").await?, Some(v2.clone()));
    // After the scale-down delay the old revision goes.
    wait_for_scale(&s.replica_sets, "pay", BTreeMap::from([(v1, 0), (v2, 3)])).await
}

#[tokio::test]
async fn abort_mid_canary_restores_stable_and_retry_starts_over() -> anyhow::Result<()> {
    let s = scenario("abort").await?;
    s.service("cart-stable", "cart").await?;
    s.service("cart-canary", "cart").await?;
    let strategy = json!({"canary": {
        "stableService": "cart-stable", "canaryService": "cart-canary",
        "steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]
    }});
    s.rollouts
        .create(&PostParams::default(), &rollout("cart", 4, strategy)?)
        .await?;
    wait_for(&s.rollouts, "cart", "v1 Healthy", healthy(None)).await?;
    set_digest(&s.rollouts, "cart", DIGEST_V2).await?;
    wait_for(
        &s.rollouts,
        "cart",
        "the pause",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    let (v1, v2) = s.revisions("cart").await?;
    assert_eq!(s.selected_revision("cart-canary").await?, Some(v2.clone()));
    wait_for_scale(
        &s.replica_sets,
        "cart",
        BTreeMap::from([(v1.clone(), 2), (v2.clone(), 2)]),
    )
    .await?;

    request(&s.rollouts, "cart", "Abort", "abort-1").await?;
    let aborted = wait_for(
        &s.rollouts,
        "cart",
        "Aborted",
        in_phase(RolloutPhase::Aborted),
    )
    .await?;
    let status = aborted.status.expect("status");
    let abort = status.abort.expect("abort recorded");
    assert_eq!(abort.by, "rollgate-admin");
    assert_eq!(status.canary_weight, Some(0));
    assert_eq!(s.selected_revision("cart-stable").await?, Some(v1.clone()));
    wait_for_scale(
        &s.replica_sets,
        "cart",
        BTreeMap::from([(v1.clone(), 4), (v2.clone(), 0)]),
    )
    .await?;

    request(&s.rollouts, "cart", "Retry", "retry-1").await?;
    let retried = wait_for(
        &s.rollouts,
        "cart",
        "the pause again",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    assert_eq!(retried.status.and_then(|s| s.attempt), Some(1));
    wait_for_scale(&s.replica_sets, "cart", BTreeMap::from([(v1, 2), (v2, 2)])).await
}

#[tokio::test]
async fn rolling_back_to_the_stable_template_skips_the_steps() -> anyhow::Result<()> {
    let s = scenario("rollback").await?;
    let strategy =
        json!({"canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]}});
    s.rollouts
        .create(&PostParams::default(), &rollout("menu", 4, strategy)?)
        .await?;
    wait_for(&s.rollouts, "menu", "v1 Healthy", healthy(None)).await?;
    set_digest(&s.rollouts, "menu", DIGEST_V2).await?;
    wait_for(
        &s.rollouts,
        "menu",
        "the pause",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    let (v1, v2) = s.revisions("menu").await?;

    set_digest(&s.rollouts, "menu", DIGEST_V1).await?;
    wait_for(&s.rollouts, "menu", "back on v1", |r| {
        healthy(Some(v1.clone()))(r)
            && r.status
                .as_ref()
                .and_then(|s| s.current_revision.as_deref())
                == Some(v1.as_str())
    })
    .await?;
    wait_for_scale(&s.replica_sets, "menu", BTreeMap::from([(v1, 4), (v2, 0)])).await
}

#[tokio::test]
async fn the_progress_deadline_marks_a_stuck_revision_degraded_or_aborts_it() -> anyhow::Result<()>
{
    let s = scenario("deadline").await?;
    for (name, abort) in [("stuck", false), ("stuck-abort", true)] {
        let strategy = json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}});
        let mut rollout = rollout(name, 2, strategy)?;
        rollout.spec.progress_deadline_seconds = Some(3);
        rollout.spec.progress_deadline_abort = Some(abort);
        s.rollouts.create(&PostParams::default(), &rollout).await?;
        wait_for(&s.rollouts, name, "v1 Healthy", healthy(None)).await?;
        // v2 pods can be scheduled nowhere: they never become available.
        let patch = json!({"spec": {"template": {"spec": {
            "nodeSelector": {"rollgate.io/no-such-node": "true"},
            "containers": [{"name": "app", "image": format!("registry.example/app@sha256:{DIGEST_V2}")}]
        }}}});
        s.rollouts
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let phase = if abort {
            RolloutPhase::Aborted
        } else {
            RolloutPhase::Degraded
        };
        let stuck = wait_for(&s.rollouts, name, "the deadline", in_phase(phase)).await?;
        let status = stuck.status.expect("status");
        if abort {
            assert_eq!(
                status.abort.map(|a| a.by),
                Some("progress-deadline".to_owned())
            );
        } else {
            let progressing = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Progressing")
                .expect("condition");
            assert_eq!(progressing.reason, "ProgressDeadlineExceeded");
        }
        assert!(status.stable_revision.is_some(), "stable keeps serving");
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_service_is_reported_and_the_rollout_goes_on_once_it_exists() -> anyhow::Result<()>
{
    let s = scenario("noservice").await?;
    let strategy = json!({"canary": {
        "stableService": "shelf-stable", "canaryService": "shelf-canary",
        "steps": [{"setWeight": 50}, {"pause": {}}]
    }});
    s.rollouts
        .create(&PostParams::default(), &rollout("shelf", 2, strategy)?)
        .await?;
    let degraded = wait_for(
        &s.rollouts,
        "shelf",
        "Degraded",
        in_phase(RolloutPhase::Degraded),
    )
    .await?;
    let message = degraded.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("shelf-stable") && message.contains("do not exist"),
        "{message}"
    );
    assert!(
        replicas_by_revision(&s.replica_sets, "shelf")
            .await?
            .is_empty(),
        "nothing is created while a Service is missing"
    );

    s.service("shelf-stable", "shelf").await?;
    s.service("shelf-canary", "shelf").await?;
    let healthy_now = wait_for(
        &s.rollouts,
        "shelf",
        "Healthy once the Services exist",
        healthy(None),
    )
    .await?;
    let stable = healthy_now.status.and_then(|s| s.stable_revision);
    assert_eq!(s.selected_revision("shelf-stable").await?, stable);
    Ok(())
}
