//! The controller's view of one Rollout's Merkle log, and how it is rebuilt after a restart
//! without trusting anything a cluster administrator can write.
//!
//! # Loading
//!
//! The leaves come first from the newest publication in the external store, accepted only if
//! it carries this controller's own signature ([`LogSigner::signed_record`] and a re-signed
//! checkpoint: Ed25519 signatures are deterministic). Then, from the records in the cluster,
//! each next index is taken only from a record the controller signed for that index in this
//! tree (records written but not yet published, after a crash or while the store was down).
//! Anything else found beyond the published size is foreign: reported, never built on.
//!
//! # Migration
//!
//! A Rollout whose tree was never published but which has records of the hash chain (written
//! before the Merkle log, without `signature`) adopts them as its first leaves, unchanged, up
//! to the head its status recorded (`status.auditHead`) and only while the chain is intact;
//! the first checkpoint then covers them. Their protection up to that moment is the chain's.
//!
//! Without a signing key the controller trusts the records in the cluster, as the hash chain
//! did (no checkpoints, no protection against someone who can write AuditRecords).

use rollgate_crds::audit::checkpoint::{LogSigner, PublishedTree};
use rollgate_crds::audit::merkle::{Hash, record_leaf_hash};
use rollgate_crds::audit::{ChainHead, verify_chain};
use rollgate_crds::{AuditRecord, AuditRecordSpec};

/// One Rollout's log as the controller knows it.
#[derive(Debug, Clone, Default)]
pub struct TreeState {
    /// The tree's origin.
    pub origin: String,
    /// Leaf hashes, in index order.
    pub leaves: Vec<Hash>,
    /// The newest record (for the hash chain fields of the next one), when known.
    pub last: Option<AuditRecordSpec>,
    /// Leaves covered by the newest published checkpoint.
    pub published: u64,
    /// Consecutive failures to write or publish (for the backoff).
    pub failures: u32,
    /// The head last stored in the Rollout's status, to skip writing it again.
    pub recorded: Option<(u64, u64, u64)>,
}

impl TreeState {
    /// Appends a written record.
    pub fn push(&mut self, leaf: Hash, spec: AuditRecordSpec) {
        self.leaves.push(leaf);
        self.last = Some(spec);
    }
}

/// Checks that `published` is this signer's publication of `origin`; returns its leaves.
pub fn own_publication(
    signer: &LogSigner,
    origin: &str,
    published: &PublishedTree,
) -> Option<Vec<Hash>> {
    let leaves: Vec<Hash> = published
        .leaf_hashes
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| Hash::try_from(b.as_slice()).ok())
        })
        .collect::<Option<_>>()?;
    let expected = signer.publication(origin, &leaves).ok()?;
    (expected.checkpoint == published.checkpoint).then_some(leaves)
}

/// Rebuilds the tree from the published `leaves` and the cluster's `records` (those of the
/// Rollout uid). Returns the state and the names of foreign records found beyond the
/// published size.
pub fn rebuild(
    signer: Option<&LogSigner>,
    origin: &str,
    published: Vec<Hash>,
    mut records: Vec<AuditRecord>,
    legacy_head: Option<&ChainHead>,
) -> (TreeState, Vec<String>) {
    records.sort_by_key(|record| record.spec.sequence);
    let mut state = TreeState {
        origin: origin.to_owned(),
        published: published.len() as u64,
        leaves: published,
        ..TreeState::default()
    };
    let hashed: Vec<(AuditRecord, Option<Hash>)> = records
        .into_iter()
        .map(|record| {
            let leaf = record_leaf_hash(&record.spec).ok();
            (record, leaf)
        })
        .collect();
    let mut taken = vec![false; hashed.len()];
    // The newest published record, for the chain fields.
    if let Some(last) = state.leaves.last() {
        let index = state.leaves.len() as u64 - 1;
        if let Some((position, (record, _))) =
            hashed.iter().enumerate().find(|(_, (record, leaf))| {
                record.spec.sequence == index && leaf.as_ref() == Some(last)
            })
        {
            state.last = Some(record.spec.clone());
            taken[position] = true;
        }
    }
    let adoptable = adoptable_legacy(signer, state.leaves.is_empty(), &hashed, legacy_head);
    loop {
        let next = state.leaves.len() as u64;
        let found = hashed
            .iter()
            .enumerate()
            .find(|(position, (record, leaf))| {
                !taken[*position]
                    && leaf.is_some()
                    && record.spec.sequence == next
                    && match signer {
                        Some(signer) => {
                            signer.signed_record(origin, &record.spec)
                                || (record.spec.signature.is_none() && next < adoptable)
                        }
                        None => true,
                    }
            });
        let Some((position, (record, Some(leaf)))) = found else {
            break;
        };
        taken[position] = true;
        state.push(*leaf, record.spec.clone());
    }
    let foreign = hashed
        .iter()
        .zip(&taken)
        .filter(|((record, leaf), taken)| {
            !**taken
                && record.spec.sequence >= state.published
                && !(leaf.is_some_and(|leaf| {
                    usize::try_from(record.spec.sequence)
                        .ok()
                        .and_then(|i| state.leaves.get(i))
                        == Some(&leaf)
                }))
        })
        .map(|((record, _), _)| record.metadata.name.clone().unwrap_or_default())
        .collect();
    (state, foreign)
}

/// How many legacy (unsigned, hash-chained) records may be adopted as the first leaves: only
/// for a tree never published, up to the head the status recorded, while the chain is intact.
fn adoptable_legacy(
    signer: Option<&LogSigner>,
    unpublished: bool,
    hashed: &[(AuditRecord, Option<Hash>)],
    head: Option<&ChainHead>,
) -> u64 {
    let (Some(_), true, Some(head)) = (signer, unpublished, head) else {
        return 0;
    };
    let legacy: Vec<AuditRecordSpec> = hashed
        .iter()
        .map(|(record, _)| &record.spec)
        .filter(|spec| spec.signature.is_none() && spec.sequence <= head.sequence)
        .cloned()
        .collect();
    match verify_chain(&legacy, Some(head)) {
        Ok(count) => count as u64,
        Err(link) => link.sequence,
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
