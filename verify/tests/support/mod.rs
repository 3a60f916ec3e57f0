//! Shared set-up of the verifier's registry tests: one real registry per test binary, a
//! verifier that reaches it over plain HTTP, and ImagePolicy builders.

#![allow(dead_code)]

pub mod fault_proxy;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rollgate_crds::ImagePolicy;
use rollgate_testsupport::Registry;
use rollgate_testsupport::signing::TestKey;
use rollgate_verify::{
    NamespaceScope, RegistryConnection, RegistryLimits, SecretKeys, VerificationRequest, Verifier,
    VerifierConfig,
};

/// The labels of the namespace every test's Rollout is in (none).
pub static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The namespace every test's Rollout is in.
pub const NAMESPACE: NamespaceScope<'static> = NamespaceScope {
    name: "test",
    labels: &NO_LABELS,
};

/// The registry shared by the tests of one test binary (stopped when the process exits).
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::start().expect("start the registry fixture"))
}

/// A repository name no other test uses.
pub fn unique_repository(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}/app{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A verifier that reaches `hosts` over plain HTTP, with the given limits and short timeouts.
pub fn verifier_with(hosts: &[String], limits: RegistryLimits) -> Verifier {
    Verifier::new(VerifierConfig {
        connection: RegistryConnection {
            insecure_registries: hosts.to_vec(),
            connect_timeout: Some(Duration::from_secs(2)),
            read_timeout: Some(Duration::from_secs(5)),
        },
        limits,
        image_timeout: Duration::from_secs(3),
        cache_capacity: 100,
        cache_ttl: Duration::from_secs(60),
    })
}

/// A verifier for the shared registry, default limits.
pub fn verifier() -> Verifier {
    verifier_with(&[registry().host()], RegistryLimits::default())
}

/// A policy named `name` over `images` with one authority of `keys` needing `count`,
/// governing every namespace (`namespaceSelector: {}`), plus extra spec fields merged in from
/// `extra` (JSON).
pub fn policy(
    name: &str,
    images: &[&str],
    keys: &[&TestKey],
    count: i32,
    extra: serde_json::Value,
) -> ImagePolicy {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| serde_json::json!({"pem": k.public_pem()}))
        .collect();
    let mut spec = serde_json::json!({
        "images": images,
        "authorities": [{"name": "release", "keys": keys, "count": count}],
        "namespaceSelector": {},
    });
    if let (Some(spec), serde_json::Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    let mut policy = ImagePolicy::new(name, serde_json::from_value(spec).expect("policy spec"));
    policy.metadata.generation = Some(1);
    policy
}

/// A request for `images` under the named policy, no Secrets, no break-glass.
pub fn request<'a>(
    images: &'a [String],
    policy_name: &'a str,
    policies: &'a [ImagePolicy],
    secrets: &'a SecretKeys,
) -> VerificationRequest<'a> {
    VerificationRequest {
        images,
        policy_name: Some(policy_name),
        policies,
        namespace: NAMESPACE,
        secret_keys: secrets,
        break_glass_justification: None,
    }
}
