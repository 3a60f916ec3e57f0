//! The verifier: for each image of a revision, the reference check, the policies that apply
//! ([`crate::policy::applicable_policies`]), and under each of them (concurrently) the
//! signatures, the attestations, the cache, and the overrides (dryRun, failOpen, break-glass).
//!
//! Overrides never apply before a policy is found: an image that is not pinned by digest, or
//! that no policy governs, is always blocked, because revisions, audit records and signatures
//! are all about digests. Once policies apply, each policy's failure is let through, in this
//! order, by its own `registryFailure: failOpen` (registry unavailable only), its own
//! `mode: dryRun`, or break-glass (requested with a justification and allowed by that policy);
//! the check records which. The image runs only if every check lets it through. Each check reads
//! the registry itself (the same signature manifest may be read once per policy).

use std::time::Duration;

use rollgate_crds::ImagePolicy;
use rollgate_crds::image_policy::{PolicyMode, RegistryFailurePolicy};

use crate::attestations::check_attestations;
use crate::cache::{CacheKey, CachedVerification, VerdictCache};
use crate::globs::policy_name;
use crate::keys::{
    AuthorityKeys, SecretKeys, all_keys, keys_fingerprint, resolve_authorities_with,
};
use crate::memo::Memo;
use crate::policy::{NamespaceScope, applicable_policies, not_covered_reason};
use crate::reference::DigestReference;
use crate::registry::{FetchError, RegistryClient, RegistryConnection, RegistryLimits};
use crate::simple_signing::check_signatures;
use crate::verdict::{ImageVerdict, Outcome, PolicyCheck, PolicyId, RevisionVerdict};

/// How the verifier reaches registries and how much it keeps.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Connection settings (plain-HTTP registries, connect and read timeouts).
    pub connection: RegistryConnection,
    /// Bounds on what is read from a registry.
    pub limits: RegistryLimits,
    /// Time allowed to verify one image, all registry reads included; past it the registry
    /// counts as unavailable.
    pub image_timeout: Duration,
    /// Most successful verifications kept in the cache.
    pub cache_capacity: u64,
    /// How long a successful verification is reused.
    pub cache_ttl: Duration,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            connection: RegistryConnection {
                insecure_registries: Vec::new(),
                connect_timeout: Some(Duration::from_secs(5)),
                read_timeout: Some(Duration::from_secs(10)),
            },
            limits: RegistryLimits::default(),
            image_timeout: Duration::from_secs(30),
            cache_capacity: 10_000,
            cache_ttl: Duration::from_secs(600),
        }
    }
}

/// What to verify: the images of one revision and everything needed to judge them.
#[derive(Debug, Clone, Copy)]
pub struct VerificationRequest<'a> {
    /// The images of the revision's pod template (containers and init containers).
    pub images: &'a [String],
    /// The Rollout's `spec.verification.imagePolicy`, if set: one more policy to pass.
    pub policy_name: Option<&'a str>,
    /// Every ImagePolicy in the cluster.
    pub policies: &'a [ImagePolicy],
    /// The Rollout's namespace and its labels, which decide the governing policies.
    pub namespace: NamespaceScope<'a>,
    /// PEM text of the keys the policies hold in Secrets, read by the caller.
    pub secret_keys: &'a SecretKeys,
    /// The break-glass justification from the pod template's `rollgate.io/break-glass`
    /// annotation (see [`rollgate_crds::image_policy::break_glass_justification`]).
    pub break_glass_justification: Option<&'a str>,
}

/// Verifies images against ImagePolicies. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Verifier {
    registry: RegistryClient,
    cache: VerdictCache,
    memo: Memo,
    image_timeout: Duration,
}

impl Verifier {
    /// A verifier with its own registry client and cache.
    pub fn new(config: VerifierConfig) -> Self {
        Verifier {
            registry: RegistryClient::new(&config.connection, config.limits),
            cache: VerdictCache::new(config.cache_capacity, config.cache_ttl),
            memo: Memo::new(1024),
            image_timeout: config.image_timeout,
        }
    }

    /// The verdict cache (to clear it, for example).
    pub fn cache(&self) -> &VerdictCache {
        &self.cache
    }

    /// Verifies every image of a revision, concurrently.
    pub async fn verify(&self, request: &VerificationRequest<'_>) -> RevisionVerdict {
        let verdicts = futures::future::join_all(
            request
                .images
                .iter()
                .map(|image| self.verify_image(image, request)),
        )
        .await;
        RevisionVerdict { images: verdicts }
    }

