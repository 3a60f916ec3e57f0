//! The rollout state machine, as a pure function: [`decide`] takes what the reconciler
//! observed ([`Observed`]) and returns what the world should look like next ([`Plan`]).
//!
//! Everything the machine remembers lives in the Rollout's status (step index, step start
//! time, abort, handled user action), so a restarted controller resumes exactly where the last
//! one stopped. The results of the gates (image verification, approvals, analysis) arrive as
//! [`GateInputs`], computed by the reconciler from the Approvals, AnalysisRuns and verification
//! it read. What the decision did comes back typed, as [`Transition`]s that carry their kind and
//! actor, for the Events, the audit trail and the metrics.
//!
//! Choices the design leaves open, made here:
//! - A Rollout's first revision has nothing to protect: it becomes stable at once, skipping the
//!   steps. So does a return to the stable template (a rollback).
//! - User intents (promote, abort, retry, pause, resume) live in `status.userAction`, written to
//!   the status subresource, so a GitOps tool syncing the spec never undoes them. `promote`
//!   passes a pause or an inconclusive analysis, never an approval gate.
//! - Abort sends traffic to stable first: the route weight and Service selectors change in the
//!   same plan, and the apply step writes them before it scales ReplicaSets.

pub mod actions;
mod blue_green;
mod canary;
mod canary_traffic;
mod conditions;
mod decision;
mod finish;
mod gates;
pub mod held;
mod history;
pub mod replicas;
mod spec_problems;
#[cfg(test)]
pub(crate) mod tests;
mod transition;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rollgate_crds::Rollout;
use rollgate_crds::rollout::{ContainerImage, IgnoredApproval, RolloutStatus};

pub use actions::PendingAction;
pub use transition::{Actor, Transition, TransitionKind};

/// One observed ReplicaSet of the Rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionState {
    /// The revision hash (the ReplicaSet is `<rollout>-<revision>`).
    pub revision: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// When the ReplicaSet was created.
    pub created: Option<Timestamp>,
}

/// The verdict of image verification for the desired revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every image may run; the Verified condition's reason and message say on what grounds
    /// (verified by which policies and keys, a dry run, break-glass, or verification off).
    Passed {
        /// The condition's reason, for example `Verified` or `VerificationOff`.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// An image was refused; the reason names it.
    Refused(String),
    /// Not decided yet (the registry is being asked).
    Pending,
}

/// The state of the approval gate for the desired revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalGate {
    /// Enough valid approvals.
    Open {
        /// Who approved.
        approvers: Vec<String>,
    },
    /// Not enough yet.
    Waiting {
        /// Approvals required.
        required: i32,
        /// Who approved so far.
        approvers: Vec<String>,
    },
    /// Someone rejected the revision.
    Rejected {
        /// Who rejected.
        by: String,
        /// Their comment.
        reason: String,
    },
}

/// The result of one analysis, as far as it has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalysisOutcome {
    /// No AnalysisRun exists yet.
    NotStarted,
    /// Measuring.
    Running,
    /// Passed.
    Successful,
    /// A metric failed; aborts the rollout.
    Failed(String),
    /// Measurements errored too often; aborts the rollout.
    Error(String),
    /// Neither passed nor failed; pauses for a person.
    Inconclusive(String),
}

/// Which analysis an outcome belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnalysisKey {
    /// The analysis step at this index of the canary steps.
    Step(usize),
    /// The canary's background analysis.
    Background,
    /// Blue-green pre-promotion analysis.
    PrePromotion,
    /// Blue-green post-promotion analysis.
    PostPromotion,
}

/// What the gates report for the desired revision and its current attempt (`status.attempt`):
/// the reconciler never passes on a verdict of an earlier attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateInputs {
    /// Image verification.
    pub verification: Verification,
    /// The approval gate.
    pub approval: ApprovalGate,
    /// Approvals of the desired revision that did not count, and why (`status.gate.ignored`).
    pub approval_ignored: Vec<IgnoredApproval>,
    /// Analyses that have a result or are running; absent means not started.
    pub analyses: BTreeMap<AnalysisKey, AnalysisOutcome>,
}

impl GateInputs {
    /// The outcome of one analysis (not started when absent).
    pub fn analysis(&self, key: &AnalysisKey) -> AnalysisOutcome {
        self.analyses
            .get(key)
            .cloned()
            .unwrap_or(AnalysisOutcome::NotStarted)
    }
}

/// Everything `decide` looks at.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The Rollout as read.
    pub rollout: &'a Rollout,
    /// The revision hash of `spec.template`.
    pub desired_revision: &'a str,
    /// The images of `spec.template`, per container.
    pub desired_images: &'a [ContainerImage],
    /// The Rollout's ReplicaSets.
    pub revisions: &'a [RevisionState],
    /// Gate results for the desired revision.
    pub gates: &'a GateInputs,
    /// The time of this decision.
    pub now: Timestamp,
}

/// The desired scale of one revision's ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSetPlan {
    /// The revision hash.
    pub revision: String,
    /// Desired `spec.replicas`.
    pub replicas: i32,
}

/// Point a Service's selector at a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// The Service's name.
    pub service: String,
    /// The revision its selector should select.
    pub revision: String,
}

/// The weights to set on the HTTPRoute's backendRefs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// The HTTPRoute's name.
    pub http_route: String,
    /// The stable Service's backendRef.
    pub stable_service: String,
    /// The canary Service's backendRef.
    pub canary_service: String,
    /// Percent of traffic for the canary; the stable Service gets the rest.
    pub canary_weight: i32,
}

/// What the world should look like next.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every ReplicaSet that should exist, with its scale (created when missing).
    pub replica_sets: Vec<ReplicaSetPlan>,
    /// Old revisions beyond the history limit, to delete.
    pub delete_revisions: Vec<String>,
    /// Service selectors to set.
    pub services: Vec<ServicePlan>,
    /// Route weights to set, when a router is configured.
    pub route: Option<RoutePlan>,
    /// The new status.
    pub status: RolloutStatus,
    /// What happened in this decision.
    pub transitions: Vec<Transition>,
    /// Analyses the reconciler should start (they have not started yet).
    pub start_analyses: Vec<AnalysisKey>,
    /// Decide again after this long even if nothing changes (timed pauses, deadlines).
    pub requeue_after: Option<Duration>,
}

/// Decides the next state of a Rollout.
pub fn decide(observed: &Observed<'_>) -> Plan {
    if let Some(problem) = spec_problems::problem(observed.rollout) {
        return decision::Decision::new(observed).refuse_spec(problem);
    }
    if observed.rollout.spec.strategy.blue_green.is_some() {
        blue_green::decide(observed)
    } else {
        canary::decide(observed)
    }
}

/// The observed state of one revision, or an empty one.
pub(crate) fn revision_state<'a>(
    observed: &'a Observed<'_>,
    revision: &str,
) -> Option<&'a RevisionState> {
    observed
        .revisions
        .iter()
        .find(|state| state.revision == revision)
}
