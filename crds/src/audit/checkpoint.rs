//! Signed checkpoints (C2SP tlog-checkpoint in a C2SP signed note) and signed leaves.
//!
//! # Checkpoint
//!
//! A checkpoint is the text `<origin>\n<tree size>\n<base64 root>\n`
//! (<https://c2sp.org/tlog-checkpoint>), signed as a note (<https://c2sp.org/signed-note>, the
//! format of Go's `golang.org/x/mod/sumdb/note`) with an Ed25519 key. The origin names the tree:
//! `rollgate.io/audit/<namespace>/<rollout>/<uid>`, one tree per Rollout uid ([`origin`]).
//!
//! # Keys
//!
//! Keys are the signed-note encodings: the signer key `PRIVATE+KEY+<name>+<id>+<base64>` (kept
//! by the controller, in a file) and the verifier key `<name>+<id>+<base64>` (given to
//! auditors). [`generate_key`] makes a pair.
//!
//! # Signed leaves
//!
//! Each record the controller writes also carries, in `spec.signature`, an Ed25519 signature
//! by the same key over `"rollgate.io/audit-leaf\n<origin>\n<index>\n<base64 leaf hash>\n"`
//! ([`leaf_message`]). That lets the controller tell its own records from anyone else's
//! whatever their names or labels, before any checkpoint covers them (after a crash or while
//! the external store is unreachable), and binds a record to its Rollout and position.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use signed_note::{Note, Signer, StandardSigner, StandardVerifier, Verifier, VerifierList};

use super::AuditRecordSpec;
use super::merkle::{Hash, record_leaf_hash, root_of_hashes};

/// One publication: a signed checkpoint and the leaf hashes of the tree it signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedTree {
    /// The signed note of the checkpoint.
    pub checkpoint: String,
    /// The leaf hashes (hex), in index order; as many as the checkpoint's tree size.
    pub leaf_hashes: Vec<String>,
}

/// A tree head: which tree, how many leaves, which root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The tree's name.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// Why a checkpoint or a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signer or verifier key is malformed.
    #[error("malformed key: {0}")]
    Key(String),
    /// The note is malformed or its signature is not by the trusted key.
    #[error("the checkpoint is not signed by the trusted key: {0}")]
    Signature(String),
    /// The note's text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Format(String),
}

/// The origin of the tree of the Rollout `name` (uid `uid`) in `namespace`.
pub fn origin(namespace: &str, name: &str, uid: &str) -> String {
    format!("rollgate.io/audit/{namespace}/{name}/{uid}")
}

