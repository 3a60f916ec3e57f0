//! No confused deputy, on the chart's cluster (the chart's roles and controller RBAC) with
//! real identities.
//!
//! The attack: an author bound only to the chart's operator role (Rollouts, not Services or
//! HTTPRoutes) may not repoint another team's Service or reweight its HTTPRoute, as the API
//! server confirms. So they write a Rollout that names that Service (or route) and let the
//! controller, which may edit every Service, do it for them.
//!
//! With the check on, the controller writes nothing: the Rollout is Degraded with the reason
//! and the Service's selector (the route's weights) stay as they were. Once the object's own
//! editor opts it in to the Rollout (`rollgate.io/managed-by-rollout: <rollout>`), the same
//! Rollout does change it: without the check the attack would have gone through.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use rollgate_controller::route::http_route_resource;
use rollgate_crds::Rollout;
use rollgate_crds::names::MANAGED_BY_ANNOTATION;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{TestNamespace, manifests};
use serde_json::{Value, json};

use crate::chart::{bound, client_of, create_rollout, installed, is_forbidden, leading};
use crate::rollouts::{DIGEST_V1, DIGEST_V2, at, healthy, in_phase, set_digest, wait_for};

/// The revision a Service selects (`rollgate.io/revision` in its selector), if any.
async fn selected(services: &Api<Service>, name: &str) -> anyhow::Result<Option<String>> {
    let service = services.get(name).await?;
    Ok(service
        .spec
        .and_then(|spec| spec.selector)
        .and_then(|selector| selector.get("rollgate.io/revision").cloned()))
}

/// Annotates `name` (through `api`) as managed by the Rollout `rollout`.
async fn opt_in<K>(api: &Api<K>, name: &str, rollout: &str) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"annotations": {MANAGED_BY_ANNOTATION: rollout}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The Rollout's Degraded message once it is Degraded.
async fn degraded_message(rollouts: &Api<Rollout>, name: &str) -> anyhow::Result<String> {
    let degraded = wait_for(rollouts, name, "Degraded", in_phase(RolloutPhase::Degraded)).await?;
    Ok(degraded.status.and_then(|s| s.message).unwrap_or_default())
}

#[tokio::test]
async fn a_rollout_cannot_repoint_a_service_that_has_not_opted_in() -> anyhow::Result<()> {
    let installed = installed();
    leading(installed).await?;
    let admin = installed.cluster.client().await?;
    let namespace = TestNamespace::create(&installed.cluster, &admin, "trust-svc").await?;
    let ns = namespace.name();
    let author = bound(installed, &admin, ns, "operator").await?;
    let author_client = client_of(installed, &author).await?;

    let services: Api<Service> = Api::namespaced(admin.clone(), ns);
    let payments: Service = serde_json::from_value(json!({
        "metadata": {"name": "payments"},
        "spec": {"selector": {"app": "payments"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))?;
    services.create(&PostParams::default(), &payments).await?;

    // The author may not touch the Service themselves.
    let own_try = Api::<Service>::namespaced(author_client.clone(), ns)
        .patch(
            "payments",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"selector": {"app": "web"}}})),
        )
        .await;
    assert!(
        is_forbidden(&own_try),
        "the author edited the Service: {own_try:?}"
    );

    // So they name it in a Rollout.
    let rollouts: Api<Rollout> = Api::namespaced(author_client, ns);
    let strategy = json!({"blueGreen": {"activeService": "payments", "autoPromotion": true}});
    create_rollout(
        &rollouts,
        &manifests::rollout("web", 1, DIGEST_V1, strategy)?,
    )
    .await?;
    let message = degraded_message(&rollouts, "web").await?;
    assert!(
        message.contains("Service payments has not opted in to Rollout web"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(selected(&services, "payments").await?, None);
    let replica_sets = Api::<ReplicaSet>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?;
    assert!(replica_sets.items.is_empty(), "pods were created");

    // Opted in by whoever may edit it, the same Rollout manages it.
    opt_in(&services, "payments", "web").await?;
    let stable = wait_for(&rollouts, "web", "Healthy", healthy(None)).await?;
    let revision = stable.status.and_then(|s| s.stable_revision);
    assert_eq!(selected(&services, "payments").await?, revision);
    Ok(())
}

/// The route's backendRef weights, by Service name.
async fn weights(routes: &Api<DynamicObject>) -> anyhow::Result<BTreeMap<String, i64>> {
    let route = routes.get("shop").await?;
    let refs = route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(refs
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["weight"].as_i64()?)))
        .collect())
}

#[tokio::test]
async fn a_rollout_cannot_reweight_an_http_route_that_has_not_opted_in() -> anyhow::Result<()> {
    let installed = installed();
    leading(installed).await?;
    let admin = installed.cluster.client().await?;
    let namespace = TestNamespace::create(&installed.cluster, &admin, "trust-route").await?;
    let ns = namespace.name();
    let author = bound(installed, &admin, ns, "operator").await?;
    let author_client = client_of(installed, &author).await?;

    // The author's own Services have opted in; the shared route has not.
    let services: Api<Service> = Api::namespaced(admin.clone(), ns);
    for name in ["web-stable", "web-canary"] {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {MANAGED_BY_ANNOTATION: "web"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        }))?;
        services.create(&PostParams::default(), &service).await?;
    }
    let routes: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), ns, &http_route_resource());
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "shop"},
        "spec": {
            "parentRefs": [{"name": "edge"}],
            "rules": [{"backendRefs": [
                {"name": "web-stable", "port": 80, "weight": 90},
                {"name": "web-canary", "port": 80, "weight": 10}
            ]}]
        }
    }))?;
    routes.create(&PostParams::default(), &route).await?;
    let author_routes: Api<DynamicObject> =
        Api::namespaced_with(author_client.clone(), ns, &http_route_resource());
    let own_try = author_routes
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await;
    assert!(
        is_forbidden(&own_try),
        "the author edited the route: {own_try:?}"
    );

    let rollouts: Api<Rollout> = Api::namespaced(author_client, ns);
    let strategy = |steps: Value| {
        json!({"canary": {
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "trafficRouting": {"gatewayAPI": {"httpRoute": "shop"}},
            "steps": steps
        }})
    };
    let steps = json!([{"setWeight": 30}, {"pause": {}}]);
    create_rollout(
        &rollouts,
        &manifests::rollout("web", 2, DIGEST_V1, strategy(steps))?,
    )
    .await?;
    let message = degraded_message(&rollouts, "web").await?;
    assert!(
        message.contains("HTTPRoute shop has not opted in to Rollout web"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let untouched = weights(&routes).await?;
    assert_eq!(untouched["web-stable"], 90, "{untouched:?}");
    assert_eq!(untouched["web-canary"], 10, "{untouched:?}");

    // Opted in, the route carries the Rollout's weights: 100/0 when stable, 70/30 at step 0.
    opt_in(&routes, "shop", "web").await?;
    wait_for(&rollouts, "web", "v1 Healthy", healthy(None)).await?;
    set_digest(&rollouts, "web", DIGEST_V2).await?;
    wait_for(&rollouts, "web", "the pause", at(1, RolloutPhase::Paused)).await?;
    let started = Instant::now();
    loop {
        let now = weights(&routes).await?;
        if now.get("web-stable") == Some(&70) && now.get("web-canary") == Some(&30) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the route carries {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
