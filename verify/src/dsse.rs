//! DSSE envelopes carrying in-toto statements, as `cosign attest` stores them: parsing and
//! signature verification. Pure: no I/O.
//!
//! Each layer of the `sha256-<hex>.att` manifest is one envelope
//! `{"payloadType", "payload": <base64 statement>, "signatures": [{"keyid", "sig"}]}`. A
//! signature covers the pre-authentication encoding (PAE) of the payload type and the decoded
//! payload, never the JSON envelope. Only a statement with a valid signature by a trusted key
//! is decoded, and it counts only if one of its subjects carries the image's sha256 digest. The
//! predicate type is taken from the signed statement, never from the layer's annotations.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use crate::keys::PublicKey;
use crate::registry::ArtifactLayer;

/// The layer media type of a DSSE envelope.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The DSSE pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(default)]
    subject: Vec<Subject>,
    predicate_type: String,
    #[serde(default)]
    predicate: Value,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// An in-toto statement whose envelope a trusted key signed and whose subject is the image.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedStatement {
    /// The predicate type, from the signed statement.
    pub predicate_type: String,
    /// The predicate.
    pub predicate: Value,
    /// Ids of the trusted keys whose signatures verified.
    pub signers: Vec<String>,
}

/// Verifies every envelope layer; returns the statements that count and a note for each
/// layer that does not.
pub fn verified_statements(
    layers: &[ArtifactLayer],
    digest: &str,
    keys: &[PublicKey],
) -> (Vec<VerifiedStatement>, Vec<String>) {
    let mut statements = Vec::new();
    let mut rejected = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        match verify_layer(layer, digest, keys) {
            Ok(statement) => statements.push(statement),
            Err(reason) => rejected.push(format!("attestation {index}: {reason}")),
        }
    }
    (statements, rejected)
}

fn verify_layer(
    layer: &ArtifactLayer,
    digest: &str,
    keys: &[PublicKey],
) -> Result<VerifiedStatement, String> {
    if layer.media_type != DSSE_MEDIA_TYPE {
        return Err(format!(
            "media type {} is not a DSSE envelope",
            layer.media_type
        ));
    }
    let envelope: Envelope = serde_json::from_slice(&layer.blob)
        .map_err(|error| format!("not a DSSE envelope: {error}"))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "payload type {} is not {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        ));
    }
    let payload = STANDARD
        .decode(envelope.payload.trim())
        .map_err(|error| format!("payload is not base64: {error}"))?;
    let message = pae(&envelope.payload_type, &payload);
    let mut signers: Vec<String> = Vec::new();
    for signature in &envelope.signatures {
        let Ok(der) = STANDARD.decode(signature.sig.trim()) else {
            continue;
        };
        signers.extend(
            keys.iter()
                .filter(|key| key.verifies(&message, &der))
                .map(|key| key.id().to_owned()),
        );
    }
    signers.sort();
    signers.dedup();
    if signers.is_empty() {
        return Err("not signed by a trusted key".to_owned());
    }
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|error| format!("payload is not an in-toto statement: {error}"))?;
    let hex = digest.trim_start_matches("sha256:");
    if !statement
        .subject
        .iter()
        .any(|subject| subject.digest.get("sha256").is_some_and(|d| d == hex))
    {
        return Err(format!("no subject has digest {digest}"));
    }
    Ok(VerifiedStatement {
        predicate_type: statement.predicate_type,
        predicate: statement.predicate,
        signers,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    use sha2::{Digest, Sha256};

    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let signing = SigningKey::from_slice(&Sha256::digest([seed, 2])).expect("key");
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        (signing, PublicKey::from_pem(&pem).expect("public"))
    }

    fn envelope(signing: &SigningKey, subject_hex: &str, predicate_type: &str) -> ArtifactLayer {
        let statement = serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app", "digest": {"sha256": subject_hex}}],
            "predicateType": predicate_type,
            "predicate": {"builder": "ci"},
        }))
        .expect("json");
        let signature: Signature = signing.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &statement));
        let blob = serde_json::to_vec(&serde_json::json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": STANDARD.encode(&statement),
            "signatures": [{"keyid": "", "sig": STANDARD.encode(signature.to_der().as_bytes())}],
        }))
        .expect("json");
        ArtifactLayer {
            media_type: DSSE_MEDIA_TYPE.to_owned(),
            annotations: BTreeMap::new(),
            blob,
        }
    }

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn a_signed_statement_about_the_digest_counts() {
        let (signing, public) = key(1);
        let digest = format!("sha256:{HEX}");
        let (statements, rejected) = verified_statements(
            &[envelope(&signing, HEX, "https://slsa.dev/provenance/v1")],
            &digest,
            std::slice::from_ref(&public),
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(
            statements[0].predicate_type,
            "https://slsa.dev/provenance/v1"
        );
        assert_eq!(statements[0].signers, vec![public.id().to_owned()]);
        assert_eq!(statements[0].predicate["builder"], "ci");
    }

    #[test]
    fn a_wrong_subject_or_an_untrusted_key_does_not_count() {
        let (signing, public) = key(1);
        let (stranger, _) = key(2);
        let digest = format!("sha256:{HEX}");
        let other = HEX.replace('0', "f");
        let (statements, rejected) = verified_statements(
            &[
                envelope(&signing, &other, "t"),
                envelope(&stranger, HEX, "t"),
            ],
            &digest,
            &[public],
        );
        assert!(statements.is_empty());
        assert!(rejected[0].contains("no subject"), "{rejected:?}");
        assert!(
            rejected[1].contains("not signed by a trusted key"),
            "{rejected:?}"
        );
    }
}
