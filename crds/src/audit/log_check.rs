//! Verifying a Rollout's records against its signed, published tree: what `audit verify` and
//! the controller's own start-up check run.
//!
//! # What is checked
//!
//! 1. The published checkpoint is signed by the trusted key and names this Rollout's tree
//!    ([`super::checkpoint::origin`]).
//! 2. The published leaf hashes are as many as the checkpoint's size and hash to its root: the
//!    list is authenticated by the signature, so it tells the hash of every leaf.
//! 3. Each leaf index from 0 up to the size has a record in the cluster whose leaf hash is the
//!    published one; the first index without one is reported (rewritten, missing or moved).
//!    Records are found by content, never by name or label.
//! 4. When every leaf has its record, the records form a `ct-merkle` tree whose root is the
//!    signed root, and every record's inclusion proof is checked against it.
//! 5. Every older checkpoint the auditor kept is signed by the same key, for the same tree, no
//!    larger than the published one (else the store was rolled back), and consistent with it:
//!    its root is the root of the first leaves, and a consistency proof verifies.
//! 6. Every other record of the Rollout is either beyond the checkpoint and signed by the
//!    controller for its position (written, not yet published: reported as pending) or foreign
//!    (not written by the controller: inserted, pre-created or altered): reported.

use std::fmt;

use super::AuditRecord;
use super::checkpoint::{Checkpoint, LogVerifier, PublishedTree};
use super::merkle::{Hash, RecordTree, leaf_bytes, leaf_hash, root_of_hashes};

/// What is wrong with a Rollout's log, most specific first within a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogProblem {
    /// The published checkpoint or hashes cannot be trusted (bad signature, other tree, hashes
    /// that do not match the root): the store itself was tampered with.
    Publication(String),
    /// No record has the content of leaf `index`: it was rewritten, deleted or moved. `found`
    /// names the record at that sequence, if any.
    Leaf {
        /// Leaf index.
        index: u64,
        /// The record stored at that sequence, whose content differs.
        found: Option<String>,
    },
    /// A record the controller did not write (inserted, pre-created, or altered beyond the
    /// checkpoint).
    Foreign {
        /// Its object name.
        name: String,
        /// The sequence it claims.
        sequence: u64,
    },
    /// A proof failed although the hashes matched (not expected; reported to be safe).
    Proof(String),
    /// A kept checkpoint is not consistent with the published one.
    Inconsistent {
        /// The kept checkpoint's size.
        size: u64,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for LogProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogProblem::Publication(why) => write!(f, "the published checkpoint: {why}"),
            LogProblem::Leaf {
                index,
                found: Some(name),
            } => write!(
                f,
                "record {index} is not in the signed log: {name} holds other content (rewritten, reordered or replaced)"
            ),
            LogProblem::Leaf { index, found: None } => write!(
                f,
                "record {index} is missing (deleted; truncated if the rest is missing too)"
            ),
            LogProblem::Foreign { name, sequence } => write!(
                f,
                "record {name} (sequence {sequence}) was not written by the controller (inserted or forged)"
            ),
            LogProblem::Proof(why) => write!(f, "proof failed: {why}"),
            LogProblem::Inconsistent { size, reason } => {
                write!(
                    f,
                    "the kept checkpoint of size {size} is not consistent: {reason}"
                )
            }
        }
    }
}

/// The outcome of verifying one Rollout's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogReport {
    /// Size of the published tree.
    pub size: u64,
    /// Records verified as leaves of it.
    pub verified: u64,
    /// Records signed by the controller beyond the published tree (written, not yet
    /// published), by name.
    pub pending: Vec<String>,
    /// Problems, the first bad record first.
    pub problems: Vec<LogProblem>,
}

