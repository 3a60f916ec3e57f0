//! The approval gate of a Rollout: its Approvals (namespaced, each naming the Rollout in
//! `spec.rollout`) judged by the pure gate rules of `rollgate_crds::approval::gate` for the
//! desired revision and its image digests, under the Rollout's approval policy. Who may create
//! an Approval, and in whose name, is the API server's business (RBAC and the admission policy
//! in `crds/policies`); the controller only counts what it finds.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use rollgate_crds::Rollout;
use rollgate_crds::approval::gate::{ApprovalFacts, GateVerdict, evaluate_gate};
use rollgate_crds::approval::{self as approval_crd, Approval as ApprovalObject};
use rollgate_crds::requester::requester;
use rollgate_crds::rollout::ContainerImage;

use crate::context::Error;
use crate::decide::Approval;
use crate::metrics::Metrics;

/// Whether the Rollout has an approval gate (a canary approval step, or a blue-green promotion
/// without autoPromotion), so its Approvals are worth listing.
pub fn uses_approval(rollout: &Rollout) -> bool {
    let strategy = &rollout.spec.strategy;
    let canary = strategy
        .canary
        .as_ref()
        .is_some_and(|canary| canary.steps.iter().any(|step| step.approval.is_some()));
    let blue_green = strategy
        .blue_green
        .as_ref()
        .is_some_and(|blue_green| blue_green.auto_promotion != Some(true));
    canary || blue_green
}

/// The Approvals that name `rollout`.
pub async fn list(
    client: &kube::Client,
    metrics: &Metrics,
    rollout: &Rollout,
) -> Result<Vec<ApprovalObject>, Error> {
    let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<ApprovalObject> = Api::namespaced(client.clone(), &namespace);
    metrics.request("list");
    let name = rollout.name_any();
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|approval| approval.spec.rollout == name)
        .collect())
}

/// The gate of `revision` (with `images`) as the state machine sees it.
pub fn gate(
    rollout: &Rollout,
    approvals: &[ApprovalObject],
    revision: &str,
    images: &[ContainerImage],
    now: Timestamp,
) -> Approval {
    let policy = rollout.spec.approval.clone().unwrap_or_default();
    let facts: Vec<ApprovalFacts> = approvals
        .iter()
        .filter_map(ApprovalFacts::from_approval)
        .collect();
    let digests = approval_crd::digests_of(images.iter().map(|image| image.image.as_str()));
    match evaluate_gate(&policy, &facts, revision, &digests, requester(rollout), now) {
        GateVerdict::Open { approvers, .. } => Approval::Open { approvers },
        GateVerdict::Waiting {
            required,
            approvers,
            ..
        } => Approval::Waiting {
            required,
            approvers,
        },
        GateVerdict::Rejected { by, comment } => Approval::Rejected {
            by,
            reason: comment,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn approval(revision: &str, approver: &str, decision: &str) -> ApprovalObject {
        serde_json::from_value(json!({
            "apiVersion": "rollgate.io/v1alpha1",
            "kind": "Approval",
            "metadata": {"name": format!("web-{approver}"), "creationTimestamp": "2026-11-22T10:00:00Z"},
            "spec": {
                "rollout": "web",
                "revision": revision,
                "digests": ["sha256:aa"],
                "decision": decision,
                "comment": "looked at the dashboards",
                "approver": approver
            }
        }))
        .expect("an Approval")
    }

    fn images() -> Vec<ContainerImage> {
        vec![ContainerImage {
            container: "web".into(),
            image: "r/web@sha256:aa".into(),
        }]
    }

    #[test]
    fn only_gated_strategies_list_approvals() {
        let rollout = crate::decide::tests::rollout;
        assert!(uses_approval(&rollout(
            json!({"canary": {"steps": [{"approval": {}}]}}),
            1
        )));
        assert!(!uses_approval(&rollout(
            json!({"canary": {"steps": [{"setWeight": 5}]}}),
            1
        )));
        assert!(uses_approval(&rollout(
            json!({"blueGreen": {"activeService": "a"}}),
            1
        )));
        assert!(!uses_approval(&rollout(
            json!({"blueGreen": {"activeService": "a", "autoPromotion": true}}),
            1
        )));
    }

    #[test]
    fn the_gate_counts_approvals_of_the_revision_and_stops_at_a_rejection() {
        let rollout =
            crate::decide::tests::rollout(json!({"canary": {"steps": [{"approval": {}}]}}), 1);
        let now = Timestamp::from_second(1_795_000_000).expect("time");
        let other = [approval("bbbbbbbbbb", "alice", "Approve")];
        assert_eq!(
            gate(&rollout, &other, "aaaaaaaaaa", &images(), now),
            Approval::Waiting {
                required: 1,
                approvers: Vec::new()
            }
        );
        let approved = [approval("aaaaaaaaaa", "alice", "Approve")];
        assert_eq!(
            gate(&rollout, &approved, "aaaaaaaaaa", &images(), now),
            Approval::Open {
                approvers: vec!["alice".into()]
            }
        );
        let rejected = [
            approval("aaaaaaaaaa", "alice", "Approve"),
            approval("aaaaaaaaaa", "bob", "Reject"),
        ];
        assert_eq!(
            gate(&rollout, &rejected, "aaaaaaaaaa", &images(), now),
            Approval::Rejected {
                by: "bob".into(),
                reason: "looked at the dashboards".into()
            }
        );
    }
}
