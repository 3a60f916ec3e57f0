//! Image verification in the controller: before anything is created for a new revision, every
//! image of its pod template goes through [`rollgate_verify`] against the ImagePolicies (held in
//! a reflector, so a reconcile reads no policy from the API server) with the keys of the
//! Secrets they name. Which policies apply is decided by the policies' namespace selectors over
//! the labels of the Rollout's Namespace (read with a GET at each verification: namespaces are
//! few and verification runs only while a new revision is pending), plus the Rollout's own
//! `spec.verification.imagePolicy`. The verdict becomes the gate the state machine sees; a
//! revision whose registry cannot be reached (and whose policy fails closed) is held and tried
//! again.
//!
//! The Verified condition says exactly what happened ([`rollgate_verify::Summary`]): reason
//! `Verified` (naming the policies and key ids), `DryRun`, `FailedOpen` or `BreakGlass`; with
//! verification off, `VerificationOff`; for a return to the stable revision (not verified
//! again), `StableRevision`.
//!
//! Every verification that changes what the Rollout shows leaves one Kubernetes Event per
//! image with the image, digest, policy and generation, the ids of the keys that verified, the
//! result and the break-glass, dry-run and failed-open flags, and the same fields as a
//! structured log line (the audit record of a verification is written from the Rollout's
//! transitions).
//!
//! `--image-verification=off` keeps only the digest-pinning rule. It exists for clusters where
//! an admission controller (Binary Authorization, Sigstore policy-controller) already verifies
//! every image, and for the test suite's shared controller, whose fake digests have no
//! registry; it is never the default.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use rollgate_crds::image_policy::break_glass_justification;
use rollgate_crds::rollout::ContainerImage;
use rollgate_crds::{ImagePolicy, Rollout};
use rollgate_verify::{
    ImageVerdict, NamespaceScope, Outcome, RevisionVerdict, SecretKeys, VerificationRequest,
    Verifier,
};

use crate::decide::Verification;
use crate::error::Error;
use crate::events::{self, Activity, Notice};
use crate::gates;

/// How soon a revision held because its registry could not be reached is verified again.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(15);

/// Whether the controller verifies signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerificationMode {
    /// Every new revision's images must pass their ImagePolicy.
    Enforce,
    /// Only the digest-pinning rule applies (an admission controller verifies images).
    Off,
}

/// What verifying images needs: the verifier (with its cache) and the ImagePolicies.
#[derive(Clone)]
pub struct ImageVerification {
    /// The verifier; clones share its cache.
    pub verifier: Verifier,
    /// Every ImagePolicy, from a reflector.
    pub policies: Store<ImagePolicy>,
}

/// The outcome of verifying one revision.
pub struct Verified {
    /// The gate the state machine sees.
    pub gate: Verification,
    /// Look again after this long (the registry could not be reached).
    pub retry_after: Option<Duration>,
    /// Per-image verdicts, for Events.
    pub verdict: RevisionVerdict,
}

impl ImageVerification {
    /// Verifies the images of `rollout`'s template.
    ///
    /// A refusal is confirmed against the API server: the policy cache may not yet hold an
    /// ImagePolicy created a moment before the Rollout (both applied together), so when the
    /// listed policies differ from the cached ones the images are judged again with them.
    pub async fn verify(
        &self,
        client: &kube::Client,
        rollout: &Rollout,
        images: &[ContainerImage],
    ) -> Result<Verified, Error> {
        let cached: Vec<ImagePolicy> = self
            .policies
            .state()
            .iter()
            .map(|policy| policy.as_ref().clone())
            .collect();
        let mut verdict = self.judge(client, rollout, images, &cached).await?;
        if !verdict.admitted() && !verdict.is_transient() {
            let listed = Api::<ImagePolicy>::all(client.clone())
                .list(&ListParams::default())
                .await?
                .items;
            if versions(&listed) != versions(&cached) {
                verdict = self.judge(client, rollout, images, &listed).await?;
            }
        }
        let (gate, retry_after) = if let Some(summary) = verdict.summary() {
            let passed = Verification::Passed {
                reason: summary.reason.to_owned(),
                message: summary.message,
            };
            (passed, None)
        } else {
            let reason = verdict
                .message()
                .unwrap_or("an image failed verification")
                .to_owned();
            let retry = verdict.is_transient().then_some(UNAVAILABLE_RETRY);
            (Verification::Refused(reason), retry)
        };
        Ok(Verified {
            gate,
            retry_after,
            verdict,
        })
    }
}

impl ImageVerification {
    /// The verdict on `images` under `policies`.
    async fn judge(
        &self,
        client: &kube::Client,
        rollout: &Rollout,
        images: &[ContainerImage],
        policies: &[ImagePolicy],
    ) -> Result<RevisionVerdict, Error> {
        let secret_keys = secret_keys(client, policies).await?;
        let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
        let labels = Api::<Namespace>::all(client.clone())
            .get_metadata_opt(&namespace)
            .await?
            .and_then(|found| found.metadata.labels)
            .unwrap_or_default();
        let images: Vec<String> = images.iter().map(|image| image.image.clone()).collect();
        let annotations = rollout
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|meta| meta.annotations.clone())
            .unwrap_or_default();
        Ok(self
            .verifier
            .verify(&VerificationRequest {
                images: &images,
                policy_name: rollout
                    .spec
                    .verification
                    .as_ref()
                    .map(|reference| reference.image_policy.as_str()),
                policies,
                namespace: NamespaceScope {
                    name: &namespace,
                    labels: &labels,
                },
                secret_keys: &secret_keys,
                break_glass_justification: break_glass_justification(&annotations),
            })
            .await)
    }
}

