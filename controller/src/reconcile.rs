//! The Rollout reconciler: fetch (the Rollout's ReplicaSets), decide (the pure state machine),
//! apply (the plan), and report (an AuditRecord and an Event per audited event).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use rollgate_crds::RolloutStatus;
use rollgate_crds::analysis::{AnalysisRun, RunRevisions};
use rollgate_crds::names::ROLLOUT_LABEL;
use rollgate_crds::revision::revision_hash;
use rollgate_crds::rollout::{ContainerImage, RolloutPhase, condition_types};

use crate::analysis::{observe, runner};
use crate::audit::Flushed;
use crate::audit::events::{Audited, audit_events};
use crate::context::Context;
use crate::decide::{Observed, Plan, RevisionState, TransitionKind, Verification, actions, decide};
use crate::error::Error;
use crate::events::{self, Activity, Notice};
use crate::replicaset;
use crate::{apply, gates, invalid};
use crate::{approvals, verification};

/// How soon a Rollout whose plan is held (a Service or HTTPRoute missing or unusable) is looked
/// at again, should no watch event bring it back sooner.
const HELD_PLAN_RETRY: Duration = Duration::from_secs(10);

/// The longest a reconcile waits before looking again, whatever a pause or deadline says (a
/// timer far in the future is never armed).
const MAX_REQUEUE: Duration = Duration::from_secs(3600);

/// Reconciles one Rollout, containing a panic: it is reported on that Rollout (see
/// [`crate::contain`]) and the Rollout is looked at again later, while the others go on.
pub async fn reconcile(
    guarded: Arc<DeserializeGuard<Rollout>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let reconciling = reconcile_rollout(guarded.clone(), context.clone());
    let panic = match crate::contain::contained(reconciling).await {
        Ok(result) => return result,
        Err(panic) => crate::contain::panic_message(panic.as_ref()),
    };
    Ok(crate::contain::report(&guarded, panic, &context).await)
}

