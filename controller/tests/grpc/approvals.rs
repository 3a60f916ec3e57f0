//! Approve and Reject create the caller's own Approval, as the caller: the admission policy that
//! refuses an Approval in someone else's name (installed with the CRDs by the cluster fixture)
//! must let it through.

use kube::Api;
use kube::api::ListParams;
use rollgate_crds::Approval;
use rollgate_crds::approval::ApprovalDecision;
use rollgate_crds::names::{APPROVAL_REVISION_LABEL, ROLLOUT_LABEL};
use rollgate_proto::v1::{ApproveRequest, RejectRequest};
use rollgate_testsupport::identity::{grant, rollgate_rule, service_account, wait_until_allowed};
use rollgate_testsupport::{TestNamespace, shared_cluster};
use serde_json::json;
use tonic::Code;

use super::{IMAGE, authed, connect, create_rollout, id, serve, set_status};

const REVISION: &str = "0123456789";

#[tokio::test]
async fn approve_and_reject_create_the_callers_own_approval_at_a_gate() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-approve").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({})).await?;
    let approver = service_account(&admin, ns, "release-manager").await?;
    let rules = vec![
        rollgate_rule(&["approvals"], &["create"]),
        rollgate_rule(&["rollouts"], &["get"]),
    ];
    grant(&admin, &approver, "approver", rules).await?;
    wait_until_allowed(&admin, &approver, "create", "approvals").await?;
    let served = serve(&admin).await?;
    let mut client = connect(&served).await?;
    let approve = |revision: &str| ApproveRequest {
        rollout: id(ns, "web"),
        revision: revision.to_owned(),
        comment: "looks good".into(),
    };

    set_status(
        &admin,
        ns,
        "web",
        json!({"phase": "Progressing", "currentRevision": REVISION,
               "currentImages": [{"container": "app", "image": IMAGE}]}),
    )
    .await?;
    let refused = client
        .approve(authed(&approver.token, approve(REVISION)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("not waiting at an approval gate"),
        "{refused:?}"
    );

    set_status(
        &admin,
        ns,
        "web",
        json!({"phase": "AwaitingApproval", "currentStepIndex": 3,
               "gate": {"revision": REVISION, "required": 1, "received": 0}}),
    )
    .await?;
    let stale = client
        .approve(authed(&approver.token, approve("aaaaaaaaaa")))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    let no_revision = client
        .approve(authed(&approver.token, approve("")))
        .await
        .unwrap_err();
    assert_eq!(no_revision.code(), Code::InvalidArgument);
    assert_eq!(no_revision.message(), "revision: required");

    let approved = client
        .approve(authed(&approver.token, approve(REVISION)))
        .await?
        .into_inner();
    assert_eq!(approved.approver, approver.username);
    assert_eq!(approved.gate.unwrap().required, 1);
    let approvals = Api::<Approval>::namespaced(admin.clone(), ns);
    let stored = approvals.get(&approved.approval).await?;
    assert!(approved.approval.starts_with(&format!("web-{REVISION}-")));
    assert_eq!(stored.spec.approver, approver.username);
    assert_eq!(stored.spec.decision, ApprovalDecision::Approve);
    assert_eq!(stored.spec.comment.as_deref(), Some("looks good"));
    assert_eq!(stored.spec.digests, [format!("sha256:{}", "1".repeat(64))]);
    assert_eq!(stored.spec.approver_groups, approver.groups());
    let labels = stored.metadata.labels.unwrap_or_default();
    assert_eq!(labels[ROLLOUT_LABEL], "web");
    assert_eq!(labels[APPROVAL_REVISION_LABEL], REVISION);

    let reject = |comment: &str| RejectRequest {
        rollout: id(ns, "web"),
        revision: REVISION.into(),
        comment: comment.to_owned(),
    };
    let uncommented = client
        .reject(authed(&approver.token, reject(" ")))
        .await
        .unwrap_err();
    assert_eq!(uncommented.code(), Code::InvalidArgument);
    assert!(
        uncommented.message().starts_with("comment"),
        "{uncommented:?}"
    );
    let rejected = client
        .reject(authed(&approver.token, reject("p99 regressed")))
        .await?
        .into_inner();
    let stored = approvals.get(&rejected.approval).await?;
    assert_eq!(stored.spec.decision, ApprovalDecision::Reject);
    assert_eq!(stored.spec.approver, approver.username);
    let all = approvals
        .list(&ListParams::default().labels("rollgate.io/rollout=web"))
        .await?;
    assert_eq!(all.items.len(), 2);
    Ok(())
}
