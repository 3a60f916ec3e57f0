//! Helpers for tests that drive Rollouts through the controller.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::manifests;
use serde_json::json;

pub const DIGEST_V1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const DIGEST_V2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

pub fn canary(name: &str, digest: &str) -> Rollout {
    let strategy = json!({"canary": {
        "maxSurge": 1,
        "maxUnavailable": 0,
        "steps": [
            {"setWeight": 25}, {"pause": {}},
            {"setWeight": 50}, {"pause": {}},
            {"setWeight": 75}, {"pause": {"duration": "2s"}}
        ]
    }});
    manifests::rollout(name, 4, digest, strategy).expect("a valid Rollout")
}

/// Replicas per revision label, for the Rollout's ReplicaSets.
pub async fn replicas_by_revision(
    api: &Api<ReplicaSet>,
    name: &str,
) -> anyhow::Result<BTreeMap<String, i32>> {
    let list = api
        .list(&ListParams::default().labels(&format!("rollgate.io/rollout={name}")))
        .await?;
    Ok(list
        .items
        .iter()
        .map(|rs| {
            let revision = rs
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("rollgate.io/revision"))
                .cloned()
                .unwrap_or_default();
            (
                revision,
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            )
        })
        .collect())
}

/// Waits until the Rollout's status satisfies `done`, or fails with the last status seen.
pub async fn wait_for(
    api: &Api<Rollout>,
    name: &str,
    what: &str,
    done: impl Fn(&Rollout) -> bool,
) -> anyhow::Result<Rollout> {
    wait_for_within(api, name, what, done, Duration::from_secs(90)).await
}

/// [`wait_for`] with a bound of its own, for waits that include a long analysis.
pub async fn wait_for_within(
    api: &Api<Rollout>,
    name: &str,
    what: &str,
    done: impl Fn(&Rollout) -> bool,
    limit: Duration,
) -> anyhow::Result<Rollout> {
    let started = Instant::now();
    loop {
        let rollout = api.get(name).await?;
        if done(&rollout) {
            return Ok(rollout);
        }
        if started.elapsed() > limit {
            anyhow::bail!(
                "timed out waiting for {what}; status: {:#?}",
                rollout.status
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn at(step: i32, phase: RolloutPhase) -> impl Fn(&Rollout) -> bool {
    move |rollout| {
        rollout
            .status
            .as_ref()
            .is_some_and(|s| s.current_step_index == Some(step) && s.phase == Some(phase))
    }
}

pub async fn promote(api: &Api<Rollout>, name: &str, id: &str) -> anyhow::Result<()> {
    request(api, name, "Promote", id).await
}

/// Changes the Rollout's image digest: a new revision.
pub async fn set_digest(api: &Api<Rollout>, name: &str, digest: &str) -> anyhow::Result<()> {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": manifests::app_image(digest)}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Whether the Rollout is Healthy with `revision` (any, when `None`) stable.
pub fn healthy(revision: Option<String>) -> impl Fn(&Rollout) -> bool {
    move |rollout| {
        rollout.status.as_ref().is_some_and(|s| {
            s.phase == Some(RolloutPhase::Healthy)
                && revision
                    .as_ref()
                    .is_none_or(|r| s.stable_revision.as_ref() == Some(r))
        })
    }
}

/// Waits until the Rollout's ReplicaSets have exactly `expected` replicas per revision.
pub async fn wait_for_scale(
    api: &Api<ReplicaSet>,
    name: &str,
    expected: BTreeMap<String, i32>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let scale = replicas_by_revision(api, name).await?;
        if scale == expected {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("ReplicaSets of {name} are {scale:?}, expected {expected:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks for a user action (`Promote`, `Abort`, `Retry`, …) through the status subresource,
/// as the CLI and the gRPC API do, as the cluster admin (`by` must name the requesting user:
/// the `rollgate-user-actions` admission policy), for the revision and attempt the Rollout is
/// at. Waits first until the controller has handled any earlier action (the policy refuses to
/// replace one that is still pending).
pub async fn request(api: &Api<Rollout>, name: &str, action: &str, id: &str) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let status = loop {
        let status = api.get(name).await?.status.unwrap_or_default();
        let pending = status
            .user_action
            .as_ref()
            .is_some_and(|action| status.handled_action.as_deref() != Some(action.id.as_str()));
        if !pending && status.current_revision.is_some() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("{name}: an earlier action is still pending, or no revision yet");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let patch = json!({"status": {"userAction": {
        "id": id, "action": action, "by": "rollgate-admin", "reason": "requested by the test",
        "revision": status.current_revision, "attempt": status.attempt.unwrap_or(0),
        "time": "2026-01-01T00:00:00Z"
    }}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Whether the Rollout is in `phase`.
pub fn in_phase(phase: RolloutPhase) -> impl Fn(&Rollout) -> bool {
    move |rollout| {
        rollout
            .status
            .as_ref()
            .is_some_and(|s| s.phase == Some(phase))
    }
}
