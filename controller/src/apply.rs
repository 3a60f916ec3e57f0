//! Makes a plan real, in the order that keeps traffic safe: Service selectors first (so
//! traffic moves to stable before anything scales down), then ReplicaSets, then deletions, then
//! status. Every write is a server-side apply with rollgate's one field manager, forced: the
//! controller owns these fields.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use rollgate_crds::revision::REVISION_LABEL;
use serde_json::json;

use crate::context::{Error, FIELD_MANAGER};
use crate::decide::{Plan, RevisionState};
use crate::metrics::Metrics;
use crate::replicaset;

/// Applies `plan` for `rollout`, whose ReplicaSets were observed as `observed`.
pub async fn apply(
    client: &kube::Client,
    metrics: &Metrics,
    rollout: &Rollout,
    plan: &Plan,
    observed: &[RevisionState],
) -> Result<(), Error> {
    let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();

    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    for service in &plan.services {
        let patch = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service.service},
            "spec": {"selector": {REVISION_LABEL: service.revision}}
        });
        metrics.request("apply");
        services
            .patch(&service.service, &params, &Patch::Apply(&patch))
            .await?;
    }

    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    for wanted in &plan.replica_sets {
        let current = observed
            .iter()
            .find(|state| state.revision == wanted.revision);
        if current.is_some_and(|state| state.replicas == wanted.replicas) {
            continue;
        }
        if current.is_none() && wanted.replicas == 0 {
            continue;
        }
        let replica_set = replicaset::build(rollout, &wanted.revision, wanted.replicas);
        let name = replicaset::name(rollout, &wanted.revision);
        metrics.request("apply");
        replica_sets
            .patch(&name, &params, &Patch::Apply(&replica_set))
            .await?;
    }
    for revision in &plan.delete_revisions {
        let name = replicaset::name(rollout, revision);
        metrics.request("delete");
        match replica_sets
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }

    if rollout.status.as_ref() != Some(&plan.status) {
        let mut status = plan.status.clone();
        // The user action belongs to whoever wrote it; the controller only records its id.
        status.user_action = None;
        let patch = json!({
            "apiVersion": Rollout::api_version(&()),
            "kind": Rollout::kind(&()),
            "metadata": {"name": rollout.name_any()},
            "status": status,
        });
        let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &namespace);
        metrics.request("apply_status");
        rollouts
            .patch_status(&rollout.name_any(), &params, &Patch::Apply(&patch))
            .await?;
    }
    Ok(())
}
