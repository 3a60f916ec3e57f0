//! A canary on the real cluster, with the controller running as a process: each weight gives
//! the replica counts it should, a person's promote moves past an untimed pause, and after the
//! last step the new revision is stable and the old ReplicaSet scales down.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{TestNamespace, shared_cluster, shared_controller};
use serde_json::json;

const DIGEST_V1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_V2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn canary(name: &str, digest: &str) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": format!("registry.example/app@sha256:{digest}")}]}
            },
            "strategy": {"canary": {
                "maxSurge": 1,
                "maxUnavailable": 0,
                "steps": [
                    {"setWeight": 25}, {"pause": {}},
                    {"setWeight": 50}, {"pause": {}},
                    {"setWeight": 75}, {"pause": {"duration": "2s"}}
                ]
            }}
        }
    }))
    .expect("a valid Rollout")
}

/// Replicas per revision label, for the Rollout's ReplicaSets.
async fn replicas_by_revision(
    api: &Api<ReplicaSet>,
    name: &str,
) -> anyhow::Result<BTreeMap<String, i32>> {
    let list = api
        .list(&ListParams::default().labels(&format!("rollgate.io/rollout={name}")))
        .await?;
    Ok(list
        .items
        .iter()
        .map(|rs| {
            let revision = rs
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("rollgate.io/revision"))
                .cloned()
                .unwrap_or_default();
            (
                revision,
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            )
        })
        .collect())
}

/// Waits until the Rollout's status satisfies `done`, or fails with the last status seen.
async fn wait_for(
    api: &Api<Rollout>,
    name: &str,
    what: &str,
    done: impl Fn(&Rollout) -> bool,
) -> anyhow::Result<Rollout> {
    let started = Instant::now();
    loop {
        let rollout = api.get(name).await?;
        if done(&rollout) {
            return Ok(rollout);
        }
        if started.elapsed() > Duration::from_secs(90) {
            anyhow::bail!(
                "timed out waiting for {what}; status: {:#?}\ncontroller log:\n{}",
                rollout.status,
                shared_controller().log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn at(step: i32, phase: RolloutPhase) -> impl Fn(&Rollout) -> bool {
    move |rollout| {
        rollout
            .status
            .as_ref()
            .is_some_and(|s| s.current_step_index == Some(step) && s.phase == Some(phase))
    }
}

async fn promote(api: &Api<Rollout>, name: &str, id: &str) -> anyhow::Result<()> {
    let patch = json!({"status": {"userAction": {
        "id": id, "action": "Promote", "by": "e2e-test", "time": "2026-01-01T00:00:00Z"
    }}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_four_step_canary_goes_from_start_to_stable() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "canary").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace.name());

    rollouts
        .create(&PostParams::default(), &canary("shop", DIGEST_V1))
        .await?;
    let first = wait_for(&rollouts, "shop", "the first revision to be Healthy", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == Some(RolloutPhase::Healthy))
    })
    .await?;
    let v1 = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("a stable revision");
    assert_eq!(
        replicas_by_revision(&replica_sets, "shop").await?,
        BTreeMap::from([(v1.clone(), 4)])
    );

    // A new digest: a new revision, walked step by step.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": format!("registry.example/app@sha256:{DIGEST_V2}")}]}}}});
    rollouts
        .patch("shop", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;

    let paused = wait_for(
        &rollouts,
        "shop",
        "25% and the first pause",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    let v2 = paused
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .expect("current revision");
    assert_ne!(v1, v2);
    assert_eq!(
        paused.status.as_ref().and_then(|s| s.canary_weight),
        Some(25)
    );
    assert_eq!(
        replicas_by_revision(&replica_sets, "shop").await?,
        BTreeMap::from([(v1.clone(), 3), (v2.clone(), 1)]),
        "25% of 4 pods"
    );

    promote(&rollouts, "shop", "promote-1").await?;
    wait_for(
        &rollouts,
        "shop",
        "50% and the second pause",
        at(3, RolloutPhase::Paused),
    )
    .await?;
    assert_eq!(
        replicas_by_revision(&replica_sets, "shop").await?,
        BTreeMap::from([(v1.clone(), 2), (v2.clone(), 2)]),
        "50% of 4 pods"
    );

    promote(&rollouts, "shop", "promote-2").await?;
    let done = wait_for(&rollouts, "shop", "completion", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.phase == Some(RolloutPhase::Healthy)
                && s.stable_revision.as_deref() == Some(v2.as_str())
        })
    })
    .await?;
    assert_eq!(
        done.status.as_ref().and_then(|s| s.current_step_index),
        Some(6)
    );
    let started = Instant::now();
    loop {
        let scale = replicas_by_revision(&replica_sets, "shop").await?;
        if scale == BTreeMap::from([(v1.clone(), 0), (v2.clone(), 4)]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "old ReplicaSet did not scale down: {scale:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_tagged_image_is_refused_and_nothing_is_created() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "tagged").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let mut rollout = canary("tagged", DIGEST_V1);
    if let Some(spec) = rollout.spec.template.spec.as_mut() {
        spec.containers[0].image = Some("registry.example/app:1.2.3".into());
    }
    rollouts.create(&PostParams::default(), &rollout).await?;
    let degraded = wait_for(&rollouts, "tagged", "Degraded", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == Some(RolloutPhase::Degraded))
    })
    .await?;
    let status = degraded.status.expect("status");
    let verified = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Verified")
        .expect("Verified condition");
    assert_eq!(verified.status, "False");
    assert!(
        verified
            .message
            .contains("Expected digest with sha256 scheme, but got tag or malformed digest"),
        "{}",
        verified.message
    );
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, namespace.name());
    assert!(
        replicas_by_revision(&replica_sets, "tagged")
            .await?
            .is_empty(),
        "no ReplicaSet is created"
    );
    Ok(())
}
