use rollgate_crds::audit::{AuditEvent, next_record};
use serde_json::json;

use super::*;

fn canary() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "42"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "r/web@sha256:aa"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"approval": {}}, {"pause": {}}]}}
        },
        "status": {
            "phase": "AwaitingApproval",
            "message": "step 1: waiting for approval (1 of 2)",
            "currentStepIndex": 1,
            "currentRevision": "0123456789",
            "stableRevision": "9876543210",
            "currentImages": [{"container": "app", "image": "r/web@sha256:aa"}],
            "canaryWeight": 20,
            "replicas": 6,
            "updatedReplicas": 1,
            "availableReplicas": 6,
            "observedGeneration": 3,
            "conditions": [{"type": "Approved", "status": "False", "reason": "AwaitingApproval",
                            "message": "waiting", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "gate": {"revision": "0123456789", "required": 2, "received": 1, "approvers": ["alice"]},
            "analysisRuns": ["web-0123456789-1"],
            "abort": {"reason": "analysis failed", "by": "analysis", "time": "2026-01-01T00:00:01Z"}
        }
    }))
    .unwrap()
}

#[test]
fn a_canary_rollout_maps_field_by_field() {
    let message = rollout(&canary());
    let id = message.id.clone().unwrap();
    assert_eq!((id.namespace.as_str(), id.name.as_str()), ("shop", "web"));
    assert_eq!(message.strategy, "canary");
    assert_eq!(message.phase(), v1::Phase::AwaitingApproval);
    assert_eq!(message.step_count, 3);
    assert_eq!(message.current_step_index, 1);
    assert_eq!(message.current_revision, "0123456789");
    assert_eq!(message.stable_revision, "9876543210");
    assert_eq!(message.current_images[0].image, "r/web@sha256:aa");
    assert_eq!(message.canary_weight, 20);
    assert_eq!(message.desired_replicas, 5);
    assert_eq!(
        (
            message.replicas,
            message.updated_replicas,
            message.available_replicas
        ),
        (6, 1, 6)
    );
    assert_eq!(message.observed_generation, 3);
    assert_eq!(message.resource_version, "42");
    assert_eq!(message.conditions[0].r#type, "Approved");
    assert_eq!(
        message.conditions[0].last_transition_time.unwrap().seconds,
        1_767_225_600
    );
    let gate = message.gate.unwrap();
    assert_eq!((gate.required, gate.received), (2, 1));
    assert_eq!(gate.approvers, ["alice"]);
    assert_eq!(message.analysis_runs, ["web-0123456789-1"]);
    let abort = message.abort.unwrap();
    assert_eq!(abort.by, "analysis");
    assert_eq!(abort.time.unwrap().seconds, 1_767_225_601);
}

#[test]
fn a_rollout_without_status_is_unspecified() {
    let mut bare = canary();
    bare.status = None;
    let message = rollout(&bare);
    assert_eq!(message.phase(), v1::Phase::Unspecified);
    assert!(message.gate.is_none() && message.abort.is_none());
    assert_eq!(message.desired_replicas, 5);
}

#[test]
fn every_phase_has_its_message() {
    use RolloutPhase::*;
    let all = [
        (Progressing, v1::Phase::Progressing),
        (Paused, v1::Phase::Paused),
        (AwaitingApproval, v1::Phase::AwaitingApproval),
        (Healthy, v1::Phase::Healthy),
        (Degraded, v1::Phase::Degraded),
        (Aborted, v1::Phase::Aborted),
    ];
    for (phase_, expected) in all {
        assert_eq!(phase(Some(phase_)), expected);
    }
}

#[test]
fn an_audit_record_keeps_its_chain_fields() {
    let event = AuditEvent {
        kind: rollgate_crds::audit::AuditEventKind::Approval,
        actor: "alice".into(),
        revision: Some("0123456789".into()),
        reason: Some("Approved".into()),
        message: Some("alice approved".into()),
        details: [("groups".to_owned(), "sre".to_owned())].into(),
    };
    let time = k8s_openapi::jiff::Timestamp::from_second(1_767_225_600).unwrap();
    let first = next_record(None, "web", "uid-1234", event.clone(), time).unwrap();
    let second = next_record(Some(&first), "web", "uid-1234", event, time).unwrap();
    let stored = AuditRecord::for_spec("shop", second.clone());
    let message = audit_record(&stored);
    assert_eq!(message.name, "web-uid-1234-0000000001");
    assert_eq!(message.sequence, 1);
    assert_eq!(message.previous_hash, first.hash);
    assert_eq!(message.hash, second.hash);
    assert_eq!(message.event, "Approval");
    assert_eq!(message.actor, "alice");
    assert_eq!(message.message, "alice approved");
    assert_eq!(message.details["groups"], "sre");
    assert_eq!(message.time.unwrap().seconds, 1_767_225_600);
}
