//! The blue-green strategy: the new revision runs beside the active one behind the preview
//! Service; after optional pre-promotion analysis and the promotion gate (the approval gate,
//! unless `autoPromotion`), it is scaled to full size and the active Service switches to it;
//! optional post-promotion analysis can still switch traffic back; the old revision scales down
//! `scaleDownDelaySeconds` after the switch.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rollgate_crds::rollout::{BlueGreenStrategy, RolloutPhase, UserActionKind, condition_types};

use super::TransitionKind;
use super::decision::{Decision, VerificationGate, first_revision_held};
use super::{
    AnalysisKey, AnalysisOutcome, Observed, Plan, ReplicaSetPlan, ServicePlan, revision_state,
};

/// The delay before the old revision scales down when `scaleDownDelaySeconds` is unset.
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;

/// Decides the next state of a blue-green Rollout.
pub(super) fn decide(observed: &Observed<'_>) -> Plan {
    let strategy = observed
        .rollout
        .spec
        .strategy
        .blue_green
        .clone()
        .unwrap_or_default();
    let target = observed.desired_revision;
    let desired = observed.rollout.spec.desired_replicas();
    let mut decision = Decision::new(observed);
    let stable = decision.old.stable_revision.clone();

    if stable.as_deref() == Some(target) {
        return promoted(decision, &strategy);
    }
    if let VerificationGate::Held = decision.verification() {
        let stable_plan = stable.map(|revision| ReplicaSetPlan {
            revision,
            replicas: desired,
        });
        return decision.finish(stable_plan.into_iter().collect(), Vec::new(), None);
    }
    let Some(stable) = stable else {
        if !decision.first_revision_approved() {
            return decision.finish(first_revision_held(observed), Vec::new(), None);
        }
        decision.note(
            TransitionKind::Completed,
            format!("first revision {target} is active"),
        );
        return promoted(decision, &strategy);
    };
    if decision.is_aborted_after_intents() {
        return aborted(decision, &strategy, &stable);
    }

    if decision.status.promoted_at.is_none() {
        match before_promotion(&mut decision, &strategy) {
            Gate::Wait => return preview(decision, &strategy, &stable),
            Gate::Abort(reason) => {
                decision.abort("analysis", &reason);
                return aborted(decision, &strategy, &stable);
            }
            Gate::Pass => {}
        }
        // Promote: full size first, then switch the active Service.
        let available = revision_state(observed, target).map_or(0, |state| state.available);
        if available < desired {
            decision.phase(
                RolloutPhase::Progressing,
                format!("promoting: {available} of {desired} pods available before the switch"),
            );
            return switching(decision, &strategy, &stable, &stable);
        }
        decision.status.promoted_at = Some(Time(observed.now));
        decision.progressed = true;
        decision.note(
            TransitionKind::Promoted,
            format!("active Service switched to {target}"),
        );
    }

    if strategy.post_promotion_analysis.is_some() {
        match observed.gates.analysis(&AnalysisKey::PostPromotion) {
            AnalysisOutcome::Successful => {}
            AnalysisOutcome::Failed(reason) | AnalysisOutcome::Error(reason) => {
                decision.abort("analysis", &format!("post-promotion analysis: {reason}"));
                return aborted(decision, &strategy, &stable);
            }
            AnalysisOutcome::Inconclusive(reason) => {
                // Like an inconclusive canary step: a person decides; it never completes alone.
                if decision.action_is(UserActionKind::Promote)
                    || decision.action_is(UserActionKind::PromoteFull)
                {
                    decision.note(
                        TransitionKind::Promoted,
                        format!(
                            "post-promotion analysis inconclusive ({reason}): accepted by a person"
                        ),
                    );
                } else {
                    decision.phase(
                        RolloutPhase::Paused,
                        format!("post-promotion analysis inconclusive ({reason}); promote to accept, or abort"),
                    );
                    return switching(decision, &strategy, &stable, target);
                }
            }
            outcome => {
                if outcome == AnalysisOutcome::NotStarted {
                    decision.start_analyses.push(AnalysisKey::PostPromotion);
                }
                decision.phase(RolloutPhase::Progressing, "post-promotion analysis running");
                return switching(decision, &strategy, &stable, target);
            }
        }
    }
    decision.note(
        TransitionKind::Completed,
        format!("revision {target} is active and stable"),
    );
    promoted(decision, &strategy)
}

/// Whether the rollout may be promoted.
enum Gate {
    Pass,
    Wait,
    Abort(String),
}

/// Preview readiness, pre-promotion analysis and the promotion gate, in that order.
fn before_promotion(decision: &mut Decision<'_, '_>, strategy: &BlueGreenStrategy) -> Gate {
    let observed = decision.observed;
    let target = observed.desired_revision;
    let preview = preview_replicas(observed, strategy);
    let available = revision_state(observed, target).map_or(0, |state| state.available);
    if available < preview {
        decision.phase(
            RolloutPhase::Progressing,
            format!("preview: {available} of {preview} pods available"),
        );
        return Gate::Wait;
    }
    let promote = decision.action_is(UserActionKind::Promote)
        || decision.action_is(UserActionKind::PromoteFull);
    if strategy.pre_promotion_analysis.is_some() {
        match observed.gates.analysis(&AnalysisKey::PrePromotion) {
            AnalysisOutcome::Successful => {}
            AnalysisOutcome::Failed(reason) | AnalysisOutcome::Error(reason) => {
                return Gate::Abort(format!("pre-promotion analysis: {reason}"));
            }
            AnalysisOutcome::Inconclusive(_) if promote => {}
            AnalysisOutcome::Inconclusive(reason) => {
                decision.phase(
                    RolloutPhase::Paused,
                    format!("pre-promotion analysis inconclusive ({reason}); promote to continue"),
                );
                return Gate::Wait;
            }
            outcome => {
                if outcome == AnalysisOutcome::NotStarted {
                    decision.start_analyses.push(AnalysisKey::PrePromotion);
                }
                decision.phase(RolloutPhase::Progressing, "pre-promotion analysis running");
                return Gate::Wait;
            }
        }
    }
    if decision.paused() {
        decision.phase(
            RolloutPhase::Paused,
            "paused by a person; resume to continue",
        );
        return Gate::Wait;
    }
    if strategy.auto_promotion == Some(true) {
        return Gate::Pass;
    }
    if decision.approval_gate("promotion") {
        Gate::Pass
    } else {
        Gate::Wait
    }
}

