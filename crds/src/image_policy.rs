//! The `ImagePolicy` resource: which image signatures and attestations a revision needs before
//! rollgate creates anything for it.
//!
//! An ImagePolicy is cluster-scoped, and the platform, not the Rollout's author, chooses which
//! ones apply. As with Sigstore policy-controller, an image must pass **every** policy that
//! governs it:
//!
//! - A policy governs the namespaces its `namespaceSelector` selects (`{}` selects every
//!   namespace) and, within them, the images its `images` globs match.
//! - A policy annotated `rollgate.io/default-policy: "true"`, or named `default`, governs every
//!   namespace, as if its selector were `{}`. (Before namespace selectors, that was the one
//!   policy of every Rollout that named none; such a policy keeps applying everywhere, and now
//!   also to Rollouts that name another policy. More than one such policy is no longer
//!   ambiguous: each of them applies.)
//! - A policy with neither governs nothing on its own: it applies only to Rollouts that name it.
//! - A Rollout's `spec.verification.imagePolicy` adds that policy (its images must then be
//!   covered by its globs too); it never replaces the governing ones, so naming a weaker
//!   policy (say, another team's dryRun one) weakens nothing. An image that no policy governs is
//!   refused, whatever the Rollout names.
//!
//! Defaults that the schema does not write into the object are applied by the helper methods
//! here: `mode` enforce, `registryFailure` failClosed, `breakGlass.allowed` false, an
//! authority's `count` 1.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{BREAK_GLASS_ANNOTATION, DEFAULT_POLICY_ANNOTATION};

/// The name of the ImagePolicy used as the cluster default when none carries the annotation.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// An ImagePolicy says which images it covers and which signatures and attestations, made with
/// which trusted keys, each of those images needs before a Rollout may run it.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rollgate.io",
    version = "v1alpha1",
    kind = "ImagePolicy",
    shortname = "rgip",
    category = "rollgate",
    doc = "An ImagePolicy lists the images it covers and the signatures and attestations, made with trusted keys, that each of them needs before a Rollout may run it.",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "enforce (default) or dryRun"
    ),
    printcolumn(
        name = "Registry-Failure",
        type_ = "string",
        json_path = ".spec.registryFailure",
        description = "failClosed (default) or failOpen"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "self.authorities.all(a, self.authorities.exists_one(b, b.name == a.name))"
).message("authorities[].name must be unique").field_path(".authorities"))]
pub struct ImagePolicySpec {
    /// Globs over image names (without tag or digest) that this policy covers, for example
    /// `registry.example.com/team/*` or `registry.example.com/**`. `*` matches within one path
    /// segment, `**` across segments, `?` one character. Names are normalised first: `nginx` is
    /// `docker.io/library/nginx`. An image that matches no glob is refused.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 512)))]
    pub images: Vec<String>,

    /// The namespaces whose Rollouts this policy governs, by their labels (`{}`: every
    /// namespace). Unset: none, unless the policy is the annotated or `default` one (which
    /// governs every namespace); a Rollout can still add it with
    /// `spec.verification.imagePolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// The authorities whose signatures an image needs. Every authority must be satisfied: each
    /// needs `count` distinct keys of its own with a valid signature over the image digest.
    #[schemars(length(min = 1, max = 10))]
    pub authorities: Vec<Authority>,

    /// In-toto attestations (DSSE envelopes, as `cosign attest` stores them) an image needs.
    /// Each needs at least one attestation of its predicate type, signed by a key of any
    /// authority, whose subject is the image digest and whose predicate satisfies the condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub attestations: Vec<AttestationRequirement>,

    /// `enforce` (the default) refuses an image that fails the policy; `dryRun` records the
    /// failure in events and audit records but lets the revision through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PolicyMode>,

    /// What happens when the registry cannot be reached, times out or answers with a server
    /// error: `failClosed` (the default) refuses the image; `failOpen` lets it through and
    /// marks the verdict failed-open in events and audit records. Invalid content (a bad
    /// signature, an oversized manifest) is always refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_failure: Option<RegistryFailurePolicy>,

    /// Whether a revision may override a failed verification with the pod-template annotation
    /// `rollgate.io/break-glass: "<justification>"`. Off by default; every override is audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlassPolicy>,
}

/// A set of trusted keys and how many of them must have signed an image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.count) || self.count <= size(self.keys)")
    .message("count must not exceed the number of keys").field_path(".count"))]
