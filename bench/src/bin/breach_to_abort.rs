//! Breach-to-abort latency on a local cluster of its own: how long after a canary starts failing
//! its SLO the stable revision has all the traffic again, with every component real.
//!
//! Set-up: the local cluster with rollgate's CRDs, the analysis service and the controller as
//! processes, a real Prometheus scraping every [`SCRAPE_INTERVAL`], and one demo app per
//! revision (labelled with the revision hash, as its pods' metrics would be) under a load of
//! [`RPS`] requests per second. The Rollout has two replicas and a canary strategy of
//! `setWeight 50` then an indefinite `pause`, with background analysis: the canary's error
//! ratio over the last [`WINDOW`], measured every [`ANALYSIS_INTERVAL`], must stay below 5%
//! (the first failed measurement fails the run, which aborts the Rollout).
//!
//! Each round rolls out a new revision with a new demo app serving no errors, waits until the
//! Rollout is paused at 50% with at least two successful measurements behind it, waits a
//! random fraction of an interval (so the breach falls at any phase of the scrapes and
//! measurements), then raises the canary app's error rate to [`BREACH_ERROR_RATE`] through its
//! `/admin/config` endpoint.
//! The clock starts when that call returns and stops at the first poll (every
//! [`POLL`]) that sees the stable revision with all the traffic: the Rollout's
//! `status.canaryWeight` at 0, its canary ReplicaSet scaled to 0 and its stable ReplicaSet
//! at the full two replicas (without a traffic router, traffic follows the pods). The time
//! the AnalysisRun was first seen Failed is printed too, splitting detection from the abort.
//!
//! Target (the issue's): at most one scrape interval plus one analysis interval plus 2 s. What
//! fills it: up to a scrape interval until Prometheus has the first errors, up to an analysis
//! interval until the next measurement, then the query, the run's status, the controller's
//! abort and the scale-down. The ratio query compares the counters with their values
//! [`WINDOW`] earlier rather than using `rate()`, because the demo app's `code="500"` series
//! only appears with the first error and `rate()` would wait for a second scrape of it.
//!
//! Usage: `cargo run --release -p rollgate-bench --bin breach_to_abort [-- <rounds>]` (5 by
//! default). `ROLLGATE_CONTROLLER_BIN`, `ROLLGATE_ANALYSIS_BIN` and `ROLLGATE_DEMO_APP_BIN`
//! select the binaries (otherwise this workspace's debug builds).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};
use rand_pcg::Pcg64;
use rollgate_crds::Rollout;
use rollgate_crds::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use rollgate_crds::names::{REVISION_LABEL, ROLLOUT_LABEL};
use rollgate_crds::revision::revision_hash;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::prometheus::SCRAPE_INTERVAL;
use rollgate_testsupport::{
    AnalysisServer, Cluster, ControllerOptions, ControllerProcess, DemoApp, LoadGenerator,
    Prometheus, TestNamespace, manifests,
};
use serde_json::json;

/// Time between the background analysis' measurements.
const ANALYSIS_INTERVAL: Duration = Duration::from_secs(1);
/// The window of the error ratio, in PromQL.
const WINDOW: &str = "2s";
/// The canary's error rate after the breach.
const BREACH_ERROR_RATE: f64 = 0.5;
/// Requests per second, shared by the stable and the canary app.
const RPS: f64 = 200.0;
/// How often the clock checks for the abort.
const POLL: Duration = Duration::from_millis(25);
/// Replicas of the Rollout.
const REPLICAS: i32 = 2;
/// Name of the Rollout (and of its pods' `app` label).
const NAME: &str = "breach";

fn digest(round: usize) -> String {
    format!("{:064x}", round + 1)
}

fn rollout(digest: &str) -> anyhow::Result<Rollout> {
    let strategy = json!({"canary": {
        "steps": [{"setWeight": 50}, {"pause": {}}],
        "analysis": {"templates": [{"templateName": "slo"}]}
    }});
    manifests::rollout(NAME, REPLICAS, digest, strategy)
}

/// The canary's error ratio over the last [`WINDOW`], from the counters' growth.
fn error_ratio() -> String {
    let errors = r#"http_requests_total{revision="{{revision.canary}}",code="500"}"#;
    let all = r#"http_requests_total{revision="{{revision.canary}}"}"#;
    format!(
        "((sum({errors}) or vector(0)) - (sum({errors} offset {WINDOW}) or vector(0))) \
         / (sum({all}) - sum({all} offset {WINDOW}))"
    )
}

