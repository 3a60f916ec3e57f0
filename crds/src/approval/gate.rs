//! The approval gate: given a Rollout's approval policy and the Approvals of its desired
//! revision, is the gate open, still waiting, or rejected? Pure: the controller lists the
//! Approvals, reads the requester, and calls [`evaluate_gate`].
//!
//! # What counts
//!
//! An approval counts when all of these hold (see [`assess`]):
//!
//! 1. it is for the gate's revision hash **and** exactly the gate's set of image digests, so an
//!    approval of an older revision (or of the same template resolved to other digests) never
//!    opens a newer revision's gate;
//! 2. its approver is allowed by the policy: listed in `approvers.users`, or listing in
//!    `approverGroups` a group of `approvers.groups` (groups are checked at admission, see the
//!    module docs of [`crate::approval`]); a policy with no users and no groups allows anyone
//!    whom RBAC lets create Approvals;
//! 3. it has not expired: `metadata.creationTimestamp` (set by the API server, not the client)
//!    plus the policy's `expiresAfter` is still in the future;
//! 4. its approver is not the requester (who last changed the template, see
//!    [`crate::requester`]) unless the policy sets `allowSelfApproval`;
//! 5. its approver could not have acted as the requester (impersonated them, or minted a token
//!    for the requester's ServiceAccount; see [`super::acting`]), unless the policy sets
//!    `allowSelfApproval`: whoever could have made the change under the requester's name does
//!    not approve it either. The controller asks the API server and records the answer in
//!    [`ApprovalFacts::acts_as_requester`];
//! 6. its approver has not already been counted: approvals are counted per distinct person, in
//!    the order they were created.
//!
//! # Rejections
//!
//! One rejection stops the gate, naming who rejected and why. A rejection counts when rules 1
//! and 2 hold: it must be for this revision and from someone allowed to approve it. It does not
//! expire (a lapsed rejection silently reopening a gate would surprise everyone) and the
//! requester may reject their own change. The earliest valid rejection is reported. Deleting the
//! rejecting Approval, or a new revision, reopens the question.
//!
//! # Unknown requester
//!
//! When the Rollout names no requester (the requested-by admission policy is not installed, or
//! the Rollout predates it), nobody is excluded by rule 4.

use std::collections::BTreeSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::acting::ActingPermission;
use super::{Approval, ApprovalDecision};
use crate::duration::parse_duration;
use crate::rollout::{ApprovalPolicy, GateStatus, IgnoredApproval};

/// What the gate needs to know about one Approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalFacts {
    /// The Approval's name, for diagnostics.
    pub name: String,
    /// Who decided (checked at admission).
    pub approver: String,
    /// The groups the decision is made as (checked at admission).
    pub groups: Vec<String>,
    /// The revision hash decided on.
    pub revision: String,
    /// The image digests decided on.
    pub digests: Vec<String>,
    /// Approve or reject.
    pub decision: ApprovalDecision,
    /// Why.
    pub comment: Option<String>,
    /// When the API server stored the Approval.
    pub created: Timestamp,
    /// A permission through which the approver could have acted as the requester, as the API
    /// server answered (`None`: none found, or not asked).
    pub acts_as_requester: Option<ActingPermission>,
}

impl ApprovalFacts {
    /// The facts of a stored Approval; `None` when it has no creation timestamp (it was never
    /// stored by an API server, so it cannot count).
    pub fn from_approval(approval: &Approval) -> Option<Self> {
        let created = approval.metadata.creation_timestamp.as_ref()?.0;
        Some(ApprovalFacts {
            name: approval.metadata.name.clone().unwrap_or_default(),
            approver: approval.spec.approver.clone(),
            groups: approval.spec.approver_groups.clone(),
            revision: approval.spec.revision.clone(),
            digests: approval.spec.digests.clone(),
            decision: approval.spec.decision,
            comment: approval.spec.comment.clone(),
            created,
            acts_as_requester: None,
        })
    }
}

