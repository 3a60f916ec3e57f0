//! The approval gate with the controller running: a canary waits at its approval step until an
//! Approval of that exact revision and its digests arrives; an approval of another revision
//! does not count; a rejection stops the gate with who rejected and why.
//!
//! (Who may create an Approval in whose name is the API server's check, with RBAC and the
//! admission policy in `crds/policies`; these tests create them as the cluster admin.)

use std::time::Duration;

use kube::api::{Api, PostParams};
use rollgate_crds::rollout::RolloutPhase;
use rollgate_crds::{Approval, Rollout};
use rollgate_testsupport::{TestNamespace, manifests, shared_cluster, shared_controller};
use serde_json::json;

use crate::rollouts::{DIGEST_V1, DIGEST_V2, at, healthy, set_digest, wait_for};

fn gated(name: &str) -> anyhow::Result<Rollout> {
    let strategy = json!({"canary": {"steps": [
        {"setWeight": 50},
        {"approval": {}},
        {"setWeight": 100}
    ]}});
    manifests::rollout(name, 2, DIGEST_V1, strategy)
}

fn approval(
    rollout: &str,
    revision: &str,
    digest: &str,
    approver: &str,
    decision: &str,
) -> anyhow::Result<Approval> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Approval",
        "metadata": {"generateName": format!("{rollout}-")},
        "spec": {
            "rollout": rollout,
            "revision": revision,
            "digests": [format!("sha256:{digest}")],
            "decision": decision,
            "comment": format!("{decision} by {approver}"),
            "approver": approver
        }
    }))?)
}

/// A Rollout at its approval gate with v2; returns the Rollouts API and (v1, v2).
async fn at_the_gate(
    namespace: &TestNamespace,
    client: &kube::Client,
    name: &str,
) -> anyhow::Result<(Api<Rollout>, String, String)> {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    rollouts
        .create(&PostParams::default(), &gated(name)?)
        .await?;
    let first = wait_for(&rollouts, name, "v1 Healthy", healthy(None)).await?;
    let v1 = first
        .status
        .and_then(|s| s.stable_revision)
        .unwrap_or_default();
    set_digest(&rollouts, name, DIGEST_V2).await?;
    let waiting = wait_for(
        &rollouts,
        name,
        "the approval gate",
        at(1, RolloutPhase::AwaitingApproval),
    )
    .await?;
    let v2 = waiting
        .status
        .and_then(|s| s.current_revision)
        .unwrap_or_default();
    Ok((rollouts, v1, v2))
}

#[tokio::test]
async fn an_approval_of_the_exact_revision_opens_the_gate_and_one_of_another_does_not()
-> anyhow::Result<()> {
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "approve").await?;
    let approvals: Api<Approval> = Api::namespaced(client.clone(), namespace.name());
    let (rollouts, v1, v2) = at_the_gate(&namespace, &client, "till").await?;

    // An approval of the old revision (with the old digest) is not one of v2.
    approvals
        .create(
            &PostParams::default(),
            &approval("till", &v1, DIGEST_V1, "alice", "Approve")?,
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = rollouts.get("till").await?.status.unwrap_or_default();
    assert_eq!(still.phase, Some(RolloutPhase::AwaitingApproval));
    assert_eq!(
        still.gate.as_ref().map(|g| g.received),
        Some(0),
        "{still:?}"
    );

    approvals
        .create(
            &PostParams::default(),
            &approval("till", &v2, DIGEST_V2, "alice", "Approve")?,
        )
        .await?;
    let done = wait_for(&rollouts, "till", "v2 stable", healthy(Some(v2.clone()))).await?;
    let gate = done
        .status
        .and_then(|s| s.gate)
        .expect("the gate is on record");
    assert_eq!(gate.revision, v2);
    assert_eq!(gate.approvers, ["alice"]);
    Ok(())
}

#[tokio::test]
async fn a_rejection_stops_the_gate_with_who_and_why() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "reject").await?;
    let approvals: Api<Approval> = Api::namespaced(client.clone(), namespace.name());
    let (rollouts, _, v2) = at_the_gate(&namespace, &client, "levy").await?;

    approvals
        .create(
            &PostParams::default(),
            &approval("levy", &v2, DIGEST_V2, "bob", "Reject")?,
        )
        .await?;
    let rejected = wait_for(&rollouts, "levy", "the rejection", |r| {
        r.status
            .as_ref()
            .and_then(|s| s.gate.as_ref())
            .is_some_and(|g| g.rejected_by.as_deref() == Some("bob"))
    })
    .await?;
    let status = rejected.status.expect("status");
    assert_eq!(status.phase, Some(RolloutPhase::AwaitingApproval));
    assert_ne!(status.stable_revision.as_deref(), Some(v2.as_str()));
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Approved")
        .expect("an Approved condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "Rejected")
    );
    assert!(
        condition.message.contains("Reject by bob"),
        "{}",
        condition.message
    );
    Ok(())
}
