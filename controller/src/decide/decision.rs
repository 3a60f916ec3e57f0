//! One decision in the making: the status being built, the transitions noted, and the steps
//! both strategies share (user actions, new revisions, abort, finishing; the gates are in
//! [`super::gates`]).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rollgate_crds::requester::requester;
use rollgate_crds::rollout::{
    AbortStatus, ActionOutcome, RolloutPhase, RolloutStatus, UserActionKind, condition_types,
};

use super::actions::{self, PendingAction};
use super::finish::{self, DeadlineOutcome};
use super::{
    Actor, AnalysisKey, Observed, Plan, ReplicaSetPlan, RoutePlan, ServicePlan, Transition,
    TransitionKind, conditions, history,
};

/// The verdict of verification, as a decision sees it.
pub enum VerificationGate {
    /// Go on.
    Passed,
    /// Hold the stable revision; the reason is in status.
    Held,
}

/// The ReplicaSets of a first revision that waits for its gate: none runs a pod yet.
pub fn first_revision_held(observed: &Observed<'_>) -> Vec<ReplicaSetPlan> {
    vec![ReplicaSetPlan {
        revision: observed.desired_revision.to_owned(),
        replicas: 0,
    }]
}

/// A decision being built.
pub struct Decision<'o, 'a> {
    pub observed: &'o Observed<'a>,
    pub old: RolloutStatus,
    pub status: RolloutStatus,
    pub action: Option<PendingAction>,
    pub transitions: Vec<Transition>,
    pub start_analyses: Vec<AnalysisKey>,
    pub requeue_after: Option<Duration>,
    pub progressed: bool,
}

impl<'o, 'a> Decision<'o, 'a> {
    /// Starts a decision: records the pending user action as handled, applies pause and resume,
    /// and resets the step machine when the template changed.
    pub fn new(observed: &'o Observed<'a>) -> Self {
        let old = observed.rollout.status.clone().unwrap_or_default();
        let mut decision = Decision {
            observed,
            status: old.clone(),
            old,
            action: None,
            transitions: Vec::new(),
            start_analyses: Vec::new(),
            requeue_after: None,
            progressed: false,
        };
        decision.status.observed_generation = observed.rollout.metadata.generation;
        decision.action = actions::pending(&decision.old);
        if let Some(action) = decision.action.take() {
            decision.status.handled_action = Some(action.id.clone());
            let attempt = actions::attempt_of(&decision.old, observed.desired_revision);
            match action.bound_to(observed.desired_revision, attempt) {
                Ok(()) => decision.action = Some(action),
                Err(why) => decision.ignore_action(&action, why),
            }
        }
        if let Some(action) = decision.action.clone() {
            match action.kind {
                UserActionKind::Pause => {
                    decision.status.paused_by_user = Some(true);
                    decision.note(TransitionKind::Paused, format!("paused by {}", action.by));
                }
                UserActionKind::Resume => {
                    decision.status.paused_by_user = None;
                    decision.note(TransitionKind::Resumed, format!("resumed by {}", action.by));
                }
                _ => {}
            }
        }
        let desired = observed.desired_revision;
        if decision.old.current_revision.as_deref() != Some(desired) {
            decision.status.current_revision = Some(desired.to_owned());
            decision.status.current_step_index = Some(0);
            decision.status.abort = None;
            decision.status.gate = None;
            decision.status.analysis_runs.clear();
            decision.status.promoted_at = None;
            decision.status.attempt = None;
            decision.status.step_start_time = Some(Time(observed.now));
            decision.progressed = true;
            decision.note(
                TransitionKind::RevisionDetected,
                format!("new revision {desired}"),
            );
        }
        decision.status.current_images = observed.desired_images.to_vec();
        decision
    }

    /// Records that `action` was not carried out, and why: in `status.actionOutcome` for the
    /// client that asked, and as a transition for the audit trail.
    pub fn ignore_action(&mut self, action: &PendingAction, why: String) {
        let message = format!("{:?} by {} ignored: {why}", action.kind, action.by);
        self.status.action_outcome = Some(ActionOutcome {
            id: action.id.clone(),
            carried_out: false,
            message: message.clone(),
        });
        self.transitions.push(Transition {
            kind: TransitionKind::ActionIgnored,
            actor: Actor::Person(action.by.clone()),
            message,
            reason_given: action.reason.clone(),
        });
    }

