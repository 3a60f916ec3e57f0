//! What a reconcile's plan means for the audit trail: pure code from (the Rollout as it was,
//! the plan) to the [`Audited`] events to record, in the order they happened.
//!
//! Two sources:
//!
//! - The plan's [`Transition`]s, as decide typed them: each [`TransitionKind`] has its
//!   [`AuditEventKind`] (an exhaustive match, so a new kind cannot go unrecorded), and the
//!   transition carries its actor (a person whose action it carries out, a new revision's
//!   requester, or [`CONTROLLER_ACTOR`]) and the reason the person gave.
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
use rollgate_crds::rollout::condition_types;
use rollgate_crds::{Rollout, RolloutStatus};

use crate::decide::{Plan, Transition, TransitionKind};

/// The Analysis condition reasons that are verdicts (not `Running`).
const ANALYSIS_VERDICTS: [&str; 4] = ["Successful", "Failed", "Inconclusive", "Error"];

/// One event for the audit trail, and how its Kubernetes Event is published.
#[derive(Debug, Clone, PartialEq)]
pub struct Audited {
    /// The record's content.
    pub event: AuditEvent,
    /// Whether its Event is a Warning: an abort, a refusal, a rejection, or an analysis verdict
    /// other than success.
    pub warning: bool,
}

/// The audit events of applying `plan` to `rollout`, in order.
pub fn audit_events(rollout: &Rollout, plan: &Plan) -> Vec<Audited> {
    let old = rollout.status.clone().unwrap_or_default();
    let new = &plan.status;
    let revision = new.current_revision.clone();
    // Verification is decided afresh for every revision, so a new revision's is always news.
    // The Analysis and Approved conditions are not: they keep the previous revision's verdict
    // until this revision reaches an analysis or a gate, so they are compared with the old
    // status, and a carried-over verdict is never recorded as the new revision's.
    let verified_before = if old.current_revision == new.current_revision {
        old.clone()
    } else {
        RolloutStatus::default()
    };
    let event = |kind, actor: &str, reason: &str, message: String, warning| Audited {
        event: AuditEvent {
            kind,
            actor: actor.to_owned(),
            revision: revision.clone(),
            reason: Some(reason.to_owned()),
            message: Some(message),
            details: BTreeMap::new(),
        },
        warning,
    };
    let from_transition = |transition: &Transition| {
        event(
            audit_kind(transition.kind),
            transition.actor.name(),
            transition.kind.reason(),
            transition.message.clone(),
            transition.kind.is_warning(),
        )
    };
    let (detected, others): (Vec<&Transition>, Vec<&Transition>) = plan
        .transitions
        .iter()
        .partition(|t| t.kind == TransitionKind::RevisionDetected);

    let mut events = Vec::new();
    for transition in detected {
        let mut detected = from_transition(transition);
        detected.event.details = image_details(new);
        events.push(detected);
    }
    if let Some(verified) = newly(&verified_before, new, condition_types::VERIFIED, |c| {
        c.status == "True"
    }) {
        let mut passed = event(
            AuditEventKind::Verification,
            CONTROLLER_ACTOR,
            &verified.reason,
            verified.message.clone(),
            false,
        );
        passed.event.details = image_details(new);
        events.push(passed);
    }
    events.extend(
        gate_events(&old, new)
            .into_iter()
            .map(|(kind, actor, reason, message)| {
                let warning = kind == AuditEventKind::Rejection;
                event(kind, &actor, reason, message, warning)
            }),
    );
    if let Some(verdict) = newly(&old, new, condition_types::ANALYSIS, |c| {
        ANALYSIS_VERDICTS.contains(&c.reason.as_str())
    }) {
        let mut analysed = event(
            AuditEventKind::AnalysisVerdict,
            CONTROLLER_ACTOR,
            &format!("Analysis{}", verdict.reason),
            verdict.message.clone(),
            verdict.reason != "Successful",
        );
        if !new.analysis_runs.is_empty() {
            analysed
                .event
                .details
                .insert("analysisRuns".into(), new.analysis_runs.join(","));
        }
        events.push(analysed);
    }
    for transition in others {
        let mut recorded = from_transition(transition);
        let details = &mut recorded.event.details;
        if let Some(weight) = new.canary_weight {
            details.insert("canaryWeight".into(), weight.to_string());
        }
        if let Some(step) = new.current_step_index {
            details.insert("step".into(), step.to_string());
        }
        if let Some(reason) = &transition.reason_given {
            details.insert("userReason".into(), reason.clone());
        }
        if let (TransitionKind::Aborted, Some(abort)) = (transition.kind, &new.abort) {
            details.insert("abortedBy".into(), abort.by.clone());
        }
        events.push(recorded);
    }
    events
}

/// The audit kind of a transition kind.
fn audit_kind(kind: TransitionKind) -> AuditEventKind {
    match kind {
        TransitionKind::RevisionDetected => AuditEventKind::RevisionDetected,
        TransitionKind::StepCompleted => AuditEventKind::StepCompleted,
        TransitionKind::Promoted => AuditEventKind::Promote,
        TransitionKind::Paused => AuditEventKind::Pause,
        TransitionKind::Resumed => AuditEventKind::Resume,
        TransitionKind::Aborted => AuditEventKind::Abort,
        TransitionKind::Retried => AuditEventKind::Retry,
        TransitionKind::ActionIgnored => AuditEventKind::ActionIgnored,
        TransitionKind::VerificationFailed => AuditEventKind::Verification,
        TransitionKind::SpecRefused => AuditEventKind::PhaseChanged,
        TransitionKind::Completed => AuditEventKind::Completed,
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
