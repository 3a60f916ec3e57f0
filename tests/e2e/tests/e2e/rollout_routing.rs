//! A canary routed through a Gateway API HTTPRoute, on the real cluster with the Gateway API
//! CRDs generated from the `gateway-api` crate: the route's backendRef weights follow the steps,
//! the stable revision keeps all its pods until the end, an abort sends all traffic back to
//! stable before the canary scales down, and a route missing its canary backendRef holds the
//! Rollout with the reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, PostParams};
use rollgate_controller::route::http_route_resource;
use rollgate_crds::Rollout;
use rollgate_crds::names::MANAGED_BY_ANNOTATION;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{TestNamespace, manifests, shared_cluster, shared_controller};
use serde_json::{Value, json};

use crate::rollouts::{
    DIGEST_V1, DIGEST_V2, at, healthy, in_phase, promote, request, set_digest, wait_for,
    wait_for_scale,
};

struct Routed {
    rollouts: Api<Rollout>,
    replica_sets: Api<ReplicaSet>,
    routes: Api<DynamicObject>,
    _namespace: TestNamespace,
}

/// A namespace with `<app>-stable` and `<app>-canary` Services and an HTTPRoute `<app>` whose
/// one rule has the given backendRefs.
async fn routed(app: &str, backend_refs: Value) -> anyhow::Result<Routed> {
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, app).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace.name());
    for name in [format!("{app}-stable"), format!("{app}-canary")] {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {MANAGED_BY_ANNOTATION: app}},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}
        }))?;
        services.create(&PostParams::default(), &service).await?;
    }
    let routes: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace.name(), &http_route_resource());
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": app, "annotations": {MANAGED_BY_ANNOTATION: app}},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "hostnames": [format!("{app}.example")],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": backend_refs
            }]
        }
    }))?;
    routes.create(&PostParams::default(), &route).await?;
    Ok(Routed {
        rollouts: Api::namespaced(client.clone(), namespace.name()),
        replica_sets: Api::namespaced(client, namespace.name()),
        routes,
        _namespace: namespace,
    })
}

fn routed_canary(app: &str, steps: Value) -> anyhow::Result<Rollout> {
    let strategy = json!({"canary": {
        "stableService": format!("{app}-stable"),
        "canaryService": format!("{app}-canary"),
        "trafficRouting": {"gatewayAPI": {"httpRoute": app}},
        "steps": steps
    }});
    manifests::rollout(app, 4, DIGEST_V1, strategy)
}

impl Routed {
    /// The route's (stable, canary) weights, by backendRef name.
    async fn weights(&self, app: &str) -> anyhow::Result<(Option<i64>, Option<i64>)> {
        let route = self.routes.get(app).await?;
        let refs = route.data["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let weight = |name: String| {
            refs.iter()
                .find(|r| r["name"] == name.as_str())
                .and_then(|r| r["weight"].as_i64())
        };
        Ok((
            weight(format!("{app}-stable")),
            weight(format!("{app}-canary")),
        ))
    }

