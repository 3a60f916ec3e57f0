//! Service-account tokens authenticate through TokenReview, and SubjectAccessReview answers
//! according to RBAC: the two checks rollgate's gRPC API uses to authenticate and authorise
//! its callers.

use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rollgate_testsupport::{TestNamespace, shared_cluster};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

async fn review_token(client: &kube::Client, token: &str) -> anyhow::Result<TokenReview> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?)
}

async fn may(
    client: &kube::Client,
    user: &str,
    verb: &str,
    namespace: &str,
) -> anyhow::Result<bool> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some("rollgate.io".into()),
                resource: Some("rollouts".into()),
                verb: Some(verb.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|status| status.allowed))
}

#[tokio::test]
async fn a_service_account_token_passes_token_review_and_rbac_decides_access() -> anyhow::Result<()>
{
    let cluster = shared_cluster();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "identity").await?;
    let ns = namespace.name();

    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("viewer"),
                ..Default::default()
            },
        )
        .await?;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued: TokenRequest = accounts
        .create_subresource("token", "viewer", &PostParams::default(), &request)
        .await?;
    let token = issued
        .status
        .and_then(|status| status.token)
        .expect("a token");

    let review = review_token(&client, &token)
        .await?
        .status
        .expect("review status");
    assert_eq!(
        review.authenticated,
        Some(true),
        "error: {:?}",
        review.error
    );
    let user = review.user.expect("user info");
    let username = format!("system:serviceaccount:{ns}:viewer");
    assert_eq!(user.username.as_deref(), Some(username.as_str()));
    assert!(
        user.groups
            .unwrap_or_default()
            .contains(&"system:serviceaccounts".to_owned())
    );

    let forged = review_token(&client, &format!("{token}x"))
        .await?
        .status
        .expect("status");
    assert_ne!(
        forged.authenticated,
        Some(true),
        "a tampered token must not authenticate"
    );

    // Before any binding, the account may do nothing with rollouts.
    assert!(!may(&client, &username, "get", ns).await?);

    let role = Role {
        metadata: meta("rollout-viewer"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["rollgate.io".into()]),
            resources: Some(vec!["rollouts".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding = RoleBinding {
        metadata: meta("rollout-viewer"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "rollout-viewer".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "viewer".into(),
            namespace: Some(ns.to_owned()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await?;

    // The authorizer's informer sees the new binding within moments.
    let started = Instant::now();
    while !may(&client, &username, "get", ns).await? {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "RBAC binding never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(may(&client, &username, "list", ns).await?);
    assert!(
        !may(&client, &username, "delete", ns).await?,
        "the role grants no delete"
    );
    assert!(
        !may(&client, &username, "get", "kube-system").await?,
        "the binding is namespaced"
    );
    Ok(())
}
