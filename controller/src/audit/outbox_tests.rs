use k8s_openapi::jiff::Timestamp;
use rollgate_crds::audit::merkle::Hash;
use rollgate_crds::audit::{AuditEvent, AuditEventKind, next_record};

use super::*;

fn specs(n: usize) -> Vec<AuditRecordSpec> {
    let mut specs: Vec<AuditRecordSpec> = Vec::new();
    for index in 0..n {
        let event = AuditEvent {
            kind: AuditEventKind::StepCompleted,
            actor: "rollgate-controller".to_owned(),
            revision: None,
            reason: None,
            message: Some(format!("step {index}")),
            details: Default::default(),
        };
        let time = Timestamp::from_second(1_700_000_000).unwrap();
        specs.push(next_record(specs.last(), "web", "uid-1", event, time).unwrap());
    }
    specs
}

fn leaves(specs: &[AuditRecordSpec]) -> Vec<Hash> {
    specs.iter().map(|s| record_leaf_hash(s).unwrap()).collect()
}

#[test]
fn entries_round_trip_through_the_status() {
    let specs = specs(3);
    let (decoded, malformed) = decode(&encode(&specs));
    assert_eq!((decoded, malformed), (specs, 0));
    let (_, malformed) = decode(&["not json".to_owned()]);
    assert_eq!(malformed, 1);
}

#[test]
fn an_entry_is_written_next_or_in_conflict() {
    let specs = specs(4);
    let tree = leaves(&specs[..2]);
    assert_eq!(entry_state(&tree, &specs[1]), EntryState::Written);
    assert_eq!(entry_state(&tree, &specs[2]), EntryState::Next);
    assert_eq!(entry_state(&tree, &specs[3]), EntryState::Conflict);
    let mut other = specs[1].clone();
    other.actor = "mallory".to_owned();
    assert_eq!(entry_state(&tree, &other), EntryState::Conflict);
}

#[test]
fn unwritten_entries_follow_the_tree_without_gaps_and_are_carried_forward() {
    let specs = specs(5);
    let tree = leaves(&specs[..2]);
    // A replay of written entries and the unwritten ones after them.
    let unwritten_now = unwritten(&tree, &specs[1..4]);
    assert_eq!(unwritten_now, specs[2..4].to_vec());
    // An entry after a gap is not taken.
    assert!(unwritten(&tree, &specs[3..]).is_empty());
    // The next outbox keeps the unwritten entries before the new one.
    let next = next_outbox(&[], &unwritten_now, &specs[4..]);
    assert_eq!(decode(&next).0, specs[2..].to_vec());
    // Without anything to write, the outbox is left as it was.
    let current = encode(&specs[..1]);
    assert_eq!(next_outbox(&current, &[], &[]), current);
}
