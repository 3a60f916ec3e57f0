//! Authentication, authorisation and the status codes of reads and user actions.

use kube::Api;
use rollgate_crds::Rollout;
use rollgate_crds::rollout::UserActionKind;
use rollgate_proto::v1::{
    AbortRequest, GetRolloutRequest, ListRolloutsRequest, PromoteRequest, RetryRequest,
};
use rollgate_testsupport::identity::{grant, rollgate_rule, service_account, wait_until_allowed};
use rollgate_testsupport::{TestNamespace, shared_cluster};
use serde_json::json;
use tonic::{Code, Request};

use super::{authed, connect, create_rollout, id, serve, set_status};

#[tokio::test]
async fn calls_without_a_valid_token_or_without_rights_are_refused() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-auth").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({})).await?;
    let nobody = service_account(&admin, ns, "nobody").await?;
    let served = serve(&admin).await?;
    let mut client = connect(&served).await?;
    let get = || GetRolloutRequest {
        rollout: id(ns, "web"),
    };

    let missing = client.get_rollout(Request::new(get())).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    let bad = client
        .get_rollout(authed("not-a-token", get()))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated, "{bad:?}");
    let mut basic = Request::new(get());
    basic
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwdw==".parse()?);
    let basic = client.get_rollout(basic).await.unwrap_err();
    assert_eq!(basic.code(), Code::Unauthenticated);

    let denied = client
        .get_rollout(authed(&nobody.token, get()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains(&nobody.username), "{denied:?}");
    assert!(
        denied.message().contains("get rollouts.rollgate.io"),
        "{denied:?}"
    );
    let list = ListRolloutsRequest {
        namespace: ns.to_owned(),
        ..Default::default()
    };
    let denied = client
        .list_rollouts(authed(&nobody.token, list))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let promote = PromoteRequest {
        rollout: id(ns, "web"),
        full: false,
    };
    let denied = client
        .promote(authed(&nobody.token, promote))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("rollouts.rollgate.io/status"),
        "{denied:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_reader_lists_and_gets_but_may_not_promote() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-read").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({"team": "shop"})).await?;
    create_rollout(&admin, ns, "api", json!({"team": "core"})).await?;
    let reader = service_account(&admin, ns, "reader").await?;
    let rule = rollgate_rule(&["rollouts"], &["get", "list", "watch"]);
    grant(&admin, &reader, "rollout-reader", vec![rule]).await?;
    wait_until_allowed(&admin, &reader, "list", "rollouts").await?;
    let served = serve(&admin).await?;
    let mut client = connect(&served).await?;

    let list = |selector: &str| ListRolloutsRequest {
        namespace: ns.to_owned(),
        label_selector: selector.to_owned(),
    };
    let all = client
        .list_rollouts(authed(&reader.token, list("")))
        .await?
        .into_inner();
    let names: Vec<_> = all
        .rollouts
        .iter()
        .map(|r| r.id.clone().unwrap().name)
        .collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(all.rollouts[1].strategy, "canary");
    assert_eq!(all.rollouts[1].step_count, 4);
    let shop = client
        .list_rollouts(authed(&reader.token, list("team in (shop)")))
        .await?
        .into_inner();
    assert_eq!(shop.rollouts.len(), 1);
    let bad = client
        .list_rollouts(authed(&reader.token, list("team in shop")))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("label_selector"), "{bad:?}");
    // Without a namespace: every namespace the reader may list, which is only its own.
    let everywhere = client
        .list_rollouts(authed(&reader.token, ListRolloutsRequest::default()))
        .await?
        .into_inner();
    assert!(
        everywhere
            .rollouts
            .iter()
            .all(|r| r.id.as_ref().unwrap().namespace == ns)
    );
    assert_eq!(everywhere.rollouts.len(), 2);

    let get = |name: &str| GetRolloutRequest {
        rollout: id(ns, name),
    };
    let web = client
        .get_rollout(authed(&reader.token, get("web")))
        .await?
        .into_inner();
    assert_eq!(web.desired_replicas, 2);
    let missing = client
        .get_rollout(authed(&reader.token, get("missing")))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let unnamed = client
        .get_rollout(authed(&reader.token, get("")))
        .await
        .unwrap_err();
    assert_eq!(unnamed.code(), Code::InvalidArgument);
    assert_eq!(unnamed.message(), "rollout.name: required");

    let promote = PromoteRequest {
        rollout: id(ns, "web"),
        full: false,
    };
    let denied = client
        .promote(authed(&reader.token, promote))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    Ok(())
}