pub struct Authority {
    /// Name of the authority, unique in the policy, shown in verdicts (for example
    /// `release-signing`).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// The authority's public keys (ECDSA P-256, as `cosign generate-key-pair` writes them).
    #[schemars(length(min = 1, max = 20))]
    pub keys: Vec<TrustedKey>,

    /// How many distinct keys of this authority must have signed the image. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub count: Option<i32>,
}

impl Authority {
    /// The number of distinct keys that must have signed, with the default applied.
    pub fn required_signatures(&self) -> usize {
        usize::try_from(self.count.unwrap_or(1).max(1)).unwrap_or(1)
    }
}

/// One trusted public key: exactly one of `pem` or `secretRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.pem) != has(self.secretRef)")
    .message("a key sets exactly one of pem or secretRef"))]
pub struct TrustedKey {
    /// The public key in PEM (`-----BEGIN PUBLIC KEY-----`, a SubjectPublicKeyInfo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    #[x_kube(validation = kube::core::Rule::new("self.contains('-----BEGIN PUBLIC KEY-----')")
        .message("pem must be a PEM public key starting with -----BEGIN PUBLIC KEY-----"))]
    pub pem: Option<String>,

    /// A key in PEM held in a Secret (for example the `cosign.pub` of a key pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// A key of a Secret.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Namespace of the Secret (ImagePolicies are cluster-scoped, so it is always given).
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,

    /// Key in the Secret's data that holds the PEM public key, for example `cosign.pub`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// An attestation an image needs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AttestationRequirement {
    /// The in-toto predicate type, as written in the signed statement, for example
    /// `https://slsa.dev/provenance/v1` or `https://cosign.sigstore.dev/attestation/v1`.
    #[schemars(length(min = 1, max = 256))]
    pub predicate_type: String,

    /// A CEL expression over `predicate` (the statement's predicate as JSON) and
    /// `predicateType` that must be true, for example
    /// `predicate.buildDefinition.buildType == "https://example.com/build@v1"`. Unset: any
    /// predicate of the type passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub condition: Option<String>,
}

/// `enforce` (the default) refuses an image that fails the policy; `dryRun` records the failure
/// in events and audit records but lets the revision through.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum PolicyMode {
    /// Refuse an image that fails the policy.
    #[default]
    Enforce,
    /// Record the failure but let the revision through.
    DryRun,
}

/// What happens when the registry cannot be reached, times out or answers with a server error:
/// `failClosed` (the default) refuses the image; `failOpen` lets it through and marks the
/// verdict failed-open in events and audit records. Invalid content (a bad signature, an
/// oversized manifest) is always refused.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum RegistryFailurePolicy {
    /// Refuse the image.
    #[default]
    FailClosed,
    /// Let the image through, marked failed-open.
    FailOpen,
}

/// Whether break-glass may override this policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassPolicy {
    /// Allow a revision annotated `rollgate.io/break-glass: "<justification>"` to run although
    /// its images fail this policy. Defaults to false.
    #[serde(default)]
    pub allowed: bool,
}

impl ImagePolicySpec {
    /// The mode, with the default (enforce) applied.
    pub fn mode(&self) -> PolicyMode {
        self.mode.unwrap_or_default()
    }

    /// The registry failure behaviour, with the default (failClosed) applied.
    pub fn registry_failure(&self) -> RegistryFailurePolicy {
        self.registry_failure.unwrap_or_default()
    }

    /// Whether break-glass may override this policy.
    pub fn allows_break_glass(&self) -> bool {
        self.break_glass.as_ref().is_some_and(|b| b.allowed)
    }

    /// Every Secret key this policy reads its keys from, each once, in a stable order.
    pub fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        let mut refs: Vec<&SecretKeyRef> = self
            .authorities
            .iter()
            .flat_map(|a| a.keys.iter())
            .filter_map(|k| k.secret_ref.as_ref())
            .collect();
        refs.sort();
        refs.dedup();
        refs
    }
}

impl ImagePolicy {
    /// Whether this policy carries the default-policy annotation with the value `"true"`.
    pub fn is_annotated_default(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_POLICY_ANNOTATION))
            .is_some_and(|v| v == "true")
    }
}

