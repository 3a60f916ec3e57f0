//! A canary on the real cluster, with the controller running as a process: each weight gives
//! the replica counts it should, a person's promote moves past an untimed pause, and after the
//! last step the new revision is stable and the old ReplicaSet scales down; each ReplicaSet
//! keeps its own revision's pod template throughout.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{TestNamespace, manifests, shared_cluster, shared_controller};

use crate::rollouts::{
    DIGEST_V1, DIGEST_V2, at, canary, healthy, promote, replicas_by_revision, set_digest, wait_for,
    wait_for_scale,
};

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
    let first = wait_for(&rollouts, "shop", "v1 Healthy", healthy(None)).await?;
    let v1 = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("a stable revision");
    assert_eq!(
        replicas_by_revision(&replica_sets, "shop").await?,
        BTreeMap::from([(v1.clone(), 4)])
    );

    // A new digest: a new revision, walked step by step.
    set_digest(&rollouts, "shop", DIGEST_V2).await?;

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
    // Each ReplicaSet keeps its own revision's pod template: scaling the stable one never
    // gives it the canary's image.
    assert_eq!(
        images_by_revision(&replica_sets, "shop").await?,
        BTreeMap::from([
            (v1.clone(), manifests::app_image(DIGEST_V1)),
            (v2.clone(), manifests::app_image(DIGEST_V2))
        ])
    );

    promote(&rollouts, "shop", "promote-2").await?;
    let done = wait_for(&rollouts, "shop", "completion", healthy(Some(v2.clone()))).await?;
    assert_eq!(
        done.status.as_ref().and_then(|s| s.current_step_index),
        Some(6)
    );
    // The old ReplicaSet scales down.
    wait_for_scale(&replica_sets, "shop", BTreeMap::from([(v1, 0), (v2, 4)])).await
}

/// The image of each revision's ReplicaSet of Rollout `name`.
async fn images_by_revision(
    replica_sets: &Api<ReplicaSet>,
    name: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let listed = replica_sets
        .list(&ListParams::default().labels(&format!("rollgate.io/rollout={name}")))
        .await?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|rs| {
            let revision = rs.labels().get("rollgate.io/revision")?.clone();
            let image = rs.spec?.template?.spec?.containers.first()?.image.clone()?;
            Some((revision, image))
        })
        .collect())
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
