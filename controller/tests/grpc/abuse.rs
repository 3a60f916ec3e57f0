//! The RolloutService under abuse, from the attacker's side with real identities: a stream
//! whose caller loses access, too many streams, a flood of junk tokens, a resume from before a
//! restart.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::DeleteParams;
use rollgate_controller::grpc::GrpcSettings;
use rollgate_crds::Rollout;
use rollgate_proto::resume::{Next, after_stream_end};
use rollgate_proto::v1::rollout_event::Type;
use rollgate_proto::v1::{GetRolloutRequest, WatchRolloutsRequest};
use rollgate_testsupport::identity::{
    Account, grant, rollgate_rule, service_account, wait_until_allowed,
};
use rollgate_testsupport::{TestNamespace, shared_cluster};
use serde_json::json;
use tonic::Code;
use tonic::Streaming;

use super::{authed, connect, create_rollout, id, next_event, serve_with};

fn watch_request(namespace: &str, version: &str) -> WatchRolloutsRequest {
    WatchRolloutsRequest {
        namespace: namespace.to_owned(),
        label_selector: String::new(),
        resource_version: version.to_owned(),
    }
}

/// A ServiceAccount of `namespace` that may get, list and watch Rollouts there (the Role and
/// RoleBinding are named `role`).
async fn watcher(
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    role: &str,
) -> anyhow::Result<Account> {
    let account = service_account(admin, namespace, name).await?;
    let rule = rollgate_rule(&["rollouts"], &["get", "list", "watch"]);
    grant(admin, &account, role, vec![rule]).await?;
    wait_until_allowed(admin, &account, "watch", "rollouts").await?;
    Ok(account)
}

/// Reads the stream's initial state up to its SYNCED event; the version to resume from.
async fn synced(
    stream: &mut Streaming<rollgate_proto::v1::RolloutEvent>,
) -> anyhow::Result<String> {
    loop {
        let event = next_event(stream).await?;
        if event.r#type() == Type::Synced {
            return Ok(event.resource_version);
        }
    }
}

#[tokio::test]
async fn a_watch_ends_with_permission_denied_within_the_cache_time_once_the_binding_is_gone()
-> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-revoke").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({})).await?;
    let account = watcher(&admin, ns, "dashboard", "rollout-watcher").await?;
    let ttl = Duration::from_secs(2);
    let settings = GrpcSettings {
        grpc_auth_cache_seconds: ttl.as_secs(),
        ..GrpcSettings::default()
    };
    let (served, _) = serve_with(&admin, settings).await?;
    let mut client = connect(&served).await?;
    let mut stream = client
        .watch_rollouts(authed(&account.token, watch_request(ns, "")))
        .await?
        .into_inner();
    synced(&mut stream).await?;

    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .delete("rollout-watcher", &DeleteParams::default())
        .await?;
    let revoked = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(15), stream.message()).await?;
    let status = ended.expect_err("the stream ends with an error, not a message or its end");
    let took = revoked.elapsed();
    println!("stream cut {took:?} after the RoleBinding was deleted: {status:?}");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("watch"), "{status:?}");
    // The re-check runs every cache time and asks the API server afresh; allow for the
    // authorizer's own cache of the binding being gone (about a second).
    assert!(took <= ttl + Duration::from_secs(3), "cut after {took:?}");
    Ok(())
}

#[tokio::test]
async fn streams_over_the_per_caller_or_the_total_limit_are_resource_exhausted()
-> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-limits").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({})).await?;
    let alice = watcher(&admin, ns, "alice", "alice-watch").await?;
    let bob = watcher(&admin, ns, "bob", "bob-watch").await?;
    let carol = watcher(&admin, ns, "carol", "carol-watch").await?;
    let settings = GrpcSettings {
        grpc_max_streams_per_caller: 2,
        grpc_max_streams: 3,
        ..GrpcSettings::default()
    };
    let (served, metrics) = serve_with(&admin, settings).await?;
    let mut client = connect(&served).await?;
    let open = |token: String| {
        let mut client = client.clone();
        let request = watch_request(ns, "");
        async move { client.watch_rollouts(authed(&token, request)).await }
    };

    let first = open(alice.token.clone()).await?.into_inner();
    let _second = open(alice.token.clone()).await?.into_inner();
    let third = open(alice.token.clone())
        .await
        .expect_err("a third stream of alice");
    println!("alice's third stream: {third:?}");
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(third.message().contains(&alice.username), "{third:?}");
    assert!(third.message().contains("per-caller"), "{third:?}");

    let _bobs = open(bob.token.clone()).await?.into_inner();
    let over_total = open(carol.token.clone())
        .await
        .expect_err("a fourth stream in all");
    println!("carol's stream over the total: {over_total:?}");
    assert_eq!(over_total.code(), Code::ResourceExhausted);
    assert!(
        over_total.message().contains("--grpc-max-streams"),
        "{over_total:?}"
    );
    assert_eq!(metrics.open_streams.get(), 3);

    // A stream that ends gives its place back.
    drop(first);
    let started = Instant::now();
    loop {
        match open(alice.token.clone()).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(started.elapsed() < Duration::from_secs(10), "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => anyhow::bail!("{status:?}"),
        }
    }
    // Unary calls are not streams: alice still reads.
    let get = GetRolloutRequest {
        rollout: id(ns, "web"),
    };
    client.get_rollout(authed(&alice.token, get)).await?;
    Ok(())
}

