//! Analysis on the real cluster, with real metrics: one demo app per revision (labelled with
//! the revision hash, as its pods would be), a real Prometheus scraping them, the real analysis
//! service, and the shared controller scheduling the measurements. A healthy canary passes and
//! completes; an erroring canary aborts by itself with traffic back on stable and the failing
//! measurement on record; a Prometheus that goes away never lets a canary pass; the
//! comparative judge aborts a latency regression.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use rollgate_crds::revision::revision_hash;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{
    DemoApp, LoadGenerator, Prometheus, TestNamespace, manifests, shared_cluster, shared_controller,
};
use serde_json::{Value, json};

use crate::rollouts::{
    DIGEST_V1, DIGEST_V2, healthy, in_phase, set_digest, wait_for, wait_for_scale,
};

/// The canary's error ratio over the last 10 seconds (0 when it served no errors).
const ERROR_RATIO: &str = r#"(sum(rate(http_requests_total{revision="{{revision.canary}}",code="500"}[10s])) or vector(0)) / sum(rate(http_requests_total{revision="{{revision.canary}}"}[10s]))"#;

/// Mean latency of one revision over the last 5 seconds, sampled by a range query.
fn mean_latency(revision: &str) -> String {
    format!(
        r#"sum(rate(http_request_duration_seconds_sum{{revision="{{{{revision.{revision}}}}}"}}[5s])) / sum(rate(http_request_duration_seconds_count{{revision="{{{{revision.{revision}}}}}"}}[5s]))"#
    )
}

/// A namespace, a Prometheus and one demo app per revision of Rollout `name`, under load.
struct Analysed {
    name: String,
    rollouts: Api<Rollout>,
    replica_sets: Api<ReplicaSet>,
    runs: Api<AnalysisRun>,
    templates: Api<AnalysisTemplate>,
    prometheus: Option<Prometheus>,
    _apps: Vec<DemoApp>,
    _load: LoadGenerator,
    _namespace: TestNamespace,
}

fn canary(name: &str, digest: &str) -> anyhow::Result<Rollout> {
    let strategy = json!({"canary": {"steps": [
        {"setWeight": 50},
        {"analysis": {"templates": [{"templateName": "slo"}]}},
        {"setWeight": 100}
    ]}});
    manifests::rollout(name, 2, digest, strategy)
}

async fn analysed(
    name: &str,
    canary_error_rate: f64,
    canary_latency: Duration,
) -> anyhow::Result<Analysed> {
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, name).await?;
    let stable = revision_hash(&canary(name, DIGEST_V1)?.spec.template)?;
    let candidate = revision_hash(&canary(name, DIGEST_V2)?.spec.template)?;
    let apps = vec![
        DemoApp::start(&stable, 0.0, Duration::from_millis(5))?,
        DemoApp::start(&candidate, canary_error_rate, canary_latency)?,
    ];
    let prometheus = Prometheus::start()?;
    prometheus.set_targets(
        &apps
            .iter()
            .map(|app| app.scrape_target(&[]))
            .collect::<Vec<_>>(),
    )?;
    let urls: Vec<String> = apps.iter().map(DemoApp::url).collect();
    let load = LoadGenerator::start(&urls, 40.0, Duration::from_secs(600))?;
    Ok(Analysed {
        name: name.to_owned(),
        rollouts: Api::namespaced(client.clone(), namespace.name()),
        replica_sets: Api::namespaced(client.clone(), namespace.name()),
        runs: Api::namespaced(client.clone(), namespace.name()),
        templates: Api::namespaced(client, namespace.name()),
        prometheus: Some(prometheus),
        _apps: apps,
        _load: load,
        _namespace: namespace,
    })
}

impl Analysed {
    fn prometheus_url(&self) -> String {
        self.prometheus
            .as_ref()
            .map(Prometheus::url)
            .unwrap_or_default()
    }

    async fn template(&self, metric: Value) -> anyhow::Result<()> {
        let template: AnalysisTemplate = serde_json::from_value(json!({
            "apiVersion": "rollgate.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "slo"},
            "spec": {"metrics": [metric]}
        }))?;
        self.templates
            .create(&PostParams::default(), &template)
            .await?;
        Ok(())
    }

