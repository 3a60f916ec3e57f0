use super::*;

const UID: &str = "6f1c2a3b-1111-2222-3333-444455556666";

fn event(kind: AuditEventKind, actor: &str) -> AuditEvent {
    AuditEvent {
        kind,
        actor: actor.to_owned(),
        revision: Some("0123456789".into()),
        reason: Some("Test".into()),
        message: Some(format!("{kind:?} by {actor}")),
        details: [("weight".to_owned(), "20".to_owned())]
            .into_iter()
            .collect(),
    }
}

fn chain(length: usize) -> Vec<AuditRecordSpec> {
    let kinds = [
        AuditEventKind::RevisionDetected,
        AuditEventKind::Verification,
        AuditEventKind::StepEntered,
        AuditEventKind::WeightSet,
        AuditEventKind::Approval,
        AuditEventKind::Completed,
    ];
    let mut records: Vec<AuditRecordSpec> = Vec::new();
    for index in 0..length {
        let time = Timestamp::from_second(1_700_000_000 + index as i64).unwrap();
        let next = next_record(
            records.last(),
            "web",
            UID,
            event(kinds[index % kinds.len()], "rollgate-controller"),
            time,
        )
        .unwrap();
        records.push(next);
    }
    records
}

fn problem(result: Result<usize, BrokenLink>) -> (u64, LinkProblem) {
    let link = result.expect_err("the chain should be broken");
    (link.sequence, link.problem)
}

#[test]
fn a_fresh_chain_verifies_in_any_order() {
    let mut records = chain(6);
    assert_eq!(verify_chain(&records, None), Ok(6));
    records.reverse();
    assert_eq!(verify_chain(&records, None), Ok(6));
    assert_eq!(verify_chain(&[], None), Ok(0));
}

#[test]
fn records_link_to_their_predecessor() {
    let records = chain(3);
    assert_eq!(records[0].sequence, 0);
    assert_eq!(records[0].previous_hash, None);
    assert_eq!(records[2].sequence, 2);
    assert_eq!(
        records[2].previous_hash.as_deref(),
        Some(records[1].hash.as_str())
    );
    assert_eq!(records[1].hash.len(), 64);
}

#[test]
fn the_hash_is_pinned() {
    // A change of the canonical encoding must be deliberate: it changes this value.
    let first = &chain(1)[0];
    assert_eq!(record_hash(first).unwrap(), first.hash);
    let json = serde_json::to_value(first).unwrap();
    assert_eq!(json["time"], "2023-11-14T22:13:20Z");
    let expected = {
        let canonical = r#"{"actor":"rollgate-controller","details":{"weight":"20"},"event":"RevisionDetected","message":"RevisionDetected by rollgate-controller","reason":"Test","revision":"0123456789","rollout":"web","rolloutUid":"6f1c2a3b-1111-2222-3333-444455556666","sequence":0,"time":"2023-11-14T22:13:20Z"}"#;
        let mut hasher = Sha256::new();
        hasher.update(b"rollgate-audit-v1\n");
        hasher.update(canonical.as_bytes());
        hex::encode(hasher.finalize())
    };
    assert_eq!(first.hash, expected);
}

#[test]
fn time_is_kept_to_whole_seconds_so_it_survives_storage() {
    let time = Timestamp::from_second(1_700_000_000)
        .unwrap()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(750))
        .unwrap();
    let spec = next_record(
        None,
        "web",
        UID,
        event(AuditEventKind::Abort, "alice"),
        time,
    )
    .unwrap();
    let stored: AuditRecordSpec =
        serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(stored, spec);
    assert_eq!(verify_chain(&[stored], None), Ok(1));
}

#[test]
fn a_tampered_field_is_a_hash_mismatch_at_that_record() {
    for tamper in [
        (|r: &mut AuditRecordSpec| r.actor = "mallory".into()) as fn(&mut AuditRecordSpec),
        |r| r.message = Some("nothing happened".into()),
        |r| {
            r.details.insert("weight".into(), "100".into());
        },
        |r| r.event = AuditEventKind::Promote,
        |r| r.reason = None,
    ] {
        let mut records = chain(5);
        tamper(&mut records[2]);
        let (sequence, what) = problem(verify_chain(&records, None));
        assert_eq!(sequence, 2);
        assert!(matches!(what, LinkProblem::HashMismatch { .. }), "{what}");
    }
}

