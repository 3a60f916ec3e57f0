//! Identities for tests: ServiceAccounts with short-lived tokens (TokenRequest), namespaced
//! RBAC grants, and waiting until the authorizer has seen a new grant.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// A ServiceAccount and a token for it.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its user name, `system:serviceaccount:<namespace>:<name>`.
    pub username: String,
    /// A bearer token (valid for ten minutes).
    pub token: String,
}

impl Account {
    /// The groups the API server gives the account.
    pub fn groups(&self) -> Vec<String> {
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".into(),
        ]
    }
}

/// Creates the ServiceAccount `name` in `namespace` and requests a token for it.
pub async fn service_account(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Account> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: meta(name),
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .with_context(|| format!("create ServiceAccount {namespace}/{name}"))?;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued: TokenRequest = accounts
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("request a token for {namespace}/{name}"))?;
    let token = issued
        .status
        .and_then(|status| status.token)
        .context("the TokenRequest returned no token")?;
    Ok(Account {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        username: format!("system:serviceaccount:{namespace}:{name}"),
        token,
    })
}

/// A rule on `resources` (which may name subresources, `rollouts/status`) of the `rollgate.io`
/// API group.
pub fn rollgate_rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec!["rollgate.io".into()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    }
}

/// Grants `account` the `rules` in its namespace: a Role and a RoleBinding named `role`.
pub async fn grant(
    client: &kube::Client,
    account: &Account,
    role: &str,
    rules: Vec<PolicyRule>,
) -> Result<()> {
    let namespace = account.namespace.as_str();
    let object = Role {
        metadata: meta(role),
        rules: Some(rules),
    };
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("create Role {role}"))?;
    let binding = RoleBinding {
        metadata: meta(role),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.name.clone(),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .with_context(|| format!("create RoleBinding {role}"))?;
    Ok(())
}

/// Whether `account` may `verb` the `rollgate.io` `resource` (`rollouts` or
/// `rollouts/status`) in its namespace, as a SubjectAccessReview answers.
pub async fn may(
    client: &kube::Client,
    account: &Account,
    verb: &str,
    resource: &str,
) -> Result<bool> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, subresource)) => (resource, Some(subresource.to_owned())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(account.username.clone()),
            groups: Some(account.groups()),
            resource_attributes: Some(ResourceAttributes {
                group: Some("rollgate.io".into()),
                resource: Some(resource.to_owned()),
                subresource,
                verb: Some(verb.to_owned()),
                namespace: Some(account.namespace.clone()),
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

/// Waits (up to ten seconds) until the authorizer lets `account` `verb` `resource`.
pub async fn wait_until_allowed(
    client: &kube::Client,
    account: &Account,
    verb: &str,
    resource: &str,
) -> Result<()> {
    let started = Instant::now();
    while !may(client, account, verb, resource).await? {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("{} never got {verb} on {resource}", account.username);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    }
}
