//! `promote`, `abort`, `retry`, `pause`, `resume`: a user action in the Rollout's status.

use std::process::ExitCode;

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kubectl_rollgate::FIELD_MANAGER;
use kubectl_rollgate::user_action::{action_id, user_action_patch};
use rollgate_crds::rollout::UserActionKind;

use super::rollouts;
use crate::connect::{Connection, whoami};

pub async fn run(
    connection: &Connection,
    name: &str,
    kind: UserActionKind,
    reason: Option<String>,
) -> Result<ExitCode> {
    let api = rollouts(connection);
    api.get(name)
        .await
        .with_context(|| format!("get rollout {name}"))?;
    let identity = whoami(&connection.client).await?;
    let now = Timestamp::now();
    let id = action_id(kind, now);
    let patch = user_action_patch(name, kind, &identity.username, reason.as_deref(), &id, now);
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .with_context(|| format!("request {kind:?} on rollout {name}"))?;
    println!(
        "rollout.rollgate.io/{name}: {kind:?} requested by {} (id {id})",
        identity.username
    );
    Ok(ExitCode::SUCCESS)
}
