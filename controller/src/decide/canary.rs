//! The canary strategy: walk the steps in order, each a weight to reach, a pause, an approval
//! gate or an analysis; background analysis runs across all of them; after the last step the
//! canary becomes stable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rollgate_crds::duration::parse_duration;
use rollgate_crds::rollout::{
    CanaryStep, CanaryStrategy, RolloutPhase, UserActionKind, condition_types,
};

use super::TransitionKind;
use super::canary_traffic::{route, routed_weight, scale, services};
use super::decision::{Decision, VerificationGate, first_revision_held};
use super::{AnalysisKey, AnalysisOutcome, Observed, Plan, ReplicaSetPlan, finish, revision_state};

/// Decides the next state of a canary Rollout.
pub(super) fn decide(observed: &Observed<'_>) -> Plan {
    let canary = observed
        .rollout
        .spec
        .strategy
        .canary
        .clone()
        .unwrap_or_default();
    let target = observed.desired_revision;
    let mut decision = Decision::new(observed);
    let stable = decision.old.stable_revision.clone();

    // Back on the stable template (a rollback): it was verified when it rolled out.
    if stable.as_deref() == Some(target) {
        return promoted(decision, &canary);
    }
    if let VerificationGate::Held = decision.verification() {
        let stable_plan = stable.map(|stable| ReplicaSetPlan {
            revision: stable,
            replicas: observed.rollout.spec.desired_replicas(),
        });
        return decision.finish(stable_plan.into_iter().collect(), Vec::new(), None);
    }
    let Some(stable) = stable else {
        // The first revision has no traffic to compare against, so it skips the steps; but it
        // passes the approval gate first when revisions need one.
        if !decision.first_revision_approved() {
            return decision.finish(first_revision_held(observed), Vec::new(), None);
        }
        decision.note(
            TransitionKind::Completed,
            format!("first revision {target} is stable"),
        );
        return promoted(decision, &canary);
    };

    if decision.is_aborted_after_intents() {
        return aborted(decision, &canary, &stable);
    }
    if canary.analysis.is_some() {
        match observed.gates.analysis(&AnalysisKey::Background) {
            AnalysisOutcome::NotStarted => decision.start_analyses.push(AnalysisKey::Background),
            AnalysisOutcome::Failed(reason) | AnalysisOutcome::Error(reason) => {
                decision.abort("analysis", &format!("background analysis: {reason}"));
                return aborted(decision, &canary, &stable);
            }
            _ => {}
        }
    }

    let steps = &canary.steps;
    let mut index = usize::try_from(decision.status.current_step_index.unwrap_or(0))
        .unwrap_or(0)
        .min(steps.len());
    let mut promote_once = decision.action_is(UserActionKind::Promote);
    if decision.action_is(UserActionKind::PromoteFull) {
        // Jump over every pause, weight and analysis to the next approval gate, or the end.
        let next_gate = steps
            .iter()
            .skip(index)
            .position(|step| step.approval.is_some());
        let jump_to = next_gate.map_or(steps.len(), |offset| index + offset);
        if jump_to > index {
            decision.note(
                TransitionKind::Promoted,
                format!("promoted from step {index} to step {jump_to} by a person"),
            );
            index = jump_to;
            decision.status.step_start_time = Some(Time(observed.now));
            decision.progressed = true;
        }
        promote_once = true;
    }
    let mut promote = || std::mem::take(&mut promote_once);
    let mut background_held = background_inconclusive(&mut decision, &canary, &mut promote);
    loop {
        let Some(step) = steps.get(index) else {
            decision.status.current_step_index = Some(step_count(steps));
            decision.note(
                TransitionKind::Completed,
                format!("revision {target} completed every step and is stable"),
            );
            return promoted(decision, &canary);
        };
        if decision.paused() {
            decision.phase(
                RolloutPhase::Paused,
                "paused by a person; resume to continue",
            );
            break;
        }
        if let Some(reason) = background_held.take() {
            decision.phase(
                RolloutPhase::Paused,
                format!("background analysis inconclusive ({reason}); promote to continue without it, or abort"),
            );
            break;
        }
        match step_outcome(&mut decision, &canary, &stable, index, step, &mut promote) {
            StepOutcome::Done => {
                let kind = step_kind(step);
                index += 1;
                decision.status.current_step_index = Some(i32::try_from(index).unwrap_or(i32::MAX));
                decision.status.step_start_time = Some(Time(observed.now));
                decision.progressed = true;
                decision.note(
                    TransitionKind::StepCompleted,
                    format!("step {} ({kind}) completed", index - 1),
                );
            }
            StepOutcome::Waiting => break,
            StepOutcome::Abort(reason) => {
                decision.abort("analysis", &reason);
                return aborted(decision, &canary, &stable);
            }
        }
    }
    decision.status.current_step_index = Some(i32::try_from(index).unwrap_or(i32::MAX));
    let weight = weight_at(steps, index);
    if decision.deadline_exceeded() {
        if observed.rollout.spec.progress_deadline_abort == Some(true) {
            decision.abort("progress-deadline", "the progress deadline passed");
            return aborted(decision, &canary, &stable);
        }
        decision.phase(
            RolloutPhase::Degraded,
            "the progress deadline passed without progress",
        );
    }
    in_progress(decision, &canary, &stable, weight)
}

