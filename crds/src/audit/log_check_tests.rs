use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::audit::checkpoint::{LogSigner, generate_key, origin};
use crate::audit::merkle::record_leaf_hash;
use crate::audit::{AuditEvent, AuditEventKind, AuditRecordSpec, next_record};

const UID: &str = "6f1c2a3b-1111-2222-3333-444455556666";

struct Log {
    signer: LogSigner,
    verifier: LogVerifier,
    origin: String,
    records: Vec<AuditRecord>,
}

fn event(index: usize) -> AuditEvent {
    AuditEvent {
        kind: AuditEventKind::StepCompleted,
        actor: "rollgate-controller".to_owned(),
        revision: Some("0123456789".into()),
        reason: Some("StepCompleted".into()),
        message: Some(format!("step {index}")),
        details: Default::default(),
    }
}

/// A log of `length` records signed by a fresh key, as the controller writes it.
fn log(length: usize) -> Log {
    let (skey, vkey) = generate_key("rollgate-audit-test");
    let signer = LogSigner::new(&skey).unwrap();
    let origin = origin("shop", "web", UID);
    let mut specs: Vec<AuditRecordSpec> = Vec::new();
    for index in 0..length {
        let time = Timestamp::from_second(1_700_000_000 + index as i64).unwrap();
        let mut spec = next_record(specs.last(), "web", UID, event(index), time).unwrap();
        signer.sign_record(&origin, &mut spec).unwrap();
        specs.push(spec);
    }
    Log {
        signer,
        verifier: LogVerifier::new(&vkey).unwrap(),
        origin,
        records: specs
            .into_iter()
            .map(|spec| AuditRecord::for_spec("shop", spec))
            .collect(),
    }
}

impl Log {
    fn publish(&self, size: usize) -> PublishedTree {
        let leaves: Vec<Hash> = self.records[..size]
            .iter()
            .map(|record| record_leaf_hash(&record.spec).unwrap())
            .collect();
        self.signer.publication(&self.origin, &leaves).unwrap()
    }

    fn verify(&self, published: &PublishedTree, kept: &[String]) -> LogReport {
        verify_log(&self.verifier, &self.origin, published, &self.records, kept)
    }

    /// Rewrites record `index` and, as an administrator would, recomputes the hash chain of
    /// every record after it.
    fn rewrite_and_rechain(&mut self, index: usize) {
        let mut specs: Vec<AuditRecordSpec> = self
            .records
            .iter()
            .map(|record| record.spec.clone())
            .collect();
        specs[index].actor = "someone-else".to_owned();
        for i in index..specs.len() {
            specs[i].previous_hash = (i > 0).then(|| specs[i - 1].hash.clone());
            specs[i].hash = crate::audit::record_hash(&specs[i]).unwrap();
        }
        for (record, spec) in self.records.iter_mut().zip(specs) {
            record.spec = spec;
        }
    }
}

fn first(report: &LogReport) -> &LogProblem {
    report
        .problems
        .first()
        .expect("a problem should be reported")
}

#[test]
fn an_intact_log_verifies_with_every_record_included() {
    let log = log(7);
    let report = log.verify(&log.publish(7), &[]);
    assert!(report.intact(), "{report:?}");
    assert_eq!((report.size, report.verified), (7, 7));
}

#[test]
fn a_rewrite_with_the_chain_recomputed_names_the_rewritten_record() {
    let mut log = log(6);
    let published = log.publish(6);
    log.rewrite_and_rechain(2);
    // The old hash chain alone no longer sees it.
    let specs: Vec<AuditRecordSpec> = log.records.iter().map(|r| r.spec.clone()).collect();
    assert!(crate::audit::verify_chain(&specs, None).is_ok());
    let report = log.verify(&published, &[]);
    assert!(
        matches!(
            first(&report),
            LogProblem::Leaf {
                index: 2,
                found: Some(_)
            }
        ),
        "{report:?}"
    );
}

