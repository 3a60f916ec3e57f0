//! Operating the controller: it resumes where it stopped after a crash, two replicas elect one
//! leader that alone writes and fail over within the lease duration, and the admin port answers.
//! The restart and failover tests run on clusters of their own, so no other controller touches
//! their Rollouts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::process::http_agent;
use rollgate_testsupport::{
    Cluster, ControllerOptions, ControllerProcess, TestNamespace, manifests, shared_controller,
};
use serde_json::json;

use crate::rollouts::{
    DIGEST_V1, DIGEST_V2, at, healthy, promote, replicas_by_revision, set_digest, wait_for,
    wait_for_scale,
};

fn two_step(name: &str) -> anyhow::Result<Rollout> {
    let strategy = json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}});
    manifests::rollout(name, 4, DIGEST_V1, strategy)
}

#[tokio::test]
async fn a_controller_killed_mid_rollout_resumes_at_the_same_step() -> anyhow::Result<()> {
    let (cluster, client) = Cluster::start_with_crds().await?;
    let namespace = TestNamespace::create(&cluster, &client, "restart").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace.name());

    let mut first = ControllerProcess::start(&cluster, &ControllerOptions::named("first"))?;
    rollouts
        .create(&PostParams::default(), &two_step("cart")?)
        .await?;
    wait_for(&rollouts, "cart", "v1 Healthy", healthy(None)).await?;
    set_digest(&rollouts, "cart", DIGEST_V2).await?;
    let paused = wait_for(
        &rollouts,
        "cart",
        "the pause at step 1",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    let status = paused.status.expect("status");
    let (v1, v2) = (
        status.stable_revision.expect("stable"),
        status.current_revision.expect("current"),
    );

    first.kill();
    let second = ControllerProcess::start(&cluster, &ControllerOptions::named("second"))?;
    // The new controller takes the lease once the old one's expires, then reconciles.
    let started = Instant::now();
    while second.metric("rollgate_reconciles_total").unwrap_or(0.0) < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "second controller never reconciled:\n{}",
            second.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resumed = rollouts.get("cart").await?;
    let status = resumed.status.expect("status");
    assert_eq!(
        status.current_step_index,
        Some(1),
        "resumed at the same step"
    );
    assert_eq!(status.phase, Some(RolloutPhase::Paused));
    let listed = replica_sets.list(&Default::default()).await?;
    assert_eq!(
        listed.items.len(),
        2,
        "no duplicate ReplicaSet: {:?}",
        replicas_by_revision(&replica_sets, "cart").await?
    );

    promote(&rollouts, "cart", "after-restart").await?;
    wait_for(&rollouts, "cart", "completion", healthy(Some(v2.clone()))).await?;
    wait_for_scale(&replica_sets, "cart", BTreeMap::from([(v1, 0), (v2, 4)])).await
}

