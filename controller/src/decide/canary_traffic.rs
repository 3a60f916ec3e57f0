//! The canary's traffic and pods for a weight: the ReplicaSet scales (paced within surge and
//! unavailability, or on top of stable with a router), the Service selectors, the route's
//! weights, and how far a router may move traffic before the canary's pods are there.

use rollgate_crds::rollout::CanaryStrategy;

use super::replicas::{self, Current};
use super::{Observed, ReplicaSetPlan, RoutePlan, ServicePlan, revision_state};

/// The ReplicaSet scales for `weight`, paced within surge and unavailability: the canary's
/// first, then the stable revision's. `paced: false` skips pacing. With a router the stable
/// revision keeps every pod and the canary's pods come on top (the route, not the pod count,
/// splits the traffic), so surge and unavailability do not apply, as in Argo Rollouts.
pub(super) fn scale(
    observed: &Observed<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    weight: i32,
    paced: bool,
) -> Vec<ReplicaSetPlan> {
    let desired = observed.rollout.spec.desired_replicas();
    let routed = canary.traffic_routing.is_some();
    let targets = replicas::targets(desired, weight, routed);
    let next = if paced && !routed {
        let current = |revision: &str| {
            revision_state(observed, revision)
                .map(|state| Current {
                    replicas: state.replicas,
                    available: state.available,
                })
                .unwrap_or_default()
        };
        let surge = replicas::resolve(canary.max_surge.as_ref(), desired, true);
        let unavailable = replicas::resolve(canary.max_unavailable.as_ref(), desired, false);
        replicas::next_step(
            current(observed.desired_revision),
            current(stable),
            targets,
            desired,
            surge,
            unavailable,
        )
    } else {
        targets
    };
    vec![
        ReplicaSetPlan {
            revision: observed.desired_revision.to_owned(),
            replicas: next.canary,
        },
        ReplicaSetPlan {
            revision: stable.to_owned(),
            replicas: next.stable,
        },
    ]
}

pub(super) fn services(canary: &CanaryStrategy, stable: &str, current: &str) -> Vec<ServicePlan> {
    let mut plans = Vec::new();
    if let Some(service) = &canary.stable_service {
        plans.push(ServicePlan {
            service: service.clone(),
            revision: stable.to_owned(),
        });
    }
    if let Some(service) = &canary.canary_service {
        plans.push(ServicePlan {
            service: service.clone(),
            revision: current.to_owned(),
        });
    }
    plans
}

pub(super) fn route(canary: &CanaryStrategy, weight: i32) -> Option<RoutePlan> {
    let gateway = canary.traffic_routing.as_ref()?.gateway_api.as_ref()?;
    Some(RoutePlan {
        http_route: gateway.http_route.clone(),
        stable_service: canary.stable_service.clone().unwrap_or_default(),
        canary_service: canary.canary_service.clone().unwrap_or_default(),
        canary_weight: weight,
    })
}

/// With a router, the weight the route may carry now: a lower weight at once (traffic leaves
/// the canary before it shrinks), a higher one only once the canary has the pods to serve it,
/// so the route never sends traffic to pods that are not there.
pub(super) fn routed_weight(observed: &Observed<'_>, routed_now: i32, step_weight: i32) -> i32 {
    if step_weight <= routed_now {
        return step_weight;
    }
    let needed =
        replicas::targets(observed.rollout.spec.desired_replicas(), step_weight, true).canary;
    let available =
        revision_state(observed, observed.desired_revision).map_or(0, |state| state.available);
    if available >= needed {
        step_weight
    } else {
        routed_now
    }
}