/// The state of the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateVerdict {
    /// Enough distinct, valid approvals.
    Open {
        /// Distinct approvals required.
        required: i32,
        /// Who approved, in order of approval.
        approvers: Vec<String>,
    },
    /// Not enough valid approvals yet.
    Waiting {
        /// Distinct approvals required.
        required: i32,
        /// Valid approvals received.
        received: i32,
        /// Who approved so far, in order of approval.
        approvers: Vec<String>,
    },
    /// Someone allowed to approve rejected the revision.
    Rejected {
        /// Who rejected.
        by: String,
        /// Their comment.
        comment: String,
    },
}

impl GateVerdict {
    /// The gate as the Rollout's `status.gate` shows it.
    pub fn to_status(&self, revision: &str, required: i32) -> GateStatus {
        let (received, approvers, rejected_by) = match self {
            GateVerdict::Open { approvers, .. } | GateVerdict::Waiting { approvers, .. } => {
                (approvers.len() as i32, approvers.clone(), None)
            }
            GateVerdict::Rejected { by, .. } => (0, Vec::new(), Some(by.clone())),
        };
        GateStatus {
            revision: revision.to_owned(),
            required,
            received,
            approvers,
            rejected_by,
            ignored: Vec::new(),
        }
    }
}

/// Why an Approval did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredReason {
    /// It is for another revision hash.
    OtherRevision,
    /// It is for the revision hash but another set of image digests.
    OtherDigests,
    /// The policy does not allow its approver (neither a listed user nor in a listed group).
    NotAllowed,
    /// It has expired (or the policy's expiry does not parse, which the CRD prevents).
    Expired,
    /// Its approver requested the change and the policy forbids self-approval.
    SelfApproval,
    /// Its approver could have acted as the requester through this permission, and the policy
    /// forbids self-approval.
    CouldActAsRequester(ActingPermission),
    /// Its approver was already counted.
    Duplicate,
}

impl IgnoredReason {
    /// The reason as a CamelCase word, for status and Events.
    pub fn code(&self) -> &'static str {
        match self {
            IgnoredReason::OtherRevision => "OtherRevision",
            IgnoredReason::OtherDigests => "OtherDigests",
            IgnoredReason::NotAllowed => "NotAllowed",
            IgnoredReason::Expired => "Expired",
            IgnoredReason::SelfApproval => "SelfApproval",
            IgnoredReason::CouldActAsRequester(_) => "CouldActAsRequester",
            IgnoredReason::Duplicate => "Duplicate",
        }
    }

    /// Why the approval did not count, for people; `requester` is who made the change.
    pub fn message(&self, requester: Option<&str>) -> String {
        let requester = requester.unwrap_or("the requester");
        match self {
            IgnoredReason::OtherRevision => "it is for another revision".to_owned(),
            IgnoredReason::OtherDigests => {
                "it is for this revision with other image digests".to_owned()
            }
            IgnoredReason::NotAllowed => {
                "the approval policy does not list its approver or any of its groups".to_owned()
            }
            IgnoredReason::Expired => "it has expired (spec.approval.expiresAfter)".to_owned(),
            IgnoredReason::SelfApproval => {
                format!("its approver requested the change ({requester})")
            }
            IgnoredReason::CouldActAsRequester(permission) => {
                format!("its approver could have made the change as {requester} ({permission})")
            }
            IgnoredReason::Duplicate => "its approver was already counted".to_owned(),
        }
    }
}

/// An Approval that did not count, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The Approval's name.
    pub name: String,
    /// Its approver.
    pub approver: String,
    /// Why it did not count.
    pub reason: IgnoredReason,
}

impl Ignored {
    /// The entry of `status.gate.ignored`; `requester` is who made the change.
    pub fn to_status(&self, requester: Option<&str>) -> IgnoredApproval {
        IgnoredApproval {
            approval: self.name.clone(),
            approver: self.approver.clone(),
            reason: self.reason.code().to_owned(),
            message: self.reason.message(requester),
        }
    }
}

/// The result of checking every Approval: the ones that count, in order, and the others.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assessment {
    /// Valid approvals, one per distinct approver, oldest first.
    pub approvals: Vec<ApprovalFacts>,
    /// Valid rejections, oldest first.
    pub rejections: Vec<ApprovalFacts>,
    /// Approvals and rejections that do not count.
    pub ignored: Vec<Ignored>,
}

