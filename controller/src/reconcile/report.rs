//! The report stage: after the plan is applied, one place publishes what it did. An Event and
//! a log line for each audited event (a Warning where the event says so), the AuditRecords
//! the status write committed, the Events for approvals that stopped counting and for each
//! image verdict when the verification result is new, and the metrics (phase, step duration).

use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use rollgate_crds::RolloutStatus;
use rollgate_crds::rollout::condition_types;

use super::fetch::Fetched;
use crate::audit::Flushed;
use crate::audit::events::Audited;
use crate::context::Context;
use crate::decide::{Plan, TransitionKind};
use crate::events::{self, Activity, Notice};
use crate::{approvals, verification};

/// Publishes what applying `plan` to the fetched Rollout did; returns how far the audit log
/// got with the records the status write committed.
pub async fn report(
    context: &Context,
    fetched: &Fetched,
    plan: &Plan,
    audited: &[Audited],
) -> Flushed {
    let rollout = &fetched.rollout;
    let old = rollout.status.as_ref();
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
    approvals::report_ignored(
        &context.recorder,
        &fetched.approvals,
        old.and_then(|status| status.gate.as_ref()),
        plan.status.gate.as_ref(),
    )
    .await;
    if let Some(verified) = &fetched.verified
        && verification_changed(old, plan)
    {
        verification::publish_verdicts(&context.recorder, rollout, &verified.verdict).await;
    }
    record_metrics(context, rollout, plan);
    flushed
}

/// The phase gauge, and the step duration when the plan completed a step.
fn record_metrics(context: &Context, rollout: &rollgate_crds::Rollout, plan: &Plan) {
    if let Some(phase) = plan.status.phase {
        context.metrics.set_phase(
            format!(
                "{}/{}",
                rollout.namespace().unwrap_or_default(),
                rollout.name_any()
            ),
            format!("{phase:?}"),
        );
    }
    let step_started = rollout
        .status
        .as_ref()
        .and_then(|status| status.step_start_time.as_ref());
    let completed_a_step = plan
        .transitions
        .iter()
        .any(|t| t.kind == TransitionKind::StepCompleted);
    if let Some(started) = step_started
        && completed_a_step
    {
        let seconds = Timestamp::now()
            .duration_since(started.0)
            .as_secs_f64()
            .max(0.0);
        context.metrics.step_duration.observe(seconds);
    }
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
