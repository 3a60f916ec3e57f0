//! `audit verify`: recompute a Rollout's audit chain(s) and name the first broken link.

use std::process::ExitCode;

use anyhow::{Context, Result};
use kube::Api;
use kube::api::ListParams;
use rollgate_crds::audit::{chains_by_uid, recorded_head, verify_records};
use rollgate_crds::{AuditRecord, Rollout};

use crate::connect::Connection;

/// The AuditRecords of the Rollout `name` (by content, not by label: a record whose labels were
/// changed is still found), in sequence order.
pub async fn records_of(connection: &Connection, name: &str) -> Result<Vec<AuditRecord>> {
    let api = Api::<AuditRecord>::namespaced(connection.client.clone(), &connection.namespace);
    let mut records: Vec<AuditRecord> = api
        .list(&ListParams::default())
        .await
        .context("list audit records")?
        .items
        .into_iter()
        .filter(|record| record.spec.rollout == name)
        .collect();
    records.sort_by_key(|record| record.spec.sequence);
    Ok(records)
}

/// Verifies every chain of the Rollout `name` (the live Rollout's chain also against the head
/// it recorded, so deleted newest records are found) and prints one line per chain; fails when
/// a chain is broken or there are no records.
pub async fn verify(connection: &Connection, name: &str) -> Result<ExitCode> {
    let records = records_of(connection, name).await?;
    if records.is_empty() {
        println!(
            "FAILED: no audit records of rollout {name} in namespace {}",
            connection.namespace
        );
        return Ok(ExitCode::FAILURE);
    }
    let rollout = Api::<Rollout>::namespaced(connection.client.clone(), &connection.namespace)
        .get_opt(name)
        .await
        .context("get the rollout")?;
    let mut ok = true;
    for chain in chains_by_uid(records) {
        let uid = chain[0].spec.rollout_uid.clone();
        let head = recorded_head(rollout.as_ref(), &uid);
        match verify_records(&chain, head.as_ref()) {
            Ok(count) => {
                println!("OK: audit chain of rollout {name} (uid {uid}): {count} records verified")
            }
            Err(link) => {
                ok = false;
                println!("BROKEN: audit chain of rollout {name} (uid {uid}): {link}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