/// Sorts the Approvals by creation time (then name) and sorts each into counted or ignored.
pub fn assess(
    policy: &ApprovalPolicy,
    approvals: &[ApprovalFacts],
    revision: &str,
    digests: &[String],
    requester: Option<&str>,
    now: Timestamp,
) -> Assessment {
    let wanted_digests = digest_set(digests);
    let lifetime = expiry(policy);
    let mut ordered: Vec<&ApprovalFacts> = approvals.iter().collect();
    ordered.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    let mut counted = BTreeSet::new();
    let mut result = Assessment::default();
    for facts in ordered {
        let reason = if facts.revision != revision {
            Some(IgnoredReason::OtherRevision)
        } else if digest_set(&facts.digests) != wanted_digests {
            Some(IgnoredReason::OtherDigests)
        } else if !allowed(policy, facts) {
            Some(IgnoredReason::NotAllowed)
        } else if facts.decision == ApprovalDecision::Reject {
            result.rejections.push(facts.clone());
            continue;
        } else if expired(lifetime, facts.created, now) {
            Some(IgnoredReason::Expired)
        } else if !policy.allows_self_approval() && requester == Some(facts.approver.as_str()) {
            Some(IgnoredReason::SelfApproval)
        } else if let Some(permission) = facts
            .acts_as_requester
            .filter(|_| !policy.allows_self_approval())
        {
            Some(IgnoredReason::CouldActAsRequester(permission))
        } else if !counted.insert(facts.approver.clone()) {
            Some(IgnoredReason::Duplicate)
        } else {
            None
        };
        match reason {
            Some(reason) => result.ignored.push(Ignored {
                name: facts.name.clone(),
                approver: facts.approver.clone(),
                reason,
            }),
            None => result.approvals.push(facts.clone()),
        }
    }
    result
}

/// The gate of `revision` (with image `digests`) under `policy`, given the Rollout's Approvals
/// and who requested the revision. See the module docs for the rules.
pub fn evaluate_gate(
    policy: &ApprovalPolicy,
    approvals: &[ApprovalFacts],
    revision: &str,
    digests: &[String],
    requester: Option<&str>,
    now: Timestamp,
) -> GateVerdict {
    let assessment = assess(policy, approvals, revision, digests, requester, now);
    if let Some(rejection) = assessment.rejections.first() {
        return GateVerdict::Rejected {
            by: rejection.approver.clone(),
            comment: rejection.comment.clone().unwrap_or_default(),
        };
    }
    let required = policy.required_approvals();
    let approvers: Vec<String> = assessment
        .approvals
        .into_iter()
        .map(|facts| facts.approver)
        .collect();
    let received = i32::try_from(approvers.len()).unwrap_or(i32::MAX);
    if received >= required {
        GateVerdict::Open {
            required,
            approvers,
        }
    } else {
        GateVerdict::Waiting {
            required,
            received,
            approvers,
        }
    }
}

fn digest_set(digests: &[String]) -> BTreeSet<&str> {
    digests.iter().map(String::as_str).collect()
}

/// Whether the policy allows the approver, by name or by a group recorded on the Approval.
fn allowed(policy: &ApprovalPolicy, facts: &ApprovalFacts) -> bool {
    let Some(approvers) = policy.approvers.as_ref() else {
        return true;
    };
    if approvers.users.is_empty() && approvers.groups.is_empty() {
        return true;
    }
    approvers.users.contains(&facts.approver)
        || facts
            .groups
            .iter()
            .any(|group| approvers.groups.contains(group))
}

/// The policy's approval lifetime: `Ok(None)` for no expiry, `Err` when it does not parse.
fn expiry(policy: &ApprovalPolicy) -> Result<Option<SignedDuration>, ()> {
    let Some(text) = policy.expires_after.as_deref() else {
        return Ok(None);
    };
    let duration = parse_duration(text).map_err(|_| ())?;
    SignedDuration::try_from(duration).map(Some).map_err(|_| ())
}

fn expired(
    lifetime: Result<Option<SignedDuration>, ()>,
    created: Timestamp,
    now: Timestamp,
) -> bool {
    match lifetime {
        Ok(None) => false,
        Ok(Some(lifetime)) => created
            .checked_add(lifetime)
            .is_ok_and(|deadline| deadline <= now),
        Err(()) => true,
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