    /// Records a transition, with who made it happen: the person whose pending action it
    /// carries out, a new revision's requester (stamped at admission), else the controller.
    pub fn note(&mut self, kind: TransitionKind, message: impl Into<String>) {
        let by_action = self
            .action
            .as_ref()
            .filter(|action| actions::carried_out_by(action.kind) == kind);
        let actor = match (by_action, kind) {
            (Some(action), _) => Actor::Person(action.by.clone()),
            (None, TransitionKind::RevisionDetected) => requester(self.observed.rollout)
                .map_or(Actor::Controller, |name| Actor::Person(name.to_owned())),
            (None, _) => Actor::Controller,
        };
        let reason_given = by_action.and_then(|action| action.reason.clone());
        self.transitions.push(Transition {
            kind,
            actor,
            message: message.into(),
            reason_given,
        });
    }

    /// Whether the pending user action is `kind`.
    pub fn action_is(&self, kind: UserActionKind) -> bool {
        actions::is(self.action.as_ref(), kind)
    }

    /// Sets the phase and its message.
    pub fn phase(&mut self, phase: RolloutPhase, message: impl Into<String>) {
        self.status.phase = Some(phase);
        self.status.message = Some(message.into());
    }

    /// Whether the rollout is paused by its spec or by a person.
    pub fn paused(&self) -> bool {
        self.observed.rollout.spec.is_paused() || self.status.paused_by_user == Some(true)
    }

