//! Makes a plan real, in the order that keeps traffic safe: Service selectors first, then the
//! HTTPRoute's weights (so traffic moves to stable before anything scales down), then
//! ReplicaSets, then deletions, then status. Every write is a server-side apply with rollgate's
//! one field manager, forced: the controller owns these fields.
//!
//! The route's `spec.rules` is an atomic list, so applying the weights makes rollgate the owner
//! of the whole list: the rules are sent back exactly as read, with only the two weights
//! changed. A GitOps tool that syncs the HTTPRoute should ignore the backendRefs' weights (as
//! with Argo Rollouts), or it will undo them until rollgate sets them again.
//!
//! A Service or HTTPRoute the strategy names but that does not exist (or a route that does not
//! send the stable Service's traffic through the canary Service too) holds the plan before any
//! ReplicaSet changes: the Rollout goes Degraded with a message naming the object, and the
//! controller looks again when it appears (Services and HTTPRoutes are watched) or shortly.
//! So does a Service or HTTPRoute that has not opted in to the Rollout
//! ([`rollgate_crds::managed_by`]): the controller never writes an object for a Rollout's author
//! that the object's own editors did not hand to that Rollout.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use rollgate_crds::Rollout;
use rollgate_crds::managed_by::opt_in;
use rollgate_crds::names::REVISION_LABEL;
use rollgate_crds::rollout::RolloutStatus;
use serde_json::json;

use crate::decide::{Plan, RevisionState, RoutePlan, held};
use crate::error::Error;
use crate::freshness::{self, WrittenStatuses};
use crate::replicaset;
use crate::route::{self, Weights};
use crate::write::{self, FieldManager, Part};

/// What applying a plan came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Everything was applied.
    Complete,
    /// The plan cannot be applied for this reason (a Service or HTTPRoute is missing or
    /// unusable); nothing but status was written.
    Held(String),
}

/// Applies `plan` for `rollout`, whose ReplicaSets were observed as `observed`.
pub async fn apply(
    client: &kube::Client,
    written: &WrittenStatuses,
    rollout: &Rollout,
    plan: &Plan,
    observed: &[RevisionState],
) -> Result<Applied, Error> {
    let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
    let writer = Writer {
        client,
        written,
        namespace: &namespace,
        rollout,
    };
    let held = match writer.services(plan).await? {
        Some(reason) => Some(reason),
        None => match &plan.route {
            Some(route) => writer.route(route).await?,
            None => None,
        },
    };
    if let Some(reason) = held {
        // Nothing that moves traffic or pods happened: keep the status as it was, but say why.
        writer
            .status(&held::held(rollout.status.as_ref(), &reason))
            .await?;
        return Ok(Applied::Held(reason));
    }
    writer.replica_sets(plan, observed).await?;
    writer.status(&plan.status).await?;
    Ok(Applied::Complete)
}

/// Writes one Rollout's objects.
struct Writer<'a> {
    client: &'a kube::Client,
    written: &'a WrittenStatuses,
    namespace: &'a str,
    rollout: &'a Rollout,
}

