//! What the world can refuse a plan, decided here too, so the state machine stays the only
//! writer of a Degraded reason: an analysis the plan starts that cannot start (its template or
//! an argument is missing), and a plan the apply stage holds (a Service or HTTPRoute the
//! strategy names is missing or has not opted in).

use std::time::Duration;

use rollgate_crds::rollout::{RolloutPhase, RolloutStatus};

use super::Plan;

/// Marks `plan` Degraded because analyses it starts cannot start, naming why, and looks again
/// after `retry`. The steps that wait on them keep waiting: only a Successful run passes.
pub fn analyses_cannot_start(plan: &mut Plan, problems: &[String], retry: Duration) {
    if problems.is_empty() {
        return;
    }
    plan.status.phase = Some(RolloutPhase::Degraded);
    plan.status.message = Some(format!("analysis cannot start: {}", problems.join("; ")));
    plan.requeue_after = Some(plan.requeue_after.map_or(retry, |after| after.min(retry)));
}

/// The status to write when a plan is held for `reason`: the status as it was (nothing moved),
/// Degraded with the reason.
pub fn held(status: Option<&RolloutStatus>, reason: &str) -> RolloutStatus {
    let mut held = status.cloned().unwrap_or_default();
    held.phase = Some(RolloutPhase::Degraded);
    held.message = Some(reason.to_owned());
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_plan_keeps_the_old_status_and_says_why() {
        let old = RolloutStatus {
            current_step_index: Some(2),
            phase: Some(RolloutPhase::Progressing),
            ..RolloutStatus::default()
        };
        let held = held(Some(&old), "Service web-canary does not exist");
        assert_eq!(held.current_step_index, Some(2));
        assert_eq!(held.phase, Some(RolloutPhase::Degraded));
        assert_eq!(
            held.message.as_deref(),
            Some("Service web-canary does not exist")
        );
    }
}