impl LogReport {
    /// Whether the log is intact.
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The published tree, authenticated: its checkpoint and leaf hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedTree {
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The leaf hashes, as many as the checkpoint's size.
    pub leaves: Vec<Hash>,
}

/// Authenticates a publication for the tree `origin`.
pub fn open_published(
    verifier: &LogVerifier,
    origin: &str,
    published: &PublishedTree,
) -> Result<TrustedTree, String> {
    let checkpoint = verifier
        .open_checkpoint(&published.checkpoint)
        .map_err(|error| error.to_string())?;
    if checkpoint.origin != origin {
        return Err(format!(
            "it is for the tree {:?}, not {origin:?}",
            checkpoint.origin
        ));
    }
    let leaves: Vec<Hash> = published
        .leaf_hashes
        .iter()
        .map(|hex_hash| {
            hex::decode(hex_hash)
                .ok()
                .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
        })
        .collect::<Option<_>>()
        .ok_or("a leaf hash is malformed")?;
    if leaves.len() as u64 != checkpoint.size || root_of_hashes(&leaves) != checkpoint.root {
        return Err("the published leaf hashes do not hash to the signed root".to_owned());
    }
    Ok(TrustedTree { checkpoint, leaves })
}

/// Verifies `records` (every record of the Rollout uid, any order, any names) against the
/// published tree of `origin` and the older checkpoints the auditor `kept` (signed notes).
pub fn verify_log(
    verifier: &LogVerifier,
    origin: &str,
    published: &PublishedTree,
    records: &[AuditRecord],
    kept: &[String],
) -> LogReport {
    let trusted = match open_published(verifier, origin, published) {
        Ok(trusted) => trusted,
        Err(why) => {
            return LogReport {
                problems: vec![LogProblem::Publication(why)],
                ..LogReport::default()
            };
        }
    };
    let size = trusted.checkpoint.size;
    let hashed: Vec<(&AuditRecord, Option<Vec<u8>>)> = records
        .iter()
        .map(|record| (record, leaf_bytes(&record.spec).ok()))
        .collect();
    let mut report = LogReport {
        size,
        ..LogReport::default()
    };
    let mut used = vec![false; hashed.len()];
    let mut leaves: Vec<Vec<u8>> = Vec::with_capacity(trusted.leaves.len());
    for (index, expected) in trusted.leaves.iter().enumerate() {
        let matching = hashed.iter().position(|(record, leaf)| {
            record.spec.sequence == index as u64
                && leaf
                    .as_ref()
                    .is_some_and(|leaf| leaf_hash(leaf) == *expected)
        });
        match matching {
            Some(position) => {
                used[position] = true;
                leaves.push(hashed[position].1.clone().unwrap_or_default());
            }
            None => {
                let found = hashed
                    .iter()
                    .find(|(record, _)| record.spec.sequence == index as u64)
                    .map(|(record, _)| record.metadata.name.clone().unwrap_or_default());
                report.problems.push(LogProblem::Leaf {
                    index: index as u64,
                    found,
                });
            }
        }
    }
    report.verified = leaves.len() as u64;
    if report.problems.is_empty() {
        check_proofs(&trusted, leaves, kept, verifier, &mut report);
    }
    let mut others: Vec<&(&AuditRecord, Option<Vec<u8>>)> = hashed
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(entry, _)| entry)
        .collect();
    others.sort_by_key(|(record, _)| record.spec.sequence);
    for (record, leaf) in others {
        let name = record.metadata.name.clone().unwrap_or_default();
        let signed = record.spec.sequence >= size
            && leaf
                .as_ref()
                .zip(record.spec.signature.as_ref())
                .is_some_and(|(leaf, sig)| {
                    verifier.leaf_signed(origin, record.spec.sequence, &leaf_hash(leaf), sig)
                });
        if signed {
            report.pending.push(name);
        } else {
            report.problems.push(LogProblem::Foreign {
                name,
                sequence: record.spec.sequence,
            });
        }
    }
    report
}

/// Steps 4 and 5: inclusion of every record and consistency with the kept checkpoints.
fn check_proofs(
    trusted: &TrustedTree,
    leaves: Vec<Vec<u8>>,
    kept: &[String],
    verifier: &LogVerifier,
    report: &mut LogReport,
) {
    let checkpoint = &trusted.checkpoint;
    let tree = RecordTree::new(leaves);
    if tree.root() != checkpoint.root {
        report.problems.push(LogProblem::Proof(
            "the records do not hash to the signed root".to_owned(),
        ));
        return;
    }
    for index in 0..tree.len() {
        if let Err(error) = tree.check_inclusion(index, &checkpoint.root, checkpoint.size) {
            report.problems.push(LogProblem::Proof(error.to_string()));
            return;
        }
    }
    for note in kept {
        if let Err(reason) = check_kept(verifier, trusted, &tree, note) {
            let size = verifier.open_checkpoint(note).map_or(0, |kept| kept.size);
            report
                .problems
                .push(LogProblem::Inconsistent { size, reason });
        }
    }
}

fn check_kept(
    verifier: &LogVerifier,
    trusted: &TrustedTree,
    tree: &RecordTree,
    note: &str,
) -> Result<(), String> {
    let kept = verifier
        .open_checkpoint(note)
        .map_err(|error| error.to_string())?;
    let current = &trusted.checkpoint;
    if kept.origin != current.origin {
        return Err(format!("it is for the tree {:?}", kept.origin));
    }
    if kept.size > current.size {
        return Err(format!(
            "it is larger than the published tree of size {}: the store was rolled back or records were removed",
            current.size
        ));
    }
    let prefix = usize::try_from(kept.size).unwrap_or(usize::MAX);
    if kept.size == 0 {
        return Ok(());
    }
    if root_of_hashes(&trusted.leaves[..prefix]) != kept.root {
        return Err(
            "its root is not the root of the first leaves: the log was rewritten".to_owned(),
        );
    }
    tree.check_consistency((kept.size, &kept.root), &current.root)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
#[path = "log_check_tests.rs"]
mod tests;