impl Writer<'_> {
    /// Points each Service's selector at its revision; returns why it cannot (Services that do
    /// not exist, or have not opted in to the Rollout), writing none of them then.
    async fn services(&self, plan: &Plan) -> Result<Option<String>, Error> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), self.namespace);
        let mut missing = Vec::new();
        let mut refused = Vec::new();
        for service in &plan.services {
            match services.get_opt(&service.service).await? {
                None => missing.push(service.service.clone()),
                Some(found) => refused.extend(opt_in(&found.metadata, self.rollout).refusal(
                    "Service",
                    &service.service,
                    &self.rollout.name_any(),
                )),
            }
        }
        if !missing.is_empty() {
            return Ok(Some(format!(
                "the strategy names Services that do not exist: {}",
                missing.join(", ")
            )));
        }
        if !refused.is_empty() {
            return Ok(Some(refused.join("; ")));
        }
        for service in &plan.services {
            let body = write::partial::<Service>(
                json!({"name": service.service}),
                [(
                    "spec",
                    json!({"selector": {REVISION_LABEL: service.revision}}),
                )],
            );
            write::apply(
                &services,
                FieldManager::Controller,
                Part::Object,
                &service.service,
                &body,
            )
            .await?;
        }
        Ok(None)
    }

    /// Sets the planned weights on the HTTPRoute; returns why it cannot, if it cannot.
    async fn route(&self, plan: &RoutePlan) -> Result<Option<String>, Error> {
        let routes: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            self.namespace,
            &route::http_route_resource(),
        );
        let found = match routes.get_opt(&plan.http_route).await {
            Ok(found) => found,
            // Without the Gateway API CRDs the resource itself is unknown.
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(error) => return Err(error.into()),
        };
        let Some(found) = found else {
            return Ok(Some(format!(
                "the HTTPRoute {} named by spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute does not exist",
                plan.http_route
            )));
        };
        let refusal = opt_in(&found.metadata, self.rollout).refusal(
            "HTTPRoute",
            &plan.http_route,
            &self.rollout.name_any(),
        );
        if refusal.is_some() {
            return Ok(refusal);
        }
        let spec = found.data.get("spec").cloned().unwrap_or_default();
        let weights = Weights {
            route: &plan.http_route,
            stable_service: &plan.stable_service,
            canary_service: &plan.canary_service,
            canary_weight: plan.canary_weight,
        };
        let rules = match route::weighted_rules(&spec, &weights) {
            Ok(Some(rules)) => rules,
            Ok(None) => return Ok(None),
            Err(error) => return Ok(Some(error.to_string())),
        };
        let resource = route::http_route_resource();
        let patch = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": plan.http_route},
            "spec": {"rules": rules},
        });
        write::apply(
            &routes,
            FieldManager::Controller,
            Part::Object,
            &plan.http_route,
            &patch,
        )
        .await?;
        Ok(None)
    }

    /// Scales (or creates) the planned ReplicaSets and deletes retired ones.
    async fn replica_sets(&self, plan: &Plan, observed: &[RevisionState]) -> Result<(), Error> {
        let replica_sets: Api<ReplicaSet> = Api::namespaced(self.client.clone(), self.namespace);
        for wanted in &plan.replica_sets {
            let current = observed
                .iter()
                .find(|state| state.revision == wanted.revision);
            if current.is_some_and(|state| state.replicas == wanted.replicas)
                || (current.is_none() && wanted.replicas == 0)
            {
                continue;
            }
            let name = replicaset::name(self.rollout, &wanted.revision);
            if current.is_some() {
                // An existing ReplicaSet keeps its own revision's pod template: only its scale
                // changes. (The Rollout's template is the desired revision's, not the stable's.)
                let scale = json!({"spec": {"replicas": wanted.replicas}});
                replica_sets
                    .patch_scale(
                        &name,
                        &PatchParams {
                            field_manager: Some(FieldManager::Controller.name().to_owned()),
                            ..PatchParams::default()
                        },
                        &Patch::Merge(&scale),
                    )
                    .await?;
                continue;
            }
            if plan.status.current_revision.as_deref() != Some(wanted.revision.as_str()) {
                // Only the desired revision's template is known; an old revision whose
                // ReplicaSet is gone cannot be made again.
                tracing::warn!(rollout = %self.rollout.name_any(), revision = %wanted.revision, "the ReplicaSet of an old revision is missing; it is not recreated");
                continue;
            }
            let replica_set = replicaset::build(self.rollout, &wanted.revision, wanted.replicas);
            write::apply(
                &replica_sets,
                FieldManager::Controller,
                Part::Object,
                &name,
                &replica_set,
            )
            .await?;
        }
        for revision in &plan.delete_revisions {
            let name = replicaset::name(self.rollout, revision);
            match replica_sets
                .delete(&name, &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Writes `status` when it differs from what the Rollout has, on the condition that the
    /// Rollout is still the version the decision was made from (see [`crate::freshness`]).
    async fn status(&self, status: &RolloutStatus) -> Result<(), Error> {
        if self.rollout.status.as_ref() == Some(status) {
            return Ok(());
        }
        let mut owned = status.clone();
        // The user action belongs to whoever wrote it; the controller only records its id.
        owned.user_action = None;
        // The audit chain head has a field manager of its own (see `crate::audit`).
        owned.audit_head = None;
        let body = write::partial::<Rollout>(
            freshness::precondition(self.rollout),
            [(
                "status",
                serde_json::to_value(owned).map_err(kube::Error::SerdeError)?,
            )],
        );
        let rollouts: Api<Rollout> = Api::namespaced(self.client.clone(), self.namespace);
        let name = self.rollout.name_any();
        match write::apply(
            &rollouts,
            FieldManager::Controller,
            Part::Status,
            &name,
            &body,
        )
        .await
        {
            Ok(_) => {
                self.written.record(self.rollout, status);
                Ok(())
            }
            Err(error) if freshness::is_conflict(&error) => {
                Err(Error::Stale(format!("rollout {}", self.rollout.name_any())))
            }
            Err(error) => Err(error.into()),
        }
    }
}
