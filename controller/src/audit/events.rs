//! What a reconcile's plan means for the audit trail: pure code from (the Rollout as it was,
//! the plan) to the [`AuditEvent`]s to record, in the order they happened.
//!
//! Two sources:
//!
//! - The plan's transitions (`RevisionDetected`, `StepCompleted`, `Promoted`, `Paused`,
//!   `Resumed`, `Aborted`, `Retried`, `VerificationFailed`, `Completed`), each mapped to its
//!   [`AuditEventKind`]. A person's action (promote, pause, resume, abort, retry) is recorded
//!   with that person as the actor, taken from the user action the plan handles; the
//!   controller's own steps have the actor [`CONTROLLER_ACTOR`]; a new revision has its
//!   requester (the `rollgate.io/requested-by` annotation stamped at admission) as the actor.
//! - What changed in the status without a transition of its own: a new valid approval at the
//!   gate (actor: the approver), a rejection (actor: who rejected), the gate opening, an
//!   analysis verdict (the Analysis condition reaching Successful, Failed or Inconclusive, with
//!   the message that names the query, value and threshold), and image verification passing.
//!
//! Gate and verification events come right after `RevisionDetected` and before the steps they
//! unblock, so the chain reads in the order things happened.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use rollgate_crds::audit::{AuditEvent, AuditEventKind, CONTROLLER_ACTOR};
use rollgate_crds::requester::requester;
use rollgate_crds::rollout::{UserAction, UserActionKind, condition_types};
use rollgate_crds::{Rollout, RolloutStatus};

use crate::decide::{Plan, Transition};

/// The Analysis condition reasons that are verdicts (not `Running`).
const ANALYSIS_VERDICTS: [&str; 4] = ["Successful", "Failed", "Inconclusive", "Error"];

/// The audit events of applying `plan` to `rollout`, in order.
pub fn audit_events(rollout: &Rollout, plan: &Plan) -> Vec<AuditEvent> {
    let old = rollout.status.clone().unwrap_or_default();
    let new = &plan.status;
    let revision = new.current_revision.clone();
    let action = handled_action(&old, new);
    // Verification is decided afresh for every revision, so a new revision's is always news.
    // The Analysis and Approved conditions are not: they keep the previous revision's verdict
    // until this revision reaches an analysis or a gate, so they are compared with the old
    // status, and a carried-over verdict is never recorded as the new revision's.
    let verified_before = if old.current_revision == new.current_revision {
        old.clone()
    } else {
        RolloutStatus::default()
    };
    let event = |kind, actor: String, reason: &str, message: String| AuditEvent {
        kind,
        actor,
        revision: revision.clone(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        details: BTreeMap::new(),
    };
    let (detected, others): (Vec<&Transition>, Vec<&Transition>) = plan
        .transitions
        .iter()
        .partition(|t| t.reason == "RevisionDetected");

    let mut events = Vec::new();
    for transition in detected {
        let mut detected = event(
            AuditEventKind::RevisionDetected,
            requester(rollout).unwrap_or(CONTROLLER_ACTOR).to_owned(),
            transition.reason,
            transition.message.clone(),
        );
        detected.details = image_details(new);
        events.push(detected);
    }
    if let Some(verified) = newly(&verified_before, new, condition_types::VERIFIED, |c| {
        c.status == "True"
    }) {
        let mut passed = event(
            AuditEventKind::Verification,
            CONTROLLER_ACTOR.to_owned(),
            &verified.reason,
            verified.message.clone(),
        );
        passed.details = image_details(new);
        events.push(passed);
    }
    events.extend(
        gate_events(&old, new)
            .into_iter()
            .map(|(kind, actor, reason, message)| event(kind, actor, reason, message)),
    );
    if let Some(verdict) = newly(&old, new, condition_types::ANALYSIS, |c| {
        ANALYSIS_VERDICTS.contains(&c.reason.as_str())
    }) {
        let mut analysed = event(
            AuditEventKind::AnalysisVerdict,
            CONTROLLER_ACTOR.to_owned(),
            &format!("Analysis{}", verdict.reason),
            verdict.message.clone(),
        );
        if !new.analysis_runs.is_empty() {
            analysed
                .details
                .insert("analysisRuns".into(), new.analysis_runs.join(","));
        }
        events.push(analysed);
    }
    for transition in others {
        let (kind, actor) = kind_and_actor(transition.reason, action);
        let mut recorded = event(kind, actor, transition.reason, transition.message.clone());
        if let Some(weight) = new.canary_weight {
            recorded
                .details
                .insert("canaryWeight".into(), weight.to_string());
        }
        if let Some(step) = new.current_step_index {
            recorded.details.insert("step".into(), step.to_string());
        }
        if let Some(reason) = action.and_then(|a| a.reason.as_ref()) {
            recorded.details.insert("userReason".into(), reason.clone());
        }
        if let (AuditEventKind::Abort, Some(abort)) = (kind, &new.abort) {
            recorded
                .details
                .insert("abortedBy".into(), abort.by.clone());
        }
        events.push(recorded);
    }
    events
}

/// The user action this plan acts on, if it acts on a new one.
fn handled_action<'a>(old: &'a RolloutStatus, new: &RolloutStatus) -> Option<&'a UserAction> {
    let action = old.user_action.as_ref()?;
    let handled_now = new.handled_action.as_deref() == Some(action.id.as_str());
    let handled_before = old.handled_action.as_deref() == Some(action.id.as_str());
    (handled_now && !handled_before).then_some(action)
}

