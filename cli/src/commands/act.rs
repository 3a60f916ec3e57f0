//! `promote`, `abort`, `retry`, `pause`, `resume`: a user action in the Rollout's status,
//! issued for the revision and attempt the Rollout is at, and followed until the controller
//! says what came of it (`status.actionOutcome`): the command never reports as done an action
//! that will not happen.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kubectl_rollgate::FIELD_MANAGER;
use kubectl_rollgate::user_action::{ActionTarget, action_id, user_action_patch};
use rollgate_crds::rollout::UserActionKind;

use crate::connect::{Connection, whoami};

pub async fn run(
    connection: &Connection,
    name: &str,
    kind: UserActionKind,
    reason: Option<String>,
    wait_seconds: u64,
) -> Result<ExitCode> {
    let api = connection.rollouts();
    let rollout = api
        .get(name)
        .await
        .with_context(|| format!("get rollout {name}"))?;
    let Some(target) = ActionTarget::of(rollout.status.as_ref()) else {
        bail!("rollout {name} has no revision yet: the controller has not seen it");
    };
    let identity = whoami(&connection.client).await?;
    let now = Timestamp::now();
    let id = action_id(kind, now);
    let patch = user_action_patch(
        name,
        kind,
        &target,
        &identity.username,
        reason.as_deref(),
        &id,
        now,
    );
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .with_context(|| format!("request {kind:?} on rollout {name}"))?;
    let wait = Duration::from_secs(wait_seconds);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let status = api.get(name).await?.status.unwrap_or_default();
        if let Some(outcome) = status.action_outcome.filter(|outcome| outcome.id == id) {
            println!("rollout.rollgate.io/{name}: {}", outcome.message);
            return Ok(if outcome.carried_out {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        if tokio::time::Instant::now() >= deadline {
            println!(
                "rollout.rollgate.io/{name}: {kind:?} by {} for revision {} attempt {} is pending (id {id}); nothing else can be requested until the controller handles it",
                identity.username, target.revision, target.attempt
            );
            // Not waiting was asked for; having waited in vain is worth a non-zero exit.
            return Ok(if wait_seconds == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