fn template(prometheus: &str) -> anyhow::Result<AnalysisTemplate> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "slo"},
        "spec": {"metrics": [{
            "name": "error-ratio",
            "interval": format!("{}s", ANALYSIS_INTERVAL.as_secs()),
            "provider": {"prometheus": {
                "address": prometheus, "query": error_ratio(), "timeout": "2s"
            }},
            "successCondition": "result < 0.05"
        }]}
    }))?)
}

/// Polls until `done` holds for the Rollout, or fails after `limit` with the last status.
async fn wait_rollout(
    api: &Api<Rollout>,
    what: &str,
    limit: Duration,
    done: impl Fn(&Rollout) -> bool,
) -> anyhow::Result<Rollout> {
    let started = Instant::now();
    loop {
        let rollout = api.get(NAME).await?;
        if done(&rollout) {
            return Ok(rollout);
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "timed out waiting for {what}: {:?}",
            rollout.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The background AnalysisRun of `revision`, if there is one yet.
async fn run_of(runs: &Api<AnalysisRun>, revision: &str) -> anyhow::Result<Option<AnalysisRun>> {
    let selector = format!("{ROLLOUT_LABEL}={NAME},{REVISION_LABEL}={revision}");
    let list = runs.list(&ListParams::default().labels(&selector)).await?;
    Ok(list.items.into_iter().next())
}

/// Replicas of the Rollout's ReplicaSets, by revision.
async fn scale(api: &Api<ReplicaSet>) -> anyhow::Result<BTreeMap<String, i32>> {
    let list = api
        .list(&ListParams::default().labels(&format!("{ROLLOUT_LABEL}={NAME}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|rs| {
            let revision = rs.metadata.labels?.get(REVISION_LABEL)?.clone();
            Some((revision, rs.spec?.replicas.unwrap_or(0)))
        })
        .filter(|(_, replicas)| *replicas > 0)
        .collect())
}

/// One round's timings from the breach: the run seen Failed, all traffic on stable.
struct Round {
    failed: Duration,
    restored: Duration,
}

struct Bench {
    rollouts: Api<Rollout>,
    replica_sets: Api<ReplicaSet>,
    runs: Api<AnalysisRun>,
    prometheus: Prometheus,
    stable: DemoApp,
}

impl Bench {
    async fn round(&self, index: usize, phase: Duration) -> anyhow::Result<Round> {
        let image = digest(index + 1);
        let revision = revision_hash(&rollout(&image)?.spec.template)?;
        let canary = DemoApp::start(&revision, 0.0, Duration::from_millis(2))?;
        self.prometheus
            .set_targets(&[self.stable.scrape_target(&[]), canary.scrape_target(&[])])?;
        let _load = LoadGenerator::start(
            &[self.stable.url(), canary.url()],
            RPS,
            Duration::from_secs(300),
        )?;
        // The ratio compares with the counters a window ago: wait until that reading exists.
        let query =
            format!(r#"sum(http_requests_total{{revision="{revision}"}} offset {WINDOW}) > 0"#);
        self.prometheus
            .wait_for_result(&query, Duration::from_secs(60))?;

        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": manifests::app_image(&image)}]}}}});
        self.rollouts
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        wait_rollout(
            &self.rollouts,
            "the pause at 50%",
            Duration::from_secs(60),
            |r| {
                r.status.as_ref().is_some_and(|s| {
                    s.phase == Some(RolloutPhase::Paused)
                        && s.current_revision.as_deref() == Some(revision.as_str())
                        && s.canary_weight == Some(50)
                })
            },
        )
        .await?;
        let steady = Instant::now();
        loop {
            let run = run_of(&self.runs, &revision).await?;
            let status = run.and_then(|run| run.status);
            if let Some(status) = &status {
                anyhow::ensure!(
                    status.phase == AnalysisPhase::Running,
                    "the analysis ended before the breach: {:?}",
                    status.message
                );
            }
            let successful = status
                .and_then(|s| s.metric_results.first().map(|m| m.successful))
                .unwrap_or(0);
            if successful >= 2 {
                break;
            }
            anyhow::ensure!(
                steady.elapsed() < Duration::from_secs(60),
                "the background analysis never measured twice"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // The measurements and scrapes run on their own clocks: breach at a random phase of
        // them, not right after the measurement this loop just saw.
        tokio::time::sleep(phase).await;
        canary.set_error_rate(BREACH_ERROR_RATE)?;
        let breach = Instant::now();
        let mut failed = None;
        let stable_revision = revision_hash(&rollout(&digest(0))?.spec.template)?;
        let all_on_stable = BTreeMap::from([(stable_revision, REPLICAS)]);
        loop {
            let (rollout, run, replicas) = tokio::try_join!(
                async { anyhow::Ok(self.rollouts.get(NAME).await?) },
                run_of(&self.runs, &revision),
                scale(&self.replica_sets),
            )?;
            let now = breach.elapsed();
            if failed.is_none()
                && run
                    .and_then(|run| run.status)
                    .is_some_and(|s| s.phase == AnalysisPhase::Failed)
            {
                failed = Some(now);
            }
            let status = rollout.status.unwrap_or_default();
            if status.canary_weight == Some(0) && replicas == all_on_stable {
                anyhow::ensure!(
                    status.phase == Some(RolloutPhase::Aborted),
                    "traffic is on stable but the Rollout is {:?}",
                    status.phase
                );
                return Ok(Round {
                    failed: failed.unwrap_or(now),
                    restored: now,
                });
            }
            anyhow::ensure!(
                now < Duration::from_secs(60),
                "no abort 60 s after the breach: {:?}",
                status.message
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

fn summary(label: &str, mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    println!(
        "{label:<40} p50 {:>6.2} s   max {:>6.2} s",
        median.as_secs_f64(),
        max.as_secs_f64()
    );
    (median, max)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(5)
        .max(1);
    let (cluster, client) = Cluster::start_with_crds().await?;
    let namespace = TestNamespace::create(&cluster, &client, "breach").await?;
    let analysis = AnalysisServer::start()?;
    let _controller = ControllerProcess::start(
        &cluster,
        &ControllerOptions {
            analysis_addr: Some(analysis.grpc_url()),
            ..ControllerOptions::named("breach-to-abort")
        },
    )?;
    let prometheus = Prometheus::start()?;
    let first = rollout(&digest(0))?;
    let stable = DemoApp::start(
        &revision_hash(&first.spec.template)?,
        0.0,
        Duration::from_millis(2),
    )?;
    let bench = Bench {
        rollouts: Api::namespaced(client.clone(), namespace.name()),
        replica_sets: Api::namespaced(client.clone(), namespace.name()),
        runs: Api::namespaced(client.clone(), namespace.name()),
        prometheus,
        stable,
    };
    let templates: Api<AnalysisTemplate> = Api::namespaced(client, namespace.name());
    templates
        .create(&PostParams::default(), &template(&bench.prometheus.url())?)
        .await?;
    bench
        .rollouts
        .create(&PostParams::default(), &first)
        .await?;
    wait_rollout(
        &bench.rollouts,
        "the first revision Healthy",
        Duration::from_secs(90),
        |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == Some(RolloutPhase::Healthy))
        },
    )
    .await?;

    let target = SCRAPE_INTERVAL + ANALYSIS_INTERVAL + Duration::from_secs(2);
    println!(
        "breach_to_abort: {rounds} rounds; scrape interval {:?}, analysis interval {:?}, error ratio over {WINDOW} < 5%, {RPS} rps over stable and canary, canary error rate 0 -> {BREACH_ERROR_RATE}",
        SCRAPE_INTERVAL, ANALYSIS_INTERVAL
    );
    let mut results = Vec::with_capacity(rounds);
    let mut rng = Pcg64::seed_from_u64(0xB4EA_C4AB);
    let phases = Uniform::new(Duration::ZERO, SCRAPE_INTERVAL.max(ANALYSIS_INTERVAL))?;
    for index in 0..rounds {
        let round = bench.round(index, phases.sample(&mut rng)).await?;
        println!(
            "round {:>2}: AnalysisRun Failed after {:>5.2} s, all traffic on stable after {:>5.2} s",
            index + 1,
            round.failed.as_secs_f64(),
            round.restored.as_secs_f64()
        );
        results.push(round);
    }
    summary(
        "breach -> AnalysisRun Failed",
        results.iter().map(|r| r.failed).collect(),
    );
    let (median, max) = summary(
        "breach -> all traffic on stable",
        results.iter().map(|r| r.restored).collect(),
    );
    let verdict = |time: Duration| if time <= target { "met" } else { "NOT met" };
    println!(
        "target: <= scrape interval + analysis interval + 2 s = {:.1} s; p50 {}, max {}",
        target.as_secs_f64(),
        verdict(median),
        verdict(max)
    );
    Ok(())
}