impl Checkpoint {
    /// The checkpoint's text (the body of the note).
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint's text (extension lines after the root are ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let mut lines = text.split('\n');
        let bad = |what: &str| CheckpointError::Format(what.to_owned());
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin"))?;
        let size = lines
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("no tree size"))?;
        let root = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| Hash::try_from(r.as_slice()).ok())
            .ok_or_else(|| bad("no root hash"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// The controller's signing key.
pub struct LogSigner {
    signer: StandardSigner,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogSigner({})", self.signer.name())
    }
}

impl LogSigner {
    /// A signer from its signed-note encoding (`PRIVATE+KEY+...`, surrounding white space
    /// ignored).
    pub fn new(key: &str) -> Result<LogSigner, CheckpointError> {
        let signer = StandardSigner::new(key.trim())
            .map_err(|error| CheckpointError::Key(error.to_string()))?;
        Ok(LogSigner { signer })
    }

    /// Signs `checkpoint` as a note.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        let mut note = Note::new(checkpoint.text().as_bytes(), &[])
            .map_err(|error| CheckpointError::Format(error.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|error| CheckpointError::Signature(error.to_string()))?;
        String::from_utf8(note.to_bytes())
            .map_err(|error| CheckpointError::Format(error.to_string()))
    }

    /// Signs `spec` as leaf `spec.sequence` of the tree `origin` (sets `spec.signature`) and
    /// returns its leaf hash.
    pub fn sign_record(
        &self,
        origin: &str,
        spec: &mut AuditRecordSpec,
    ) -> Result<Hash, CheckpointError> {
        spec.signature = None;
        let leaf =
            record_leaf_hash(spec).map_err(|error| CheckpointError::Format(error.to_string()))?;
        spec.signature = Some(self.sign_leaf(origin, spec.sequence, &leaf)?);
        Ok(leaf)
    }

    /// Whether this key signed `spec` as leaf `spec.sequence` of the tree `origin` (Ed25519
    /// signatures are deterministic: re-signing gives the same signature).
    pub fn signed_record(&self, origin: &str, spec: &AuditRecordSpec) -> bool {
        let Some(signature) = &spec.signature else {
            return false;
        };
        record_leaf_hash(spec)
            .ok()
            .and_then(|leaf| self.sign_leaf(origin, spec.sequence, &leaf).ok())
            .is_some_and(|expected| &expected == signature)
    }

    /// The publication of the tree `origin` with `leaves`: a signed checkpoint and the hashes.
    pub fn publication(
        &self,
        origin: &str,
        leaves: &[Hash],
    ) -> Result<PublishedTree, CheckpointError> {
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            size: leaves.len() as u64,
            root: root_of_hashes(leaves),
        };
        Ok(PublishedTree {
            checkpoint: self.sign_checkpoint(&checkpoint)?,
            leaf_hashes: leaves.iter().map(hex::encode).collect(),
        })
    }

    /// The base64 signature of leaf `index` with `leaf_hash` in the tree `origin`.
    pub fn sign_leaf(
        &self,
        origin: &str,
        index: u64,
        leaf_hash: &Hash,
    ) -> Result<String, CheckpointError> {
        self.signer
            .sign(leaf_message(origin, index, leaf_hash).as_bytes())
            .map(|signature| STANDARD.encode(signature))
            .map_err(|error| CheckpointError::Signature(error.to_string()))
    }
}

/// The trusted verifier key.
pub struct LogVerifier {
    key: String,
    verifier: StandardVerifier,
}

impl std::fmt::Debug for LogVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogVerifier({})", self.key)
    }
}

impl LogVerifier {
    /// A verifier from its signed-note encoding (`<name>+<id>+<base64>`).
    pub fn new(key: &str) -> Result<LogVerifier, CheckpointError> {
        let key = key.trim().to_owned();
        let verifier =
            StandardVerifier::new(&key).map_err(|error| CheckpointError::Key(error.to_string()))?;
        Ok(LogVerifier { key, verifier })
    }

    /// The checkpoint of a signed note, when the trusted key signed it.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let parsed = Note::from_bytes(note.as_bytes())
            .map_err(|error| CheckpointError::Signature(error.to_string()))?;
        let verifier = StandardVerifier::new(&self.key)
            .map_err(|error| CheckpointError::Key(error.to_string()))?;
        parsed
            .verify(&VerifierList::new(vec![Box::new(verifier)]))
            .map_err(|error| CheckpointError::Signature(error.to_string()))?;
        let text = std::str::from_utf8(parsed.text())
            .map_err(|error| CheckpointError::Format(error.to_string()))?;
        Checkpoint::parse(text)
    }

    /// Whether `signature` (base64) is the trusted key's signature of leaf `index` with
    /// `leaf_hash` in the tree `origin`.
    pub fn leaf_signed(&self, origin: &str, index: u64, leaf_hash: &Hash, signature: &str) -> bool {
        STANDARD.decode(signature).is_ok_and(|signature| {
            self.verifier.verify(
                leaf_message(origin, index, leaf_hash).as_bytes(),
                &signature,
            )
        })
    }
}

/// The message a leaf signature signs.
pub fn leaf_message(origin: &str, index: u64, leaf_hash: &Hash) -> String {
    format!(
        "rollgate.io/audit-leaf\n{origin}\n{index}\n{}\n",
        STANDARD.encode(leaf_hash)
    )
}

/// A new key pair named `name`: (signer key, verifier key), in signed-note encoding.
pub fn generate_key(name: &str) -> (String, String) {
    signed_note::generate_key(&mut rand_core_note::OsRng, name)
}
