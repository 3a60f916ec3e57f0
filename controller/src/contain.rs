//! A panic while reconciling one Rollout stays with that Rollout.
//!
//! [`contained`] runs a reconcile and catches a panic (release builds check arithmetic
//! overflow too: `overflow-checks` in the workspace's release profile, so a bug in the
//! arithmetic on replicas, weights or durations is a caught panic, never a wrapped value). The
//! Rollout is then [`report`]ed: status phase Degraded with the panic's message (a merge patch of
//! phase and message only, so nothing the panicking reconcile computed is written), a Warning
//! Event, and the `rollgate_reconcile_errors{kind="panic"}` counter; it is looked at again in
//! [`RETRY_AFTER_PANIC`], and every other Rollout goes on meanwhile.
//!
//! [`fault_injection`] is the fault injector the end-to-end test uses to make one Rollout's
//! reconcile panic on demand (no schema-valid spec does, by design): it panics for the Rollout
//! named by `ROLLGATE_FAULT_INJECTION_PANIC_ROLLOUT` (`<namespace>/<name>`), and does nothing
//! when the variable is unset, as it is in every deployment.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;
use serde_json::json;

use crate::context::Context;
use crate::events::{self, Activity, Notice};

/// How soon a Rollout whose reconcile panicked is tried again.
pub const RETRY_AFTER_PANIC: Duration = Duration::from_secs(60);

/// The environment variable of the fault injector (tests only).
pub const FAULT_INJECTION_VARIABLE: &str = "ROLLGATE_FAULT_INJECTION_PANIC_ROLLOUT";

/// Runs `reconcile`, returning the panic's payload if it panicked.
pub async fn contained<T>(reconcile: impl Future<Output = T>) -> Result<T, Box<dyn Any + Send>> {
    AssertUnwindSafe(reconcile).catch_unwind().await
}

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Reports a panic (its message, [`panic_message`]) on the Rollout it happened for, and says
/// when to look again.
pub async fn report_panic(
    guarded: &DeserializeGuard<Rollout>,
    panic: String,
    context: &Context,
) -> Action {
    let message = format!(
        "the controller failed on this Rollout (a bug, reported; the other Rollouts go on): {panic}"
    );
    tracing::error!(rollout = %guarded.name_any(), %message, "reconcile panicked");
    let kind = crate::metrics::ErrorLabels {
        kind: "panic".to_owned(),
    };
    context.metrics.reconcile_errors.get_or_create(&kind).inc();
    if let Some(namespace) = guarded.namespace() {
        let rollouts: Api<Rollout> = Api::namespaced(context.client.clone(), &namespace);
        let patch = json!({"status": {"phase": RolloutPhase::Degraded, "message": message}});
        if let Err(error) = rollouts
            .patch_status(
                &guarded.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(%error, "could not report the panic in the Rollout's status");
        }
    }
    let notice = Notice::warning(Activity::Reconcile, "ReconcilePanicked", message);
    events::publish(&context.recorder, &guarded.object_ref(&()), notice).await;
    Action::requeue(RETRY_AFTER_PANIC)
}

/// Panics when the fault injector names `rollout` (see the module docs).
pub fn fault_injection(rollout: &Rollout) {
    let Ok(target) = std::env::var(FAULT_INJECTION_VARIABLE) else {
        return;
    };
    let this = format!(
        "{}/{}",
        rollout.namespace().unwrap_or_default(),
        rollout.name_any()
    );
    if target == this {
        panic!("fault injection: {FAULT_INJECTION_VARIABLE} names {this}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_caught_with_its_message() {
        let caught = contained(async { panic!("overflow in {}", "replicas") }).await;
        let panic = caught.expect_err("caught");
        assert_eq!(panic_message(panic.as_ref()), "overflow in replicas");
        let fine = contained(async { 7 }).await;
        assert_eq!(fine.ok(), Some(7));
    }
}
