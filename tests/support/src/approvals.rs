//! Approvals given in someone else's name by the test's admin, through impersonation: the
//! Approval's `approver` is then the impersonated user, as the `rollgate-approvals` admission
//! policy demands. Tests about rollout mechanics use it to open the gate of a Rollout's first
//! revision (which is gated like any other when its strategy has an approval gate).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, PostParams};
use kube::config::KubeConfigOptions;
use rollgate_crds::approval::digests_of;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_crds::{Approval, Rollout};
use serde_json::json;

use crate::Cluster;

/// A client of the admin's, acting as `user` in `groups` (and `system:masters`, so RBAC lets
/// it create Approvals anywhere).
pub async fn impersonating(cluster: &Cluster, user: &str, groups: &[&str]) -> Result<kube::Client> {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(cluster.kubeconfig())?,
        &KubeConfigOptions::default(),
    )
    .await?;
    config.auth_info.impersonate = Some(user.to_owned());
    let mut all_groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    all_groups.push("system:masters".to_owned());
    config.auth_info.impersonate_groups = Some(all_groups);
    Ok(kube::Client::try_from(config)?)
}

/// Waits until Rollout `name` waits at the approval gate of its current revision, then has
/// `approvers` distinct people (`first-revision-approver-<i>`, in `groups`) approve it.
/// Returns the revision approved.
pub async fn approve_current_revision(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    approvers: usize,
    groups: &[&str],
) -> Result<String> {
    let admin = cluster.client().await?;
    let rollouts: Api<Rollout> = Api::namespaced(admin, namespace);
    let started = Instant::now();
    let status = loop {
        let status = rollouts.get(name).await?.status.unwrap_or_default();
        if status.phase == Some(RolloutPhase::AwaitingApproval) && status.current_revision.is_some()
        {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{name} never waited at an approval gate: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let revision = status.current_revision.context("a current revision")?;
    let digests = digests_of(
        status
            .current_images
            .iter()
            .map(|image| image.image.as_str()),
    );
    for index in 0..approvers {
        let approver = format!("first-revision-approver-{index}");
        let client = impersonating(cluster, &approver, groups).await?;
        let approval: Approval = serde_json::from_value(json!({
            "apiVersion": "rollgate.io/v1alpha1",
            "kind": "Approval",
            "metadata": {"generateName": format!("{name}-")},
            "spec": {
                "rollout": name,
                "revision": revision,
                "digests": digests,
                "decision": "Approve",
                "comment": "the test approves the revision",
                "approver": approver,
                "approverGroups": groups,
            }
        }))?;
        Api::<Approval>::namespaced(client, namespace)
            .create(&PostParams::default(), &approval)
            .await
            .with_context(|| format!("{approver} approves {name}"))?;
    }
    Ok(revision)
}
