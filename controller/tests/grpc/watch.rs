//! WatchRollouts to a Rust client: every change in order, then a resume from a resource version;
//! and the health service.

use kube::Api;
use kube::api::DeleteParams;
use rollgate_crds::Rollout;
use rollgate_proto::v1::rollout_event::Type;
use rollgate_proto::v1::{GetRolloutRequest, Phase, WatchRolloutsRequest};
use rollgate_testsupport::identity::{grant, rollgate_rule, service_account, wait_until_allowed};
use rollgate_testsupport::{TestNamespace, shared_cluster};
use serde_json::json;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::{authed, connect, create_rollout, id, next_event, serve, set_status};

/// The canary's steps as the controller would report them: (step, weight, phase).
pub const STEPS: [(i32, i32, &str); 5] = [
    (0, 20, "Progressing"),
    (1, 20, "Paused"),
    (2, 60, "Progressing"),
    (3, 60, "AwaitingApproval"),
    (4, 100, "Healthy"),
];

#[tokio::test]
async fn a_rust_client_sees_every_step_in_order_and_resumes_from_a_version() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-watch").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({"team": "shop"})).await?;
    create_rollout(&admin, ns, "other", json!({"team": "core"})).await?;
    let watcher = service_account(&admin, ns, "dashboard").await?;
    let rule = rollgate_rule(&["rollouts"], &["get", "list", "watch"]);
    grant(&admin, &watcher, "rollout-watcher", vec![rule]).await?;
    wait_until_allowed(&admin, &watcher, "watch", "rollouts").await?;
    let served = serve(&admin).await?;
    let mut client = connect(&served).await?;
    let request = |version: &str| WatchRolloutsRequest {
        namespace: ns.to_owned(),
        label_selector: "team=shop".into(),
        resource_version: version.to_owned(),
    };

    let mut stream = client
        .watch_rollouts(authed(&watcher.token, request("")))
        .await?
        .into_inner();
    let added = next_event(&mut stream).await?;
    assert_eq!(added.r#type(), Type::Added);
    assert_eq!(added.rollout.unwrap().id.unwrap().name, "web");
    assert_eq!(next_event(&mut stream).await?.r#type(), Type::Synced);

    let mut versions = Vec::new();
    for (step, weight, phase) in STEPS {
        let written = json!({"currentStepIndex": step, "canaryWeight": weight, "phase": phase});
        set_status(&admin, ns, "other", json!({"canaryWeight": weight})).await?;
        set_status(&admin, ns, "web", written).await?;
    }
    for (step, weight, phase) in STEPS {
        let event = next_event(&mut stream).await?;
        assert_eq!(event.r#type(), Type::Modified);
        let rollout = event.rollout.unwrap();
        assert_eq!(
            rollout.id.clone().unwrap().name,
            "web",
            "the selector keeps only web"
        );
        assert_eq!(
            (rollout.current_step_index, rollout.canary_weight),
            (step, weight)
        );
        assert_eq!(rollout.phase().as_str_name(), phase_name(phase));
        assert_eq!(event.resource_version, rollout.resource_version);
        versions.push(event.resource_version);
    }
    drop(stream);

    // Changes while no client watches, then a resume after the third step.
    set_status(
        &admin,
        ns,
        "web",
        json!({"phase": "Degraded", "message": "deadline"}),
    )
    .await?;
    // The server serves from its own watch of the API server: wait until it has seen the
    // change (GetRollout reads the same cache) before resuming, so the resumed stream's first
    // event must show it.
    let started = std::time::Instant::now();
    loop {
        let get = GetRolloutRequest {
            rollout: id(ns, "web"),
        };
        let seen = client
            .get_rollout(authed(&watcher.token, get))
            .await?
            .into_inner();
        if seen.phase() == Phase::Degraded {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the server never saw the change"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut resumed = client
        .watch_rollouts(authed(&watcher.token, request(&versions[2])))
        .await?
        .into_inner();
    let latest = next_event(&mut resumed).await?;
    assert_eq!(latest.r#type(), Type::Added);
    let rollout = latest.rollout.unwrap();
    assert_eq!(rollout.phase(), Phase::Degraded);
    assert_eq!(rollout.message, "deadline");
    assert_eq!(next_event(&mut resumed).await?.r#type(), Type::Synced);
    Api::<Rollout>::namespaced(admin.clone(), ns)
        .delete("web", &DeleteParams::default())
        .await?;
    let deleted = next_event(&mut resumed).await?;
    assert_eq!(deleted.r#type(), Type::Deleted);
    drop(resumed);

    // A resume after the deletion's predecessor learns of the deletion.
    let mut after_delete = client
        .watch_rollouts(authed(&watcher.token, request(&versions[4])))
        .await?
        .into_inner();
    assert_eq!(next_event(&mut after_delete).await?.r#type(), Type::Deleted);

    let bad = client
        .watch_rollouts(authed(&watcher.token, request("yesterday")))
        .await
        .expect_err("a bad version is refused");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("resource_version"), "{bad:?}");
    Ok(())
}

fn phase_name(phase: &str) -> &'static str {
    match phase {
        "Progressing" => "PHASE_PROGRESSING",
        "Paused" => "PHASE_PAUSED",
        "AwaitingApproval" => "PHASE_AWAITING_APPROVAL",
        "Healthy" => "PHASE_HEALTHY",
        _ => "PHASE_UNSPECIFIED",
    }
}

#[tokio::test]
async fn the_health_service_reports_the_rollout_service_serving() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let served = serve(&admin).await?;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", served.address))?
        .connect()
        .await?;
    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: "rollgate.v1.RolloutService".into(),
    };
    let started = std::time::Instant::now();
    loop {
        let status = health.check(request.clone()).await?.into_inner().status();
        if status == ServingStatus::Serving {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "never SERVING: {status:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let overall = health
        .check(HealthCheckRequest::default())
        .await?
        .into_inner();
    assert_eq!(overall.status(), ServingStatus::Serving);
    Ok(())
}
