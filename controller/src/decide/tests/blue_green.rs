use rollgate_crds::rollout::{RolloutPhase, UserActionKind};
use serde_json::json;

use super::{World, pair, rollout};
use crate::decide::{AnalysisKey, AnalysisOutcome, ApprovalGate, TransitionKind};

fn blue_green(extra: serde_json::Value) -> World {
    let mut strategy = json!({"activeService": "web", "previewService": "web-preview",
                              "previewReplicaCount": 1, "scaleDownDelaySeconds": 30});
    for (key, value) in extra.as_object().expect("object") {
        strategy[key] = value.clone();
    }
    World::stable(rollout(json!({"blueGreen": strategy}), 3))
}

fn selectors(world: &World) -> Vec<(String, String)> {
    world
        .decide()
        .services
        .iter()
        .map(|s| (s.service.clone(), s.revision.clone()))
        .collect()
}

#[test]
fn preview_then_approval_then_switch_then_delayed_scale_down() {
    let mut world = blue_green(json!({}));
    world.deploy("v2");
    world.settle();
    // The new revision runs at its preview size behind the preview Service.
    assert_eq!(world.scale(), [pair("v1", 3), pair("v2", 1)]);
    assert_eq!(
        selectors(&world),
        [
            ("web".into(), "v1".into()),
            ("web-preview".into(), "v2".into())
        ]
    );
    assert_eq!(
        world.phase(),
        RolloutPhase::AwaitingApproval,
        "autoPromotion is off by default"
    );

    world.gates.approval = ApprovalGate::Open {
        approvers: vec!["carol".into()],
    };
    let reasons = world.settle();
    assert!(reasons.contains(&TransitionKind::Promoted), "{reasons:?}");
    assert_eq!(world.phase(), RolloutPhase::Healthy);
    assert_eq!(
        selectors(&world),
        [
            ("web".into(), "v2".into()),
            ("web-preview".into(), "v2".into())
        ]
    );
    assert_eq!(
        world.scale(),
        [pair("v1", 3), pair("v2", 3)],
        "the old revision waits out the delay"
    );
    assert!(world.decide().requeue_after.is_some());

    world.advance_time(31);
    world.settle();
    assert_eq!(world.scale(), [pair("v1", 0), pair("v2", 3)]);
}

#[test]
fn auto_promotion_switches_without_approval() {
    let mut world = blue_green(json!({"autoPromotion": true}));
    world.deploy("v2");
    world.settle();
    assert_eq!(world.status().stable_revision.as_deref(), Some("v2"));
    assert_eq!(selectors(&world)[0], ("web".into(), "v2".into()));
}

#[test]
fn failed_pre_promotion_analysis_aborts_before_any_switch() {
    let mut world = blue_green(json!({"autoPromotion": true,
        "prePromotionAnalysis": {"templates": [{"templateName": "smoke"}]}}));
    world.deploy("v2");
    world.settle();
    assert_eq!(world.decide().start_analyses, [AnalysisKey::PrePromotion]);
    world.set_analysis(
        AnalysisKey::PrePromotion,
        AnalysisOutcome::Failed("smoke test failed".into()),
    );
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Aborted);
    assert_eq!(selectors(&world)[0], ("web".into(), "v1".into()));
    assert_eq!(world.scale(), [pair("v1", 3), pair("v2", 0)]);
}

#[test]
fn an_inconclusive_post_promotion_analysis_waits_for_a_person() {
    let mut world = blue_green(json!({"autoPromotion": true,
        "postPromotionAnalysis": {"templates": [{"templateName": "slo"}]}}));
    world.deploy("v2");
    world.settle();
    world.set_analysis(
        AnalysisKey::PostPromotion,
        AnalysisOutcome::Inconclusive("no data".into()),
    );
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Paused);
    assert_eq!(world.status().stable_revision.as_deref(), Some("v1"));
    world.act(UserActionKind::Promote, "alice");
    world.settle();
    assert_eq!(world.status().stable_revision.as_deref(), Some("v2"));
    assert_eq!(world.phase(), RolloutPhase::Healthy);
}

#[test]
fn failed_post_promotion_analysis_switches_traffic_back() {
    let mut world = blue_green(json!({"autoPromotion": true,
        "postPromotionAnalysis": {"templates": [{"templateName": "slo"}]}}));
    world.deploy("v2");
    world.settle();
    assert_eq!(
        selectors(&world)[0],
        ("web".into(), "v2".into()),
        "switched, analysis pending"
    );
    assert_eq!(
        world.status().stable_revision.as_deref(),
        Some("v1"),
        "not stable until it passes"
    );
    world.set_analysis(
        AnalysisKey::PostPromotion,
        AnalysisOutcome::Failed("latency p99 900ms".into()),
    );
    world.settle();
    assert_eq!(world.phase(), RolloutPhase::Aborted);
    assert_eq!(
        selectors(&world)[0],
        ("web".into(), "v1".into()),
        "traffic back on the old revision"
    );
    assert_eq!(world.scale(), [pair("v1", 3), pair("v2", 0)]);

    // A retry is a new attempt: the reconciler reports its analyses afresh.
    world.act(UserActionKind::Retry, "oncall");
    world.gates.analyses.clear();
    world.settle();
    assert_eq!(world.status().attempt, Some(1));
    world.set_analysis(AnalysisKey::PostPromotion, AnalysisOutcome::Successful);
    world.settle();
    assert_eq!(world.status().stable_revision.as_deref(), Some("v2"));
}
