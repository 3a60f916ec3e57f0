//! Which Rollouts a change to a Service or an HTTPRoute concerns: those whose strategy names
//! it, in the same namespace. The controller watches both kinds (metadata only, nothing
//! stored) so that a Rollout held for a missing Service or route moves on as soon as it
//! appears, and a route edited by hand gets its weights back.

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use rollgate_crds::Rollout;

/// The names a Rollout's strategy refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Referent<'a> {
    /// A Service (stable, canary, active or preview).
    Service(&'a str),
    /// An HTTPRoute (canary traffic routing).
    HttpRoute(&'a str),
}

/// Whether `rollout`'s strategy names `referent`.
pub fn names(rollout: &Rollout, referent: Referent<'_>) -> bool {
    let strategy = &rollout.spec.strategy;
    match referent {
        Referent::Service(name) => {
            let canary = strategy.canary.iter().flat_map(|canary| {
                [
                    canary.stable_service.as_deref(),
                    canary.canary_service.as_deref(),
                ]
            });
            let blue_green = strategy.blue_green.iter().flat_map(|blue_green| {
                [
                    Some(blue_green.active_service.as_str()),
                    blue_green.preview_service.as_deref(),
                ]
            });
            canary
                .chain(blue_green)
                .flatten()
                .any(|service| service == name)
        }
        Referent::HttpRoute(name) => strategy
            .canary
            .as_ref()
            .and_then(|canary| canary.traffic_routing.as_ref())
            .and_then(|routing| routing.gateway_api.as_ref())
            .is_some_and(|gateway| gateway.http_route == name),
    }
}

/// The Rollouts in `namespace` (from the controller's store) whose strategy names `referent`.
pub fn rollouts_naming(
    store: &Store<DeserializeGuard<Rollout>>,
    namespace: Option<&str>,
    referent: Referent<'_>,
) -> Vec<ObjectRef<DeserializeGuard<Rollout>>> {
    store
        .state()
        .iter()
        .filter(|guarded| guarded.namespace().as_deref() == namespace)
        .filter(|guarded| {
            guarded
                .0
                .as_ref()
                .is_ok_and(|rollout| names(rollout, referent))
        })
        .map(|guarded| ObjectRef::from_obj(guarded.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rollout(strategy: serde_json::Value) -> Rollout {
        crate::decide::tests::rollout(strategy, 1)
    }

    #[test]
    fn a_canary_names_its_services_and_route() {
        let rollout = rollout(json!({"canary": {
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}
        }}));
        assert!(names(&rollout, Referent::Service("web-stable")));
        assert!(names(&rollout, Referent::Service("web-canary")));
        assert!(names(&rollout, Referent::HttpRoute("web")));
        assert!(!names(&rollout, Referent::Service("web")));
        assert!(!names(&rollout, Referent::HttpRoute("web-stable")));
    }

    #[test]
    fn a_blue_green_names_its_active_and_preview_services() {
        let rollout = rollout(json!({"blueGreen": {
            "activeService": "web-active",
            "previewService": "web-preview"
        }}));
        assert!(names(&rollout, Referent::Service("web-active")));
        assert!(names(&rollout, Referent::Service("web-preview")));
        assert!(!names(&rollout, Referent::HttpRoute("web")));
    }
}
