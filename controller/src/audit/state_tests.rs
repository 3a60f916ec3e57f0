use k8s_openapi::jiff::Timestamp;
use rollgate_crds::audit::checkpoint::generate_key;
use rollgate_crds::audit::{AuditEvent, AuditEventKind, next_record};

use super::*;

const ORIGIN: &str = "rollgate.io/audit/shop/web/uid-1";

fn signer() -> LogSigner {
    LogSigner::new(&generate_key("rollgate-audit-test").0).unwrap()
}

fn records(n: usize, signer: Option<&LogSigner>) -> Vec<AuditRecord> {
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
        let mut spec = next_record(specs.last(), "web", "uid-1", event, time).unwrap();
        if let Some(signer) = signer {
            signer.sign_record(ORIGIN, &mut spec).unwrap();
        }
        specs.push(spec);
    }
    specs
        .into_iter()
        .map(|spec| AuditRecord::for_spec("shop", spec))
        .collect()
}

fn leaves(records: &[AuditRecord]) -> Vec<Hash> {
    records
        .iter()
        .map(|r| record_leaf_hash(&r.spec).unwrap())
        .collect()
}

#[test]
fn signed_records_beyond_the_publication_are_taken_and_foreign_ones_reported() {
    let signer = signer();
    let mut records = records(5, Some(&signer));
    let published = leaves(&records[..3]);
    // A record appended beyond the head by someone without the key.
    let mut forged = records[4].spec.clone();
    forged.sequence = 5;
    forged.actor = "mallory".to_owned();
    records.push(AuditRecord::for_spec("shop", forged));
    let (state, foreign) = rebuild(Some(&signer), ORIGIN, published, records.clone(), None);
    assert_eq!(state.leaves, leaves(&records[..5]));
    assert_eq!(state.published, 3);
    assert_eq!(state.last.as_ref().unwrap().sequence, 4);
    assert_eq!(foreign, vec![records[5].metadata.name.clone().unwrap()]);
}

#[test]
fn the_publication_is_the_truth_even_when_records_were_deleted() {
    let signer = signer();
    let records = records(4, Some(&signer));
    let published = leaves(&records);
    let (state, foreign) = rebuild(
        Some(&signer),
        ORIGIN,
        published.clone(),
        records[..2].to_vec(),
        None,
    );
    assert_eq!(state.leaves, published);
    assert!(state.last.is_none());
    assert!(foreign.is_empty());
}

#[test]
fn legacy_records_are_adopted_up_to_the_recorded_head_only() {
    let signer = signer();
    let records = records(4, None);
    let head = ChainHead {
        sequence: 2,
        hash: records[2].spec.hash.clone(),
    };
    let (state, foreign) = rebuild(
        Some(&signer),
        ORIGIN,
        Vec::new(),
        records.clone(),
        Some(&head),
    );
    assert_eq!(state.leaves, leaves(&records[..3]));
    assert_eq!(foreign.len(), 1);
    // Nothing unsigned is adopted without a head, nor after a publication.
    let (state, _) = rebuild(Some(&signer), ORIGIN, Vec::new(), records.clone(), None);
    assert!(state.leaves.is_empty());
    let (state, _) = rebuild(
        Some(&signer),
        ORIGIN,
        leaves(&records[..1]),
        records,
        Some(&head),
    );
    assert_eq!(state.leaves.len(), 1);
}

#[test]
fn own_publications_are_recognised_and_others_refused() {
    let signer = signer();
    let records = records(3, Some(&signer));
    let published = signer.publication(ORIGIN, &leaves(&records)).unwrap();
    assert_eq!(
        own_publication(&signer, ORIGIN, &published),
        Some(leaves(&records))
    );
    let other = self::signer()
        .publication(ORIGIN, &leaves(&records))
        .unwrap();
    assert_eq!(own_publication(&signer, ORIGIN, &other), None);
}
