//! ListAuditRecords and VerifyAuditChain: a Rollout's AuditRecords, read from the API server
//! (not a cache: an auditor must see what is stored), and the chain check of
//! [`rollgate_crds::audit::verify_records`].
//!
//! Records are found by content (`spec.rollout`), not by label, so a record whose labels were
//! changed is still found. A Rollout deleted and created again under the same name has one
//! chain per uid; chains are listed oldest first (by the time of their first record), each in
//! sequence order, and each is verified on its own.

use kube::Api;
use kube::api::ListParams;
use rollgate_crds::AuditRecord;
use rollgate_crds::Rollout;
use rollgate_crds::audit::{chains_by_uid, recorded_head, verify_records};
use rollgate_proto::v1;
use tonic::Status;

use super::auth::{Access, Authenticator, Caller};
use super::errors::kube_status;

/// `get` on the Rollout and `list` on `auditrecords` in its namespace.
pub async fn authorize(
    auth: &Authenticator,
    caller: &Caller,
    namespace: &str,
    name: &str,
) -> Result<(), Status> {
    let rollout = Access {
        verb: "get",
        resource: "rollouts",
        subresource: "",
        namespace,
        name,
    };
    auth.authorize(caller, &rollout).await?;
    let records = Access {
        verb: "list",
        resource: "auditrecords",
        subresource: "",
        namespace,
        name: "",
    };
    auth.authorize(caller, &records).await
}

/// The chains of the Rollout `name`: one per Rollout uid, oldest first, in sequence order.
pub async fn chains(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Vec<AuditRecord>>, Status> {
    let records = Api::<AuditRecord>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|error| kube_status(error, "list audit records"))?
        .items;
    Ok(chains_by_uid(
        records
            .into_iter()
            .filter(|record| record.spec.rollout == name)
            .collect(),
    ))
}

/// The live Rollout `name`, if there is one: its recorded chain head detects deleted newest
/// records.
pub async fn live_rollout(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Rollout>, Status> {
    Api::<Rollout>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|error| kube_status(error, "get the rollout"))
}

/// The verdict on every chain (the live Rollout's chain against the head it recorded): intact
/// when all are, else the first broken link found.
pub fn verify(
    chains: &[Vec<AuditRecord>],
    rollout: Option<&Rollout>,
) -> v1::VerifyAuditChainResponse {
    let records = chains.iter().map(Vec::len).sum::<usize>();
    let mut response = v1::VerifyAuditChainResponse {
        intact: true,
        records: i64::try_from(records).unwrap_or(i64::MAX),
        ..Default::default()
    };
    for chain in chains {
        let head = recorded_head(rollout, &chain[0].spec.rollout_uid);
        if let Err(link) = verify_records(chain, head.as_ref()) {
            response.intact = false;
            response.first_broken_record = link.name.clone();
            response.reason = link.to_string();
            break;
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use rollgate_crds::audit::{AuditEvent, AuditEventKind, next_record};

    use super::*;

    fn chain(uid: &str, length: u64, start: i64) -> Vec<AuditRecord> {
        let mut specs = Vec::new();
        for sequence in 0..length {
            let event = AuditEvent {
                kind: AuditEventKind::StepEntered,
                actor: "rollgate-controller".into(),
                revision: Some("0123456789".into()),
                reason: None,
                message: Some(format!("step {sequence}")),
                details: Default::default(),
            };
            let time = Timestamp::from_second(start + sequence as i64).unwrap();
            let spec = next_record(specs.last(), "web", uid, event, time).unwrap();
            specs.push(spec);
        }
        specs
            .into_iter()
            .map(|spec| AuditRecord::for_spec("shop", spec))
            .collect()
    }

    #[test]
    fn chains_are_grouped_by_uid_and_ordered() {
        let mut records = chain("uid-new1", 2, 2_000);
        records.extend(chain("uid-old1", 3, 1_000));
        records.reverse();
        let chains = chains_by_uid(records);
        assert_eq!(chains.len(), 2);
        assert_eq!(chains[0][0].spec.rollout_uid, "uid-old1");
        let sequences: Vec<u64> = chains[0].iter().map(|r| r.spec.sequence).collect();
        assert_eq!(sequences, [0, 1, 2]);
        let verdict = verify(&chains, None);
        assert!(verdict.intact);
        assert_eq!(verdict.records, 5);
    }

    #[test]
    fn a_tampered_record_is_named() {
        let mut records = chain("uid-abcd", 3, 1_000);
        records[1].spec.actor = "mallory".into();
        let verdict = verify(&chains_by_uid(records), None);
        assert!(!verdict.intact);
        assert_eq!(verdict.first_broken_record, "web-uid-abcd-0000000001");
        assert!(
            verdict.reason.contains("hash mismatch"),
            "{}",
            verdict.reason
        );
    }
}
