//! Cosign "simple signing" signatures: which trusted keys signed an image digest.
//!
//! Each layer of the `sha256-<hex>.sig` manifest is one signature: its blob is the signed
//! payload, its annotation `dev.cosignproject.cosign/signature` the base64 of an ASN.1 DER
//! ECDSA signature over SHA-256 of the blob. A signature counts only if the payload is a cosign
//! container image signature whose `critical.image.docker-manifest-digest` is the image's
//! digest; `critical.identity.docker-reference` is not trusted (a signature may be copied
//! between repositories, but never between digests). Pure: no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::keys::PublicKey;
use crate::registry::ArtifactLayer;

/// The layer media type of a cosign signature.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` of a cosign container image signature.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: CriticalImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct CriticalImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// What the signature layers showed: the ids of trusted keys with a valid signature over the
/// digest (each once, sorted), and why the other layers did not count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureCheck {
    /// Ids of trusted keys that signed the digest.
    pub signers: Vec<String>,
    /// One note per layer that did not count, for the verdict's details.
    pub rejected: Vec<String>,
}

/// Checks every signature layer against the trusted keys and the image digest.
pub fn check_signatures(
    layers: &[ArtifactLayer],
    digest: &str,
    keys: &[PublicKey],
) -> SignatureCheck {
    let mut check = SignatureCheck::default();
    for (index, layer) in layers.iter().enumerate() {
        match layer_signers(layer, digest, keys) {
            Ok(signers) if signers.is_empty() => check
                .rejected
                .push(format!("signature {index}: not made by a trusted key")),
            Ok(signers) => check.signers.extend(signers),
            Err(reason) => check.rejected.push(format!("signature {index}: {reason}")),
        }
    }
    check.signers.sort();
    check.signers.dedup();
    check
}

fn layer_signers(
    layer: &ArtifactLayer,
    digest: &str,
    keys: &[PublicKey],
) -> Result<Vec<String>, String> {
    if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(format!(
            "media type {} is not a cosign signature",
            layer.media_type
        ));
    }
    let encoded = layer
        .annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| format!("no {SIGNATURE_ANNOTATION} annotation"))?;
    let signature = STANDARD
        .decode(encoded.trim())
        .map_err(|error| format!("signature is not base64: {error}"))?;
    let signers: Vec<String> = keys
        .iter()
        .filter(|key| key.verifies(&layer.blob, &signature))
        .map(|key| key.id().to_owned())
        .collect();
    if signers.is_empty() {
        return Ok(signers);
    }
    // Only a payload signed by a trusted key is worth reading.
    let payload: Payload = serde_json::from_slice(&layer.blob)
        .map_err(|error| format!("payload is not a cosign signature payload: {error}"))?;
    if payload.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(format!(
            "payload type {:?} is not {COSIGN_SIGNATURE_TYPE:?}",
            payload.critical.kind
        ));
    }
    if payload.critical.image.docker_manifest_digest != digest {
        return Err(format!(
            "signed for digest {}, not {digest}",
            payload.critical.image.docker_manifest_digest
        ));
    }
    Ok(signers)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    use sha2::{Digest, Sha256};

    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let signing = SigningKey::from_slice(&Sha256::digest([seed, 1])).expect("key");
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        (signing, PublicKey::from_pem(&pem).expect("public"))
    }

    fn payload(digest: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "critical": {
                "identity": {"docker-reference": "registry.example.com/app"},
                "image": {"docker-manifest-digest": digest},
                "type": COSIGN_SIGNATURE_TYPE,
            },
            "optional": null,
        }))
        .expect("json")
    }

    fn layer(signing: &SigningKey, blob: Vec<u8>) -> ArtifactLayer {
        let signature: Signature = signing.sign(&blob);
        ArtifactLayer {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
            annotations: BTreeMap::from([(
                SIGNATURE_ANNOTATION.to_owned(),
                STANDARD.encode(signature.to_der().as_bytes()),
            )]),
            blob,
        }
    }

    #[test]
    fn a_trusted_signature_over_the_digest_counts() {
        let (signing, public) = key(1);
        let check = check_signatures(
            &[layer(&signing, payload(DIGEST))],
            DIGEST,
            std::slice::from_ref(&public),
        );
        assert_eq!(check.signers, vec![public.id().to_owned()]);
        assert!(check.rejected.is_empty());
    }

    #[test]
    fn an_untrusted_key_a_tampered_payload_and_another_digest_do_not_count() {
        let (signing, public) = key(1);
        let (stranger, _) = key(2);
        let mut tampered = layer(&signing, payload(DIGEST));
        tampered.blob.push(b' ');
        let other_digest = DIGEST.replace("0123", "4567");
        let layers = [
            layer(&stranger, payload(DIGEST)),
            tampered,
            layer(&signing, payload(&other_digest)),
        ];
        let check = check_signatures(&layers, DIGEST, &[public]);
        assert!(check.signers.is_empty());
        assert_eq!(check.rejected.len(), 3);
        assert!(
            check.rejected[2].contains("signed for digest"),
            "{:?}",
            check.rejected
        );
    }

    #[test]
    fn two_signatures_by_one_key_count_once() {
        let (signing, public) = key(1);
        let layers = [
            layer(&signing, payload(DIGEST)),
            layer(&signing, payload(DIGEST)),
        ];
        assert_eq!(
            check_signatures(&layers, DIGEST, &[public]).signers.len(),
            1
        );
    }
}