    /// Verifies one image under every policy that applies to it.
    pub async fn verify_image(
        &self,
        image: &str,
        request: &VerificationRequest<'_>,
    ) -> ImageVerdict {
        let verdict = ImageVerdict {
            image: image.to_owned(),
            digest: None,
            policy: None,
            key_ids: Vec::new(),
            outcome: Outcome::Verified,
            dry_run: false,
            break_glass: false,
            break_glass_justification: request.break_glass_justification.map(str::to_owned),
            failed_open: false,
            cached: false,
            checks: Vec::new(),
        };
        let reference = match DigestReference::parse(image) {
            Ok(reference) => reference,
            Err(error) => return refuse(verdict, error.to_string()),
        };
        let verdict = ImageVerdict {
            digest: Some(reference.digest.clone()),
            ..verdict
        };
        let name = reference.normalized_name();
        let policies = match applicable_policies(
            request.policy_name,
            request.policies,
            request.namespace,
            &name,
            &self.memo,
        ) {
            Ok(policies) => policies,
            Err(reason) => return refuse(verdict, reason),
        };
        let checks = futures::future::join_all(
            policies
                .iter()
                .map(|policy| self.check_policy(&reference, &name, policy, request)),
        )
        .await;
        summarize(verdict, checks)
    }

    /// Checks one image under one policy.
    async fn check_policy(
        &self,
        reference: &DigestReference,
        name: &str,
        policy: &ImagePolicy,
        request: &VerificationRequest<'_>,
    ) -> PolicyCheck {
        let mut check = PolicyCheck {
            policy: PolicyId {
                name: policy_name(policy).to_owned(),
                generation: policy.metadata.generation,
            },
            key_ids: Vec::new(),
            outcome: Outcome::Verified,
            dry_run: policy.spec.mode() == PolicyMode::DryRun,
            break_glass: false,
            failed_open: false,
            cached: false,
        };
        let justification = request.break_glass_justification;
        match self.memo.policy_covers(policy, name) {
            Ok(true) => {}
            Ok(false) => {
                check.outcome = refused(not_covered_reason(policy, name));
                return apply_overrides(check, policy, justification);
            }
            Err(reason) => {
                check.outcome = refused(reason);
                return apply_overrides(check, policy, justification);
            }
        }
        let authorities = resolve_authorities_with(&policy.spec, request.secret_keys, |pem| {
            self.memo.public_key(pem)
        });
        let cache_key = CacheKey {
            repository: name.to_owned(),
            digest: reference.digest.clone(),
            policy: policy_name(policy).to_owned(),
            generation: policy.metadata.generation,
            keys: keys_fingerprint(&authorities),
        };
        if let Some(hit) = self.cache.get(&cache_key).await {
            check.key_ids = hit.key_ids;
            check.cached = true;
            return check;
        }
        let checked = tokio::time::timeout(
            self.image_timeout,
            self.check(reference, policy, &authorities),
        )
        .await;
        let (outcome, key_ids) = checked.unwrap_or_else(|_| {
            (
                unavailable(
                    reference,
                    &format!("timed out after {:?}", self.image_timeout),
                ),
                Vec::new(),
            )
        });
        if outcome == Outcome::Verified {
            let cached = CachedVerification {
                key_ids: key_ids.clone(),
            };
            self.cache.insert(cache_key, cached).await;
        }
        check.key_ids = key_ids;
        check.outcome = outcome;
        apply_overrides(check, policy, justification)
    }

