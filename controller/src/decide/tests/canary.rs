use rollgate_crds::rollout::{RolloutPhase, UserActionKind};
use serde_json::json;

use super::{World, pair, rollout};
use crate::decide::{AnalysisKey, AnalysisOutcome, ApprovalGate, TransitionKind, Verification};

fn four_step_canary(routed: bool) -> World {
    let mut canary = json!({
        "steps": [
            {"setWeight": 25},
            {"pause": {}},
            {"setWeight": 75},
            {"pause": {"duration": "10s"}}
        ],
        "maxSurge": 1, "maxUnavailable": 0
    });
    if routed {
        canary["stableService"] = json!("web-stable");
        canary["canaryService"] = json!("web-canary");
        canary["trafficRouting"] = json!({"gatewayAPI": {"httpRoute": "web"}});
    }
    World::stable(rollout(json!({"canary": canary}), 4))
}

#[test]
fn the_first_revision_is_stable_at_once() {
    let world = four_step_canary(false);
    assert_eq!(world.status().stable_revision.as_deref(), Some("v1"));
    assert_eq!(world.step_index(), 4);
    assert_eq!(world.scale(), [pair("v1", 4)]);
}

#[test]
fn a_four_step_canary_walks_every_step_and_becomes_stable() {
    let mut world = four_step_canary(false);
    world.deploy("v2");
    let reasons = world.settle();
    assert!(reasons.contains(&TransitionKind::RevisionDetected));
    // Step 0 reached: one canary pod of four (25%), then the untimed pause holds.
    assert_eq!(world.step_index(), 1);
    assert_eq!(world.phase(), RolloutPhase::Paused);
    assert_eq!(world.scale(), [pair("v1", 3), pair("v2", 1)]);
    assert_eq!(world.status().canary_weight, Some(25));

    world.act(UserActionKind::Promote, "alice");
    let reasons = world.settle();
    assert!(reasons.contains(&TransitionKind::Promoted), "{reasons:?}");
    // Step 2 (75%) reached, then the timed pause waits ten seconds.
    assert_eq!(world.step_index(), 3);
    assert_eq!(world.scale(), [pair("v1", 1), pair("v2", 3)]);
    assert_eq!(world.phase(), RolloutPhase::Paused);
    let requeue = world
        .decide()
        .requeue_after
        .expect("a timed pause requeues");
    assert!(requeue.as_secs() <= 10, "{requeue:?}");

    world.advance_time(11);
    let reasons = world.settle();
    assert!(reasons.contains(&TransitionKind::Completed), "{reasons:?}");
    assert_eq!(world.phase(), RolloutPhase::Healthy);
    assert_eq!(world.status().stable_revision.as_deref(), Some("v2"));
    assert_eq!(
        world.scale(),
        [pair("v1", 0), pair("v2", 4)],
        "the old ReplicaSet scales down"
    );
}

#[test]
fn surge_paces_the_pods_one_at_a_time() {
    let mut world = four_step_canary(false);
    world.deploy("v2");
    let first = world.step();
    let total: i32 = first.replica_sets.iter().map(|rs| rs.replicas).sum();
    assert!(
        total <= 5,
        "maxSurge 1 allows at most 5 pods: {:?}",
        first.replica_sets
    );
}

#[test]
fn with_a_router_the_route_carries_the_weight_and_stable_keeps_its_pods() {
    let mut world = four_step_canary(true);
    world.deploy("v2");
    world.settle();
    let plan = world.decide();
    let route = plan.route.expect("a route plan");
    assert_eq!(route.canary_weight, 25);
    assert_eq!(
        (route.stable_service.as_str(), route.canary_service.as_str()),
        ("web-stable", "web-canary")
    );
    assert_eq!(world.scale(), [pair("v1", 4), pair("v2", 1)]);
    let selectors: Vec<(String, String)> = plan
        .services
        .iter()
        .map(|s| (s.service.clone(), s.revision.clone()))
        .collect();
    assert_eq!(
        selectors,
        [
            ("web-stable".into(), "v1".into()),
            ("web-canary".into(), "v2".into())
        ]
    );

    world.act(UserActionKind::PromoteFull, "alice");
    world.settle();
    let plan = world.decide();
    assert_eq!(
        plan.route.expect("route").canary_weight,
        0,
        "after promotion all traffic is stable"
    );
    assert!(
        plan.services.iter().all(|s| s.revision == "v2"),
        "both Services select the new stable"
    );
}