impl ImagePolicy {
    /// Whether this policy governs the namespace with `labels` (see the module docs); a
    /// selector that does not parse is an error naming the policy.
    pub fn governs_namespace(&self, labels: &BTreeMap<String, String>) -> Result<bool, String> {
        if self.is_annotated_default() || self.metadata.name.as_deref() == Some(DEFAULT_POLICY_NAME)
        {
            return Ok(true);
        }
        let Some(selector) = self.spec.namespace_selector.clone() else {
            return Ok(false);
        };
        let selector = Selector::try_from(selector).map_err(|error| {
            format!(
                "ImagePolicy {} has an invalid namespaceSelector: {error}",
                self.metadata.name.as_deref().unwrap_or_default()
            )
        })?;
        Ok(selector.matches(labels))
    }
}

/// The break-glass justification in a set of annotations (normally the pod template's), if
/// the annotation is present and not blank.
pub fn break_glass_justification(annotations: &BTreeMap<String, String>) -> Option<&str> {
    annotations
        .get(BREAK_GLASS_ANNOTATION)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, default_annotation: bool) -> ImagePolicy {
        let spec: ImagePolicySpec = serde_json::from_value(serde_json::json!({
            "images": ["registry.example.com/**"],
            "authorities": [{"name": "a", "keys": [{"pem": "-----BEGIN PUBLIC KEY-----"}]}],
        }))
        .expect("spec");
        let mut policy = ImagePolicy::new(name, spec);
        if default_annotation {
            policy.metadata.annotations = Some(BTreeMap::from([(
                DEFAULT_POLICY_ANNOTATION.to_owned(),
                "true".to_owned(),
            )]));
        }
        policy
    }

    #[test]
    fn policies_govern_the_namespaces_they_select_and_defaults_every_one() {
        let labels = BTreeMap::from([("team".to_owned(), "shop".to_owned())]);
        assert!(policy("strict", true).governs_namespace(&labels).unwrap());
        assert!(policy("default", false).governs_namespace(&labels).unwrap());
        let mut unselected = policy("team", false);
        assert!(!unselected.governs_namespace(&labels).unwrap());
        unselected.spec.namespace_selector = Some(LabelSelector::default());
        assert!(unselected.governs_namespace(&BTreeMap::new()).unwrap());
        let mut shop = policy("shop", false);
        shop.spec.namespace_selector = Some(
            serde_json::from_value(serde_json::json!({"matchLabels": {"team": "shop"}})).unwrap(),
        );
        assert!(shop.governs_namespace(&labels).unwrap());
        assert!(!shop.governs_namespace(&BTreeMap::new()).unwrap());
        shop.spec.namespace_selector = Some(
            serde_json::from_value(serde_json::json!({"matchExpressions": [
                {"key": "team", "operator": "Sideways"}
            ]}))
            .unwrap(),
        );
        let error = shop.governs_namespace(&labels).unwrap_err();
        assert!(error.contains("ImagePolicy shop"), "{error}");
    }

    #[test]
    fn defaults_apply_when_fields_are_unset() {
        let p = policy("p", false);
        assert_eq!(p.spec.mode(), PolicyMode::Enforce);
        assert_eq!(p.spec.registry_failure(), RegistryFailurePolicy::FailClosed);
        assert!(!p.spec.allows_break_glass());
        assert_eq!(p.spec.authorities[0].required_signatures(), 1);
    }

    #[test]
    fn enums_use_camel_case() {
        let spec: ImagePolicySpec = serde_json::from_value(serde_json::json!({
            "images": ["x"],
            "authorities": [{"name": "a", "keys": [{"pem": "k"}], "count": 1}],
            "mode": "dryRun",
            "registryFailure": "failOpen",
            "breakGlass": {"allowed": true},
        }))
        .expect("spec");
        assert_eq!(spec.mode(), PolicyMode::DryRun);
        assert_eq!(spec.registry_failure(), RegistryFailurePolicy::FailOpen);
        assert!(spec.allows_break_glass());
    }

    #[test]
    fn a_blank_break_glass_justification_does_not_count() {
        let mut annotations = BTreeMap::new();
        assert_eq!(break_glass_justification(&annotations), None);
        annotations.insert(BREAK_GLASS_ANNOTATION.to_owned(), "  ".to_owned());
        assert_eq!(break_glass_justification(&annotations), None);
        annotations.insert(BREAK_GLASS_ANNOTATION.to_owned(), " INC-42 ".to_owned());
        assert_eq!(break_glass_justification(&annotations), Some("INC-42"));
    }
}
