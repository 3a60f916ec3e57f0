//! Traffic weights on a Gateway API HTTPRoute: which backendRefs are the stable and canary
//! Services, and the route's rules with their weights set. Pure: the writer fetches the route
//! and applies what this returns.
//!
//! The route is read through the `gateway-api` crate's types, so a route that does not have the
//! shape of an HTTPRoute is refused with the reason. The weights are then set on the route's
//! own JSON rather than on a re-serialised copy of the typed value, so fields that the crate's
//! types do not know (a newer Gateway API, an experimental field) are kept as they are.
//!
//! Every rule that sends traffic to the stable Service must also name the canary Service:
//! otherwise part of the traffic could never move, and the rollout would claim a weight the
//! route does not carry. A rule that names neither is left alone (it routes something else).
//! The stable backendRef gets `100 - weight`, the canary's gets `weight`.

use gateway_api::httproutes::{HttpRouteRulesBackendRefs, HttpRouteSpec};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The Gateway API group.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// The HTTPRoute resource (`gateway.networking.k8s.io/v1`, `httproutes`).
pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GATEWAY_API_GROUP, "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// Why the weights cannot be set on a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The route's `spec` is not an HTTPRoute spec.
    #[error("HTTPRoute {route}: spec is not a valid HTTPRoute spec: {reason}")]
    Malformed {
        /// The route's name.
        route: String,
        /// What did not parse.
        reason: String,
    },
    /// No rule sends traffic to the stable Service.
    #[error(
        "HTTPRoute {route}: no rule has a backendRef to the stable Service {stable} (spec.rules[].backendRefs)"
    )]
    NoStableBackend {
        /// The route's name.
        route: String,
        /// The stable Service.
        stable: String,
    },
    /// A rule sends traffic to the stable Service but not to the canary Service.
    #[error(
        "HTTPRoute {route}: spec.rules[{rule}] has a backendRef to the stable Service {stable} but none to the canary Service {canary}"
    )]
    NoCanaryBackend {
        /// The route's name.
        route: String,
        /// Index of the rule.
        rule: usize,
        /// The stable Service.
        stable: String,
        /// The canary Service.
        canary: String,
    },
}

/// What to set on a route: its name, the two Services, and the canary's share of traffic.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a> {
    /// The HTTPRoute's name (for messages).
    pub route: &'a str,
    /// The stable Service's name.
    pub stable_service: &'a str,
    /// The canary Service's name.
    pub canary_service: &'a str,
    /// Percent of traffic for the canary, 0..=100.
    pub canary_weight: i32,
}

/// The route's `spec.rules` with the weights set, or `None` when they already are.
pub fn weighted_rules(spec: &Value, weights: &Weights<'_>) -> Result<Option<Value>, RouteError> {
    let typed: HttpRouteSpec =
        serde_json::from_value(spec.clone()).map_err(|error| RouteError::Malformed {
            route: weights.route.to_owned(),
            reason: error.to_string(),
        })?;
    let canary_weight = weights.canary_weight.clamp(0, 100);
    let mut targets = Vec::new();
    for (index, rule) in typed.rules.iter().flatten().enumerate() {
        let refs = rule.backend_refs.as_deref().unwrap_or_default();
        let position = |service: &str| refs.iter().position(|r| is_service(r, service));
        let stable = position(weights.stable_service);
        let canary = position(weights.canary_service);
        match (stable, canary) {
            (Some(stable), Some(canary)) => {
                targets.push((index, stable, 100 - canary_weight));
                targets.push((index, canary, canary_weight));
            }
            (Some(_), None) => {
                return Err(RouteError::NoCanaryBackend {
                    route: weights.route.to_owned(),
                    rule: index,
                    stable: weights.stable_service.to_owned(),
                    canary: weights.canary_service.to_owned(),
                });
            }
            _ => {}
        }
    }
    if targets.is_empty() {
        return Err(RouteError::NoStableBackend {
            route: weights.route.to_owned(),
            stable: weights.stable_service.to_owned(),
        });
    }
    let mut rules = spec.get("rules").cloned().unwrap_or(Value::Null);
    let mut changed = false;
    for (rule, backend, weight) in targets {
        let Some(slot) = rules
            .get_mut(rule)
            .and_then(|rule| rule.get_mut("backendRefs"))
            .and_then(|refs| refs.get_mut(backend))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if slot.get("weight").and_then(Value::as_i64) != Some(i64::from(weight)) {
            slot.insert("weight".to_owned(), Value::from(weight));
            changed = true;
        }
    }
    Ok(changed.then_some(rules))
}

