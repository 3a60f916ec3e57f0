//! Identities for tests: ServiceAccounts with short-lived tokens (TokenRequest), people with
//! client certificates issued through the cluster's CertificateSigningRequest API (as an
//! administrator issues them), kubeconfigs and clients for both, namespaced RBAC grants, and
//! waiting until the authorizer has seen a new grant.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use std::path::Path;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig, NamedAuthInfo};

use crate::Cluster;

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

/// A person authenticated by a client certificate: user name in the subject's common name, a
/// group in its organisation.
#[derive(Debug, Clone)]
pub struct CertificateUser {
    /// The user name.
    pub username: String,
    /// The group the certificate names, if any.
    pub group: Option<String>,
    /// The signed certificate, PEM.
    pub certificate_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

/// Issues a client certificate for `username` (in `group`, if given): a key and a certificate
/// signing request made here, submitted as a CertificateSigningRequest for the
/// `kubernetes.io/kube-apiserver-client` signer, approved by the admin `client`, and signed
/// by the cluster's controller-manager.
pub async fn certificate_user(
    client: &kube::Client,
    username: &str,
    group: Option<&str>,
) -> Result<CertificateUser> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, username);
    if let Some(group) = group {
        subject.push(rcgen::DnType::OrganizationName, group);
    }
    params.distinguished_name = subject;
    let request = params.serialize_request(&key)?.pem()?;
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let name = format!(
        "{}-{}",
        username.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        std::process::id()
    );
    let csr = CertificateSigningRequest {
        metadata: meta(&name),
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: "kubernetes.io/kube-apiserver-client".into(),
            usages: Some(vec!["client auth".into()]),
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        status: None,
    };
    // A CSR of the same name from an earlier run of this process id is replaced.
    let _ = csrs.delete(&name, &Default::default()).await;
    csrs.create(&PostParams::default(), &csr)
        .await
        .with_context(|| format!("create CertificateSigningRequest {name}"))?;
    let approval = serde_json::json!({"status": {"conditions": [{
        "type": "Approved", "status": "True", "reason": "RollgateTest",
        "message": "issued for a rollgate test user"
    }]}});
    csrs.patch_subresource(
        "approval",
        &name,
        &PatchParams::default(),
        &Patch::Merge(&approval),
    )
    .await
    .with_context(|| format!("approve CertificateSigningRequest {name}"))?;
    let started = Instant::now();
    let certificate = loop {
        let issued = csrs.get(&name).await?;
        if let Some(certificate) = issued.status.and_then(|status| status.certificate) {
            break certificate;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("CertificateSigningRequest {name} was approved but never signed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(CertificateUser {
        username: username.to_owned(),
        group: group.map(str::to_owned),
        certificate_pem: String::from_utf8(certificate.0).context("certificate is not PEM")?,
        key_pem: key.serialize_pem(),
    })
}

/// How a kubeconfig authenticates.
pub enum Credentials<'a> {
    /// A bearer token (a ServiceAccount's).
    Token(&'a str),
    /// A client certificate and its key, PEM.
    Certificate {
        /// The certificate.
        certificate_pem: &'a str,
        /// The key.
        key_pem: &'a str,
    },
}

impl Account {
    /// Its token, as kubeconfig credentials.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials::Token(&self.token)
    }
}

impl CertificateUser {
    /// Its certificate, as kubeconfig credentials.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials::Certificate {
            certificate_pem: &self.certificate_pem,
            key_pem: &self.key_pem,
        }
    }
}

