//! Cosign-compatible signatures and attestations made in Rust, for tests of the verifier
//! against the real registry: ECDSA P-256 keys, simple-signing payloads stored as
//! `sha256-<hex>.sig`, and DSSE envelopes of in-toto statements stored as `sha256-<hex>.att`,
//! laid out as `cosign sign` and `cosign attest` lay them out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};

use crate::oci_push::{LayerSpec, TestImage, push_artifact};

/// The cosign signature layer media type.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The DSSE envelope layer media type.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The in-toto payload type.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// An ECDSA P-256 signing key made for one test.
#[derive(Clone)]
pub struct TestKey {
    signing: SigningKey,
}

impl TestKey {
    /// A fresh key (distinct in each call).
    pub fn generate() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = format!(
            "{nanos}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Self::from_seed(&seed)
    }

    /// The key derived from a seed (the same seed, the same key).
    pub fn from_seed(seed: &str) -> Self {
        let mut material = Sha256::digest(seed.as_bytes());
        loop {
            if let Ok(signing) = SigningKey::from_slice(&material) {
                return TestKey { signing };
            }
            material = Sha256::digest(material);
        }
    }

    /// The public key in PEM (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key encodes")
    }

    /// The key id: hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn key_id(&self) -> String {
        let der = self
            .signing
            .verifying_key()
            .to_public_key_der()
            .expect("a P-256 public key encodes");
        hex::encode(Sha256::digest(der.as_bytes()))
    }

    /// The base64 of the DER ECDSA signature over SHA-256 of `message`.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        let signature: Signature = self.signing.sign(message);
        STANDARD.encode(signature.to_der().as_bytes())
    }
}

/// The simple-signing payload cosign signs for an image digest.
pub fn simple_signing_payload(name: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": name},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("json")
}

/// A signature layer: `payload` signed by `key` (pass a different payload to `layer_with` to
/// tamper with it).
pub fn signature_layer(key: &TestKey, payload: &[u8]) -> LayerSpec {
    signature_layer_with(payload, &key.sign_base64(payload))
}

/// A signature layer with a given payload and base64 signature.
pub fn signature_layer_with(payload: &[u8], signature_base64: &str) -> LayerSpec {
    let mut annotations = serde_json::Map::new();
    annotations.insert(SIGNATURE_ANNOTATION.to_owned(), signature_base64.into());
    LayerSpec {
        media_type: SIMPLE_SIGNING.to_owned(),
        blob: payload.to_vec(),
        annotations,
    }
}

/// Pushes a signature manifest for `digest` in `image`'s repository.
pub fn push_signature_layers(
    image: &TestImage,
    digest: &str,
    layers: &[LayerSpec],
) -> Result<String> {
    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    push_artifact(&image.host, &image.repository, &tag, b"{}", layers)
}

/// Signs the image with each key, as `cosign sign` does (one layer per signature).
pub fn sign(image: &TestImage, keys: &[&TestKey]) -> Result<String> {
    let payload = simple_signing_payload(&image.name(), &image.digest);
    let layers: Vec<LayerSpec> = keys
        .iter()
        .map(|key| signature_layer(key, &payload))
        .collect();
    push_signature_layers(image, &image.digest, &layers)
}

/// An in-toto v1 statement about `subject_digest` (`sha256:…`).
pub fn statement(
    subject_digest: &str,
    predicate_type: &str,
    predicate: &serde_json::Value,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "image", "digest": {"sha256": subject_digest.trim_start_matches("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .expect("json")
}

/// The DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// A DSSE envelope layer of `statement`, signed by `key`.
pub fn envelope_layer(key: &TestKey, statement: &[u8]) -> LayerSpec {
    let envelope = serde_json::to_vec(&serde_json::json!({
        "payloadType": IN_TOTO,
        "payload": STANDARD.encode(statement),
        "signatures": [{"keyid": "", "sig": key.sign_base64(&pae(IN_TOTO, statement))}],
    }))
    .expect("json");
    LayerSpec {
        media_type: DSSE_ENVELOPE.to_owned(),
        blob: envelope,
        annotations: serde_json::Map::new(),
    }
}

/// Pushes an attestation manifest for `image` with the given envelope layers.
pub fn push_attestation_layers(image: &TestImage, layers: &[LayerSpec]) -> Result<String> {
    push_artifact(
        &image.host,
        &image.repository,
        &image.artifact_tag("att"),
        b"{}",
        layers,
    )
}

/// Attests the image with one statement, as `cosign attest` does.
pub fn attest(
    image: &TestImage,
    key: &TestKey,
    predicate_type: &str,
    predicate: &serde_json::Value,
) -> Result<String> {
    let layer = envelope_layer(key, &statement(&image.digest, predicate_type, predicate));
    push_attestation_layers(image, &[layer])
}