/// Whether a backendRef points at the Service `name` in the route's own namespace.
fn is_service(backend: &HttpRouteRulesBackendRefs, name: &str) -> bool {
    let core_group = backend.group.as_deref().is_none_or(str::is_empty);
    let service_kind = backend.kind.as_deref().is_none_or(|kind| kind == "Service");
    core_group && service_kind && backend.namespace.is_none() && backend.name == name
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const WEIGHTS: Weights<'static> = Weights {
        route: "web",
        stable_service: "web-stable",
        canary_service: "web-canary",
        canary_weight: 25,
    };

    fn spec(rules: Value) -> Value {
        json!({"parentRefs": [{"name": "gateway"}], "rules": rules})
    }

    #[test]
    fn sets_the_stable_and_canary_weights_and_keeps_every_other_field() {
        let spec = spec(json!([{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "futureField": {"kept": true},
            "backendRefs": [
                {"name": "web-stable", "port": 80, "weight": 100},
                {"name": "web-canary", "port": 80, "weight": 0},
                {"name": "mirror", "port": 80, "weight": 7}
            ]
        }]));
        let rules = weighted_rules(&spec, &WEIGHTS).unwrap().expect("changed");
        assert_eq!(rules[0]["backendRefs"][0]["weight"], 75);
        assert_eq!(rules[0]["backendRefs"][1]["weight"], 25);
        assert_eq!(rules[0]["backendRefs"][2]["weight"], 7);
        assert_eq!(rules[0]["futureField"], json!({"kept": true}));
        assert_eq!(rules[0]["matches"], spec["rules"][0]["matches"]);
    }

    #[test]
    fn reports_no_change_when_the_weights_are_already_set() {
        let spec = spec(json!([{"backendRefs": [
            {"name": "web-stable", "weight": 75},
            {"name": "web-canary", "weight": 25}
        ]}]));
        assert_eq!(weighted_rules(&spec, &WEIGHTS).unwrap(), None);
    }

    #[test]
    fn sets_weights_in_every_rule_that_names_the_services_and_leaves_others() {
        let spec = spec(json!([
            {"backendRefs": [{"name": "web-stable"}, {"name": "web-canary"}]},
            {"backendRefs": [{"name": "static"}]},
            {"backendRefs": [{"name": "web-canary"}, {"name": "web-stable"}]}
        ]));
        let rules = weighted_rules(&spec, &WEIGHTS).unwrap().expect("changed");
        assert_eq!(rules[0]["backendRefs"][0]["weight"], 75);
        assert_eq!(rules[0]["backendRefs"][1]["weight"], 25);
        assert!(rules[1]["backendRefs"][0].get("weight").is_none());
        assert_eq!(rules[2]["backendRefs"][0]["weight"], 25);
        assert_eq!(rules[2]["backendRefs"][1]["weight"], 75);
    }

    #[test]
    fn a_rule_with_the_stable_service_but_no_canary_is_refused_with_its_index() {
        let spec = spec(json!([
            {"backendRefs": [{"name": "web-stable"}, {"name": "web-canary"}]},
            {"backendRefs": [{"name": "web-stable"}]}
        ]));
        let error = weighted_rules(&spec, &WEIGHTS).unwrap_err();
        assert_eq!(
            error.to_string(),
            "HTTPRoute web: spec.rules[1] has a backendRef to the stable Service web-stable but none to the canary Service web-canary"
        );
    }

    #[test]
    fn a_route_without_the_stable_service_is_refused() {
        let spec = spec(json!([{"backendRefs": [{"name": "other"}]}]));
        assert!(matches!(
            weighted_rules(&spec, &WEIGHTS),
            Err(RouteError::NoStableBackend { .. })
        ));
        assert!(matches!(
            weighted_rules(&json!({}), &WEIGHTS),
            Err(RouteError::NoStableBackend { .. })
        ));
    }

    #[test]
    fn refs_to_other_kinds_or_namespaces_are_not_the_services() {
        let spec = spec(json!([{"backendRefs": [
            {"name": "web-stable", "namespace": "elsewhere"},
            {"name": "web-stable", "group": "example.com", "kind": "Bucket"},
            {"name": "web-canary", "kind": "Service", "group": ""}
        ]}]));
        assert!(matches!(
            weighted_rules(&spec, &WEIGHTS),
            Err(RouteError::NoStableBackend { .. })
        ));
    }

    #[test]
    fn a_spec_that_is_not_an_http_route_is_refused_with_the_reason() {
        let error = weighted_rules(&json!({"rules": "everything"}), &WEIGHTS).unwrap_err();
        assert!(matches!(error, RouteError::Malformed { .. }), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("HTTPRoute web: spec is not a valid HTTPRoute spec")
        );
    }

    #[test]
    fn full_promotion_and_abort_weights() {
        let spec = spec(json!([{"backendRefs": [{"name": "web-stable"}, {"name": "web-canary"}]}]));
        for (weight, stable, canary) in [(0, 100, 0), (100, 0, 100), (150, 0, 100)] {
            let weights = Weights {
                canary_weight: weight,
                ..WEIGHTS
            };
            let rules = weighted_rules(&spec, &weights).unwrap().expect("changed");
            assert_eq!(rules[0]["backendRefs"][0]["weight"], stable);
            assert_eq!(rules[0]["backendRefs"][1]["weight"], canary);
        }
    }
}