#[tokio::test]
async fn an_operator_promotes_aborts_and_retries_in_its_own_name() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-act").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({})).await?;
    let operator = service_account(&admin, ns, "operator").await?;
    let rules = vec![
        rollgate_rule(&["rollouts"], &["get"]),
        rollgate_rule(&["rollouts/status"], &["patch"]),
    ];
    grant(&admin, &operator, "rollout-operator", rules).await?;
    wait_until_allowed(&admin, &operator, "patch", "rollouts/status").await?;
    let served = serve(&admin).await?;
    let mut client = connect(&served).await?;
    let rollouts = Api::<Rollout>::namespaced(admin.clone(), ns);
    let user_action = || async {
        let rollout = rollouts.get("web").await.expect("get rollout");
        rollout
            .status
            .unwrap_or_default()
            .user_action
            .expect("a user action")
    };

    set_status(
        &admin,
        ns,
        "web",
        json!({"phase": "Paused", "currentStepIndex": 1, "currentRevision": "rev1"}),
    )
    .await?;
    let promote = PromoteRequest {
        rollout: id(ns, "web"),
        full: false,
    };
    let written = client
        .promote(authed(&operator.token, promote.clone()))
        .await?
        .into_inner();
    assert_eq!(written.id.unwrap().name, "web");
    let action = user_action().await;
    assert_eq!(action.action, UserActionKind::Promote);
    assert_eq!(action.by, operator.username);
    assert_eq!(action.revision, "rev1");
    handled(&admin, ns, &action.id).await?;

    let retry = RetryRequest {
        rollout: id(ns, "web"),
    };
    let refused = client
        .retry(authed(&operator.token, retry.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    let abort = AbortRequest {
        rollout: id(ns, "web"),
        reason: "error budget burning".into(),
    };
    client.abort(authed(&operator.token, abort)).await?;
    let action = user_action().await;
    assert_eq!(action.action, UserActionKind::Abort);
    assert_eq!(action.reason.as_deref(), Some("error budget burning"));
    handled(&admin, ns, &action.id).await?;

    set_status(
        &admin,
        ns,
        "web",
        json!({"phase": "Aborted", "abort": {"reason": "by hand", "by": operator.username, "time": "2026-01-01T00:00:00Z"}}),
    )
    .await?;
    client.retry(authed(&operator.token, retry)).await?;
    let action = user_action().await;
    assert_eq!(action.action, UserActionKind::Retry);
    handled(&admin, ns, &action.id).await?;

    set_status(
        &admin,
        ns,
        "web",
        json!({"phase": "Healthy", "abort": null}),
    )
    .await?;
    let refused = client
        .promote(authed(&operator.token, promote))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("Healthy"), "{refused:?}");
    let missing = PromoteRequest {
        rollout: id(ns, "missing"),
        full: true,
    };
    let missing = client
        .promote(authed(&operator.token, missing))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    Ok(())
}

/// Plays the controller: marks the action `id` of the Rollout `web` handled.
async fn handled(admin: &kube::Client, ns: &str, id: &str) -> anyhow::Result<()> {
    set_status(
        admin,
        ns,
        "web",
        json!({"handledAction": id, "actionOutcome": {"id": id, "carriedOut": true, "message": "done"}}),
    )
    .await?;
    Ok(())
}
