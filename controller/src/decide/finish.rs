//! The parts of a decision both strategies share: replica counts in status, the Available and
//! Progressing conditions, and the progress deadline.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rollgate_crds::rollout::{RolloutPhase, RolloutStatus, condition_types};

use super::{Observed, ReplicaSetPlan, conditions};

/// Fills in replica counts and the selector string from the observed ReplicaSets.
pub fn replica_counts(observed: &Observed<'_>, status: &mut RolloutStatus) {
    let revisions = observed.revisions;
    status.replicas = Some(revisions.iter().map(|state| state.replicas).sum());
    status.ready_replicas = Some(revisions.iter().map(|state| state.ready).sum());
    status.available_replicas = Some(revisions.iter().map(|state| state.available).sum());
    status.updated_replicas = Some(
        revisions
            .iter()
            .filter(|state| state.revision == observed.desired_revision)
            .map(|state| state.replicas)
            .sum(),
    );
    let labels = observed.rollout.spec.selector.match_labels.iter().flatten();
    let selector: Vec<String> = labels
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    status.selector = Some(selector.join(","));
}

/// Whether every planned ReplicaSet exists at its planned scale with all pods available.
pub fn settled(observed: &Observed<'_>, plans: &[ReplicaSetPlan]) -> bool {
    plans.iter().all(
        |plan| match super::revision_state(observed, &plan.revision) {
            Some(state) => state.replicas == plan.replicas && state.available >= plan.replicas,
            None => plan.replicas == 0,
        },
    )
}

/// Sets Available, applies the progress deadline to a Progressing rollout, and returns how
/// long until the deadline would pass (for a requeue).
///
/// Progress is a step advanced, a new revision, or a change in available pods; the clock stops
/// while waiting for a person (paused, awaiting approval) and restarts when waiting ends. A missed deadline marks
/// the rollout Degraded; with `progressDeadlineAbort` the caller aborts it.
pub fn deadline(
    observed: &Observed<'_>,
    old: &RolloutStatus,
    status: &mut RolloutStatus,
    progressed: bool,
) -> DeadlineOutcome {
    let generation = observed.rollout.metadata.generation;
    let now = observed.now;
    let desired = observed.rollout.spec.desired_replicas();
    let available = status.available_replicas.unwrap_or(0);
    conditions::set(
        &mut status.conditions,
        condition_types::AVAILABLE,
        available >= desired,
        if available >= desired {
            "Available"
        } else {
            "Unavailable"
        },
        format!("{available} of {desired} pods available"),
        generation,
        now,
    );
    // Only a rollout moving on its own has a deadline; a Degraded one (the deadline passed)
    // keeps its clock, so it stays Degraded until it makes progress.
    let on_the_clock = |phase: Option<RolloutPhase>| {
        matches!(
            phase,
            Some(RolloutPhase::Progressing | RolloutPhase::Degraded)
        )
    };
    let waiting = !on_the_clock(status.phase);
    let was_waiting = !on_the_clock(old.phase);
    let moved = progressed || old.available_replicas != status.available_replicas;
    // The clock restarts on progress and when waiting ends; it is never written while waiting,
    // so an unchanged world writes an unchanged status.
    if moved || (was_waiting && !waiting) || status.last_progress_time.is_none() {
        status.last_progress_time = Some(Time(now));
    }
    if waiting {
        conditions::set(
            &mut status.conditions,
            condition_types::PROGRESSING,
            true,
            "Waiting",
            status.message.clone().unwrap_or_default(),
            generation,
            now,
        );
        return DeadlineOutcome::Within(None);
    }
    let limit = Duration::from_secs(
        u64::try_from(observed.rollout.spec.progress_deadline_seconds()).unwrap_or(0),
    );
    let since = status
        .last_progress_time
        .as_ref()
        .map(|time| time.0)
        .unwrap_or(now);
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
    if elapsed > limit {
        conditions::set(
            &mut status.conditions,
            condition_types::PROGRESSING,
            false,
            "ProgressDeadlineExceeded",
            format!(
                "no progress for {}s (deadline {}s)",
                elapsed.as_secs(),
                limit.as_secs()
            ),
            generation,
            now,
        );
        return DeadlineOutcome::Exceeded;
    }
    conditions::set(
        &mut status.conditions,
        condition_types::PROGRESSING,
        true,
        "Progressing",
        status.message.clone().unwrap_or_default(),
        generation,
        now,
    );
    DeadlineOutcome::Within(Some(limit - elapsed + Duration::from_secs(1)))
}

/// The result of the progress-deadline check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineOutcome {
    /// Within the deadline; check again after this long, if progressing.
    Within(Option<Duration>),
    /// The deadline passed without progress.
    Exceeded,
}
