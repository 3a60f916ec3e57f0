//! Where the real requests go: each pod of the app counts the requests it answered
//! (`http_requests_total`, read from the pod's own metrics endpoint by pod IP), so the share of
//! each revision over a few seconds of load is what kube-proxy really sent it.
//!
//! The load generator opens a new connection per request and kube-proxy (iptables) picks a
//! ready endpoint uniformly at random for each, so a revision with `k` of `n` ready pods gets
//! a Binomial share around `k / n`; the demo accepts four standard deviations
//! (`4 * sqrt(p (1 - p) / requests)`: about ±9 points at 20% over 320 requests), which a
//! correct split misses about once in 15,000 runs and a split that ignored the weights misses
//! every time.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use rollgate_crds::names::REVISION_LABEL;
use rollgate_testsupport::demo_workload::{APP_PORT, serves};
use rollgate_testsupport::real_install::{scrape, sum_samples};

use super::Walk;
use crate::objects::{NAMESPACE, ROLLOUT};

/// How long the requests are counted.
const WINDOW: Duration = Duration::from_secs(8);

/// The requests each revision's pods answered during the window.
pub(super) struct Shares {
    answered: BTreeMap<String, f64>,
}

impl Shares {
    fn total(&self) -> f64 {
        self.answered.values().sum()
    }

    /// The share of the requests `revision` answered (0 to 1).
    pub(super) fn of(&self, revision: &str) -> f64 {
        let total = self.total();
        if total == 0.0 {
            return 0.0;
        }
        self.answered.get(revision).copied().unwrap_or_default() / total
    }

    /// Fails unless `revision` answered `expected` of the requests, within four binomial
    /// standard deviations (and at least 100 requests were answered).
    pub(super) fn expect(&self, revision: &str, expected: f64) -> Result<()> {
        let total = self.total();
        ensure!(
            total >= 100.0,
            "only {total} requests were answered in {WINDOW:?}"
        );
        let bound = 4.0 * (expected * (1.0 - expected) / total).sqrt();
        let share = self.of(revision);
        ensure!(
            (share - expected).abs() <= bound,
            "revision {revision} answered {:.1}% of {total} requests, expected {:.0}% ± {:.1}",
            share * 100.0,
            expected * 100.0,
            bound * 100.0
        );
        Ok(())
    }
}

impl Walk<'_> {
    /// Counts, by each Ready pod's own counter, the requests every revision answered during
    /// [`WINDOW`] of load through the Service, and prints them.
    pub(super) async fn measure_shares(&self) -> Result<Shares> {
        let before = self.answered_by_pod().await?;
        tokio::time::sleep(WINDOW).await;
        let after = self.answered_by_pod().await?;
        let mut answered: BTreeMap<String, f64> = BTreeMap::new();
        for (pod, (revision, count)) in &after {
            // A pod that became Ready during the window counts from zero.
            let earlier = before.get(pod).map_or(0.0, |(_, count)| *count);
            *answered.entry(revision.clone()).or_default() += count - earlier;
        }
        let shares = Shares { answered };
        let total = shares.total();
        let mut lines = vec![format!(
            "requests through Service {ROLLOUT} in {}s, counted by each pod:",
            WINDOW.as_secs()
        )];
        for (revision, count) in &shares.answered {
            let version = self
                .versions
                .iter()
                .position(|known| known.revision == *revision)
                .map_or_else(|| "?".to_owned(), |index| format!("v{}", index + 1));
            let pods = after
                .values()
                .filter(|(known, _)| known == revision)
                .count();
            lines.push(format!(
                "  {version} ({revision}, {pods} pods): {count:.0} of {total:.0} = {:.1}%",
                shares.of(revision) * 100.0
            ));
        }
        self.narrator.detail(&lines.join("\n"));
        Ok(shares)
    }

    /// Every Ready pod of the app: its revision and the requests it has answered so far.
    async fn answered_by_pod(&self) -> Result<BTreeMap<String, (String, f64)>> {
        let pods: Api<Pod> = Api::namespaced(self.stack.client.clone(), NAMESPACE);
        let listed = pods
            .list(&ListParams::default().labels(&format!("app={ROLLOUT}")))
            .await?;
        let mut answered = BTreeMap::new();
        for pod in listed.items {
            if !serves(&pod) {
                continue;
            }
            let name = pod.metadata.name.clone().context("a pod without a name")?;
            let revision = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(REVISION_LABEL))
                .cloned()
                .with_context(|| format!("pod {name} has no {REVISION_LABEL} label"))?;
            let ip = pod
                .status
                .as_ref()
                .and_then(|status| status.pod_ip.clone())
                .with_context(|| format!("pod {name} has no IP"))?;
            let metrics = tokio::task::block_in_place(|| scrape(&format!("{ip}:{APP_PORT}")))?;
            answered.insert(
                name,
                (revision, sum_samples(&metrics, "http_requests_total", &[])),
            );
        }
        Ok(answered)
    }
}
