//! The audit log as an RFC 6962 / RFC 9162 Merkle tree: one tree per Rollout uid, whose leaves
//! are the Rollout's AuditRecords in sequence order.
//!
//! # Leaves
//!
//! A record's leaf is `"rollgate-audit-leaf-v2\n" || canonical(spec without "signature")`, with
//! the canonical JSON of [`crate::revision::canonical_json`] (the same encoding as the hash
//! chain's, see [`super::chain`]). The record's own `signature` is over the leaf hash, so it is
//! left out of the leaf. A leaf hash is `SHA-256(0x00 || leaf)` and an inner node
//! `SHA-256(0x01 || left || right)` (RFC 6962 section 2.1); the root of `n` leaves splits them at
//! the largest power of two below `n`.
//!
//! Records written before the Merkle log (the hash chain only) have no `signature`, so their
//! leaf is the same function of what they already hold: they become the first leaves of their
//! Rollout's tree unchanged (see the migration in `docs/audit.md`).
//!
//! # Proofs
//!
//! [`RecordTree`] holds the leaves of records read from the cluster in a `ct-merkle` tree, and
//! checks each record's inclusion proof and the consistency proof from an older checkpoint
//! against signed roots. [`root_of_hashes`] computes a root from leaf hashes alone (the hashes
//! the controller publishes beside each checkpoint), which is how the verifier authenticates the
//! published hashes before comparing each record with its own.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, RootHash};
use sha2_merkle::{Digest, Sha256};

use super::AuditRecordSpec;
use super::chain::ChainError;
use crate::revision::canonical_json;

/// Version tag of the leaf encoding, in front of it.
pub const LEAF_VERSION: &str = "rollgate-audit-leaf-v2";

/// A SHA-256 hash: a leaf hash or a root.
pub type Hash = [u8; 32];

/// The leaf bytes of a record.
pub fn leaf_bytes(spec: &AuditRecordSpec) -> Result<Vec<u8>, ChainError> {
    let mut value = serde_json::to_value(spec)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("signature");
    }
    let canonical = canonical_json(&value)?;
    let mut bytes = Vec::with_capacity(LEAF_VERSION.len() + 1 + canonical.len());
    bytes.extend_from_slice(LEAF_VERSION.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(canonical.as_bytes());
    Ok(bytes)
}

/// The RFC 6962 leaf hash of leaf bytes.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// The leaf hash of a record.
pub fn record_leaf_hash(spec: &AuditRecordSpec) -> Result<Hash, ChainError> {
    Ok(leaf_hash(&leaf_bytes(spec)?))
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The RFC 6962 Merkle tree hash of a list of leaf hashes (the hash of the empty string for no
/// leaves).
pub fn root_of_hashes(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let split = split_point(n);
            node_hash(
                &root_of_hashes(&leaves[..split]),
                &root_of_hashes(&leaves[split..]),
            )
        }
    }
}

/// The largest power of two smaller than `n` (`n` ≥ 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Why a proof failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The record's inclusion proof does not lead to the signed root.
    #[error("record {index} is not included in the signed tree of size {size}")]
    NotIncluded {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The older tree is not a prefix of the newer one.
    #[error("the tree of size {old} is not a prefix of the tree of size {new}")]
    Inconsistent {
        /// Older size.
        old: u64,
        /// Newer size.
        new: u64,
    },
}

/// The tree of records read from the cluster, to prove inclusion and consistency against
/// signed roots.
pub struct RecordTree {
    tree: MemoryBackedTree<Sha256, Vec<u8>>,
}

impl RecordTree {
    /// The tree of `leaves` (leaf bytes, in index order).
    pub fn new(leaves: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut tree = MemoryBackedTree::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        RecordTree { tree }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.tree
            .root()
            .as_bytes()
            .as_slice()
            .try_into()
            .unwrap_or([0; 32])
    }

    /// Checks that leaf `index` is included in the tree of `size` leaves with `root`, with an
    /// inclusion proof from this tree (whose own size must be `size`).
    pub fn check_inclusion(&self, index: u64, root: &Hash, size: u64) -> Result<(), ProofError> {
        let fail = ProofError::NotIncluded { index, size };
        if size != self.len() || index >= size {
            return Err(fail);
        }
        let Some(leaf) = usize::try_from(index).ok().and_then(|i| self.tree.get(i)) else {
            return Err(fail);
        };
        let proof = self.tree.prove_inclusion(index as usize);
        let signed = RootHash::<Sha256>::new((*root).into(), size);
        signed
            .verify_inclusion(leaf, index, &proof)
            .map_err(|_| fail)
    }

    /// Checks that the tree of `old_size` leaves with `old_root` is a prefix of this tree, whose
    /// root must be `new_root`, with a consistency proof from this tree.
    pub fn check_consistency(
        &self,
        (old_size, old_root): (u64, &Hash),
        new_root: &Hash,
    ) -> Result<(), ProofError> {
        let new = self.len();
        let fail = ProofError::Inconsistent { old: old_size, new };
        if old_size == 0 || old_size > new {
            return Err(fail);
        }
        if old_size == new {
            return if old_root == new_root && self.root() == *new_root {
                Ok(())
            } else {
                Err(fail)
            };
        }
        let proof: ConsistencyProof<Sha256> =
            self.tree.prove_consistency((new - old_size) as usize);
        let old = RootHash::<Sha256>::new((*old_root).into(), old_size);
        let signed = RootHash::<Sha256>::new((*new_root).into(), new);
        signed.verify_consistency(&old, &proof).map_err(|_| fail)
    }
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