    /// Signatures, then attestations. Returns the outcome and the ids of the keys whose
    /// signatures verified.
    async fn check(
        &self,
        reference: &DigestReference,
        policy: &ImagePolicy,
        authorities: &[AuthorityKeys],
    ) -> (Outcome, Vec<String>) {
        let keys = all_keys(authorities);
        let key_problems: Vec<String> = authorities
            .iter()
            .flat_map(|a| a.problems.clone())
            .collect();
        let no_signature = format!("No valid signature from a trusted key for {reference}");
        let sig_tag = reference.artifact_tag("sig");
        let layers = match self.registry.fetch_artifact(reference, &sig_tag).await {
            Ok(Some(layers)) => layers,
            Ok(None) => {
                let mut details = vec![format!(
                    "no signature manifest {sig_tag} in {}",
                    reference.normalized_name()
                )];
                details.extend(key_problems);
                return (
                    Outcome::Refused {
                        reason: no_signature,
                        details,
                    },
                    Vec::new(),
                );
            }
            Err(FetchError::Unavailable(message)) => {
                return (unavailable(reference, &message), Vec::new());
            }
            Err(FetchError::Invalid(message)) => {
                return (
                    Outcome::Refused {
                        reason: no_signature,
                        details: vec![message],
                    },
                    Vec::new(),
                );
            }
        };
        let signatures = check_signatures(&layers, &reference.digest, &keys);
        let mut details = signatures.rejected;
        details.extend(key_problems);
        let mut satisfied = true;
        for authority in authorities {
            let signed = authority.satisfied_by(&signatures.signers).len();
            if signed < authority.required {
                satisfied = false;
                details.push(format!(
                    "authority {}: {signed} of {} required keys signed",
                    authority.name, authority.required
                ));
            }
        }
        if !satisfied {
            return (
                Outcome::Refused {
                    reason: no_signature,
                    details,
                },
                signatures.signers,
            );
        }
        if policy.spec.attestations.is_empty() {
            return (Outcome::Verified, signatures.signers);
        }
        let att_tag = reference.artifact_tag("att");
        let layers = match self.registry.fetch_artifact(reference, &att_tag).await {
            Ok(layers) => layers.unwrap_or_default(),
            Err(FetchError::Unavailable(message)) => {
                return (unavailable(reference, &message), signatures.signers);
            }
            Err(FetchError::Invalid(message)) => {
                let reason =
                    format!("No valid attestation signed by a trusted key for {reference}");
                return (
                    Outcome::Refused {
                        reason,
                        details: vec![message],
                    },
                    signatures.signers,
                );
            }
        };
        let outcome = check_attestations(&policy.spec.attestations, &layers, reference, &keys);
        (outcome, signatures.signers)
    }
}

fn refused(reason: String) -> Outcome {
    Outcome::Refused {
        reason,
        details: Vec::new(),
    }
}

/// The image refused before any policy applied.
fn refuse(mut verdict: ImageVerdict, reason: String) -> ImageVerdict {
    verdict.outcome = refused(reason);
    verdict
}

/// The image's verdict from its checks: the summary fields come from the first check that
/// blocks, else the first overridden one, else the first; the key ids from all.
fn summarize(mut verdict: ImageVerdict, checks: Vec<PolicyCheck>) -> ImageVerdict {
    let shown = checks
        .iter()
        .find(|check| !check.admitted())
        .or_else(|| {
            checks
                .iter()
                .find(|check| check.outcome != Outcome::Verified)
        })
        .or(checks.first());
    if let Some(shown) = shown {
        verdict.policy = Some(shown.policy.clone());
        verdict.outcome = shown.outcome.clone();
        verdict.dry_run = shown.dry_run;
        verdict.break_glass = shown.break_glass;
        verdict.failed_open = shown.failed_open;
    }
    for key in checks.iter().flat_map(|check| &check.key_ids) {
        if !verdict.key_ids.contains(key) {
            verdict.key_ids.push(key.clone());
        }
    }
    verdict.cached = !checks.is_empty() && checks.iter().all(|check| check.cached);
    verdict.checks = checks;
    verdict
}

fn unavailable(reference: &DigestReference, message: &str) -> Outcome {
    Outcome::Unavailable {
        reason: format!("Could not reach the registry to verify {reference}: {message}"),
    }
}

/// Lets a policy's failure through by its failOpen, its dryRun or break-glass (requested with
/// `justification` and allowed by the policy), and records which.
fn apply_overrides(
    mut check: PolicyCheck,
    policy: &ImagePolicy,
    justification: Option<&str>,
) -> PolicyCheck {
    if check.outcome == Outcome::Verified {
        return check;
    }
    let unavailable = matches!(check.outcome, Outcome::Unavailable { .. });
    if unavailable && policy.spec.registry_failure() == RegistryFailurePolicy::FailOpen {
        check.failed_open = true;
    } else if check.dry_run {
        // Recorded by the flag; nothing else to do.
    } else if justification.is_some() {
        if policy.spec.allows_break_glass() {
            check.break_glass = true;
        } else if let Outcome::Refused { details, .. } = &mut check.outcome {
            details.push(format!(
                "break-glass was requested but ImagePolicy {} does not allow it",
                policy_name(policy)
            ));
        }
    }
    check
}