#[test]
fn deletion_and_truncation_name_the_missing_record() {
    let mut log = log(5);
    let published = log.publish(5);
    log.records.remove(3);
    let report = log.verify(&published, &[]);
    assert_eq!(
        first(&report),
        &LogProblem::Leaf {
            index: 3,
            found: None
        }
    );
    log.records.truncate(3);
    let report = log.verify(&published, &[]);
    assert_eq!(
        first(&report),
        &LogProblem::Leaf {
            index: 3,
            found: None
        }
    );
}

#[test]
fn reordering_names_the_first_moved_record() {
    let mut log = log(5);
    let published = log.publish(5);
    let (a, b) = (log.records[1].spec.sequence, log.records[3].spec.sequence);
    log.records[1].spec.sequence = b;
    log.records[3].spec.sequence = a;
    let report = log.verify(&published, &[]);
    assert!(
        matches!(first(&report), LogProblem::Leaf { index: 1, .. }),
        "{report:?}"
    );
}

#[test]
fn an_unsigned_record_beyond_the_head_is_foreign_and_a_signed_one_pending() {
    let mut log = log(5);
    let published = log.publish(4);
    let report = log.verify(&published, &[]);
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.pending.len(), 1);
    // A record made by someone without the key, at the next sequence, chained correctly.
    let mut forged = next_record(
        Some(&log.records[4].spec),
        "web",
        UID,
        event(9),
        Timestamp::now(),
    )
    .unwrap();
    forged.signature = log.records[4].spec.signature.clone();
    log.records.push(AuditRecord::for_spec("shop", forged));
    let report = log.verify(&published, &[]);
    assert!(
        matches!(first(&report), LogProblem::Foreign { sequence: 5, .. }),
        "{report:?}"
    );
}

#[test]
fn a_record_inserted_at_a_used_sequence_is_foreign() {
    let mut log = log(4);
    let published = log.publish(4);
    let mut copy = log.records[2].clone();
    copy.spec.actor = "mallory".to_owned();
    copy.metadata.name = Some("web-inserted".to_owned());
    log.records.push(copy);
    let report = log.verify(&published, &[]);
    assert!(
        matches!(first(&report), LogProblem::Foreign { sequence: 2, .. }),
        "{report:?}"
    );
}

#[test]
fn a_publication_by_another_key_or_with_wrong_hashes_is_refused() {
    let log = log(3);
    let other = self::log(3);
    let report = log.verify(&other.publish(3), &[]);
    assert!(
        matches!(first(&report), LogProblem::Publication(_)),
        "{report:?}"
    );
    let mut published = log.publish(3);
    published.leaf_hashes.swap(0, 1);
    let report = log.verify(&published, &[]);
    assert!(
        matches!(first(&report), LogProblem::Publication(_)),
        "{report:?}"
    );
}

#[test]
fn kept_checkpoints_must_be_consistent_and_not_larger() {
    let log = log(6);
    let kept = log.publish(3).checkpoint;
    let report = log.verify(&log.publish(6), std::slice::from_ref(&kept));
    assert!(report.intact(), "{report:?}");
    // A fork: the same key once signed a tree whose record 1 differs.
    let mut leaves: Vec<Hash> = log.records[..3]
        .iter()
        .map(|record| record_leaf_hash(&record.spec).unwrap())
        .collect();
    leaves[1] = [7; 32];
    let fork = log
        .signer
        .publication(&log.origin, &leaves)
        .unwrap()
        .checkpoint;
    let report = log.verify(&log.publish(6), &[fork]);
    assert!(
        matches!(first(&report), LogProblem::Inconsistent { size: 3, .. }),
        "{report:?}"
    );
    // A rolled-back store: the published tree is smaller than one the auditor kept.
    let newer = log.publish(6).checkpoint;
    let rolled_back = verify_log(
        &log.verifier,
        &log.origin,
        &log.publish(4),
        &log.records[..4],
        &[newer],
    );
    assert!(
        matches!(
            first(&rolled_back),
            LogProblem::Inconsistent { size: 6, .. }
        ),
        "{rolled_back:?}"
    );
}