#[tokio::test]
async fn two_controllers_elect_one_leader_and_fail_over() -> anyhow::Result<()> {
    let (cluster, client) = Cluster::start_with_crds().await?;
    let namespace = TestNamespace::create(&cluster, &client, "failover").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());

    let mut controllers = [
        ControllerProcess::start(&cluster, &ControllerOptions::named("replica-a"))?,
        ControllerProcess::start(&cluster, &ControllerOptions::named("replica-b"))?,
    ];
    let leader_of = |controllers: &[ControllerProcess; 2]| -> Vec<usize> {
        (0..2)
            .filter(|&i| controllers[i].metric("rollgate_leader") == Some(1.0))
            .collect()
    };
    let started = Instant::now();
    let leader = loop {
        let leaders = leader_of(&controllers);
        assert!(leaders.len() <= 1, "two leaders at once");
        if let [leader] = leaders[..] {
            break leader;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no leader elected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let standby = 1 - leader;

    rollouts
        .create(&PostParams::default(), &two_step("orders")?)
        .await?;
    wait_for(&rollouts, "orders", "v1 Healthy", healthy(None)).await?;
    assert!(
        controllers[leader]
            .metric("rollgate_reconciles_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        controllers[standby].metric("rollgate_reconciles_total"),
        Some(0.0),
        "only the leader reconciles and writes"
    );

    // The leader crashes (no chance to release the lease): the standby takes over.
    controllers[leader].kill();
    let killed_at = Instant::now();
    set_digest(&rollouts, "orders", DIGEST_V2).await?;
    wait_for(
        &rollouts,
        "orders",
        "the standby to run the rollout",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    let failover = killed_at.elapsed();
    assert_eq!(controllers[standby].metric("rollgate_leader"), Some(1.0));
    println!(
        "failover: the standby moved the rollout {failover:?} after the leader died (lease 4 s)"
    );
    assert!(
        failover < Duration::from_secs(4 + 10),
        "failover took {failover:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_admin_port_serves_live_ready_and_metrics() -> anyhow::Result<()> {
    let controller = shared_controller();
    let agent = http_agent();
    let started = Instant::now();
    loop {
        let ready = agent
            .get(&format!("{}/ready", controller.admin_url()))
            .call();
        if ready.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready:\n{}",
            controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live = agent
        .get(&format!("{}/live", controller.admin_url()))
        .call()?;
    assert_eq!(live.status(), 200);
    let text = agent
        .get(&format!("{}/metrics", controller.admin_url()))
        .call()?
        .body_mut()
        .read_to_string()?;
    for family in [
        "rollgate_reconciles_total",
        "rollgate_leader",
        "rollgate_step_duration_seconds",
    ] {
        assert!(text.contains(family), "/metrics lacks {family}:\n{text}");
    }
    Ok(())
}

#[tokio::test]
async fn a_rollout_the_controller_cannot_read_is_reported_and_does_not_stall_the_others()
-> anyhow::Result<()> {
    use k8s_openapi::api::events::v1::Event;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};

    // Version skew, simulated: a CRD whose schema lets `revisionHistoryLimit` be a string, so
    // the API server stores a Rollout this controller cannot deserialize.
    let (cluster, client) = Cluster::start_with_crds().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd = crds.get("rollouts.rollgate.io").await?;
    crd.metadata.managed_fields = None;
    let schema = crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .expect("schema");
    let spec = schema
        .properties
        .as_mut()
        .and_then(|p| p.get_mut("spec"))
        .expect("spec schema");
    let limit = spec
        .properties
        .as_mut()
        .and_then(|p| p.get_mut("revisionHistoryLimit"))
        .expect("field schema");
    limit.type_ = Some("string".into());
    limit.minimum = None;
    limit.format = None;
    crds.replace("rollouts.rollgate.io", &Default::default(), &crd)
        .await?;

    let namespace = TestNamespace::create(&cluster, &client, "invalid").await?;
    let _controller = ControllerProcess::start(&cluster, &ControllerOptions::named("guarded"))?;
    let dynamic: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace.name(),
        &ApiResource::erase::<Rollout>(&()),
    );
    let mut unreadable = serde_json::to_value(two_step("unreadable")?)?;
    unreadable["spec"]["revisionHistoryLimit"] = json!("ten");
    let started = Instant::now();
    loop {
        // The changed schema takes a moment to reach the API server's validation.
        let object: DynamicObject = serde_json::from_value(unreadable.clone())?;
        match dynamic
            .patch(
                "unreadable",
                &PatchParams::apply("e2e"),
                &Patch::Apply(&object),
            )
            .await
        {
            Ok(_) => break,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    rollouts
        .create(&PostParams::default(), &two_step("readable")?)
        .await?;
    wait_for(
        &rollouts,
        "readable",
        "the readable Rollout to be Healthy",
        healthy(None),
    )
    .await?;

    let events: Api<Event> = Api::namespaced(client, namespace.name());
    let started = Instant::now();
    loop {
        let found = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find(|event| {
                event.reason.as_deref() == Some("InvalidRollout")
                    && event.regarding.as_ref().and_then(|r| r.name.as_deref())
                        == Some("unreadable")
            });
        if let Some(event) = found {
            let note = event.note.unwrap_or_default();
            assert!(
                note.contains("cannot read this Rollout: spec.revisionHistoryLimit: ")
                    && note.contains("\"ten\""),
                "{note}"
            );
            return Ok(());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no InvalidRollout event"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
