//! No spec stops the controller (issue 12, property 6), on a cluster of its own:
//!
//! - A panic while reconciling one Rollout (made on demand by the controller's fault injector,
//!   `ROLLGATE_FAULT_INJECTION_PANIC_ROLLOUT`, since no schema-valid spec panics it) is
//!   reported on that Rollout (Degraded with the message, a `ReconcilePanicked` Warning Event)
//!   while another Rollout, created after it, is rolled out to Healthy by the same process.
//! - A spec the API server's schema accepts but the controller cannot apply (a `matchExpressions`
//!   selector that does not select the template) is Degraded with the reason on its first
//!   reconcile, never an empty status.
//! - A name too long for the labels the controller derives from it is refused by the CRD's CEL
//!   rule, naming the field.

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{
    Cluster, ControllerOptions, ControllerProcess, TestNamespace, manifests,
};
use serde_json::json;

use crate::rollouts::{DIGEST_V1, healthy, in_phase, wait_for};

fn one_step(name: &str) -> anyhow::Result<Rollout> {
    manifests::rollout(
        name,
        2,
        DIGEST_V1,
        json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}),
    )
}

#[tokio::test]
async fn one_rollout_cannot_stop_the_controller() -> anyhow::Result<()> {
    let (cluster, admin) = Cluster::start_with_crds().await?;
    let namespace = TestNamespace::create(&cluster, &admin, "contain").await?;
    let ns = namespace.name();
    let mut options = ControllerOptions::named("contain");
    options.env.push((
        "ROLLGATE_FAULT_INJECTION_PANIC_ROLLOUT".into(),
        format!("{ns}/boom"),
    ));
    let controller = ControllerProcess::start(&cluster, &options)?;
    let rollouts: Api<Rollout> = Api::namespaced(admin.clone(), ns);

    rollouts
        .create(&PostParams::default(), &one_step("boom")?)
        .await?;
    let boom = wait_for(
        &rollouts,
        "boom",
        "the panic reported on its Rollout",
        in_phase(RolloutPhase::Degraded),
    )
    .await?;
    let message = boom.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("the controller failed on this Rollout")
            && message.contains("fault injection"),
        "{message}"
    );

    // The same process goes on with every other Rollout.
    rollouts
        .create(&PostParams::default(), &one_step("web")?)
        .await?;
    wait_for(
        &rollouts,
        "web",
        "web Healthy beside the panicking Rollout",
        healthy(None),
    )
    .await?;
    assert!(
        controller.pid().is_some(),
        "the controller is still running:\n{}",
        controller.log_tail()
    );
    let events = Api::<Event>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?;
    let panicked: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ReconcilePanicked"))
        .filter_map(|e| e.regarding.as_ref()?.name.clone())
        .collect();
    assert!(
        !panicked.is_empty() && panicked.iter().all(|name| name == "boom"),
        "{panicked:?}"
    );

    // Accepted by the schema, impossible to apply: Degraded with the reason at once.
    let mut odd = one_step("odd")?;
    odd.spec.selector = serde_json::from_value(json!({
        "matchLabels": {"app": "odd"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]
    }))?;
    rollouts.create(&PostParams::default(), &odd).await?;
    let odd = wait_for(&rollouts, "odd", "the invalid spec refused", |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(RolloutPhase::Degraded)
    })
    .await?;
    let status = odd.status.unwrap_or_default();
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains("tier"),
        "the reason names the expression: {message}"
    );
    let progressing = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(
        progressing,
        Some(("False".to_owned(), "InvalidSpec".to_owned())),
        "{status:?}"
    );
    let replica_sets = Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(admin.clone(), ns)
        .list(&ListParams::default().labels("rollgate.io/rollout=odd"))
        .await?;
    assert!(replica_sets.items.is_empty(), "nothing half-applied");

    // Refused by the API server before the controller ever sees it.
    let long = "a".repeat(70);
    let refused = rollouts
        .create(&PostParams::default(), &one_step(&long)?)
        .await
        .expect_err("a 70-character Rollout name was accepted");
    let text = refused.to_string();
    assert!(
        text.contains("metadata.name") || text.contains("63"),
        "{text}"
    );
    drop(controller);
    Ok(())
}
