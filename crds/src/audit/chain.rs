//! The audit hash chain: building the next record and verifying a Rollout's records.
//!
//! # Canonical encoding and hash
//!
//! A record's hash is
//! `hex(sha256("rollgate-audit-v1\n" || canonical(spec without "hash" and "signature")))`, where `canonical`
//! is the canonical JSON of [`crate::revision::canonical_json`]: the spec as it serializes
//! (camelCase names, `time` as RFC 3339 UTC with whole seconds), nulls and empty values
//! removed, object keys sorted by their UTF-8 bytes, no white space, integers in plain decimal.
//! (That function also drops a `metadata.labels["rollgate.io/revision"]` entry; a record spec
//! has no `metadata`, so it does not apply.) The prefix names the encoding's version: a new
//! encoding needs a new prefix.
//!
//! # Verification
//!
//! [`verify_chain`] sorts the records by sequence and checks, from record 0 on, that every
//! record belongs to the same Rollout uid, that sequences are unique and have no gap, that each
//! `previousHash` is the hash of the record before, and that each `hash` is recomputed exactly.
//! Deleting the newest records leaves a valid, shorter chain; pass the head the Rollout last
//! recorded ([`ChainHead`]) to detect that too. The first broken link is reported.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::{AuditEventKind, AuditRecord, AuditRecordSpec};
use crate::revision::{RevisionHashError, canonical_json};

/// Version tag of the canonical encoding, hashed in front of it.
pub const AUDIT_HASH_VERSION: &str = "rollgate-audit-v1";

/// Digits of the sequence number in a record's name.
pub const SEQUENCE_DIGITS: usize = 10;

/// Why a record could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The spec could not be encoded canonically.
    #[error("audit record cannot be encoded: {0}")]
    Encode(#[from] RevisionHashError),
    /// The spec could not be turned into JSON.
    #[error("audit record cannot be encoded: {0}")]
    Json(#[from] serde_json::Error),
}

/// What happened, as the controller (or an API server acting for a user) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// What happened.
    pub kind: AuditEventKind,
    /// Who or what did it.
    pub actor: String,
    /// The revision hash it is about.
    pub revision: Option<String>,
    /// A short machine-readable reason.
    pub reason: Option<String>,
    /// A human-readable message.
    pub message: Option<String>,
    /// The numbers behind it.
    pub details: BTreeMap<String, String>,
}

/// The newest record of a chain, as the Rollout remembers it, to detect deleted tail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence of the newest record.
    pub sequence: u64,
    /// Its hash.
    pub hash: String,
}

/// The hash of a record spec (its `hash` field is ignored).
pub fn record_hash(spec: &AuditRecordSpec) -> Result<String, ChainError> {
    let mut value = serde_json::to_value(spec)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("hash");
        // The Merkle log's leaf signature is over this hash, so it is not part of it.
        fields.remove("signature");
    }
    let canonical = canonical_json(&value)?;
    let mut hasher = Sha256::new();
    hasher.update(AUDIT_HASH_VERSION.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    Ok(hex::encode(hasher.finalize()))
}

/// The record that follows `previous` (or starts the chain) for `event` at `time` (truncated
/// to whole seconds, as it is stored), with its hash.
pub fn next_record(
    previous: Option<&AuditRecordSpec>,
    rollout: &str,
    rollout_uid: &str,
    event: AuditEvent,
    time: Timestamp,
) -> Result<AuditRecordSpec, ChainError> {
    let whole_seconds = Timestamp::from_second(time.as_second()).unwrap_or(time);
    let mut spec = AuditRecordSpec {
        rollout: rollout.to_owned(),
        rollout_uid: rollout_uid.to_owned(),
        sequence: previous.map_or(0, |p| p.sequence + 1),
        previous_hash: previous.map(|p| p.hash.clone()),
        hash: String::new(),
        time: Time(whole_seconds),
        event: event.kind,
        actor: event.actor,
        revision: event.revision,
        reason: event.reason,
        message: event.message,
        details: event.details,
        signature: None,
    };
    spec.hash = record_hash(&spec)?;
    Ok(spec)
}