/// The verification gate of a revision that is not verified: with verification on, the stable
/// revision (verified when it rolled out); with it off, only the digest-pinning rule applies,
/// and the condition says so.
pub fn without_verdict(verifying: bool, images: &[ContainerImage]) -> Verification {
    match gates::pinning(images) {
        Err(reason) => Verification::Refused(reason),
        Ok(()) if verifying => Verification::Passed {
            reason: "StableRevision".to_owned(),
            message: "the stable revision, whose images were verified when it rolled out"
                .to_owned(),
        },
        Ok(()) => Verification::Passed {
            reason: "VerificationOff".to_owned(),
            message: "image verification is off (--image-verification=off): every image is \
                      pinned by digest, no signature or attestation was checked"
                .to_owned(),
        },
    }
}

/// Each policy's name and resource version, sorted: equal when two lists hold the same
/// versions of the same policies.
fn versions(policies: &[ImagePolicy]) -> Vec<(String, String)> {
    let mut versions: Vec<(String, String)> = policies
        .iter()
        .map(|policy| {
            (
                policy.name_any(),
                policy.resource_version().unwrap_or_default(),
            )
        })
        .collect();
    versions.sort();
    versions
}

/// The PEM text of every Secret key the policies name. A Secret or key that is missing is left
/// out: the authorities that need it then cannot verify, which refuses, never admits.
async fn secret_keys(client: &kube::Client, policies: &[ImagePolicy]) -> Result<SecretKeys, Error> {
    let mut keys = SecretKeys::new();
    for reference in policies.iter().flat_map(|policy| policy.spec.secret_refs()) {
        if keys.contains_key(reference) {
            continue;
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &reference.namespace);
        let Some(secret) = secrets.get_opt(&reference.name).await? else {
            tracing::warn!(secret = %reference.name, namespace = %reference.namespace, "an ImagePolicy names a Secret that does not exist");
            continue;
        };
        let pem = secret
            .data
            .as_ref()
            .and_then(|data| data.get(&reference.key))
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok());
        if let Some(pem) = pem {
            keys.insert(reference.clone(), pem);
        }
    }
    Ok(keys)
}

/// The fields of one image's verification, as Events, logs and audit records carry them.
pub fn verdict_fields(verdict: &ImageVerdict) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::from([
        ("image".to_owned(), verdict.image.clone()),
        (
            "result".to_owned(),
            result_label(&verdict.outcome).to_owned(),
        ),
        ("keyIds".to_owned(), verdict.key_ids.join(",")),
        ("breakGlass".to_owned(), verdict.break_glass.to_string()),
        ("dryRun".to_owned(), verdict.dry_run.to_string()),
        ("failedOpen".to_owned(), verdict.failed_open.to_string()),
    ]);
    if let Some(digest) = &verdict.digest {
        fields.insert("digest".to_owned(), digest.clone());
    }
    // Every policy the image had to pass: `name=result` with the override that let a failure
    // through, if any (`base=verified,trial=refused+dryRun`).
    let checks: Vec<String> = verdict
        .checks
        .iter()
        .map(|check| {
            let overridden = [
                (check.break_glass, "+breakGlass"),
                (check.failed_open, "+failedOpen"),
                (
                    check.dry_run && check.outcome != Outcome::Verified,
                    "+dryRun",
                ),
            ];
            let suffix: String = overridden
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, text)| *text)
                .collect();
            format!(
                "{}={}{suffix}",
                check.policy.name,
                result_label(&check.outcome)
            )
        })
        .collect();
    fields.insert("policies".to_owned(), checks.join(","));
    if let Some(policy) = &verdict.policy {
        fields.insert("policy".to_owned(), policy.name.clone());
        if let Some(generation) = policy.generation {
            fields.insert("policyGeneration".to_owned(), generation.to_string());
        }
    }
    if let Some(reason) = verdict.reason() {
        fields.insert("reason".to_owned(), reason.to_owned());
    }
    if let Some(justification) = &verdict.break_glass_justification {
        fields.insert("breakGlassJustification".to_owned(), justification.clone());
    }
    fields
}

fn result_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Verified => "verified",
        Outcome::Refused { .. } => "refused",
        Outcome::Unavailable { .. } => "unavailable",
    }
}

/// Publishes one Event (and one structured log line) per image verdict.
pub async fn publish_verdicts(recorder: &Recorder, rollout: &Rollout, verdict: &RevisionVerdict) {
    for image in &verdict.images {
        let fields = verdict_fields(image);
        let note = fields
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::info!(rollout = %rollout.name_any(), fields = %note, "image verification");
        let overridden = image.break_glass || image.dry_run || image.failed_open;
        let reason = match (&image.outcome, overridden) {
            (Outcome::Verified, _) => "ImageVerified",
            (_, true) => "ImageVerificationOverridden",
            _ => "ImageRefused",
        };
        let notice = Notice {
            warning: reason != "ImageVerified",
            reason: reason.to_owned(),
            note,
            activity: Activity::Verify,
        };
        events::publish(recorder, &rollout.object_ref(&()), notice).await;
    }
}