/// `calls` GetRollout calls with each of `tokens`, half of them at once; every one must be
/// refused as unauthenticated.
async fn flood(
    client: &rollgate_proto::v1::rollout_service_client::RolloutServiceClient<
        tonic::transport::Channel,
    >,
    tokens: &[String],
    calls: usize,
) {
    for token in tokens {
        let concurrent = (0..calls / 2).map(|_| {
            let mut client = client.clone();
            let request = GetRolloutRequest {
                rollout: id("default", "web"),
            };
            let token = token.clone();
            async move { client.get_rollout(authed(&token, request)).await }
        });
        for refused in futures::future::join_all(concurrent).await {
            assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);
        }
        for _ in calls / 2..calls {
            let mut client = client.clone();
            let request = GetRolloutRequest {
                rollout: id("default", "web"),
            };
            let refused = client
                .get_rollout(authed(token, request))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::Unauthenticated);
        }
    }
}

#[tokio::test]
async fn a_flood_of_junk_tokens_costs_one_token_review_per_distinct_token() -> anyhow::Result<()> {
    let admin = shared_cluster().client().await?;
    let junk: Vec<String> = (0..5)
        .map(|i| format!("junk-token-{i}-{}", std::process::id()))
        .collect();
    let calls = 40;

    let settings = GrpcSettings {
        grpc_auth_negative_cache_seconds: 60,
        ..GrpcSettings::default()
    };
    let (served, metrics) = serve_with(&admin, settings).await?;
    flood(&connect(&served).await?, &junk, calls).await;
    let reviews = metrics.token_reviews_total();
    println!(
        "{} calls with {} junk tokens: {reviews} TokenReviews",
        junk.len() * calls,
        junk.len()
    );
    assert_eq!(reviews, junk.len() as u64);

    // The same flood without the negative cache costs a review per call.
    let off = GrpcSettings {
        grpc_auth_negative_cache_seconds: 0,
        ..GrpcSettings::default()
    };
    let (served, metrics) = serve_with(&admin, off).await?;
    flood(&connect(&served).await?, &junk[..1], calls).await;
    let uncached = metrics.token_reviews_total();
    println!("without the negative cache, {calls} calls: {uncached} TokenReviews");
    assert!(uncached >= calls as u64 / 2, "{uncached}");
    Ok(())
}

#[tokio::test]
async fn a_resume_from_before_a_restart_that_missed_a_deletion_is_told_to_relist()
-> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-restart").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({})).await?;
    create_rollout(&admin, ns, "gone", json!({})).await?;
    let account = watcher(&admin, ns, "dashboard", "rollout-watcher").await?;

    let (before, _) = serve_with(&admin, GrpcSettings::default()).await?;
    let mut stream = connect(&before)
        .await?
        .watch_rollouts(authed(&account.token, watch_request(ns, "")))
        .await?
        .into_inner();
    let version = synced(&mut stream).await?;
    drop(stream);
    drop(before);

    // While no server runs, a Rollout is deleted.
    Api::<Rollout>::namespaced(admin.clone(), ns)
        .delete("gone", &DeleteParams::default())
        .await?;
    let (after, _) = serve_with(&admin, GrpcSettings::default()).await?;
    let mut client = connect(&after).await?;
    let refused = client
        .watch_rollouts(authed(&account.token, watch_request(ns, &version)))
        .await
        .err()
        .with_context(|| {
            format!("resumed from {version} although a deletion cannot be replayed")
        })?;
    println!("resume from {version} after the restart: {refused:?}");
    assert_eq!(refused.code(), Code::OutOfRange);
    assert!(refused.message().contains("re-list"), "{refused:?}");

    // What the client then does (rollgate_proto::resume): re-list, and the deleted Rollout is
    // not in the new state.
    assert!(matches!(
        after_stream_end(&version, Some(refused)),
        Next::Relist
    ));
    let mut relisted = client
        .watch_rollouts(authed(&account.token, watch_request(ns, "")))
        .await?
        .into_inner();
    let mut names = Vec::new();
    loop {
        let event = next_event(&mut relisted).await?;
        if event.r#type() == Type::Synced {
            break;
        }
        names.push(
            event
                .rollout
                .and_then(|r| r.id)
                .map(|id| id.name)
                .unwrap_or_default(),
        );
    }
    assert_eq!(names, ["web"]);
    Ok(())
}
