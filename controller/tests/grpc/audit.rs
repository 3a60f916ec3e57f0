//! ListAuditRecords and VerifyAuditChain over records written with the chain code, and a
//! tampered record named.

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rollgate_crds::AuditRecord;
use rollgate_crds::audit::{AuditEvent, AuditEventKind, next_record};
use rollgate_proto::v1::{ListAuditRecordsRequest, VerifyAuditChainRequest};
use rollgate_testsupport::identity::{grant, rollgate_rule, service_account, wait_until_allowed};
use rollgate_testsupport::{TestNamespace, shared_cluster};
use tonic::Code;

use super::{authed, connect, id, serve};

fn event(kind: AuditEventKind, actor: &str) -> AuditEvent {
    AuditEvent {
        kind,
        actor: actor.to_owned(),
        revision: Some("0123456789".into()),
        reason: None,
        message: Some(format!("{kind:?} by {actor}")),
        details: [("weight".to_owned(), "20".to_owned())].into(),
    }
}

#[tokio::test]
async fn an_auditor_lists_and_verifies_the_chain_and_sees_tampering() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "grpc-audit").await?;
    let ns = namespace.name();
    let records = Api::<AuditRecord>::namespaced(admin.clone(), ns);
    let kinds = [
        (AuditEventKind::RevisionDetected, "rollgate-controller"),
        (AuditEventKind::WeightSet, "rollgate-controller"),
        (AuditEventKind::Approval, "alice"),
        (AuditEventKind::Promote, "bob"),
    ];
    let mut specs = Vec::new();
    for (second, (kind, actor)) in kinds.into_iter().enumerate() {
        let time = Timestamp::from_second(1_767_225_600 + second as i64)?;
        let spec = next_record(
            specs.last(),
            "web",
            "5f1c2a9e-uid",
            event(kind, actor),
            time,
        )?;
        records
            .create(
                &PostParams::default(),
                &AuditRecord::for_spec(ns, spec.clone()),
            )
            .await?;
        specs.push(spec);
    }
    let auditor = service_account(&admin, ns, "auditor").await?;
    let rules = vec![
        rollgate_rule(&["rollouts"], &["get"]),
        rollgate_rule(&["auditrecords"], &["list"]),
    ];
    grant(&admin, &auditor, "auditor", rules).await?;
    wait_until_allowed(&admin, &auditor, "list", "auditrecords").await?;
    let nobody = service_account(&admin, ns, "nobody").await?;
    let served = serve(&admin).await?;
    let mut client = connect(&served).await?;
    let list = || ListAuditRecordsRequest {
        rollout: id(ns, "web"),
    };
    let verify = || VerifyAuditChainRequest {
        rollout: id(ns, "web"),
    };

    let listed = client
        .list_audit_records(authed(&auditor.token, list()))
        .await?
        .into_inner()
        .records;
    let sequences: Vec<i64> = listed.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, [0, 1, 2, 3]);
    assert_eq!(listed[2].actor, "alice");
    assert_eq!(listed[2].event, "Approval");
    assert_eq!(listed[3].previous_hash, listed[2].hash);
    let verdict = client
        .verify_audit_chain(authed(&auditor.token, verify()))
        .await?
        .into_inner();
    assert!(verdict.intact, "{verdict:?}");
    assert_eq!(verdict.records, 4);
    let denied = client
        .verify_audit_chain(authed(&nobody.token, verify()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Replace record 2 with one that names another approver, keeping its stored hash.
    let mut forged = specs[2].clone();
    forged.actor = "mallory".into();
    let name = AuditRecord::for_spec(ns, forged.clone())
        .metadata
        .name
        .unwrap();
    records.delete(&name, &DeleteParams::default()).await?;
    records
        .create(&PostParams::default(), &AuditRecord::for_spec(ns, forged))
        .await?;
    let verdict = client
        .verify_audit_chain(authed(&auditor.token, verify()))
        .await?
        .into_inner();
    assert!(!verdict.intact);
    assert_eq!(verdict.first_broken_record, name);
    assert!(verdict.reason.contains("hash mismatch"), "{verdict:?}");

    let none = VerifyAuditChainRequest {
        rollout: id(ns, "never-existed"),
    };
    let missing = client
        .verify_audit_chain(authed(&auditor.token, none))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    Ok(())
}