/// The object name of a record: `<rollout>-<uid[..8]>-<sequence, 10 digits>`, with the
/// Rollout's name shortened if the whole would exceed 253 characters.
pub fn record_name(spec: &AuditRecordSpec) -> String {
    let uid: String = spec.rollout_uid.chars().take(8).collect();
    let suffix = format!("-{uid}-{:0width$}", spec.sequence, width = SEQUENCE_DIGITS);
    let room = 253usize.saturating_sub(suffix.len());
    let mut rollout: String = spec.rollout.chars().take(room).collect();
    while rollout.ends_with(['-', '.']) {
        rollout.pop();
    }
    format!("{rollout}{suffix}")
}

/// Groups a Rollout's records into one chain per Rollout uid (a Rollout deleted and created
/// again under the same name starts a chain of its own): oldest chain first, by the time of
/// its first record, each in sequence order.
pub fn chains_by_uid(records: Vec<AuditRecord>) -> Vec<Vec<AuditRecord>> {
    let mut chains: Vec<Vec<AuditRecord>> = Vec::new();
    for record in records {
        match chains
            .iter_mut()
            .find(|chain| chain[0].spec.rollout_uid == record.spec.rollout_uid)
        {
            Some(chain) => chain.push(record),
            None => chains.push(vec![record]),
        }
    }
    for chain in &mut chains {
        chain.sort_by_key(|record| record.spec.sequence);
    }
    chains.sort_by(|a, b| {
        (&a[0].spec.time.0, &a[0].spec.rollout_uid)
            .cmp(&(&b[0].spec.time.0, &b[0].spec.rollout_uid))
    });
    chains
}

/// The head `rollout` recorded for the chain of `uid`: only the live Rollout of that uid has
/// one (`status.auditHead`).
pub fn recorded_head(rollout: Option<&crate::Rollout>, uid: &str) -> Option<ChainHead> {
    let rollout = rollout?;
    if rollout.metadata.uid.as_deref() != Some(uid) {
        return None;
    }
    rollout
        .status
        .as_ref()?
        .audit_head
        .as_ref()
        .map(ChainHead::from)
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// Sequence of the record where the chain breaks.
    pub sequence: u64,
    /// Name of that record.
    pub name: String,
    /// What is wrong.
    pub problem: LinkProblem,
}

/// What is wrong at a broken link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// The stored hash is not the hash of the record's content: the record was changed.
    HashMismatch {
        /// The hash stored in the record.
        stored: String,
        /// The hash of its content.
        computed: String,
    },
    /// `previousHash` is not the hash of the record before: a record before it was replaced.
    PreviousHashMismatch {
        /// The stored `previousHash`.
        stored: Option<String>,
        /// The hash of the record before.
        expected: Option<String>,
    },
    /// Records are missing before this one.
    Gap {
        /// The sequence that was expected here.
        expected: u64,
    },
    /// Two records have the same sequence.
    Duplicate,
    /// The record belongs to another Rollout (uid).
    OtherRollout {
        /// The uid of the chain.
        expected_uid: String,
    },
    /// The object is not named as its content says.
    WrongName {
        /// The object's name.
        actual: String,
    },
    /// The chain ends before the head the Rollout recorded: newest records were deleted.
    Truncated {
        /// The head's sequence.
        head: u64,
    },
    /// The record at the head's sequence has another hash than the head recorded.
    HeadMismatch {
        /// The head's hash.
        head: String,
    },
    /// The record could not be hashed.
    Unhashable(String),
}

impl fmt::Display for LinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkProblem::HashMismatch { stored, computed } => write!(
                f,
                "hash mismatch: the record was changed (stored {stored}, content hashes to {computed})"
            ),
            LinkProblem::PreviousHashMismatch { stored, expected } => write!(
                f,
                "previous-hash mismatch: the record before was replaced (stored {}, previous record hashes to {})",
                stored.as_deref().unwrap_or("none"),
                expected.as_deref().unwrap_or("none")
            ),
            LinkProblem::Gap { expected } => {
                write!(f, "gap: records from sequence {expected} on are missing")
            }
            LinkProblem::Duplicate => write!(f, "duplicate: another record has this sequence"),
            LinkProblem::OtherRollout { expected_uid } => {
                write!(
                    f,
                    "the record belongs to another Rollout than uid {expected_uid}"
                )
            }
            LinkProblem::WrongName { actual } => {
                write!(f, "the record is stored under another name, {actual}")
            }
            LinkProblem::Truncated { head } => write!(
                f,
                "truncated: the Rollout recorded sequence {head} as its newest record"
            ),
            LinkProblem::HeadMismatch { head } => {
                write!(f, "the Rollout recorded hash {head} for this record")
            }
            LinkProblem::Unhashable(error) => write!(f, "cannot be hashed: {error}"),
        }
    }
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "broken link at record {} (sequence {}): {}",
            self.name, self.sequence, self.problem
        )
    }
}