    /// Waits until the route carries `(stable, canary)` weights.
    async fn wait_for_weights(&self, app: &str, stable: i64, canary: i64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let weights = self.weights(app).await?;
            if weights == (Some(stable), Some(canary)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("the route carries {weights:?}, not ({stable}, {canary})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn initial_refs(app: &str) -> Value {
    json!([
        {"name": format!("{app}-stable"), "port": 80, "weight": 100},
        {"name": format!("{app}-canary"), "port": 80, "weight": 0}
    ])
}

#[tokio::test]
async fn http_route_weights_follow_the_steps() -> anyhow::Result<()> {
    let app = "mall";
    let r = routed(app, initial_refs(app)).await?;
    let steps = json!([
        {"setWeight": 20}, {"pause": {}},
        {"setWeight": 60}, {"pause": {}}
    ]);
    r.rollouts
        .create(&PostParams::default(), &routed_canary(app, steps)?)
        .await?;
    let first = wait_for(&r.rollouts, app, "v1 Healthy", healthy(None)).await?;
    let v1 = first.status.and_then(|s| s.stable_revision).expect("v1");
    r.wait_for_weights(app, 100, 0).await?;

    set_digest(&r.rollouts, app, DIGEST_V2).await?;
    let paused = wait_for(
        &r.rollouts,
        app,
        "20% and a pause",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    let v2 = paused
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .expect("v2");
    assert_eq!(paused.status.and_then(|s| s.canary_weight), Some(20));
    r.wait_for_weights(app, 80, 20).await?;
    // With a router the stable revision keeps all its pods; the canary gets enough for 20%.
    wait_for_scale(
        &r.replica_sets,
        app,
        BTreeMap::from([(v1.clone(), 4), (v2.clone(), 1)]),
    )
    .await?;

    promote(&r.rollouts, app, "promote-1").await?;
    wait_for(
        &r.rollouts,
        app,
        "60% and a pause",
        at(3, RolloutPhase::Paused),
    )
    .await?;
    r.wait_for_weights(app, 40, 60).await?;
    wait_for_scale(
        &r.replica_sets,
        app,
        BTreeMap::from([(v1.clone(), 4), (v2.clone(), 3)]),
    )
    .await?;

    promote(&r.rollouts, app, "promote-2").await?;
    wait_for(&r.rollouts, app, "v2 stable", healthy(Some(v2.clone()))).await?;
    // v2 is stable: the stable Service now selects it and carries all traffic.
    r.wait_for_weights(app, 100, 0).await?;
    wait_for_scale(&r.replica_sets, app, BTreeMap::from([(v1, 0), (v2, 4)])).await?;

    // Fields rollgate does not manage are untouched.
    let route = r.routes.get(app).await?;
    assert_eq!(route.data["spec"]["hostnames"], json!(["mall.example"]));
    assert_eq!(
        route.data["spec"]["rules"][0]["matches"][0]["path"]["value"],
        json!("/")
    );
    Ok(())
}

#[tokio::test]
async fn an_abort_sends_all_route_traffic_back_to_stable() -> anyhow::Result<()> {
    let app = "arcade";
    let r = routed(app, initial_refs(app)).await?;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    r.rollouts
        .create(&PostParams::default(), &routed_canary(app, steps)?)
        .await?;
    wait_for(&r.rollouts, app, "v1 Healthy", healthy(None)).await?;
    set_digest(&r.rollouts, app, DIGEST_V2).await?;
    wait_for(
        &r.rollouts,
        app,
        "50% and a pause",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    r.wait_for_weights(app, 50, 50).await?;

    request(&r.rollouts, app, "Abort", "abort-1").await?;
    wait_for(&r.rollouts, app, "Aborted", in_phase(RolloutPhase::Aborted)).await?;
    r.wait_for_weights(app, 100, 0).await?;
    let (v1, v2) = {
        let status = r.rollouts.get(app).await?.status.unwrap_or_default();
        (
            status.stable_revision.unwrap_or_default(),
            status.current_revision.unwrap_or_default(),
        )
    };
    wait_for_scale(&r.replica_sets, app, BTreeMap::from([(v1, 4), (v2, 0)])).await
}

#[tokio::test]
async fn a_route_without_the_canary_backend_holds_the_rollout_with_the_reason() -> anyhow::Result<()>
{
    let app = "depot";
    let r = routed(
        app,
        json!([{"name": format!("{app}-stable"), "port": 80, "weight": 100}]),
    )
    .await?;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    r.rollouts
        .create(&PostParams::default(), &routed_canary(app, steps)?)
        .await?;
    let degraded = wait_for(
        &r.rollouts,
        app,
        "Degraded",
        in_phase(RolloutPhase::Degraded),
    )
    .await?;
    let message = degraded.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("spec.rules[0] has a backendRef to the stable Service depot-stable but none to the canary Service depot-canary"),
        "{message}"
    );
    assert_eq!(
        r.weights(app).await?,
        (Some(100), None),
        "the route is untouched"
    );

    // The route gains its canary backendRef: the watch on HTTPRoutes brings the Rollout back.
    let mut route = r.routes.get(app).await?;
    route.data["spec"]["rules"][0]["backendRefs"] = initial_refs(app);
    r.routes
        .replace(app, &PostParams::default(), &route)
        .await?;
    wait_for(&r.rollouts, app, "v1 Healthy", healthy(None)).await?;
    r.wait_for_weights(app, 100, 0).await
}
