//! The audit outbox: pure code from (the tree as the controller knows it, the outbox the
//! Rollout's status holds, new events) to the outbox the next status write commits.
//!
//! # Exactly once
//!
//! A transition is decided, then committed by one status write. The records of that
//! transition are built (with their leaf index, time and signature fixed) *before* that write
//! and committed in the same write, in `status.auditOutbox`; they are written as AuditRecords
//! only after it. So:
//!
//! - a crash before the status write loses the transition and its records together: the next
//!   decision is made afresh and records what it decides;
//! - a crash after it leaves the records in the status: every reconcile first flushes the
//!   outbox it reads ([`unwritten`]), so they are written after the restart;
//! - flushing is idempotent: each entry has a fixed index and content, an index the tree
//!   already has with the same leaf is skipped, and a record that already exists with the same
//!   content (the create happened, the crash came before the tree knew) counts as written;
//! - the next status write carries every entry not yet written forward ([`next_outbox`]),
//!   so one that keeps failing is never dropped.
//!
//! Entries are signed with the log's key (when there is one) and bound to their tree and
//! index; an entry someone else put in the status is refused when flushed.

use rollgate_crds::AuditRecordSpec;
use rollgate_crds::audit::merkle::{Hash, record_leaf_hash};

/// Decodes the entries of an outbox; entries that do not parse are returned apart, to report.
pub fn decode(outbox: &[String]) -> (Vec<AuditRecordSpec>, usize) {
    let mut entries = Vec::new();
    let mut malformed = 0;
    for entry in outbox {
        match serde_json::from_str::<AuditRecordSpec>(entry) {
            Ok(spec) => entries.push(spec),
            Err(_) => malformed += 1,
        }
    }
    entries.sort_by_key(|spec| spec.sequence);
    (entries, malformed)
}

/// Encodes entries for the status.
pub fn encode(entries: &[AuditRecordSpec]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|spec| serde_json::to_string(spec).ok())
        .collect()
}

/// What to do with one outbox entry, given the tree's leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    /// The tree already has this leaf: written.
    Written,
    /// The next leaf to write.
    Next,
    /// The tree has another leaf at this index, or the entry is beyond the next index: not the
    /// controller's (or a stale copy); refused.
    Conflict,
}

/// The state of `entry` against `leaves`.
pub fn entry_state(leaves: &[Hash], entry: &AuditRecordSpec) -> EntryState {
    let Ok(leaf) = record_leaf_hash(entry) else {
        return EntryState::Conflict;
    };
    match usize::try_from(entry.sequence) {
        Ok(index) if index < leaves.len() => {
            if leaves[index] == leaf {
                EntryState::Written
            } else {
                EntryState::Conflict
            }
        }
        Ok(index) if index == leaves.len() => EntryState::Next,
        _ => EntryState::Conflict,
    }
}

/// The entries of `outbox` not yet in the tree, in index order, while they follow on from it
/// without a gap.
pub fn unwritten(leaves: &[Hash], outbox: &[AuditRecordSpec]) -> Vec<AuditRecordSpec> {
    let mut next = leaves.len() as u64;
    let mut pending = Vec::new();
    for entry in outbox {
        if entry.sequence < leaves.len() as u64 {
            continue;
        }
        if entry.sequence != next {
            break;
        }
        pending.push(entry.clone());
        next += 1;
    }
    pending
}

/// The outbox of the next status write: the entries still unwritten, then `new` (already
/// numbered after them). When both are empty the outbox is left as it was, so a reconcile
/// without events does not write the status only to empty it.
pub fn next_outbox(
    current: &[String],
    unwritten: &[AuditRecordSpec],
    new: &[AuditRecordSpec],
) -> Vec<String> {
    if unwritten.is_empty() && new.is_empty() {
        return current.to_vec();
    }
    let mut entries = unwritten.to_vec();
    entries.extend_from_slice(new);
    encode(&entries)
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