fn preview_replicas(observed: &Observed<'_>, strategy: &BlueGreenStrategy) -> i32 {
    let desired = observed.rollout.spec.desired_replicas();
    strategy
        .preview_replica_count
        .unwrap_or(desired)
        .min(desired)
}

fn services(strategy: &BlueGreenStrategy, active: &str, preview: &str) -> Vec<ServicePlan> {
    let mut plans = vec![ServicePlan {
        service: strategy.active_service.clone(),
        revision: active.to_owned(),
    }];
    if let Some(service) = &strategy.preview_service {
        plans.push(ServicePlan {
            service: service.clone(),
            revision: preview.to_owned(),
        });
    }
    plans
}

/// Before promotion: the new revision at its preview size beside the active stable one.
fn preview(decision: Decision<'_, '_>, strategy: &BlueGreenStrategy, stable: &str) -> Plan {
    let replicas = preview_replicas(decision.observed, strategy);
    side_by_side(
        decision,
        strategy,
        stable,
        replicas,
        stable,
        "a new revision is in preview",
    )
}

/// Both revisions at full size, the active Service on `active`.
fn switching(
    decision: Decision<'_, '_>,
    strategy: &BlueGreenStrategy,
    stable: &str,
    active: &str,
) -> Plan {
    let replicas = decision.observed.rollout.spec.desired_replicas();
    side_by_side(
        decision,
        strategy,
        stable,
        replicas,
        active,
        "promotion in progress",
    )
}

/// The new revision at `new_replicas` beside the stable one at full size, the active Service
/// on `active`; the progress deadline applies.
fn side_by_side(
    mut decision: Decision<'_, '_>,
    strategy: &BlueGreenStrategy,
    stable: &str,
    new_replicas: i32,
    active: &str,
    what: &str,
) -> Plan {
    let observed = decision.observed;
    let target = observed.desired_revision;
    decision.condition(condition_types::HEALTHY, false, "RollingOut", what);
    if decision.deadline_exceeded() {
        if observed.rollout.spec.progress_deadline_abort == Some(true) {
            decision.abort("progress-deadline", "the progress deadline passed");
            return aborted(decision, strategy, stable);
        }
        decision.phase(
            RolloutPhase::Degraded,
            "the progress deadline passed without progress",
        );
    }
    let replica_sets = vec![
        ReplicaSetPlan {
            revision: target.to_owned(),
            replicas: new_replicas,
        },
        ReplicaSetPlan {
            revision: stable.to_owned(),
            replicas: observed.rollout.spec.desired_replicas(),
        },
    ];
    decision.finish(replica_sets, services(strategy, active, target), None)
}

/// Aborted: the active Service back on stable, the new revision scaled down.
fn aborted(mut decision: Decision<'_, '_>, strategy: &BlueGreenStrategy, stable: &str) -> Plan {
    let observed = decision.observed;
    let target = observed.desired_revision;
    decision.status.promoted_at = None;
    decision.aborted_phase();
    decision.deadline_exceeded();
    let replica_sets = vec![
        ReplicaSetPlan {
            revision: stable.to_owned(),
            replicas: observed.rollout.spec.desired_replicas(),
        },
        ReplicaSetPlan {
            revision: target.to_owned(),
            replicas: 0,
        },
    ];
    decision.finish(replica_sets, services(strategy, stable, target), None)
}

/// The desired revision is active and stable. The previous revisions keep their pods until
/// `scaleDownDelaySeconds` after the switch, for a fast way back.
fn promoted(mut decision: Decision<'_, '_>, strategy: &BlueGreenStrategy) -> Plan {
    let observed = decision.observed;
    let target = observed.desired_revision.to_owned();
    let desired = observed.rollout.spec.desired_replicas();
    decision.make_desired_stable("active");
    let mut replica_sets = vec![ReplicaSetPlan {
        revision: target.clone(),
        replicas: desired,
    }];
    if let Some(promoted_at) = decision.status.promoted_at.as_ref().map(|time| time.0) {
        let delay_seconds = strategy
            .scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS);
        let delay = Duration::from_secs(u64::try_from(delay_seconds).unwrap_or(0));
        let elapsed =
            Duration::try_from(observed.now.duration_since(promoted_at)).unwrap_or_default();
        if elapsed < delay {
            decision.requeue(delay - elapsed);
            let keep = observed
                .revisions
                .iter()
                .filter(|state| state.revision != target && state.replicas > 0);
            replica_sets.extend(keep.map(|state| ReplicaSetPlan {
                revision: state.revision.clone(),
                replicas: state.replicas,
            }));
        }
    }
    decision.finish(replica_sets, services(strategy, &target, &target), None)
}
