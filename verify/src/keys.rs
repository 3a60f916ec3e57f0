//! Trusted public keys: parsing, key ids, and the keys of each authority of a policy.
//!
//! Keys are ECDSA P-256 public keys in PEM (a SubjectPublicKeyInfo, as `cosign
//! generate-key-pair` writes `cosign.pub`). A key's id is the lowercase hex SHA-256 of its DER
//! SubjectPublicKeyInfo: stable across PEM formatting, and what verdicts and audit records name.
//!
//! This crate never talks to the Kubernetes API: keys held in Secrets are read by the caller
//! (the controller), which passes their PEM text in a [`SecretKeys`] map keyed by the policy's
//! [`SecretKeyRef`]s ([`rollgate_crds::ImagePolicySpec::secret_refs`] lists the ones to read).
//! A key that is missing or does not parse is left out of its authority, with a note that the
//! verdict carries.

use std::collections::BTreeMap;

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use rollgate_crds::ImagePolicySpec;
use rollgate_crds::image_policy::SecretKeyRef;
use sha2::{Digest, Sha256};

/// PEM text of keys read from Secrets, keyed by the reference the policy uses.
pub type SecretKeys = BTreeMap<SecretKeyRef, String>;

/// A key does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a PEM ECDSA P-256 public key: {0}")]
pub struct KeyError(String);

/// A trusted ECDSA P-256 public key and its id.
#[derive(Debug, Clone)]
pub struct PublicKey {
    id: String,
    key: VerifyingKey,
}

impl PublicKey {
    /// Parses a PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|error| KeyError(error.to_string()))?;
        let der = key
            .to_public_key_der()
            .map_err(|error| KeyError(error.to_string()))?;
        Ok(PublicKey {
            id: key_id(der.as_bytes()),
            key,
        })
    }

    /// The key id: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether `signature_der` (ASN.1 DER ECDSA) is this key's signature over SHA-256 of
    /// `message`.
    pub fn verifies(&self, message: &[u8], signature_der: &[u8]) -> bool {
        Signature::from_der(signature_der)
            .is_ok_and(|signature| self.key.verify(message, &signature).is_ok())
    }
}