impl std::error::Error for BrokenLink {}

/// Verifies one Rollout's chain of record specs, in any order; returns the number of records.
pub fn verify_chain(
    records: &[AuditRecordSpec],
    head: Option<&ChainHead>,
) -> Result<usize, BrokenLink> {
    let named: Vec<(String, &AuditRecordSpec)> = records
        .iter()
        .map(|spec| (record_name(spec), spec))
        .collect();
    verify_named(&named, head)
}

/// Verifies stored records: [`verify_chain`], and that each object is named as its content
/// says (a replaced record stored under another name is caught).
pub fn verify_records(
    records: &[AuditRecord],
    head: Option<&ChainHead>,
) -> Result<usize, BrokenLink> {
    for record in records {
        let expected = record_name(&record.spec);
        let actual = record.metadata.name.clone().unwrap_or_default();
        if actual != expected {
            return Err(BrokenLink {
                sequence: record.spec.sequence,
                name: expected,
                problem: LinkProblem::WrongName { actual },
            });
        }
    }
    let named: Vec<(String, &AuditRecordSpec)> = records
        .iter()
        .map(|record| (record_name(&record.spec), &record.spec))
        .collect();
    verify_named(&named, head)
}

fn verify_named(
    records: &[(String, &AuditRecordSpec)],
    head: Option<&ChainHead>,
) -> Result<usize, BrokenLink> {
    let mut sorted: Vec<&(String, &AuditRecordSpec)> = records.iter().collect();
    sorted.sort_by_key(|(name, spec)| (spec.sequence, name.clone()));
    let broken = |(name, spec): &(String, &AuditRecordSpec), problem| BrokenLink {
        sequence: spec.sequence,
        name: name.clone(),
        problem,
    };
    let mut previous: Option<&AuditRecordSpec> = None;
    for entry in &sorted {
        let spec = entry.1;
        if let Some(first) = sorted.first()
            && spec.rollout_uid != first.1.rollout_uid
        {
            let expected_uid = first.1.rollout_uid.clone();
            return Err(broken(entry, LinkProblem::OtherRollout { expected_uid }));
        }
        let expected = previous.map_or(0, |p| p.sequence + 1);
        if previous.is_some_and(|p| p.sequence == spec.sequence) {
            return Err(broken(entry, LinkProblem::Duplicate));
        }
        if spec.sequence != expected {
            return Err(broken(entry, LinkProblem::Gap { expected }));
        }
        let expected_previous = previous.map(|p| p.hash.clone());
        if spec.previous_hash != expected_previous {
            return Err(broken(
                entry,
                LinkProblem::PreviousHashMismatch {
                    stored: spec.previous_hash.clone(),
                    expected: expected_previous,
                },
            ));
        }
        let computed = record_hash(spec)
            .map_err(|error| broken(entry, LinkProblem::Unhashable(error.to_string())))?;
        if computed != spec.hash {
            return Err(broken(
                entry,
                LinkProblem::HashMismatch {
                    stored: spec.hash.clone(),
                    computed,
                },
            ));
        }
        previous = Some(spec);
    }
    if let Some(head) = head {
        match sorted
            .iter()
            .find(|(_, spec)| spec.sequence == head.sequence)
        {
            Some(entry) if entry.1.hash != head.hash => {
                let problem = LinkProblem::HeadMismatch {
                    head: head.hash.clone(),
                };
                return Err(broken(entry, problem));
            }
            Some(_) => {}
            None => {
                let (sequence, name) = sorted.last().map_or((0, String::new()), |(name, spec)| {
                    (spec.sequence, name.clone())
                });
                return Err(BrokenLink {
                    sequence,
                    name,
                    problem: LinkProblem::Truncated {
                        head: head.sequence,
                    },
                });
            }
        }
    }
    Ok(sorted.len())
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
