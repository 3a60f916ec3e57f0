//! The approval gate of a Rollout: its Approvals (namespaced, each naming the Rollout in
//! `spec.rollout`) judged by the pure gate rules of `rollgate_crds::approval::gate` for the
//! desired revision and its image digests, under the Rollout's approval policy. Who may create
//! an Approval, and in whose name, is the API server's business (RBAC and the admission policy
//! in `crds/policies`); the controller counts what it finds, and asks the API server
//! ([`crate::acting_as`]) whether each approver could have acted as the requester, since such an
//! approval does not count either.
//!
//! `status.gate.ignored` lists every Approval of the revision that did not count, with why; an
//! Event on the Approval tells its approver, once per reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::Recorder;
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use rollgate_crds::approval::acting::ActingPermission;
use rollgate_crds::approval::gate::{
    ApprovalFacts, GateVerdict, IgnoredReason, assess, evaluate_gate,
};
use rollgate_crds::approval::{self as approval_crd, Approval as ApprovalObject, ApprovalDecision};
use rollgate_crds::requester::requester;
use rollgate_crds::rollout::{ContainerImage, GateStatus, IgnoredApproval};

use crate::context::Context;
use crate::decide::ApprovalGate;
use crate::error::Error;
use crate::events::{self, Activity, Notice};

/// The most ignored approvals `status.gate.ignored` lists.
pub const MAX_IGNORED: usize = 20;

/// A Rollout's Approvals, and for each (by name) the permission through which its approver
/// could have acted as the requester, where the API server says there is one.
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    /// The Approvals that name the Rollout.
    pub objects: Vec<ApprovalObject>,
    /// Approval name to the permission its approver could act as the requester through.
    pub acting: BTreeMap<String, ActingPermission>,
}

/// The gate as the state machine sees it, and the approvals that did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Open, waiting or rejected.
    pub approval: ApprovalGate,
    /// For `status.gate.ignored`.
    pub ignored: Vec<IgnoredApproval>,
}

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

/// `objects` (the Approvals that name `rollout`), each approval's approver checked (unless the
/// policy allows self-approval) for a way to act as the requester.
pub async fn with_acting_permissions(
    context: &Context,
    rollout: &Rollout,
    objects: Vec<Arc<ApprovalObject>>,
) -> Result<Approvals, Error> {
    let objects: Vec<ApprovalObject> = objects
        .iter()
        .map(|approval| ApprovalObject::clone(approval))
        .collect();
    let mut acting = BTreeMap::new();
    let self_approval = rollout
        .spec
        .approval
        .as_ref()
        .is_some_and(|policy| policy.allows_self_approval());
    if let Some(requester) = requester(rollout).filter(|_| !self_approval) {
        for approval in &objects {
            let spec = &approval.spec;
            if spec.decision != ApprovalDecision::Approve || spec.approver == requester {
                continue;
            }
            let permission = context
                .acting_as
                .check(
                    &context.client,
                    &spec.approver,
                    &spec.approver_groups,
                    requester,
                )
                .await?;
            if let Some(permission) = permission {
                acting.insert(approval.name_any(), permission);
            }
        }
    }
    Ok(Approvals { objects, acting })
}

/// The gate of `revision` (with `images`) as the state machine sees it.
pub fn gate(
    rollout: &Rollout,
    approvals: &Approvals,
    revision: &str,
    images: &[ContainerImage],
    now: Timestamp,
) -> Gate {
    let policy = rollout.spec.approval.clone().unwrap_or_default();
    let facts: Vec<ApprovalFacts> = approvals
        .objects
        .iter()
        .filter_map(ApprovalFacts::from_approval)
        .map(|facts| ApprovalFacts {
            acts_as_requester: approvals.acting.get(&facts.name).copied(),
            ..facts
        })
        .collect();
    let digests = approval_crd::digests_of(images.iter().map(|image| image.image.as_str()));
    let requester = requester(rollout);
    let ignored = assess(&policy, &facts, revision, &digests, requester, now)
        .ignored
        .iter()
        .filter(|ignored| ignored.reason != IgnoredReason::OtherRevision)
        .take(MAX_IGNORED)
        .map(|ignored| ignored.to_status(requester))
        .collect();
    let approval = match evaluate_gate(&policy, &facts, revision, &digests, requester, now) {
        GateVerdict::Open { approvers, .. } => ApprovalGate::Open { approvers },
        GateVerdict::Waiting {
            required,
            approvers,
            ..
        } => ApprovalGate::Waiting {
            required,
            approvers,
        },
        GateVerdict::Rejected { by, comment } => ApprovalGate::Rejected {
            by,
            reason: comment,
        },
    };
    Gate { approval, ignored }
}