    /// Sets a condition of this decision's Rollout.
    pub fn condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) {
        let generation = self.observed.rollout.metadata.generation;
        conditions::set(
            &mut self.status.conditions,
            type_,
            status,
            reason,
            message,
            generation,
            self.observed.now,
        );
    }

    /// A spec the controller cannot apply: Degraded with the reason (recorded once), nothing
    /// new created, the stable revision kept as it is.
    pub fn refuse_spec(mut self, problem: String) -> Plan {
        if self.old.message.as_deref() != Some(problem.as_str()) {
            self.note(TransitionKind::SpecRefused, problem.clone());
        }
        self.condition(
            condition_types::PROGRESSING,
            false,
            "InvalidSpec",
            problem.clone(),
        );
        self.phase(RolloutPhase::Degraded, problem);
        let observed = self.observed;
        let keep = self
            .old
            .stable_revision
            .clone()
            .and_then(|stable| {
                super::revision_state(observed, &stable).map(|s| (stable, s.replicas))
            })
            .map(|(revision, replicas)| ReplicaSetPlan { revision, replicas });
        self.finish(keep.into_iter().collect(), Vec::new(), None)
    }

    /// Makes the desired revision the stable one: records it and its images, clears an abort,
    /// and reports Healthy once all its pods are available (Progressing until then). `role`
    /// names what the revision now is in messages (`stable`, `active`).
    pub fn make_desired_stable(&mut self, role: &str) {
        let observed = self.observed;
        let target = observed.desired_revision.to_owned();
        let desired = observed.rollout.spec.desired_replicas();
        self.status.stable_revision = Some(target.clone());
        self.status.stable_images = observed.desired_images.to_vec();
        self.status.abort = None;
        let available = super::revision_state(observed, &target).map_or(0, |state| state.available);
        if available >= desired {
            self.phase(
                RolloutPhase::Healthy,
                format!("revision {target} is {role} and available"),
            );
            self.condition(
                condition_types::HEALTHY,
                true,
                "Healthy",
                format!("revision {target} is {role}"),
            );
        } else {
            self.phase(
                RolloutPhase::Progressing,
                format!("revision {target}: {available} of {desired} pods available"),
            );
            self.condition(
                condition_types::HEALTHY,
                false,
                "ScalingUp",
                "waiting for pods",
            );
        }
        self.deadline_exceeded();
    }

    /// Aborts the rollout (once): records who and why.
    pub fn abort(&mut self, by: &str, reason: &str) {
        if self.status.abort.is_none() {
            self.status.abort = Some(AbortStatus {
                reason: reason.to_owned(),
                by: by.to_owned(),
                time: Time(self.observed.now),
            });
            self.note(
                TransitionKind::Aborted,
                format!("aborted by {by}: {reason}"),
            );
        }
    }

    /// Sets the Aborted phase, with who aborted and why, and Healthy=False.
    pub fn aborted_phase(&mut self) {
        let (by, reason) = self
            .status
            .abort
            .as_ref()
            .map(|abort| (abort.by.clone(), abort.reason.clone()))
            .unwrap_or_default();
        self.phase(
            RolloutPhase::Aborted,
            format!("aborted by {by}: {reason}; retry to start again"),
        );
        self.condition(condition_types::HEALTHY, false, "Aborted", reason);
    }

    /// Applies the abort and retry intents: a retry of an aborted rollout restarts it; a
    /// person's abort aborts it. True when the rollout is aborted after that.
    pub fn is_aborted_after_intents(&mut self) -> bool {
        if self.status.abort.is_some() && self.action_is(UserActionKind::Retry) {
            self.retry();
        }
        if let Some(action) = self
            .action
            .clone()
            .filter(|a| a.kind == UserActionKind::Abort)
        {
            let reason = action
                .reason
                .unwrap_or_else(|| "aborted by a person".to_owned());
            self.abort(&action.by, &reason);
        }
        self.status.abort.is_some()
    }

    /// Clears an abort and restarts from step 0.
    fn retry(&mut self) {
        self.status.abort = None;
        self.status.attempt = Some(self.status.attempt.unwrap_or(0) + 1);
        self.status.current_step_index = Some(0);
        self.status.step_start_time = Some(Time(self.observed.now));
        self.status.gate = None;
        self.progressed = true;
        let by = self
            .action
            .as_ref()
            .map(|action| action.by.clone())
            .unwrap_or_default();
        self.note(
            TransitionKind::Retried,
            format!("retried by {by}: restarting from step 0"),
        );
    }

    /// Requeues after `after` at the latest.
    pub fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(
            self.requeue_after
                .map_or(after, |current| current.min(after)),
        );
    }

    /// Fills in replica counts and conditions and checks the progress deadline; true when it
    /// passed without progress (the strategy then marks the rollout Degraded or aborts it).
    pub fn deadline_exceeded(&mut self) -> bool {
        finish::replica_counts(self.observed, &mut self.status);
        match finish::deadline(self.observed, &self.old, &mut self.status, self.progressed) {
            DeadlineOutcome::Within(Some(after)) => {
                self.requeue(after);
                false
            }
            DeadlineOutcome::Within(None) => false,
            DeadlineOutcome::Exceeded => true,
        }
    }

    /// Records what came of the pending action: carried out when the decision did what it
    /// asked, otherwise ignored with the state that left it nothing to do.
    fn record_action_outcome(&mut self) {
        let Some(action) = self.action.clone() else {
            return;
        };
        let done = actions::carried_out_by(action.kind);
        if let Some(transition) = self.transitions.iter().find(|t| t.kind == done) {
            self.status.action_outcome = Some(ActionOutcome {
                id: action.id.clone(),
                carried_out: true,
                message: transition.message.clone(),
            });
            return;
        }
        let state = self.status.message.clone().unwrap_or_default();
        self.ignore_action(&action, format!("nothing to act on ({state})"));
    }

    /// Completes the plan: the given ReplicaSets, and every other revision retired.
    pub fn finish(
        mut self,
        replica_sets: Vec<ReplicaSetPlan>,
        services: Vec<ServicePlan>,
        route: Option<RoutePlan>,
    ) -> Plan {
        let live: Vec<&str> = replica_sets
            .iter()
            .map(|plan| plan.revision.as_str())
            .collect();
        let limit = self.observed.rollout.spec.revision_history_limit();
        let (retired, delete_revisions) = history::retire(self.observed.revisions, &live, limit);
        let mut all = replica_sets;
        all.extend(retired);
        self.record_action_outcome();
        Plan {
            replica_sets: all,
            delete_revisions,
            services,
            route,
            status: self.status,
            transitions: self.transitions,
            start_analyses: self.start_analyses,
            requeue_after: self.requeue_after,
        }
    }
}
