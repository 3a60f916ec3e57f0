//! `approve` and `reject`: an Approval for the Rollout's current revision and digests, in the
//! user's own name and groups (the API server's admission policy checks both).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kube::Api;
use kube::api::PostParams;
use rollgate_crds::Approval;
use rollgate_crds::approval::{
    ApprovalDecision, DecisionTarget, approval_request, decision_target,
};

use crate::connect::{Connection, whoami};

pub async fn run(
    connection: &Connection,
    name: &str,
    approve: bool,
    comment: Option<String>,
) -> Result<ExitCode> {
    let rollout = connection
        .rollouts()
        .get(name)
        .await
        .with_context(|| format!("get rollout {name}"))?;
    let status = rollout.status.unwrap_or_default();
    let target = decision_target(name, &status)?;
    if !approve && comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
        bail!("a rejection needs --comment saying why");
    }
    let identity = whoami(&connection.client).await?;
    let decision = if approve {
        ApprovalDecision::Approve
    } else {
        ApprovalDecision::Reject
    };
    let approval = approval_request(
        name,
        &target,
        decision,
        comment,
        &identity.username,
        &identity.groups,
    );
    let DecisionTarget { revision, digests } = target;
    let created = Api::<Approval>::namespaced(connection.client.clone(), &connection.namespace)
        .create(&PostParams::default(), &approval)
        .await
        .context("create the Approval")?;
    println!(
        "approval.rollgate.io/{} created: {} {} rollout {name} revision {revision} ({} digest{})",
        created.metadata.name.unwrap_or_default(),
        identity.username,
        if approve { "approves" } else { "rejects" },
        digests.len(),
        if digests.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