/// What a step's evaluation concluded.
enum StepOutcome {
    Done,
    Waiting,
    Abort(String),
}

fn step_outcome(
    decision: &mut Decision<'_, '_>,
    canary: &CanaryStrategy,
    stable: &str,
    index: usize,
    step: &CanaryStep,
    promote: &mut impl FnMut() -> bool,
) -> StepOutcome {
    let observed = decision.observed;
    if let Some(weight) = step.set_weight {
        let plans = scale(observed, canary, stable, weight, false);
        if finish::settled(observed, &plans) {
            return StepOutcome::Done;
        }
        let canary_available =
            revision_state(observed, observed.desired_revision).map_or(0, |state| state.available);
        let wanted = plans.first().map_or(0, |plan| plan.replicas);
        decision.phase(
            RolloutPhase::Progressing,
            format!("step {index}: canary weight {weight}% ({canary_available} of {wanted} canary pods available)"),
        );
        return StepOutcome::Waiting;
    }
    if let Some(pause) = &step.pause {
        if promote() {
            decision.note(
                TransitionKind::Promoted,
                format!("step {index} (pause) promoted by a person"),
            );
            return StepOutcome::Done;
        }
        let Some(duration) = pause
            .duration
            .as_deref()
            .and_then(|text| parse_duration(text).ok())
        else {
            decision.phase(
                RolloutPhase::Paused,
                format!("step {index}: paused until promoted"),
            );
            return StepOutcome::Waiting;
        };
        let started = decision
            .status
            .step_start_time
            .as_ref()
            .map_or(observed.now, |time| time.0);
        let elapsed =
            std::time::Duration::try_from(observed.now.duration_since(started)).unwrap_or_default();
        if elapsed >= duration {
            return StepOutcome::Done;
        }
        let left = duration - elapsed;
        decision.requeue(left);
        decision.phase(
            RolloutPhase::Paused,
            format!(
                "step {index}: paused for {}s ({}s left)",
                duration.as_secs(),
                left.as_secs_f64().ceil()
            ),
        );
        return StepOutcome::Waiting;
    }
    if step.approval.is_some() {
        return if decision.approval_gate(&format!("step {index}")) {
            StepOutcome::Done
        } else {
            StepOutcome::Waiting
        };
    }
    if step.analysis.is_some() {
        let key = AnalysisKey::Step(index);
        return match observed.gates.analysis(&key) {
            AnalysisOutcome::NotStarted | AnalysisOutcome::Running => {
                if observed.gates.analysis(&key) == AnalysisOutcome::NotStarted {
                    decision.start_analyses.push(key);
                }
                decision.condition(
                    condition_types::ANALYSIS,
                    true,
                    "Running",
                    format!("step {index}: analysis running"),
                );
                decision.phase(
                    RolloutPhase::Progressing,
                    format!("step {index}: analysis running"),
                );
                StepOutcome::Waiting
            }
            AnalysisOutcome::Successful => {
                decision.condition(
                    condition_types::ANALYSIS,
                    true,
                    "Successful",
                    format!("step {index}: analysis passed"),
                );
                StepOutcome::Done
            }
            AnalysisOutcome::Failed(reason) | AnalysisOutcome::Error(reason) => {
                decision.condition(condition_types::ANALYSIS, false, "Failed", reason.clone());
                StepOutcome::Abort(format!("step {index} analysis: {reason}"))
            }
            AnalysisOutcome::Inconclusive(reason) => {
                if promote() {
                    decision.note(
                        TransitionKind::Promoted,
                        format!("step {index} (inconclusive analysis) promoted by a person"),
                    );
                    return StepOutcome::Done;
                }
                decision.condition(
                    condition_types::ANALYSIS,
                    false,
                    "Inconclusive",
                    reason.clone(),
                );
                decision.phase(
                    RolloutPhase::Paused,
                    format!("step {index}: analysis inconclusive ({reason}); promote to continue"),
                );
                StepOutcome::Waiting
            }
        };
    }
    // The schema admits no step without a kind; treat one as done rather than stall.
    StepOutcome::Done
}