/// Reconciles one Rollout. A Rollout that cannot be read as a `Rollout` (a field the API
/// server accepted but rollgate cannot represent) is reported with an Event and skipped: it
/// cannot stall the others.
async fn reconcile_rollout(
    guarded: Arc<DeserializeGuard<Rollout>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    context.metrics.reconciles.inc();
    let mut rollout = match &guarded.0 {
        Ok(rollout) => rollout.clone(),
        Err(invalid) => return invalid::report(&guarded, &invalid.error, &context).await,
    };
    let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
    crate::contain::fault_injection(&rollout);
    if context.written.is_behind(&rollout) {
        // The cache has not caught up with this process's last status write: decide from the
        // API server's version, never from an older status.
        let rollouts: Api<Rollout> = Api::namespaced(context.client.clone(), &namespace);
        rollout = rollouts.get(&rollout.name_any()).await?;
    }
    // Audit: write what an earlier status write committed and a crash left unwritten.
    let backlog = context.audit.flush_committed(&rollout).await;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(context.client.clone(), &namespace);
    let selector = format!("{ROLLOUT_LABEL}={}", rollout.name_any());
    let listed = replica_sets
        .list(&ListParams::default().labels(&selector))
        .await?;
    let revisions: Vec<_> = listed
        .items
        .iter()
        .filter_map(|rs| replicaset::observe(&rollout, rs))
        .collect();
    let runs = if runner::uses_analysis(&rollout) {
        runner::list(&context.client, &rollout).await?
    } else {
        Vec::new()
    };
    let approval_objects = if approvals::uses_approval(&rollout) {
        approvals::list(&context, &rollout).await?
    } else {
        approvals::Approvals::default()
    };
    let desired_revision = revision_hash(&rollout.spec.template)?;
    let images = gates::template_images(&rollout);
    let verified = verify(&context, &rollout, &desired_revision, &images).await?;
    let verification = verified.as_ref().map_or_else(
        || verification::without_verdict(context.verification.is_some(), &images),
        |verified| verified.gate.clone(),
    );

    let observed = Observations {
        revisions: &revisions,
        runs: &runs,
        approvals: &approval_objects,
        verification: &verification,
    };
    let mut plan = plan_for(&rollout, &desired_revision, &observed);
    start_analyses(&context, &rollout, &desired_revision, &mut plan).await?;
    // Audit: the plan's records are committed with its status write (the outbox).
    let audited = audit_events(&rollout, &plan);
    plan.status.audit_outbox = context
        .audit
        .prepare(
            &rollout,
            audited
                .iter()
                .map(|audited| audited.event.clone())
                .collect(),
        )
        .await?;
    let applied = apply::apply(
        &context.client,
        &context.written,
        &rollout,
        &plan,
        &revisions,
    )
    .await?;
    if let apply::Applied::Held(reason) = applied {
        tracing::warn!(rollout = %rollout.name_any(), %reason, "plan held; nothing applied");
        return Ok(Action::requeue(HELD_PLAN_RETRY));
    }
    approvals::report_ignored(
        &context.recorder,
        &approval_objects,
        rollout
            .status
            .as_ref()
            .and_then(|status| status.gate.as_ref()),
        plan.status.gate.as_ref(),
    )
    .await;
    if let Some(verified) = &verified
        && verification_changed(rollout.status.as_ref(), &plan)
    {
        verification::report(&context.recorder, &rollout, &verified.verdict).await;
    }
    runner::terminate_stale(
        &context.client,
        &runs,
        &desired_revision,
        plan.status.attempt.unwrap_or(0),
        plan.status.phase,
    )
    .await?;
    if let Some(phase) = plan.status.phase {
        context.metrics.set_phase(
            format!("{namespace}/{}", rollout.name_any()),
            format!("{phase:?}"),
        );
    }
    let step_started = rollout
        .status
        .as_ref()
        .and_then(|status| status.step_start_time.as_ref());
    if let Some(started) = step_started {
        let finished = plan
            .transitions
            .iter()
            .filter(|t| t.kind == TransitionKind::StepCompleted)
            .count();
        if finished > 0 {
            let seconds = Timestamp::now()
                .duration_since(started.0)
                .as_secs_f64()
                .max(0.0);
            context.metrics.step_duration.observe(seconds);
        }
    }

    let flushed = report(&context, &rollout, &plan, &audited).await;
    let retry = verified.and_then(|verified| verified.retry_after);
    let retry = [retry, backlog.retry_after, flushed.retry_after]
        .into_iter()
        .flatten()
        .min();
    let requeue = match (plan.requeue_after, retry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(requeue.map_or_else(Action::await_change, |after| {
        Action::requeue(after.min(MAX_REQUEUE))
    }))
}

/// Records what `plan` did to `rollout`: an Event for each audited event (a Warning where
/// [`Audited::warning`] says so), and the AuditRecords its status write committed.
async fn report(context: &Context, rollout: &Rollout, plan: &Plan, audited: &[Audited]) -> Flushed {
    let flushed = context
        .audit
        .flush(rollout, &plan.status.audit_outbox)
        .await;
    let reference = rollout.object_ref(&());
    for Audited { event, warning } in audited {
        let reason = event.reason.clone().unwrap_or_default();
        let message = event.message.clone().unwrap_or_default();
        tracing::info!(
            rollout = %rollout.name_any(),
            namespace = rollout.namespace().unwrap_or_default(),
            reason = %reason,
            actor = %event.actor,
            message = %message,
            "transition"
        );
        let notice = Notice {
            warning: *warning,
            reason,
            note: message,
            activity: Activity::Reconcile,
        };
        events::publish(&context.recorder, &reference, notice).await;
    }
    flushed
}

/// Verifies the desired revision's images against their ImagePolicies, when verification is
/// on and the revision needs it: not when an image is not even pinned (the pinning rule refuses
/// it first), nor for the stable revision (it was verified when it rolled out, so a rollback
/// is not held by a registry).
async fn verify(
    context: &Context,
    rollout: &Rollout,
    desired_revision: &str,
    images: &[ContainerImage],
) -> Result<Option<verification::Verified>, Error> {
    let Some(service) = &context.verification else {
        return Ok(None);
    };
    let stable = rollout
        .status
        .as_ref()
        .and_then(|status| status.stable_revision.as_deref());
    if stable == Some(desired_revision) || gates::pinning(images).is_err() {
        return Ok(None);
    }
    Ok(Some(
        service.verify(&context.client, rollout, images).await?,
    ))
}

/// Whether the plan shows a verification result the Rollout did not show before (a new
/// revision, or the Verified condition changed): then the per-image Events are published.
fn verification_changed(old: Option<&RolloutStatus>, plan: &Plan) -> bool {
    let verified = |status: &RolloutStatus| {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == condition_types::VERIFIED)
            .map(|condition| (condition.status.clone(), condition.message.clone()))
    };
    let revision_changed = old.and_then(|status| status.current_revision.as_ref())
        != plan.status.current_revision.as_ref();
    revision_changed || old.and_then(verified) != verified(&plan.status)
}

