//! `history`: the Rollout's revisions (its ReplicaSets) and its audit records.

use std::process::ExitCode;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;
use kubectl_rollgate::render;
use rollgate_crds::names::{REVISION_LABEL, ROLLOUT_LABEL};

use super::audit::records_of;
use crate::connect::Connection;

/// Prints the revisions of Rollout `name`: its ReplicaSets, oldest first, with their roles.
pub async fn run(connection: &Connection, name: &str) -> Result<ExitCode> {
    let rollout = connection.rollouts().get_opt(name).await?;
    let status = rollout.and_then(|r| r.status).unwrap_or_default();
    let replica_sets =
        Api::<ReplicaSet>::namespaced(connection.client.clone(), &connection.namespace)
            .list(&ListParams::default().labels(&format!("{ROLLOUT_LABEL}={name}")))
            .await
            .context("list ReplicaSets")?;
    let mut sets = replica_sets.items;
    sets.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let now = Timestamp::now();
    let rows: Vec<Vec<String>> = sets
        .iter()
        .map(|rs| {
            let revision = rs
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                .cloned()
                .unwrap_or_default();
            let role = if status.stable_revision.as_deref() == Some(revision.as_str()) {
                "stable"
            } else if status.current_revision.as_deref() == Some(revision.as_str()) {
                "current"
            } else {
                ""
            };
            let images: Vec<String> = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default();
            vec![
                revision,
                role.to_owned(),
                rs.spec
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .unwrap_or(0)
                    .to_string(),
                images.join(","),
                render::age(rs.metadata.creation_timestamp.as_ref(), now),
            ]
        })
        .collect();
    println!("Revisions of rollout {name}:");
    print!(
        "{}",
        render::table(&["REVISION", "ROLE", "REPLICAS", "IMAGES", "AGE"], &rows)
    );
    println!();
    println!("Audit records:");
    print!(
        "{}",
        render::audit_table(&records_of(connection, name).await?)
    );
    Ok(ExitCode::SUCCESS)
}
