//! The caller's `extra` travels with the impersonation: a ServiceAccount token carries extra
//! (`authentication.kubernetes.io/credential-id`, and a Pod-bound one its pod name), and the
//! API server checks `impersonate` on `userextras/<key>` for each extra header. A server
//! identity allowed to impersonate users, groups and uids but not those extras is refused, so
//! the refusal proves the extra is sent; with the extras granted, the same Approve goes through.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rollgate_proto::v1::ApproveRequest;
use rollgate_testsupport::identity::{
    Account, client_for, grant, rollgate_rule, service_account, wait_until_allowed,
};
use rollgate_testsupport::{TestNamespace, shared_cluster};
use serde_json::json;
use tonic::Code;

use super::{IMAGE, authed, connect, create_rollout, id, serve, set_status};

const REVISION: &str = "0123456789";

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    }
}

/// Binds `rules` to `account` cluster-wide under `name`.
async fn cluster_grant(
    admin: &kube::Client,
    account: &Account,
    name: &str,
    rules: Vec<PolicyRule>,
) -> anyhow::Result<()> {
    let meta = ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: meta.clone(),
        rules: Some(rules),
        ..Default::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await?;
    let binding = ClusterRoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.name.clone(),
            namespace: Some(account.namespace.clone()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

async fn cluster_revoke(admin: &kube::Client, name: &str) {
    let _ = Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(name, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRole>::all(admin.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn approve_impersonates_the_callers_extra_too() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-extra").await?;
    let ns = namespace.name();
    create_rollout(&admin, ns, "web", json!({})).await?;
    set_status(
        &admin,
        ns,
        "web",
        json!({"phase": "AwaitingApproval", "currentStepIndex": 3, "currentRevision": REVISION,
               "currentImages": [{"container": "app", "image": IMAGE}],
               "gate": {"revision": REVISION, "required": 1, "received": 0}}),
    )
    .await?;
    let approver = service_account(&admin, ns, "release-manager").await?;
    let rules = vec![
        rollgate_rule(&["approvals"], &["create"]),
        rollgate_rule(&["rollouts"], &["get"]),
    ];
    grant(&admin, &approver, "approver", rules).await?;
    wait_until_allowed(&admin, &approver, "create", "approvals").await?;

    // The caller's token does carry extra.
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: approver.token.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviewed = Api::<TokenReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let extra = reviewed
        .status
        .and_then(|status| status.user)
        .and_then(|user| user.extra)
        .unwrap_or_default();
    println!("the caller's extra: {extra:?}");
    assert!(!extra.is_empty(), "a ServiceAccount token carries extra");

    // The server's own identity: what the chart grants, impersonation of extras left out.
    let server = service_account(&admin, ns, "rollgate-api").await?;
    let base = format!("{ns}-rollgate-api");
    let server_rules = vec![
        rule("authentication.k8s.io", &["tokenreviews"], &["create"]),
        rule(
            "authorization.k8s.io",
            &["subjectaccessreviews"],
            &["create"],
        ),
        rule("rollgate.io", &["rollouts"], &["get", "list", "watch"]),
        rule(
            "",
            &["users", "groups", "serviceaccounts"],
            &["impersonate"],
        ),
        rule("authentication.k8s.io", &["uids"], &["impersonate"]),
    ];
    cluster_grant(&admin, &server, &base, server_rules).await?;
    let server_client = client_for(cluster, &server.credentials()).await?;
    let served = serve(&server_client).await?;
    let mut client = connect(&served).await?;
    let approve = || ApproveRequest {
        rollout: id(ns, "web"),
        revision: REVISION.to_owned(),
        comment: "ship it".into(),
    };

    let started = std::time::Instant::now();
    let refused = loop {
        match client.approve(authed(&approver.token, approve())).await {
            Err(status) if status.code() == Code::Unavailable => {
                anyhow::ensure!(started.elapsed().as_secs() < 30, "{status:?}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => break other,
        }
    };
    let refused = refused.expect_err("impersonating extras the server may not is refused");
    println!("without userextras: {refused:?}");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("userextras"), "{refused:?}");

    let extras: Vec<String> = extra
        .keys()
        .map(|key| format!("userextras/{key}"))
        .collect();
    let extras: Vec<&str> = extras.iter().map(String::as_str).collect();
    let extras_role = format!("{base}-extras");
    let extra_rules = vec![rule("authentication.k8s.io", &extras, &["impersonate"])];
    cluster_grant(&admin, &server, &extras_role, extra_rules).await?;
    let started = std::time::Instant::now();
    let approved = loop {
        match client.approve(authed(&approver.token, approve())).await {
            Ok(response) => break response.into_inner(),
            Err(status) if status.code() == Code::PermissionDenied => {
                anyhow::ensure!(started.elapsed().as_secs() < 30, "{status:?}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(status) => anyhow::bail!("{status:?}"),
        }
    };
    assert_eq!(approved.approver, approver.username);
    cluster_revoke(&admin, &base).await;
    cluster_revoke(&admin, &extras_role).await;
    Ok(())
}
