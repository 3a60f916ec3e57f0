//! The Rollout reconciler: fetch (the Rollout's ReplicaSets), decide (the pure state machine),
//! apply (the plan), and report (an Event per transition).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use rollgate_crds::revision::revision_hash;

use crate::context::{Context, Error};
use crate::decide::{Observed, decide};
use crate::replicaset::{self, ROLLOUT_LABEL};
use crate::{apply, gates};

/// Reconciles one Rollout.
pub async fn reconcile(rollout: Arc<Rollout>, context: Arc<Context>) -> Result<Action, Error> {
    let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
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

    let desired_revision = revision_hash(&rollout.spec.template)?;
    let images = gates::template_images(&rollout);
    let gate_inputs = gates::observe(&rollout, &images);
    let plan = decide(&Observed {
        rollout: &rollout,
        desired_revision: &desired_revision,
        desired_images: &images,
        revisions: &revisions,
        gates: &gate_inputs,
        now: Timestamp::now(),
    });
    apply::apply(&context.client, &rollout, &plan, &revisions).await?;

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
        if let Err(error) = context.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "could not publish an event");
        }
    }
    Ok(plan
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

/// Transient errors are retried with a short delay; the controller's own backoff grows it.
pub fn error_policy(rollout: Arc<Rollout>, error: &Error, _context: Arc<Context>) -> Action {
    tracing::warn!(rollout = %rollout.name_any(), kind = error.metric_label(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}