#[test]
fn with_a_router_traffic_moves_to_the_canary_only_once_its_pods_are_available() {
    let mut world = four_step_canary(true);
    world.pods_become_available = false;
    world.deploy("v2");
    world.settle();
    let plan = world.decide();
    assert_eq!(
        plan.route.as_ref().map(|route| route.canary_weight),
        Some(0),
        "no canary pod is available yet: the route keeps all traffic on stable"
    );
    assert_eq!(world.status().canary_weight, Some(0));
    assert_eq!(world.scale(), [pair("v1", 4), pair("v2", 1)]);

    world.pods_become_available = true;
    world.step();
    world.settle();
    assert_eq!(
        world.decide().route.map(|route| route.canary_weight),
        Some(25)
    );
    assert_eq!(world.status().canary_weight, Some(25));

    // Going down needs no pods: an abort takes traffic back at once.
    world.pods_become_available = false;
    world.act(UserActionKind::Abort, "alice");
    let plan = world.step();
    assert_eq!(plan.route.map(|route| route.canary_weight), Some(0));
    assert_eq!(world.phase(), RolloutPhase::Aborted);
}

fn gated(step: serde_json::Value) -> World {
    World::stable(rollout(
        json!({"canary": {"steps": [{"setWeight": 50}, step, {"setWeight": 100}]}}),
        2,
    ))
}

#[test]
fn an_approval_step_waits_for_the_gate_and_a_rejection_holds_it() {
    let mut world = gated(json!({"approval": {}}));
    world.deploy("v2");
    world.gates.approval = ApprovalGate::Waiting {
        required: 2,
        approvers: vec!["bob".into()],
    };
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::AwaitingApproval);
    let gate = world.status().gate.clone().expect("gate status");
    assert_eq!(
        (gate.required, gate.received, gate.revision.as_str()),
        (2, 1, "v2")
    );

    // A person's promote does not pass an approval gate.
    world.act(UserActionKind::Promote, "mallory");
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::AwaitingApproval);

    world.gates.approval = ApprovalGate::Rejected {
        by: "carol".into(),
        reason: "not on a Friday".into(),
    };
    world.settle();
    assert_eq!(
        world
            .status()
            .gate
            .as_ref()
            .and_then(|g| g.rejected_by.as_deref()),
        Some("carol")
    );
    assert!(
        world
            .status()
            .message
            .as_deref()
            .unwrap_or("")
            .contains("not on a Friday")
    );

    world.gates.approval = ApprovalGate::Open {
        approvers: vec!["bob".into(), "dave".into()],
    };
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Healthy);
    assert_eq!(world.status().stable_revision.as_deref(), Some("v2"));
}

#[test]
fn an_analysis_step_starts_waits_and_continues_on_success() {
    let mut world = gated(json!({"analysis": {"templates": [{"templateName": "errors"}]}}));
    world.deploy("v2");
    world.settle();
    let plan = world.decide();
    assert_eq!(plan.start_analyses, [AnalysisKey::Step(1)]);
    assert_eq!(world.phase(), RolloutPhase::Progressing);
    world.set_analysis(AnalysisKey::Step(1), AnalysisOutcome::Running);
    world.settle();
    assert!(
        world.decide().start_analyses.is_empty(),
        "a running analysis is not started again"
    );
    world.set_analysis(AnalysisKey::Step(1), AnalysisOutcome::Successful);
    world.settle();
    assert_eq!(world.status().stable_revision.as_deref(), Some("v2"));
}

#[test]
fn a_failed_analysis_aborts_traffic_back_to_stable() {
    let mut world = gated(json!({"analysis": {"templates": [{"templateName": "errors"}]}}));
    world.deploy("v2");
    world.settle();
    world.set_analysis(
        AnalysisKey::Step(1),
        AnalysisOutcome::Failed("error rate 0.2 > 0.05".into()),
    );
    let reasons = world.settle();
    assert!(reasons.contains(&TransitionKind::Aborted));
    assert_eq!(world.phase(), RolloutPhase::Aborted);
    let abort = world.status().abort.clone().expect("abort recorded");
    assert_eq!(abort.by, "analysis");
    assert!(abort.reason.contains("error rate 0.2 > 0.05"));
    assert_eq!(world.status().canary_weight, Some(0));
    assert_eq!(world.scale(), [pair("v1", 2), pair("v2", 0)]);
    assert_eq!(
        world.status().stable_revision.as_deref(),
        Some("v1"),
        "stable never moved"
    );
}

