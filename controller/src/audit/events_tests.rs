//! The audit events of rollouts driven through the simulated world of the decide tests.

use rollgate_crds::audit::{AuditEvent, AuditEventKind, CONTROLLER_ACTOR};
use rollgate_crds::names::REQUESTED_BY_ANNOTATION;
use rollgate_crds::rollout::UserActionKind;
use serde_json::json;

use super::audit_events;
use crate::decide::tests::{World, rollout};
use crate::decide::{AnalysisKey, AnalysisOutcome, ApprovalGate};

/// Steps the world until it settles; returns every audit event, in order.
fn settle(world: &mut World) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    for _ in 0..50 {
        let before = world.rollout.clone();
        let plan = world.step();
        let new: Vec<AuditEvent> = audit_events(&before, &plan)
            .into_iter()
            .map(|audited| audited.event)
            .collect();
        if world.rollout.status == before.status && new.is_empty() {
            return events;
        }
        events.extend(new);
    }
    panic!("the rollout never settled");
}

fn kinds(events: &[AuditEvent]) -> Vec<(AuditEventKind, &str)> {
    events
        .iter()
        .map(|event| (event.kind, event.actor.as_str()))
        .collect()
}

fn gated_world() -> World {
    let mut gated = rollout(
        json!({"canary": {"steps": [
            {"setWeight": 50},
            {"analysis": {"templates": [{"templateName": "slo"}]}},
            {"approval": {}},
            {"setWeight": 100}
        ]}}),
        2,
    );
    gated
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(REQUESTED_BY_ANNOTATION.into(), "dana".into());
    let mut world = World::stable(gated);
    world.deploy("v2");
    world
}

#[test]
fn a_settled_rollout_records_nothing() {
    let mut world = World::stable(rollout(
        json!({"canary": {"steps": [{"setWeight": 50}]}}),
        2,
    ));
    assert!(settle(&mut world).is_empty());
}

#[test]
fn a_canary_records_its_requester_steps_verdict_approvals_and_completion() {
    let mut world = gated_world();
    let started = settle(&mut world);
    assert_eq!(
        kinds(&started),
        [
            (AuditEventKind::RevisionDetected, "dana"),
            (AuditEventKind::Verification, CONTROLLER_ACTOR),
            (AuditEventKind::StepCompleted, CONTROLLER_ACTOR),
        ]
    );
    assert_eq!(started[0].revision.as_deref(), Some("v2"));
    assert_eq!(
        started[0].details.get("image/web").map(String::as_str),
        Some("r/web@sha256:v2")
    );

    world.set_analysis(AnalysisKey::Step(1), AnalysisOutcome::Successful);
    let analysed = settle(&mut world);
    assert_eq!(
        kinds(&analysed),
        [
            (AuditEventKind::AnalysisVerdict, CONTROLLER_ACTOR),
            (AuditEventKind::StepCompleted, CONTROLLER_ACTOR),
        ]
    );
    assert_eq!(analysed[0].reason.as_deref(), Some("AnalysisSuccessful"));

    world.gates.approval = ApprovalGate::Waiting {
        required: 2,
        approvers: vec!["erin".into()],
    };
    let first = settle(&mut world);
    assert_eq!(kinds(&first), [(AuditEventKind::Approval, "erin")]);

    world.gates.approval = ApprovalGate::Open {
        approvers: vec!["erin".into(), "frank".into()],
    };
    let opened = settle(&mut world);
    assert_eq!(
        kinds(&opened),
        [
            (AuditEventKind::Approval, "frank"),
            (AuditEventKind::GateOpened, CONTROLLER_ACTOR),
            (AuditEventKind::StepCompleted, CONTROLLER_ACTOR),
            (AuditEventKind::StepCompleted, CONTROLLER_ACTOR),
            (AuditEventKind::Completed, CONTROLLER_ACTOR),
        ]
    );
}

#[test]
fn a_failed_analysis_records_the_verdict_and_the_controller_s_abort() {
    let mut world = gated_world();
    settle(&mut world);
    world.set_analysis(
        AnalysisKey::Step(1),
        AnalysisOutcome::Failed("error-rate: 0.2 > 0.05".into()),
    );
    let events = settle(&mut world);
    assert_eq!(
        kinds(&events),
        [
            (AuditEventKind::AnalysisVerdict, CONTROLLER_ACTOR),
            (AuditEventKind::Abort, CONTROLLER_ACTOR),
        ]
    );
    assert_eq!(events[0].reason.as_deref(), Some("AnalysisFailed"));
    assert!(
        events[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("0.2 > 0.05")),
        "{events:?}"
    );
    assert!(events[1].details.contains_key("abortedBy"), "{events:?}");
}

#[test]
fn a_new_revision_does_not_inherit_the_previous_revision_s_verdicts() {
    let mut world = gated_world();
    settle(&mut world);
    world.set_analysis(
        AnalysisKey::Step(1),
        AnalysisOutcome::Failed("error-rate: 0.3 > 0.05".into()),
    );
    settle(&mut world);
    world.deploy("v3");
    let events = settle(&mut world);
    assert_eq!(
        kinds(&events),
        [
            (AuditEventKind::RevisionDetected, "dana"),
            (AuditEventKind::Verification, CONTROLLER_ACTOR),
            (AuditEventKind::StepCompleted, CONTROLLER_ACTOR),
        ],
        "{events:?}"
    );
}

#[test]
fn people_s_actions_and_rejections_name_the_person() {
    let mut world = gated_world();
    settle(&mut world);
    world.act(UserActionKind::Pause, "gina");
    assert_eq!(
        kinds(&settle(&mut world)),
        [(AuditEventKind::Pause, "gina")]
    );
    world.act(UserActionKind::Resume, "gina");
    assert_eq!(
        kinds(&settle(&mut world)),
        [(AuditEventKind::Resume, "gina")]
    );
    world.act(UserActionKind::Abort, "hank");
    let aborted = settle(&mut world);
    assert_eq!(kinds(&aborted), [(AuditEventKind::Abort, "hank")]);
    assert_eq!(
        aborted[0].details.get("userReason").map(String::as_str),
        Some("test")
    );
    world.act(UserActionKind::Retry, "hank");
    let retried = settle(&mut world);
    assert_eq!(retried[0].kind, AuditEventKind::Retry);
    assert_eq!(retried[0].actor, "hank");

    world.set_analysis(AnalysisKey::Step(1), AnalysisOutcome::Successful);
    settle(&mut world);
    world.gates.approval = ApprovalGate::Rejected {
        by: "ivan".into(),
        reason: "not on a Friday".into(),
    };
    let rejected = settle(&mut world);
    assert_eq!(kinds(&rejected), [(AuditEventKind::Rejection, "ivan")]);
    assert!(
        rejected[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("not on a Friday")),
        "{rejected:?}"
    );
}