/// The key id of a DER SubjectPublicKeyInfo: its SHA-256 in lowercase hex.
pub fn key_id(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

/// One authority of a policy with its keys resolved.
#[derive(Debug, Clone)]
pub struct AuthorityKeys {
    /// The authority's name.
    pub name: String,
    /// How many distinct keys must have signed.
    pub required: usize,
    /// The keys that resolved and parsed.
    pub keys: Vec<PublicKey>,
    /// Why some keys are missing (a Secret not found, a PEM that does not parse).
    pub problems: Vec<String>,
}

impl AuthorityKeys {
    /// The ids of this authority's keys that are among `signers`, each once.
    pub fn satisfied_by<'a>(&'a self, signers: &[String]) -> Vec<&'a str> {
        let mut ids: Vec<&str> = self
            .keys
            .iter()
            .map(PublicKey::id)
            .filter(|id| signers.iter().any(|s| s == id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Resolves every authority's keys: inline PEM, or PEM from `secrets`.
pub fn resolve_authorities(spec: &ImagePolicySpec, secrets: &SecretKeys) -> Vec<AuthorityKeys> {
    resolve_authorities_with(spec, secrets, PublicKey::from_pem)
}

/// [`resolve_authorities`] with a given PEM parser (the verifier passes a memoising one).
pub fn resolve_authorities_with(
    spec: &ImagePolicySpec,
    secrets: &SecretKeys,
    parse: impl Fn(&str) -> Result<PublicKey, KeyError>,
) -> Vec<AuthorityKeys> {
    spec.authorities
        .iter()
        .map(|authority| {
            let mut keys = Vec::new();
            let mut problems = Vec::new();
            for (index, trusted) in authority.keys.iter().enumerate() {
                let pem = match (&trusted.pem, &trusted.secret_ref) {
                    (Some(pem), _) => Some(pem.as_str()),
                    (None, Some(secret)) => secrets.get(secret).map(String::as_str),
                    (None, None) => None,
                };
                let Some(pem) = pem else {
                    problems.push(format!(
                        "authority {} key {index}: {}",
                        authority.name,
                        match &trusted.secret_ref {
                            Some(s) => format!("Secret {}/{} key {} not found", s.namespace, s.name, s.key),
                            None => "neither pem nor secretRef is set".to_owned(),
                        }
                    ));
                    continue;
                };
                match parse(pem) {
                    Ok(key) => keys.push(key),
                    Err(error) => {
                        problems.push(format!("authority {} key {index}: {error}", authority.name))
                    }
                }
            }
            AuthorityKeys {
                name: authority.name.clone(),
                required: authority.required_signatures(),
                keys,
                problems,
            }
        })
        .collect()
}

/// Every resolved key of every authority, each id once.
pub fn all_keys(authorities: &[AuthorityKeys]) -> Vec<PublicKey> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for key in authorities.iter().flat_map(|a| a.keys.iter()) {
        if !keys.iter().any(|k| k.id() == key.id()) {
            keys.push(key.clone());
        }
    }
    keys
}

/// A fingerprint of the resolved key ids, so a cached verdict is not reused after a Secret
/// holding a key changes.
pub fn keys_fingerprint(authorities: &[AuthorityKeys]) -> String {
    let mut hasher = Sha256::new();
    for authority in authorities {
        hasher.update(authority.name.as_bytes());
        hasher.update([0]);
        for key in &authority.keys {
            hasher.update(key.id().as_bytes());
        }
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::LineEnding;

    use super::*;

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&Sha256::digest([seed])).expect("key")
    }

    fn pem(key: &SigningKey) -> String {
        key.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem")
    }

    #[test]
    fn the_key_id_is_the_sha256_of_the_spki_der() {
        let key = signing_key(1);
        let der = key.verifying_key().to_public_key_der().expect("der");
        let parsed = PublicKey::from_pem(&pem(&key)).expect("parse");
        assert_eq!(parsed.id(), hex::encode(Sha256::digest(der.as_bytes())));
        assert_eq!(parsed.id().len(), 64);
    }

    #[test]
    fn a_der_signature_verifies_only_with_its_key_and_message() {
        let key = signing_key(2);
        let signature: Signature = key.sign(b"payload");
        let der = signature.to_der();
        let trusted = PublicKey::from_pem(&pem(&key)).expect("parse");
        let other = PublicKey::from_pem(&pem(&signing_key(3))).expect("parse");
        assert!(trusted.verifies(b"payload", der.as_bytes()));
        assert!(!trusted.verifies(b"payload!", der.as_bytes()));
        assert!(!other.verifies(b"payload", der.as_bytes()));
        assert!(!trusted.verifies(b"payload", b"not der"));
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }

    #[test]
    fn keys_from_missing_secrets_are_reported() {
        let spec: ImagePolicySpec = serde_json::from_value(serde_json::json!({
            "images": ["**"],
            "authorities": [{"name": "release", "count": 2, "keys": [
                {"pem": pem(&signing_key(4))},
                {"secretRef": {"name": "keys", "namespace": "ops", "key": "cosign.pub"}},
                {"secretRef": {"name": "gone", "namespace": "ops", "key": "cosign.pub"}},
            ]}],
        }))
        .expect("spec");
        let secrets = SecretKeys::from([(
            SecretKeyRef {
                name: "keys".into(),
                namespace: "ops".into(),
                key: "cosign.pub".into(),
            },
            pem(&signing_key(5)),
        )]);
        let authorities = resolve_authorities(&spec, &secrets);
        assert_eq!(authorities[0].keys.len(), 2);
        assert_eq!(authorities[0].required, 2);
        assert_eq!(
            authorities[0].problems,
            vec!["authority release key 2: Secret ops/gone key cosign.pub not found"]
        );
    }
}