/// The cluster's admin kubeconfig with its user's credentials replaced by `credentials`, and
/// `namespace` as the default namespace when given.
pub fn kubeconfig(
    cluster: &Cluster,
    credentials: &Credentials<'_>,
    namespace: Option<&str>,
) -> Result<Kubeconfig> {
    let mut config = Kubeconfig::read_from(cluster.kubeconfig())?;
    let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let auth_info = match credentials {
        Credentials::Token(token) => AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        },
        Credentials::Certificate {
            certificate_pem,
            key_pem,
        } => AuthInfo {
            client_certificate_data: Some(encode(certificate_pem)),
            client_key_data: Some(encode(key_pem).into()),
            ..Default::default()
        },
    };
    let user = config
        .contexts
        .iter()
        .filter_map(|named| named.context.as_ref())
        .map(|context| context.user.clone())
        .next()
        .flatten()
        .context("the admin kubeconfig has no context")?;
    config.auth_infos = vec![NamedAuthInfo {
        name: user,
        auth_info: Some(auth_info),
        other: Default::default(),
    }];
    if let Some(namespace) = namespace {
        for named in &mut config.contexts {
            if let Some(context) = named.context.as_mut() {
                context.namespace = Some(namespace.to_owned());
            }
        }
    }
    Ok(config)
}

/// Writes [`kubeconfig`] to `path` (for kubectl, the plugin or another process).
pub fn write_kubeconfig(
    cluster: &Cluster,
    credentials: &Credentials<'_>,
    namespace: Option<&str>,
    path: &Path,
) -> Result<()> {
    let config = kubeconfig(cluster, credentials, namespace)?;
    std::fs::write(path, serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("write {}", path.display()))
}

/// A client that authenticates with `credentials`.
pub async fn client_for(cluster: &Cluster, credentials: &Credentials<'_>) -> Result<kube::Client> {
    let config = kubeconfig(cluster, credentials, None)?;
    let config =
        kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Grants `subjects` the `rules` in `namespace`: a Role and a RoleBinding named `role`.
pub async fn grant_subjects(
    client: &kube::Client,
    namespace: &str,
    role: &str,
    rules: Vec<PolicyRule>,
    subjects: Vec<Subject>,
) -> Result<()> {
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
        subjects: Some(subjects),
    };
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .with_context(|| format!("create RoleBinding {role}"))?;
    Ok(())
}

/// A RoleBinding subject for a user name (`User`) or a group (`Group`).
pub fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.to_owned(),
        name: name.to_owned(),
        ..Default::default()
    }
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
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: account.name.clone(),
        namespace: Some(account.namespace.clone()),
        ..Default::default()
    };
    grant_subjects(client, &account.namespace, role, rules, vec![subject]).await
}

/// Whether `account` may `verb` the `rollgate.io` `resource` (`rollouts` or
/// `rollouts/status`) in its namespace, as a SubjectAccessReview answers.
pub async fn may(
    client: &kube::Client,
    account: &Account,
    verb: &str,
    resource: &str,
) -> Result<bool> {
    let who = Who {
        username: &account.username,
        groups: account.groups(),
        namespace: &account.namespace,
    };
    may_user(client, &who, verb, resource).await
}

/// A user name and groups, acting in a namespace.
pub struct Who<'a> {
    /// The user name.
    pub username: &'a str,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The namespace.
    pub namespace: &'a str,
}

/// Whether `who` may `verb` the `rollgate.io` `resource` (which may name a subresource,
/// `rollouts/status`), as a SubjectAccessReview answers.
pub async fn may_user(
    client: &kube::Client,
    who: &Who<'_>,
    verb: &str,
    resource: &str,
) -> Result<bool> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, subresource)) => (resource, Some(subresource.to_owned())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(who.username.to_owned()),
            groups: Some(who.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some("rollgate.io".into()),
                resource: Some(resource.to_owned()),
                subresource,
                verb: Some(verb.to_owned()),
                namespace: Some(who.namespace.to_owned()),
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
    let who = Who {
        username: &account.username,
        groups: account.groups(),
        namespace: &account.namespace,
    };
    wait_until_user_allowed(client, &who, verb, resource).await
}

/// Waits (up to ten seconds) until the authorizer lets `who` `verb` `resource`.
pub async fn wait_until_user_allowed(
    client: &kube::Client,
    who: &Who<'_>,
    verb: &str,
    resource: &str,
) -> Result<()> {
    let started = Instant::now();
    while !may_user(client, who, verb, resource).await? {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("{} never got {verb} on {resource}", who.username);
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
