//! `audit verify`: recompute a Rollout's audit chain(s) and name the first broken link.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use kube::Api;
use kube::api::ListParams;
use rollgate_crds::AuditRecord;
use rollgate_crds::audit::verify_records;

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

pub async fn verify(connection: &Connection, name: &str) -> Result<ExitCode> {
    let records = records_of(connection, name).await?;
    if records.is_empty() {
        println!(
            "FAILED: no audit records of rollout {name} in namespace {}",
            connection.namespace
        );
        return Ok(ExitCode::FAILURE);
    }
    // A Rollout deleted and created again under the same name has a chain per uid.
    let mut chains: BTreeMap<String, Vec<AuditRecord>> = BTreeMap::new();
    for record in records {
        chains
            .entry(record.spec.rollout_uid.clone())
            .or_default()
            .push(record);
    }
    let mut ok = true;
    for (uid, chain) in &chains {
        match verify_records(chain, None) {
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
