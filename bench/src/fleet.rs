//! What the fleet benchmarks share: reading a controller process's CPU and memory from /proc,
//! percentiles, waiting until every Rollout of a fleet satisfies a condition, and starting
//! rollgate's controller the way the fleet runs it (leader election on, audit log signed and
//! published or unsigned, requests through a [`crate::api_count::CountingProxy`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::Api;
use kube::api::ListParams;
use rollgate_crds::audit::checkpoint::generate_key;
use rollgate_testsupport::{Cluster, ControllerOptions, ControllerProcess, Registry};

/// A process's CPU and memory, from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Peak resident set (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Resident set now (VmRSS), MiB.
    pub rss_mib: f64,
    /// User and system CPU seconds so far.
    pub cpu_seconds: f64,
}

/// The usage of process `pid` (zeros when it is gone).
pub fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .unwrap_or(0.0)
    };
    Usage {
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        rss_mib: kib("VmRSS:") / 1024.0,
        cpu_seconds: (ticks(11) + ticks(12)) / 100.0,
    }
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Polls `api` once a second until `n` of its objects satisfy `done` or `limit` passes;
/// returns how many did.
pub async fn wait_all<K>(
    api: &Api<K>,
    n: usize,
    done: impl Fn(&K) -> bool,
    limit: Duration,
) -> anyhow::Result<usize>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let started = Instant::now();
    loop {
        let count = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|object| done(object))
            .count();
        if count == n || started.elapsed() > limit {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Gives every Rollout `app-0` .. `app-<n-1>` of `api` the app image at `digest` (32 patches in
/// flight): the new revision a fleet rolls out.
pub async fn set_fleet_image<K>(api: &Api<K>, n: usize, digest: &str) -> anyhow::Result<()>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    use futures::{StreamExt, TryStreamExt};
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": rollgate_testsupport::manifests::app_image(digest)}
    ]}}}});
    futures::stream::iter(0..n)
        .map(|index| {
            let (api, patch) = (api.clone(), patch.clone());
            async move {
                api.patch(
                    &format!("app-{index}"),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// rollgate's audit log configuration in a fleet.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditMode {
    /// Signed checkpoints, published to a local OCI registry.
    Signed,
    /// No key: records without signatures or checkpoints.
    Unsigned,
}

/// rollgate's controller replicas as a fleet runs them, and what they need kept alive.
pub struct RollgateController {
    /// The processes: one leader, or the sharded replicas.
    pub processes: Vec<ControllerProcess>,
    /// The registry checkpoints are published to (signed audit log).
    pub registry: Option<Registry>,
    _keys: tempfile::TempDir,
}

impl RollgateController {
    /// CPU and memory of every replica together: CPU seconds and resident sets summed.
    pub fn usage(&self) -> Usage {
        self.processes
            .iter()
            .filter_map(ControllerProcess::pid)
            .map(usage)
            .fold(Usage::default(), |total, one| Usage {
                peak_rss_mib: total.peak_rss_mib + one.peak_rss_mib,
                rss_mib: total.rss_mib + one.rss_mib,
                cpu_seconds: total.cpu_seconds + one.cpu_seconds,
            })
    }

    /// The end of every replica's log.
    pub fn log_tail(&self) -> String {
        self.processes
            .iter()
            .map(ControllerProcess::log_tail)
            .collect::<Vec<_>>()
            .join("\n---\n")
    }
}

/// The shard count of a fleet run with more than one replica.
pub const FLEET_SHARDS: u32 = 6;

/// Starts rollgate's controller against `cluster` through `kubeconfig` (the counting proxy's),
/// with the audit log as `audit` says: one replica with leader election on, or `replicas`
/// sharded replicas ([`FLEET_SHARDS`] shards) sharing the work.
pub fn start_rollgate(
    cluster: &Cluster,
    kubeconfig: PathBuf,
    audit: AuditMode,
    replicas: usize,
) -> anyhow::Result<RollgateController> {
    let mut options = ControllerOptions {
        lease_duration_seconds: 15,
        kubeconfig: Some(kubeconfig),
        ..ControllerOptions::named("fleet")
    };
    let keys = tempfile::tempdir()?;
    let registry = match audit {
        AuditMode::Signed => {
            let registry = Registry::start()?;
            let (signer, _verifier) = generate_key("rollgate-fleet");
            let key = keys.path().join("signer.key");
            std::fs::write(&key, signer)?;
            options.env.extend([
                (
                    "ROLLGATE_AUDIT_SIGNING_KEY_FILE".to_owned(),
                    key.display().to_string(),
                ),
                (
                    "ROLLGATE_AUDIT_STORE".to_owned(),
                    format!("{}/audit", registry.host()),
                ),
                (
                    "ROLLGATE_AUDIT_STORE_INSECURE".to_owned(),
                    "true".to_owned(),
                ),
            ]);
            Some(registry)
        }
        AuditMode::Unsigned => None,
    };
    let processes = if replicas <= 1 {
        vec![ControllerProcess::start(cluster, &options)?]
    } else {
        options
            .env
            .push(("ROLLGATE_SHARDS".to_owned(), FLEET_SHARDS.to_string()));
        (0..replicas)
            .map(|replica| {
                let options = ControllerOptions {
                    name: format!("fleet-{replica}"),
                    ..options.clone()
                };
                ControllerProcess::start(cluster, &options)
            })
            .collect::<anyhow::Result<_>>()?
    };
    Ok(RollgateController {
        processes,
        registry,
        _keys: keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn this_process_uses_memory_and_a_gone_one_nothing() {
        let mine = usage(std::process::id());
        assert!(mine.peak_rss_mib > 0.0 && mine.rss_mib > 0.0);
        assert_eq!(usage(u32::MAX), Usage::default());
    }
}
