//! The Rollout reconciler: fetch (the Rollout's ReplicaSets), decide (the pure state machine),
//! apply (the plan), and report (an Event per transition).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use rollgate_crds::revision::revision_hash;

use crate::context::{Context, Error};
use crate::decide::{Observed, Plan, RevisionState, decide};
use crate::replicaset::{self, ROLLOUT_LABEL};
use crate::{apply, gates, invalid};

/// How soon a Rollout whose plan is held (a Service or HTTPRoute missing or unusable) is looked
/// at again, should no watch event bring it back sooner.
const HELD_PLAN_RETRY: Duration = Duration::from_secs(10);

/// Reconciles one Rollout. A Rollout that cannot be read as a `Rollout` (a field the API
/// server accepted but rollgate cannot represent) is reported with an Event and skipped: it
/// cannot stall the others.
pub async fn reconcile(
    guarded: Arc<DeserializeGuard<Rollout>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    context.metrics.reconciles.inc();
    let mut rollout = match &guarded.0 {
        Ok(rollout) => rollout.clone(),
        Err(invalid) => return invalid::report(&guarded, &invalid.error, &context).await,
    };
    let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(context.client.clone(), &namespace);
    let selector = format!("{ROLLOUT_LABEL}={}", rollout.name_any());
    context.metrics.request("list");
    let listed = replica_sets
        .list(&ListParams::default().labels(&selector))
        .await?;
    let revisions: Vec<_> = listed
        .items
        .iter()
        .filter_map(|rs| replicaset::observe(&rollout, rs))
        .collect();

    let mut plan = plan_for(&rollout, &revisions)?;
    if !plan.transitions.is_empty() {
        // A transition is recorded once: decide it on the latest Rollout, not on a cache that
        // may not yet hold this controller's previous status write.
        let rollouts: Api<Rollout> = Api::namespaced(context.client.clone(), &namespace);
        context.metrics.request("get");
        let latest = rollouts.get(&rollout.name_any()).await?;
        if latest.resource_version() != rollout.resource_version() {
            rollout = latest;
            plan = plan_for(&rollout, &revisions)?;
        }
    }
    let applied = apply::apply(
        &context.client,
        &context.metrics,
        &rollout,
        &plan,
        &revisions,
    )
    .await?;
    if let apply::Applied::Held(reason) = applied {
        tracing::warn!(rollout = %rollout.name_any(), %reason, "plan held; nothing applied");
        return Ok(Action::requeue(HELD_PLAN_RETRY));
    }
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
            .filter(|t| t.reason == "StepCompleted")
            .count();
        if finished > 0 {
            let seconds = Timestamp::now()
                .duration_since(started.0)
                .as_secs_f64()
                .max(0.0);
            context.metrics.step_duration.observe(seconds);
        }
    }

    let reference = rollout.object_ref(&());
    for transition in &plan.transitions {
        tracing::info!(
            rollout = %rollout.name_any(),
            namespace = %namespace,
            reason = transition.reason,
            message = %transition.message,
            "transition"
        );
        let event = Event {
            type_: if transition.reason == "Aborted" || transition.reason == "VerificationFailed" {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: transition.reason.to_owned(),
            note: Some(transition.message.clone()),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        context.metrics.request("event");
        if let Err(error) = context.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "could not publish an event");
        }
    }
    Ok(plan
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

/// Decides the plan for `rollout` given its observed ReplicaSets.
fn plan_for(rollout: &Rollout, revisions: &[RevisionState]) -> Result<Plan, Error> {
    let desired_revision = revision_hash(&rollout.spec.template)?;
    let images = gates::template_images(rollout);
    let gate_inputs = gates::observe(rollout, &images);
    Ok(decide(&Observed {
        rollout,
        desired_revision: &desired_revision,
        desired_images: &images,
        revisions,
        gates: &gate_inputs,
        now: Timestamp::now(),
    }))
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
    tracing::warn!(rollout = %rollout.name_any(), kind = error.metric_label(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}