    /// Waits until Prometheus has scraped request rates of every revision, so the first
    /// measurement has data (a query without data is Inconclusive, which would pause).
    async fn wait_for_rates(&self, revisions: &[&str]) -> anyhow::Result<()> {
        let agent = rollgate_testsupport::process::http_agent();
        let deadline = Instant::now() + Duration::from_secs(90);
        for revision in revisions {
            let query =
                format!(r#"sum(rate(http_requests_total{{revision="{revision}"}}[10s])) > 0"#);
            loop {
                let url = format!("{}/api/v1/query", self.prometheus_url());
                let body: Value = agent
                    .get(&url)
                    .query("query", &query)
                    .call()?
                    .body_mut()
                    .read_json()?;
                let has_data = body["data"]["result"]
                    .as_array()
                    .is_some_and(|result| !result.is_empty());
                if has_data {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "Prometheus has no rate for {revision}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    /// Rolls out v1, then v2 (the canary under analysis); returns (v1, v2).
    async fn roll_out_v2(&self) -> anyhow::Result<(String, String)> {
        self.rollouts
            .create(&PostParams::default(), &canary(&self.name, DIGEST_V1)?)
            .await?;
        let first = wait_for(&self.rollouts, &self.name, "v1 Healthy", healthy(None)).await?;
        let v1 = first
            .status
            .and_then(|s| s.stable_revision)
            .unwrap_or_default();
        let v2 = revision_hash(&canary(&self.name, DIGEST_V2)?.spec.template)?;
        self.wait_for_rates(&[&v1, &v2]).await?;
        set_digest(&self.rollouts, &self.name, DIGEST_V2).await?;
        Ok((v1, v2))
    }

    /// The step analysis run of `revision`, once it has ended.
    async fn finished_run(&self, revision: &str) -> anyhow::Result<AnalysisRun> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let selector = format!(
            "rollgate.io/rollout={},rollgate.io/revision={revision}",
            self.name
        );
        loop {
            let runs = self
                .runs
                .list(&ListParams::default().labels(&selector))
                .await?;
            if let Some(run) = runs.items.into_iter().find(|run| {
                run.status
                    .as_ref()
                    .is_some_and(|status| status.phase.is_completed())
            }) {
                return Ok(run);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no finished AnalysisRun for {revision}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn error_ratio_metric(address: &str) -> Value {
    json!({
        "name": "error-ratio",
        "interval": "2s",
        "count": 3,
        "initialDelay": "2s",
        "provider": {"prometheus": {"address": address, "query": ERROR_RATIO, "timeout": "5s"}},
        "successCondition": "result < 0.05"
    })
}

#[tokio::test]
async fn a_canary_without_errors_passes_analysis_and_completes() -> anyhow::Result<()> {
    let a = analysed("passing", 0.0, Duration::from_millis(5)).await?;
    a.template(error_ratio_metric(&a.prometheus_url())).await?;
    let (v1, v2) = a.roll_out_v2().await?;
    let run = a.finished_run(&v2).await?;
    let status = run.status.expect("status");
    assert_eq!(status.phase, AnalysisPhase::Successful, "{status:?}");
    let metric = &status.metric_results[0];
    assert_eq!((metric.count, metric.successful), (3, 3), "{metric:?}");
    wait_for(
        &a.rollouts,
        "passing",
        "v2 stable",
        healthy(Some(v2.clone())),
    )
    .await?;
    wait_for_scale(
        &a.replica_sets,
        "passing",
        BTreeMap::from([(v1, 0), (v2, 2)]),
    )
    .await
}

#[tokio::test]
async fn a_canary_with_twenty_percent_errors_aborts_by_itself() -> anyhow::Result<()> {
    let a = analysed("failing", 0.2, Duration::from_millis(5)).await?;
    a.template(error_ratio_metric(&a.prometheus_url())).await?;
    let (v1, v2) = a.roll_out_v2().await?;
    let aborted = wait_for(
        &a.rollouts,
        "failing",
        "Aborted",
        in_phase(RolloutPhase::Aborted),
    )
    .await?;
    let status = aborted.status.expect("status");
    assert_eq!(status.canary_weight, Some(0), "traffic is back on stable");
    let abort = status.abort.expect("abort recorded");
    assert_eq!(abort.by, "analysis");
    assert!(abort.reason.contains("error-ratio"), "{}", abort.reason);
    wait_for_scale(
        &a.replica_sets,
        "failing",
        BTreeMap::from([(v1, 2), (v2.clone(), 0)]),
    )
    .await?;

    let run = a.finished_run(&v2).await?;
    let run_status = run.status.expect("status");
    assert_eq!(run_status.phase, AnalysisPhase::Failed);
    let failing = run_status.metric_results[0]
        .measurements
        .iter()
        .find(|m| m.phase == AnalysisPhase::Failed)
        .expect("the failing measurement is kept");
    let value: f64 = failing.value.as_deref().unwrap_or_default().parse()?;
    assert!((0.1..=0.3).contains(&value), "{failing:?}");
    let message = failing.message.clone().unwrap_or_default();
    assert!(message.contains("result < 0.05"), "{message}");
    assert!(
        message.contains(&format!(r#"revision="{v2}""#)),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn prometheus_going_away_mid_analysis_never_promotes() -> anyhow::Result<()> {
    let mut a = analysed("blind", 0.0, Duration::from_millis(5)).await?;
    let mut metric = error_ratio_metric(&a.prometheus_url());
    metric["count"] = json!(30);
    metric["interval"] = json!("1s");
    metric["consecutiveErrorLimit"] = json!(2);
    a.template(metric).await?;
    let (_, v2) = a.roll_out_v2().await?;
    // Let the analysis measure a few times, then take Prometheus away.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let selector = format!("rollgate.io/rollout=blind,rollgate.io/revision={v2}");
        let runs = a
            .runs
            .list(&ListParams::default().labels(&selector))
            .await?;
        let measured = runs.items.iter().any(|run| {
            run.status
                .as_ref()
                .is_some_and(|s| s.metric_results.iter().any(|m| m.successful > 0))
        });
        if measured {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the analysis never measured");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(a.prometheus.take());

    let run = a.finished_run(&v2).await?;
    let run_status = run.status.expect("status");
    assert!(
        matches!(
            run_status.phase,
            AnalysisPhase::Error | AnalysisPhase::Inconclusive
        ),
        "{run_status:?}"
    );
    let rollout = wait_for(&a.rollouts, "blind", "Aborted or Paused", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| matches!(s.phase, Some(RolloutPhase::Aborted | RolloutPhase::Paused)))
    })
    .await?;
    let status = rollout.status.expect("status");
    assert_ne!(
        status.stable_revision.as_deref(),
        Some(v2.as_str()),
        "never promoted"
    );
    Ok(())
}

#[tokio::test]
async fn the_comparative_judge_aborts_a_latency_regression() -> anyhow::Result<()> {
    let a = analysed("sluggish", 0.0, Duration::from_millis(60)).await?;
    a.template(json!({
        "name": "latency",
        "interval": "3s",
        "count": 2,
        "initialDelay": "4s",
        "provider": {"prometheus": {"address": a.prometheus_url(), "timeout": "5s"}},
        "compare": {
            "canaryQuery": mean_latency("canary"),
            "baselineQuery": mean_latency("stable"),
            "direction": "Increase",
            "allowedIncrease": 1.2,
            "window": "10s"
        }
    }))
    .await?;
    let (v1, v2) = a.roll_out_v2().await?;
    let aborted = wait_for(
        &a.rollouts,
        "sluggish",
        "Aborted",
        in_phase(RolloutPhase::Aborted),
    )
    .await?;
    let reason = aborted
        .status
        .and_then(|s| s.abort)
        .map(|abort| abort.reason)
        .unwrap_or_default();
    assert!(reason.contains("latency"), "{reason}");
    let run = a.finished_run(&v2).await?;
    assert_eq!(run.status.map(|s| s.phase), Some(AnalysisPhase::Failed));
    wait_for_scale(
        &a.replica_sets,
        "sluggish",
        BTreeMap::from([(v1, 2), (v2, 0)]),
    )
    .await
}