/// The Analysis condition reason that records a person's decision to continue past an
/// inconclusive background analysis.
const INCONCLUSIVE_ACCEPTED: &str = "InconclusiveAccepted";

/// An inconclusive background analysis holds the rollout for a person, like an inconclusive
/// analysis step: it never promotes on its own. A promote accepts it (recorded in the Analysis
/// condition, for this revision and attempt) and the rollout continues without that guard.
/// Returns the reason while the rollout is held.
fn background_inconclusive(
    decision: &mut Decision<'_, '_>,
    canary: &CanaryStrategy,
    promote: &mut impl FnMut() -> bool,
) -> Option<String> {
    canary.analysis.as_ref()?;
    let AnalysisOutcome::Inconclusive(reason) =
        decision.observed.gates.analysis(&AnalysisKey::Background)
    else {
        return None;
    };
    let marker = format!(
        "revision {} attempt {}",
        decision.observed.desired_revision,
        decision.status.attempt.unwrap_or(0)
    );
    let accepted = decision.status.conditions.iter().any(|c| {
        c.type_ == condition_types::ANALYSIS
            && c.reason == INCONCLUSIVE_ACCEPTED
            && c.message.starts_with(&marker)
    });
    if accepted {
        return None;
    }
    if promote() {
        decision.note(
            TransitionKind::Promoted,
            format!(
                "background analysis inconclusive ({reason}): continued by a person without it"
            ),
        );
        decision.condition(
            condition_types::ANALYSIS,
            false,
            INCONCLUSIVE_ACCEPTED,
            format!("{marker}: background analysis inconclusive ({reason}); a person continued without it"),
        );
        return None;
    }
    decision.condition(
        condition_types::ANALYSIS,
        false,
        "Inconclusive",
        format!("background analysis: {reason}"),
    );
    Some(reason)
}

/// The canary weight in force at step `index`: the step's own weight if it sets one, else the
/// last weight set before it (0 before any).
pub(super) fn weight_at(steps: &[CanaryStep], index: usize) -> i32 {
    let end = (index + 1).min(steps.len());
    steps[..end]
        .iter()
        .rev()
        .find_map(|step| step.set_weight)
        .unwrap_or(0)
}

fn step_count(steps: &[CanaryStep]) -> i32 {
    i32::try_from(steps.len()).unwrap_or(i32::MAX)
}

fn step_kind(step: &CanaryStep) -> String {
    match (step.set_weight, &step.pause, &step.approval, &step.analysis) {
        (Some(weight), ..) => format!("setWeight {weight}"),
        (_, Some(_), ..) => "pause".to_owned(),
        (_, _, Some(_), _) => "approval".to_owned(),
        (_, _, _, Some(_)) => "analysis".to_owned(),
        _ => "empty".to_owned(),
    }
}

/// A canary in progress at `weight`.
fn in_progress(
    mut decision: Decision<'_, '_>,
    canary: &CanaryStrategy,
    stable: &str,
    weight: i32,
) -> Plan {
    let observed = decision.observed;
    let traffic_weight = if canary.traffic_routing.is_some() {
        routed_weight(observed, decision.old.canary_weight.unwrap_or(0), weight)
    } else {
        weight
    };
    decision.status.canary_weight = Some(traffic_weight);
    decision.condition(
        condition_types::HEALTHY,
        false,
        "RollingOut",
        "a new revision is rolling out",
    );
    let replica_sets = scale(observed, canary, stable, weight, true);
    let services = services(canary, stable, observed.desired_revision);
    decision.finish(replica_sets, services, route(canary, traffic_weight))
}

/// An aborted canary: all traffic to stable first, the canary scaled down.
fn aborted(mut decision: Decision<'_, '_>, canary: &CanaryStrategy, stable: &str) -> Plan {
    let observed = decision.observed;
    decision.aborted_phase();
    decision.status.canary_weight = Some(0);
    decision.deadline_exceeded();
    let replica_sets = scale(observed, canary, stable, 0, true);
    let services = services(canary, stable, observed.desired_revision);
    decision.finish(replica_sets, services, route(canary, 0))
}

/// The desired revision is stable: it gets every pod and all traffic.
fn promoted(mut decision: Decision<'_, '_>, canary: &CanaryStrategy) -> Plan {
    let observed = decision.observed;
    let target = observed.desired_revision.to_owned();
    let desired = observed.rollout.spec.desired_replicas();
    decision.status.current_step_index = Some(step_count(&canary.steps));
    decision.status.canary_weight = Some(0);
    decision.status.step_start_time = None;
    decision.make_desired_stable("stable");
    let replica_sets = vec![ReplicaSetPlan {
        revision: target.clone(),
        replicas: desired,
    }];
    let services = services(canary, &target, &target);
    decision.finish(replica_sets, services, route(canary, 0))
}
