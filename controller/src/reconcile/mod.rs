//! The Rollout reconciler, as a pipeline of stages: [`fetch`] everything once, decide (pure:
//! [`plan`], the gate inputs and the state machine), apply (create the analyses the plan starts,
//! commit its audit records, [`crate::apply`] its writes, end stale analyses), and [`report`]
//! (Events, audit records, metrics). `reconcile_rollout` reads top to bottom in that order.

mod fetch;
mod plan;
mod report;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use rollgate_crds::Rollout;
use rollgate_crds::analysis::RunRevisions;

use crate::analysis::runner;
use crate::audit::events::audit_events;
use crate::context::Context;
use crate::decide::{Plan, held};
use crate::error::Error;
use crate::{apply, invalid};
use fetch::Fetched;

/// How soon a Rollout whose plan is held (a Service or HTTPRoute missing or unusable) is looked
/// at again, should no watch event bring it back sooner.
const HELD_PLAN_RETRY: Duration = Duration::from_secs(10);

/// The longest a reconcile waits before looking again, whatever a pause or deadline says (a
/// timer far in the future is never armed).
const MAX_REQUEUE: Duration = Duration::from_secs(3600);

/// The longest one reconcile may take. One that takes longer is abandoned and retried, so a call
/// that never returns cannot hold one of the `--concurrency` slots (and its Rollout) for good.
/// Every write is idempotent or conditional, and a transition's audit records are committed by
/// its status write, so a reconcile dropped at any await leaves nothing half-applied that the
/// retry does not finish. Well above a registry-bound verification (30 s per image by default).
const RECONCILE_DEADLINE: Duration = Duration::from_secs(120);

/// Reconciles one Rollout, containing a panic: it is reported on that Rollout (see
/// [`crate::contain`]) and the Rollout is looked at again later, while the others go on. A
/// reconcile longer than [`RECONCILE_DEADLINE`] is abandoned and retried.
pub async fn reconcile(
    guarded: Arc<DeserializeGuard<Rollout>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let reconciling = async {
        tokio::time::timeout(
            RECONCILE_DEADLINE,
            reconcile_rollout(guarded.clone(), context.clone()),
        )
        .await
        .unwrap_or(Err(Error::Deadline(RECONCILE_DEADLINE)))
    };
    let panic = match crate::contain::contained(reconciling).await {
        Ok(result) => return result,
        Err(panic) => crate::contain::panic_message(panic.as_ref()),
    };
    Ok(crate::contain::report_panic(&guarded, panic, &context).await)
}

/// Reconciles one Rollout: fetch, decide, apply, report. A Rollout that cannot be read as a
/// `Rollout` (a field the API server accepted but rollgate cannot represent) is reported with
/// an Event and skipped: it cannot stall the others.
async fn reconcile_rollout(
    guarded: Arc<DeserializeGuard<Rollout>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    context.metrics.reconciles.inc();
    let rollout = match &guarded.0 {
        Ok(rollout) => rollout.clone(),
        Err(invalid) => return invalid::skip_unreadable(&guarded, &invalid.error, &context).await,
    };
    crate::contain::fault_injection(&rollout);
    // Sharded: only the replica holding the Rollout's shard writes for it, and holds the shard
    // for the whole reconcile (see `crate::shards`).
    let Some(shard) = context
        .shards
        .hold(&rollout.uid().unwrap_or_default())
        .await
    else {
        return Ok(Action::await_change());
    };
    let rollout = fetch::fresh(&context, rollout).await?;
    // Audit: write what an earlier status write committed and a crash left unwritten.
    let backlog = context.audit.flush_committed(&rollout).await;
    let fetched = fetch::fetch(&context, rollout).await?;

    let mut plan = plan::plan(&fetched, Timestamp::now());
    let problems = start_analyses(&context, &fetched, &plan).await?;
    held::analyses_cannot_start(&mut plan, &problems, HELD_PLAN_RETRY);
    // Audit: the plan's records are committed with its status write (the outbox).
    let audited = audit_events(&fetched.rollout, &plan);
    let events = audited
        .iter()
        .map(|audited| audited.event.clone())
        .collect();
    plan.status.audit_outbox = context.audit.prepare(&fetched.rollout, events).await?;

    if !shard.valid() {
        return Ok(Action::requeue(HELD_PLAN_RETRY));
    }
    let applied = apply::apply(
        &context.client,
        &context.written,
        &fetched.rollout,
        &plan,
        &fetched.revisions,
    )
    .await?;
    if let apply::Applied::Held(reason) = applied {
        tracing::warn!(rollout = %fetched.rollout.name_any(), %reason, "plan held; nothing applied");
        return Ok(Action::requeue(HELD_PLAN_RETRY));
    }
    let attempt = plan.status.attempt.unwrap_or(0);
    runner::terminate_stale(
        &context.client,
        &fetched.runs,
        &fetched.desired_revision,
        attempt,
        plan.status.phase,
    )
    .await?;

    let flushed = report::report(&context, &fetched, &plan, &audited).await;
    let verify_again = fetched.verified.as_ref().and_then(|v| v.retry_after);
    let retries = [verify_again, backlog.retry_after, flushed.retry_after];
    Ok(next_look(plan.requeue_after, retries))
}

/// When to look at the Rollout again: the soonest of what the plan asks for (a timed pause, a
/// deadline) and the retries (verification, the audit log), at most [`MAX_REQUEUE`] away;
/// otherwise only when something changes.
fn next_look(requested: Option<Duration>, retries: [Option<Duration>; 3]) -> Action {
    let soonest = retries.into_iter().chain([requested]).flatten().min();
    soonest.map_or_else(Action::await_change, |after| {
        Action::requeue(after.min(MAX_REQUEUE))
    })
}

/// Creates the AnalysisRuns the plan starts; returns, for each that cannot start, why (a
/// missing template or argument).
async fn start_analyses(
    context: &Context,
    fetched: &Fetched,
    plan: &Plan,
) -> Result<Vec<String>, Error> {
    if plan.start_analyses.is_empty() {
        return Ok(Vec::new());
    }
    let desired = &fetched.desired_revision;
    let revisions = RunRevisions {
        canary: desired.clone(),
        stable: plan
            .status
            .stable_revision
            .clone()
            .filter(|stable| stable != desired),
    };
    runner::start(
        &context.client,
        &fetched.rollout,
        &plan.start_analyses,
        &revisions,
        plan.status.attempt.unwrap_or(0),
    )
    .await
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