/// What a reconcile read about a Rollout, besides the Rollout itself.
struct Observations<'a> {
    revisions: &'a [RevisionState],
    runs: &'a [AnalysisRun],
    approvals: &'a approvals::Approvals,
    verification: &'a Verification,
}

/// Decides the plan for `rollout` given what was observed.
fn plan_for(rollout: &Rollout, desired_revision: &str, observed: &Observations<'_>) -> Plan {
    let images = gates::template_images(rollout);
    let now = Timestamp::now();
    let mut gate_inputs = gates::observe(rollout, observed.verification.clone());
    let status = rollout.status.clone().unwrap_or_default();
    let attempt = actions::attempt_for_gates(&status, desired_revision);
    gate_inputs.analyses = observe::outcomes(observed.runs, desired_revision, attempt);
    if approvals::uses_approval(rollout) {
        let gate = approvals::gate(rollout, observed.approvals, desired_revision, &images, now);
        gate_inputs.approval = gate.approval;
        gate_inputs.approval_ignored = gate.ignored;
    }
    decide(&Observed {
        rollout,
        desired_revision,
        desired_images: &images,
        revisions: observed.revisions,
        gates: &gate_inputs,
        now,
    })
}

/// Creates the AnalysisRuns the plan starts. One that cannot start (a missing template or
/// argument) makes the Rollout Degraded with the reason, and is tried again shortly; its step
/// keeps waiting, since only a Successful run lets it pass.
async fn start_analyses(
    context: &Context,
    rollout: &Rollout,
    desired_revision: &str,
    plan: &mut Plan,
) -> Result<(), Error> {
    if plan.start_analyses.is_empty() {
        return Ok(());
    }
    let revisions = RunRevisions {
        canary: desired_revision.to_owned(),
        stable: plan
            .status
            .stable_revision
            .clone()
            .filter(|stable| stable != desired_revision),
    };
    let problems = runner::start(
        &context.client,
        rollout,
        &plan.start_analyses,
        &revisions,
        plan.status.attempt.unwrap_or(0),
    )
    .await?;
    if !problems.is_empty() {
        plan.status.phase = Some(RolloutPhase::Degraded);
        plan.status.message = Some(format!("analysis cannot start: {}", problems.join("; ")));
        plan.requeue_after = Some(HELD_PLAN_RETRY);
    }
    Ok(())
}

/// Transient errors are retried with a short delay; the controller's own backoff grows it.
pub fn error_policy(
    rollout: Arc<DeserializeGuard<Rollout>>,
    error: &Error,
    context: Arc<Context>,
) -> Action {
    let kind = crate::metrics::ErrorLabels {
        kind: error.metric_label().to_owned(),
    };
    context.metrics.reconcile_errors.get_or_create(&kind).inc();
    if let Error::Stale(_) = error {
        // Not a failure: the newer version is decided at once (its watch event brings it too).
        tracing::debug!(rollout = %rollout.name_any(), %error, "stale read");
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(rollout = %rollout.name_any(), kind = error.metric_label(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}