/// The ignored approvals of `new` that `old` did not list (for the same revision, with the same
/// reason): those whose approvers have not been told yet.
pub fn newly_ignored<'a>(
    old: Option<&GateStatus>,
    new: Option<&'a GateStatus>,
) -> Vec<&'a IgnoredApproval> {
    let Some(new) = new else {
        return Vec::new();
    };
    let known = |ignored: &IgnoredApproval| {
        old.is_some_and(|old| old.revision == new.revision && old.ignored.contains(ignored))
    };
    new.ignored.iter().filter(|i| !known(i)).collect()
}

/// Tells each approver whose approval newly stopped counting why, with a Warning Event on
/// their Approval (reason `ApprovalIgnored`).
pub async fn report_ignored(
    recorder: &Recorder,
    approvals: &Approvals,
    old: Option<&GateStatus>,
    new: Option<&GateStatus>,
) {
    for ignored in newly_ignored(old, new) {
        let Some(approval) = approvals
            .objects
            .iter()
            .find(|object| object.name_any() == ignored.approval)
        else {
            continue;
        };
        let note = format!(
            "the approval of {} does not count ({}): {}",
            ignored.approver, ignored.reason, ignored.message
        );
        let notice = Notice::warning(Activity::Approve, "ApprovalIgnored", note);
        events::publish(recorder, &approval.object_ref(&()), notice).await;
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

    fn of(objects: &[ApprovalObject]) -> Approvals {
        Approvals {
            objects: objects.to_vec(),
            acting: BTreeMap::new(),
        }
    }

    #[test]
    fn the_gate_counts_approvals_of_the_revision_and_stops_at_a_rejection() {
        let rollout =
            crate::decide::tests::rollout(json!({"canary": {"steps": [{"approval": {}}]}}), 1);
        let now = Timestamp::from_second(1_795_000_000).expect("time");
        let other = of(&[approval("bbbbbbbbbb", "alice", "Approve")]);
        let waiting = gate(&rollout, &other, "aaaaaaaaaa", &images(), now);
        assert_eq!(
            waiting.approval,
            ApprovalGate::Waiting {
                required: 1,
                approvers: Vec::new()
            }
        );
        assert!(waiting.ignored.is_empty(), "{:?}", waiting.ignored);
        let approved = of(&[approval("aaaaaaaaaa", "alice", "Approve")]);
        assert_eq!(
            gate(&rollout, &approved, "aaaaaaaaaa", &images(), now).approval,
            ApprovalGate::Open {
                approvers: vec!["alice".into()]
            }
        );
        let rejected = of(&[
            approval("aaaaaaaaaa", "alice", "Approve"),
            approval("aaaaaaaaaa", "bob", "Reject"),
        ]);
        assert_eq!(
            gate(&rollout, &rejected, "aaaaaaaaaa", &images(), now).approval,
            ApprovalGate::Rejected {
                by: "bob".into(),
                reason: "looked at the dashboards".into()
            }
        );
    }

    #[test]
    fn an_approver_who_could_act_as_the_requester_is_listed_as_ignored_once() {
        let mut rollout =
            crate::decide::tests::rollout(json!({"canary": {"steps": [{"approval": {}}]}}), 1);
        let deployer = "system:serviceaccount:shop:deployer";
        rollout.metadata.annotations = Some(BTreeMap::from([(
            rollgate_crds::names::REQUESTED_BY_ANNOTATION.to_owned(),
            deployer.to_owned(),
        )]));
        let now = Timestamp::from_second(1_795_000_000).expect("time");
        let mut approvals = of(&[approval("aaaaaaaaaa", "eve", "Approve")]);
        approvals.acting.insert(
            "web-eve".into(),
            ActingPermission::ImpersonateServiceAccount,
        );
        let gated = gate(&rollout, &approvals, "aaaaaaaaaa", &images(), now);
        assert_eq!(
            gated.approval,
            ApprovalGate::Waiting {
                required: 1,
                approvers: Vec::new()
            }
        );
        assert_eq!(gated.ignored.len(), 1);
        assert_eq!(gated.ignored[0].approver, "eve");
        assert_eq!(gated.ignored[0].reason, "CouldActAsRequester");
        let status = GateStatus {
            revision: "aaaaaaaaaa".into(),
            ignored: gated.ignored.clone(),
            ..GateStatus::default()
        };
        assert_eq!(newly_ignored(None, Some(&status)).len(), 1);
        assert!(newly_ignored(Some(&status), Some(&status)).is_empty());
        let older = GateStatus {
            revision: "bbbbbbbbbb".into(),
            ..status.clone()
        };
        assert_eq!(newly_ignored(Some(&older), Some(&status)).len(), 1);
    }
}
