//! Whether an image's verified attestations satisfy a policy's attestation requirements.
//! Pure: the envelopes were read by the registry client.

use rollgate_crds::image_policy::AttestationRequirement;

use crate::condition::evaluate;
use crate::dsse::verified_statements;
use crate::keys::PublicKey;
use crate::reference::DigestReference;
use crate::registry::ArtifactLayer;
use crate::verdict::Outcome;

/// Checks every requirement: each needs one statement of its predicate type, signed by a
/// trusted key, about the image digest, whose predicate satisfies the condition.
pub fn check_attestations(
    requirements: &[AttestationRequirement],
    layers: &[ArtifactLayer],
    reference: &DigestReference,
    keys: &[PublicKey],
) -> Outcome {
    let (statements, mut details) = verified_statements(layers, &reference.digest, keys);
    if layers.is_empty() {
        details.push(format!(
            "no attestation manifest {}",
            reference.artifact_tag("att")
        ));
    }
    let mut first_failure: Option<&str> = None;
    for requirement in requirements {
        let wanted = &requirement.predicate_type;
        let candidates: Vec<_> = statements
            .iter()
            .filter(|s| &s.predicate_type == wanted)
            .collect();
        let satisfied = match (&requirement.condition, candidates.is_empty()) {
            (_, true) => {
                details.push(format!(
                    "no verified attestation has predicate type {wanted}"
                ));
                false
            }
            (None, false) => true,
            (Some(condition), false) => {
                let mut passed = false;
                for statement in candidates {
                    match evaluate(condition, &statement.predicate_type, &statement.predicate) {
                        Ok(true) => passed = true,
                        Ok(false) => {
                            details.push(format!("{wanted}: condition {condition:?} is false"))
                        }
                        Err(reason) => details.push(format!("{wanted}: {reason}")),
                    }
                }
                passed
            }
        };
        if !satisfied && first_failure.is_none() {
            first_failure = Some(wanted);
        }
    }
    match first_failure {
        None => Outcome::Verified,
        Some(predicate_type) => Outcome::Refused {
            reason: format!(
                "No valid attestation of type {predicate_type} signed by a trusted key for {reference}"
            ),
            details,
        },
    }
}
