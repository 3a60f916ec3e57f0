//! A Rollout that the API server stored but rollgate cannot read (a schema changed under it, a
//! field out of range for rollgate's types): reported with a Warning Event that names the field
//! and the reason, and then left alone until it changes, so it cannot stall the others.

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, DeserializeGuard};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use serde_json::Value;

use crate::context::Context;
use crate::error::Error;
use crate::events::{self, Activity, Notice};

/// Reports the unreadable Rollout behind `guarded`; `error` is what deserialising it said.
pub async fn skip_unreadable(
    guarded: &DeserializeGuard<Rollout>,
    error: &str,
    context: &Context,
) -> Result<Action, Error> {
    let name = guarded.name_any();
    // The guard's error has no path: read the object again and find the field.
    let reason = match raw_rollout(guarded, context).await {
        Some(raw) => field_error(&raw).unwrap_or_else(|| error.to_owned()),
        None => error.to_owned(),
    };
    tracing::warn!(rollout = %name, %reason, "the Rollout cannot be read; skipped");
    let kind = crate::metrics::ErrorLabels {
        kind: "invalid_object".to_owned(),
    };
    context.metrics.reconcile_errors.get_or_create(&kind).inc();
    events::publish(
        &context.recorder,
        &guarded.object_ref(&()),
        Notice::warning(
            Activity::Reconcile,
            "InvalidRollout",
            format!("rollgate cannot read this Rollout: {reason}"),
        ),
    )
    .await;
    Ok(Action::await_change())
}

async fn raw_rollout(guarded: &DeserializeGuard<Rollout>, context: &Context) -> Option<Value> {
    let namespace = guarded.namespace()?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        context.client.clone(),
        &namespace,
        &ApiResource::erase::<Rollout>(&()),
    );
    let object = api.get(&guarded.name_any()).await.ok()?;
    serde_json::to_value(object).ok()
}

/// Where and why `raw` does not read as a Rollout: `<field path>: <reason>`, or `None` when it
/// does.
pub fn field_error(raw: &Value) -> Option<String> {
    let deserializer = raw.clone();
    match serde_path_to_error::deserialize::<_, Rollout>(deserializer) {
        Ok(_) => None,
        Err(error) => Some(format!("{}: {}", error.path(), error.inner())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rollout(spec_patch: (&str, Value)) -> Value {
        let valid =
            crate::decide::tests::rollout(json!({"canary": {"steps": [{"setWeight": 50}]}}), 1);
        let mut raw = serde_json::to_value(valid).expect("a Rollout serialises");
        raw["spec"][spec_patch.0] = spec_patch.1;
        raw
    }

    #[test]
    fn names_the_field_that_does_not_read() {
        let error = field_error(&rollout(("revisionHistoryLimit", json!("ten")))).expect("error");
        assert!(error.starts_with("spec.revisionHistoryLimit: "), "{error}");
        assert!(error.contains("\"ten\""), "{error}");
    }

    #[test]
    fn names_a_nested_field() {
        let raw = rollout((
            "strategy",
            json!({"canary": {"steps": [{"setWeight": 50}, {"setWeight": "half"}]}}),
        ));
        let error = field_error(&raw).expect("error");
        assert!(
            error.starts_with("spec.strategy.canary.steps[1].setWeight: "),
            "{error}"
        );
    }

    #[test]
    fn a_readable_rollout_has_no_error() {
        assert_eq!(field_error(&rollout(("replicas", json!(3)))), None);
    }
}