#[test]
fn an_inconclusive_analysis_pauses_and_never_promotes_by_itself() {
    let mut world = gated(json!({"analysis": {"templates": [{"templateName": "errors"}]}}));
    world.deploy("v2");
    world.set_analysis(
        AnalysisKey::Step(1),
        AnalysisOutcome::Inconclusive("2 of 5 inconclusive".into()),
    );
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Paused);
    world.advance_time(3600);
    world.settle();
    assert_eq!(
        world.phase(),
        RolloutPhase::Paused,
        "time alone does not promote"
    );
    world.act(UserActionKind::Promote, "alice");
    world.settle();
    assert_eq!(world.status().stable_revision.as_deref(), Some("v2"));
}

#[test]
fn background_analysis_failure_aborts_at_any_step() {
    let mut world = World::stable(rollout(
        json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}],
                          "analysis": {"templates": [{"templateName": "errors"}]}}}),
        2,
    ));
    world.deploy("v2");
    world.settle();
    assert!(
        world
            .decide()
            .start_analyses
            .contains(&AnalysisKey::Background)
    );
    world.set_analysis(
        AnalysisKey::Background,
        AnalysisOutcome::Error("prometheus unreachable".into()),
    );
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Aborted);
}

#[test]
fn an_inconclusive_background_analysis_holds_until_a_person_continues() {
    let mut world = World::stable(rollout(
        json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}],
                          "analysis": {"templates": [{"templateName": "errors"}]}}}),
        2,
    ));
    world.deploy("v2");
    world.set_analysis(
        AnalysisKey::Background,
        AnalysisOutcome::Inconclusive("2 inconclusive measurements".into()),
    );
    world.settle();
    world.advance_time(60);
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Paused, "{:?}", world.status());
    assert_eq!(world.step_index(), 0, "it does not advance on its own");
    assert_ne!(world.status().stable_revision.as_deref(), Some("v2"));

    world.act(UserActionKind::Promote, "alice");
    let reasons = world.settle();
    assert!(reasons.contains(&TransitionKind::Promoted), "{reasons:?}");
    world.advance_time(60);
    world.settle();
    assert_eq!(
        world.status().stable_revision.as_deref(),
        Some("v2"),
        "continued once a person accepted the inconclusive analysis"
    );

    // The acceptance is for that revision only.
    world.deploy("v3");
    world.set_analysis(
        AnalysisKey::Background,
        AnalysisOutcome::Inconclusive("again".into()),
    );
    world.settle();
    world.advance_time(60);
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Paused);
    assert_ne!(world.status().stable_revision.as_deref(), Some("v3"));
}

#[test]
fn abort_then_retry_restarts_from_step_zero() {
    let mut world = four_step_canary(true);
    world.deploy("v2");
    world.settle();
    world.act(UserActionKind::Abort, "oncall");
    let plan = world.step();
    assert_eq!(
        plan.route.as_ref().map(|r| r.canary_weight),
        Some(0),
        "traffic goes back first"
    );
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Aborted);
    assert_eq!(
        world.status().abort.as_ref().map(|a| a.by.as_str()),
        Some("oncall")
    );
    assert_eq!(world.scale(), [pair("v1", 4), pair("v2", 0)]);

    world.act(UserActionKind::Retry, "oncall");
    let reasons = world.settle();
    assert_eq!(world.status().attempt, Some(1));
    assert!(reasons.contains(&TransitionKind::Retried));
    assert_eq!(world.step_index(), 1);
    assert_eq!(world.phase(), RolloutPhase::Paused);
    assert!(world.status().abort.is_none());
}

#[test]
fn a_handled_action_is_not_acted_on_twice() {
    let mut world = four_step_canary(false);
    world.deploy("v2");
    world.settle();
    world.act(UserActionKind::Promote, "alice");
    world.settle();
    assert_eq!(world.step_index(), 3);
    // A restarted controller sees the same action in status: it must not promote again.
    world.advance_time(1);
    world.settle();
    assert_eq!(world.step_index(), 3, "the timed pause still waits");
}

#[test]
fn rolling_back_to_the_stable_template_skips_the_steps() {
    let mut world = four_step_canary(false);
    world.deploy("v2");
    world.settle();
    assert_eq!(world.scale(), [pair("v1", 3), pair("v2", 1)]);
    world.deploy("v1");
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Healthy);
    assert_eq!(world.scale(), [pair("v1", 4), pair("v2", 0)]);
}