/// The audit kind of a transition and who did it.
fn kind_and_actor(reason: &str, action: Option<&UserAction>) -> (AuditEventKind, String) {
    let by_person = |kinds: &[UserActionKind]| {
        action
            .filter(|a| kinds.contains(&a.action))
            .map_or_else(|| CONTROLLER_ACTOR.to_owned(), |a| a.by.clone())
    };
    match reason {
        "StepCompleted" => (AuditEventKind::StepCompleted, CONTROLLER_ACTOR.to_owned()),
        "Promoted" => (
            AuditEventKind::Promote,
            by_person(&[UserActionKind::Promote, UserActionKind::PromoteFull]),
        ),
        "Paused" => (AuditEventKind::Pause, by_person(&[UserActionKind::Pause])),
        "Resumed" => (AuditEventKind::Resume, by_person(&[UserActionKind::Resume])),
        "Retried" => (AuditEventKind::Retry, by_person(&[UserActionKind::Retry])),
        "Aborted" => (AuditEventKind::Abort, by_person(&[UserActionKind::Abort])),
        "ActionIgnored" => (
            AuditEventKind::ActionIgnored,
            action.map_or_else(|| CONTROLLER_ACTOR.to_owned(), |a| a.by.clone()),
        ),
        "VerificationFailed" => (AuditEventKind::Verification, CONTROLLER_ACTOR.to_owned()),
        "Completed" => (AuditEventKind::Completed, CONTROLLER_ACTOR.to_owned()),
        _ => (AuditEventKind::PhaseChanged, CONTROLLER_ACTOR.to_owned()),
    }
}

/// Approvals, a rejection and the gate opening, as (kind, actor, reason, message).
fn gate_events(
    old: &RolloutStatus,
    new: &RolloutStatus,
) -> Vec<(AuditEventKind, String, &'static str, String)> {
    let Some(gate) = &new.gate else {
        return Vec::new();
    };
    let before = old.gate.as_ref().filter(|g| g.revision == gate.revision);
    let mut events = Vec::new();
    for approver in &gate.approvers {
        if !before.is_some_and(|b| b.approvers.contains(approver)) {
            events.push((
                AuditEventKind::Approval,
                approver.clone(),
                "ApprovalReceived",
                format!("{approver} approved revision {}", gate.revision),
            ));
        }
    }
    if let Some(by) = &gate.rejected_by
        && before.and_then(|b| b.rejected_by.as_ref()) != Some(by)
    {
        let message = condition(new, condition_types::APPROVED)
            .map_or_else(|| format!("rejected by {by}"), |c| c.message.clone());
        events.push((AuditEventKind::Rejection, by.clone(), "Rejected", message));
    }
    if let Some(opened) = newly(old, new, condition_types::APPROVED, |c| c.status == "True") {
        events.push((
            AuditEventKind::GateOpened,
            CONTROLLER_ACTOR.to_owned(),
            "GateOpened",
            opened.message.clone(),
        ));
    }
    events
}

/// The condition `type_` of `new`, when it satisfies `holds` and did not in the same form
/// (reason and message) in `old`.
fn newly<'a>(
    old: &RolloutStatus,
    new: &'a RolloutStatus,
    type_: &str,
    holds: impl Fn(&Condition) -> bool,
) -> Option<&'a Condition> {
    let now = condition(new, type_).filter(|c| holds(c))?;
    let same = condition(old, type_).is_some_and(|before| {
        holds(before) && before.reason == now.reason && before.message == now.message
    });
    (!same).then_some(now)
}

fn condition<'a>(status: &'a RolloutStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// The desired revision's images, as `image/<container>` details.
fn image_details(status: &RolloutStatus) -> BTreeMap<String, String> {
    status
        .current_images
        .iter()
        .map(|image| (format!("image/{}", image.container), image.image.clone()))
        .collect()
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
