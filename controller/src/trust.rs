//! The start-up check of the trust boundary: are the admission policies that make the
//! controller's state its own in force, and do they name this process's identity?
//!
//! Without `rollgate-controller-owned` and `rollgate-controller-replicasets` (bound, with their
//! identity ConfigMap naming this controller), anyone who may patch `rollouts/status` can skip
//! the approval gate and image verification by writing the status (docs/security.md). The
//! controller keeps working (an operator may have chosen so), but says so loudly: a warning log
//! line, the gauge `rollgate_trust_policies_in_force` at 0, and a Warning Event on the
//! controller's Lease. When the ConfigMap names another user, every status write of this
//! controller would be refused: the same warning says which user it expects.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Resource;
use kube::api::{Api, PostParams};
use kube::runtime::events::Recorder;
use rollgate_crds::policies::controller_owned::{
    CONTROLLER_IDENTITY_KEY, CONTROLLER_OWNED_POLICY, CONTROLLER_REPLICASETS_POLICY,
};

use crate::events::{self, Activity, Notice};
use crate::metrics::Metrics;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustCheck {
    /// Both policies are bound and name this controller.
    InForce,
    /// Something is missing or names someone else: why.
    NotInForce(String),
}

/// Whether the policies, their bindings and the identity parameter are in place and name
/// `username` (pure: from what was read).
pub fn assess(found: &Found, username: &str) -> TrustCheck {
    for (policy, present) in &found.policies {
        if !present {
            return TrustCheck::NotInForce(format!(
                "the admission policy {policy} or its binding is not installed: anyone who may patch rollouts/status can skip the approval gate and image verification"
            ));
        }
    }
    match &found.identity {
        None => TrustCheck::NotInForce(
            "the ConfigMap naming the controller's identity (the policies' parameter) is missing: the policies refuse every status write, this controller's included".to_owned(),
        ),
        Some(named) if named != username => TrustCheck::NotInForce(format!(
            "the policies name {named} as the controller, but this controller runs as {username}: its status writes will be refused"
        )),
        Some(_) => TrustCheck::InForce,
    }
}

/// What the check read.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Each ownership policy, and whether it and its binding exist.
    pub policies: Vec<(&'static str, bool)>,
    /// The user name the identity ConfigMap holds, if it exists.
    pub identity: Option<String>,
}

/// Reads what the check needs.
async fn read(client: &kube::Client) -> Result<(Found, String), kube::Error> {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let mut found = Found::default();
    let mut parameter = None;
    for name in [CONTROLLER_OWNED_POLICY, CONTROLLER_REPLICASETS_POLICY] {
        let binding = bindings.get_opt(name).await?;
        let present = policies.get_opt(name).await?.is_some() && binding.is_some();
        if let Some(reference) = binding.and_then(|binding| binding.spec.param_ref) {
            parameter = parameter.or(reference.name.zip(reference.namespace));
        }
        found.policies.push((name, present));
    }
    if let Some((name, namespace)) = parameter {
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        found.identity = config_maps
            .get_opt(&name)
            .await?
            .and_then(|config_map| config_map.data)
            .and_then(|data| data.get(CONTROLLER_IDENTITY_KEY).cloned());
    }
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let username = review
        .status
        .and_then(|status| status.user_info)
        .and_then(|user| user.username)
        .unwrap_or_default();
    Ok((found, username))
}

/// Checks the trust boundary once and reports it: the gauge, and a log line and a Warning
/// Event on `lease` when it is not in force. A check that cannot read (RBAC) counts as not in
/// force.
pub async fn check(
    client: &kube::Client,
    metrics: &Metrics,
    recorder: &Recorder,
    lease: (&str, &str),
) {
    let outcome = match read(client).await {
        Ok((found, username)) => assess(&found, &username),
        Err(error) => {
            TrustCheck::NotInForce(format!("the trust policies could not be read: {error}"))
        }
    };
    let TrustCheck::NotInForce(why) = outcome else {
        metrics.trust_policies_in_force.set(1);
        tracing::info!("trust boundary: the ownership admission policies are in force");
        return;
    };
    metrics.trust_policies_in_force.set(0);
    tracing::warn!(%why, "trust boundary NOT in force");
    let (namespace, name) = lease;
    let mut reference = Lease::default();
    reference.metadata.name = Some(name.to_owned());
    reference.metadata.namespace = Some(namespace.to_owned());
    let notice = Notice::warning(Activity::StartUp, "TrustPoliciesNotInForce", why);
    events::publish(recorder, &reference.object_ref(&()), notice).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(owned: bool, identity: Option<&str>) -> Found {
        Found {
            policies: vec![
                (CONTROLLER_OWNED_POLICY, owned),
                (CONTROLLER_REPLICASETS_POLICY, true),
            ],
            identity: identity.map(str::to_owned),
        }
    }

    #[test]
    fn in_force_only_when_bound_and_naming_this_controller() {
        assert_eq!(assess(&found(true, Some("me")), "me"), TrustCheck::InForce);
        let missing = assess(&found(false, Some("me")), "me");
        assert!(
            matches!(missing, TrustCheck::NotInForce(ref why) if why.contains(CONTROLLER_OWNED_POLICY))
        );
        let other = assess(&found(true, Some("someone")), "me");
        assert!(matches!(other, TrustCheck::NotInForce(ref why) if why.contains("runs as me")));
        assert!(matches!(
            assess(&found(true, None), "me"),
            TrustCheck::NotInForce(_)
        ));
    }
}