#[test]
fn a_refused_image_degrades_and_creates_nothing() {
    let mut world = four_step_canary(false);
    world.deploy("v2");
    world.gates.verification = Verification::Refused(
        "Expected digest with sha256 scheme, but got tag or malformed digest".into(),
    );
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Degraded);
    assert_eq!(
        world.scale(),
        [pair("v1", 4)],
        "no ReplicaSet for the refused revision"
    );
    let verified = world
        .status()
        .conditions
        .iter()
        .find(|c| c.type_ == "Verified")
        .expect("Verified");
    assert_eq!(verified.status, "False");
    assert!(
        verified
            .message
            .contains("Expected digest with sha256 scheme")
    );
}

#[test]
fn the_progress_deadline_degrades_or_aborts() {
    for abort in [false, true] {
        let mut world = World::stable(rollout(
            json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}),
            2,
        ));
        world.rollout.spec.progress_deadline_seconds = Some(60);
        world.rollout.spec.progress_deadline_abort = Some(abort);
        world.pods_become_available = false;
        world.deploy("v2");
        world.settle();
        assert_eq!(world.phase(), RolloutPhase::Progressing);
        world.advance_time(61);
        world.settle();
        if abort {
            assert_eq!(world.phase(), RolloutPhase::Aborted);
            assert_eq!(
                world.status().abort.as_ref().map(|a| a.by.as_str()),
                Some("progress-deadline")
            );
        } else {
            assert_eq!(world.phase(), RolloutPhase::Degraded);
            let progressing = world
                .status()
                .conditions
                .iter()
                .find(|c| c.type_ == "Progressing")
                .expect("cond");
            assert_eq!(progressing.reason, "ProgressDeadlineExceeded");
        }
    }
}

#[test]
fn pause_and_resume_by_a_person() {
    let mut world = World::stable(rollout(
        json!({"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}}),
        2,
    ));
    world.deploy("v2");
    world.act(UserActionKind::Pause, "alice");
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Paused);
    assert_eq!(world.step_index(), 0);
    world.act(UserActionKind::Resume, "alice");
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Healthy);
}

#[test]
fn an_action_for_another_revision_is_ignored_and_says_why() {
    let mut world = World::stable(rollout(
        json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}}),
        2,
    ));
    // Paused for v1, then v2 is deployed: the pause does not carry over.
    world.act(UserActionKind::Pause, "alice");
    world.deploy("v2");
    let reasons = world.settle();
    assert!(
        reasons.contains(&TransitionKind::ActionIgnored),
        "{reasons:?}"
    );
    let outcome = world.status().action_outcome.clone().expect("an outcome");
    assert!(!outcome.carried_out);
    assert!(
        outcome.message.contains("issued for revision v1 attempt 0"),
        "{}",
        outcome.message
    );
    assert_eq!(world.step_index(), 1, "v2 went on to its own pause");
    // A promote for v2 is carried out, and says so.
    world.act(UserActionKind::Promote, "bob");
    world.settle();
    let outcome = world.status().action_outcome.clone().expect("an outcome");
    assert!(outcome.carried_out, "{outcome:?}");
    assert_eq!(world.phase(), RolloutPhase::Healthy);
    // A promote with nothing to promote is ignored, not reported as done.
    world.act(UserActionKind::Promote, "bob");
    world.settle();
    assert!(!world.status().action_outcome.clone().unwrap().carried_out);
}

#[test]
fn the_first_revision_waits_for_its_gate_with_no_pods() {
    let mut world = World::stable(rollout(
        json!({"canary": {"steps": [{"setWeight": 50}, {"approval": {}}]}}),
        2,
    ));
    // A Rollout created anew (or deleted and created again) has no stable revision.
    world.rollout.status = None;
    world.revisions.clear();
    world.deploy("v9");
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::AwaitingApproval);
    assert_eq!(world.status().stable_revision, None);
    assert!(
        world.scale().iter().all(|(_, replicas)| *replicas == 0),
        "{:?}",
        world.scale()
    );
    world.gates.approval = ApprovalGate::Open {
        approvers: vec!["erin".into()],
    };
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Healthy);
    assert_eq!(world.scale(), vec![("v9".to_owned(), 2)]);
}

#[test]
fn an_unchanged_world_writes_an_unchanged_status() {
    let mut world = four_step_canary(false);
    world.deploy("v2");
    world.settle();
    world.advance_time(30);
    let before = world.rollout.status.clone();
    world.step();
    assert_eq!(
        world.rollout.status, before,
        "time passing alone changes nothing at an untimed pause"
    );
}