#[test]
fn a_rehashed_tampered_record_breaks_the_next_link() {
    let mut records = chain(5);
    records[2].actor = "mallory".into();
    records[2].hash = record_hash(&records[2]).unwrap();
    let (sequence, what) = problem(verify_chain(&records, None));
    assert_eq!(sequence, 3);
    assert!(
        matches!(what, LinkProblem::PreviousHashMismatch { .. }),
        "{what}"
    );
}

#[test]
fn a_deleted_record_is_a_gap() {
    let mut records = chain(5);
    records.remove(2);
    let link = verify_chain(&records, None).unwrap_err();
    assert_eq!(link.sequence, 3);
    assert_eq!(link.problem, LinkProblem::Gap { expected: 2 });
    assert_eq!(link.name, "web-6f1c2a3b-0000000003");
    assert!(
        link.to_string().contains("web-6f1c2a3b-0000000003"),
        "{link}"
    );

    let mut headless = chain(3);
    headless.remove(0);
    assert_eq!(
        problem(verify_chain(&headless, None)),
        (1, LinkProblem::Gap { expected: 0 })
    );
}

#[test]
fn a_duplicate_sequence_is_named() {
    let mut records = chain(4);
    let mut copy = records[1].clone();
    copy.actor = "mallory".into();
    copy.hash = record_hash(&copy).unwrap();
    records.push(copy);
    let (sequence, what) = problem(verify_chain(&records, None));
    assert_eq!(sequence, 1);
    assert_eq!(what, LinkProblem::Duplicate);
}

#[test]
fn swapping_sequences_is_detected() {
    let mut records = chain(4);
    let (one, two) = (records[1].sequence, records[2].sequence);
    records[1].sequence = two;
    records[2].sequence = one;
    let (sequence, what) = problem(verify_chain(&records, None));
    assert_eq!(sequence, 1);
    assert!(
        matches!(what, LinkProblem::PreviousHashMismatch { .. }),
        "{what}"
    );
}

#[test]
fn a_record_of_another_rollout_is_refused() {
    let mut records = chain(3);
    records[2].rollout_uid = "other".into();
    records[2].hash = record_hash(&records[2]).unwrap();
    let (sequence, what) = problem(verify_chain(&records, None));
    assert_eq!(sequence, 2);
    assert!(matches!(what, LinkProblem::OtherRollout { .. }), "{what}");
}

#[test]
fn a_deleted_tail_is_caught_only_with_the_head() {
    let full = chain(5);
    let head = ChainHead {
        sequence: 4,
        hash: full[4].hash.clone(),
    };
    assert_eq!(verify_chain(&full, Some(&head)), Ok(5));
    let truncated = &full[..3];
    assert_eq!(verify_chain(truncated, None), Ok(3));
    assert_eq!(
        problem(verify_chain(truncated, Some(&head))),
        (2, LinkProblem::Truncated { head: 4 })
    );
    let wrong = ChainHead {
        sequence: 2,
        hash: "0".repeat(64),
    };
    assert!(matches!(
        problem(verify_chain(&full, Some(&wrong))),
        (2, LinkProblem::HeadMismatch { .. })
    ));
}

#[test]
fn stored_objects_must_carry_their_own_name() {
    let records: Vec<AuditRecord> = chain(3)
        .into_iter()
        .map(|spec| AuditRecord::for_spec("team", spec))
        .collect();
    assert_eq!(verify_records(&records, None), Ok(3));
    assert_eq!(
        records[0].metadata.labels.as_ref().unwrap()[crate::names::ROLLOUT_UID_LABEL],
        UID
    );
    let mut renamed = records.clone();
    renamed[1].metadata.name = Some("web-forged".into());
    let (sequence, what) = problem(verify_records(&renamed, None));
    assert_eq!(sequence, 1);
    assert_eq!(
        what,
        LinkProblem::WrongName {
            actual: "web-forged".into()
        }
    );
}

#[test]
fn names_sort_and_fit() {
    let mut spec = chain(1).remove(0);
    assert_eq!(record_name(&spec), "web-6f1c2a3b-0000000000");
    spec.rollout = "r".repeat(253);
    let name = record_name(&spec);
    assert_eq!(name.len(), 253);
    assert!(name.ends_with("-6f1c2a3b-0000000000"));
}
