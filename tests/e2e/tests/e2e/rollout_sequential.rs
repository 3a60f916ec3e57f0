//! The sequential test against a fixed-horizon test, in one scenario on the real cluster.
//!
//! Two demo apps stand for a canary that fails 20% of its requests and a baseline that fails
//! none; a real Prometheus scrapes them and one load generator drives both. Two Rollouts in one
//! namespace pause in an analysis step over the same two apps (the templates name them through
//! template arguments, so both read the very same counters):
//! - `sequential` judges with the `sequential` judgement (the mixture SPRT), which may fail the
//!   metric at any measurement;
//! - `fixed-horizon` judges the canary's error ratio with a threshold over a fixed horizon of
//!   [`HORIZON`] measurements: `count` is the horizon and `failureLimit` is one less, so it
//!   cannot fail the metric before the horizon's last measurement.
//!
//! Both abort by themselves, with traffic back on stable. The AnalysisRuns' status says how
//! many measurements each took before its Failed verdict: the sequential test must have
//! decided after strictly fewer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate, MetricResult};
use rollgate_crds::revision::revision_hash;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{
    DemoApp, LoadGenerator, Prometheus, TestNamespace, manifests, shared_cluster, shared_controller,
};
use serde_json::{Value, json};

use crate::rollouts::{
    DIGEST_V1, DIGEST_V2, healthy, in_phase, set_digest, wait_for, wait_for_scale,
};

/// Revision label of the demo app that stands for the canary.
const CANARY_APP: &str = "bad-canary";
/// Revision label of the demo app that stands for the baseline.
const BASELINE_APP: &str = "good-baseline";
/// Measurements of the fixed-horizon test.
const HORIZON: i32 = 5;
/// Time between measurements, for both tests.
const INTERVAL: &str = "2s";

/// A Rollout that pauses at 50% in an analysis step with template `template`.
fn analysed_rollout(name: &str, template: &str, digest: &str) -> anyhow::Result<Rollout> {
    let strategy = json!({"canary": {"steps": [
        {"setWeight": 50},
        {"analysis": {"templates": [{"templateName": template}]}},
        {"setWeight": 100}
    ]}});
    manifests::rollout(name, 2, digest, strategy)
}

/// A template of one metric; `{{args.canary}}` and `{{args.baseline}}` name the demo apps.
fn template(name: &str, metric: Value) -> anyhow::Result<AnalysisTemplate> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [
                {"name": "canary", "value": CANARY_APP},
                {"name": "baseline", "value": BASELINE_APP}
            ],
            "metrics": [metric]
        }
    }))?)
}

/// The running total of `arg`'s requests, of its failed ones when `errors`.
fn counter(arg: &str, errors: bool) -> String {
    if errors {
        format!(
            r#"sum(http_requests_total{{revision="{{{{args.{arg}}}}}",code="500"}}) or vector(0)"#
        )
    } else {
        format!(r#"sum(http_requests_total{{revision="{{{{args.{arg}}}}}"}})"#)
    }
}

fn sequential_metric(prometheus: &str) -> Value {
    let queries = |arg: &str| json!({"errorsQuery": counter(arg, true), "requestsQuery": counter(arg, false)});
    json!({
        "name": "error-rate",
        "interval": INTERVAL,
        "count": 30,
        // The test needs two readings of the counters: the run's start and one interval on.
        "initialDelay": INTERVAL,
        "provider": {"prometheus": {"address": prometheus, "timeout": "5s"}},
        "sequential": {"canary": queries("canary"), "baseline": queries("baseline")}
    })
}

fn fixed_horizon_metric(prometheus: &str) -> Value {
    let ratio = r#"(sum(rate(http_requests_total{revision="{{args.canary}}",code="500"}[10s])) or vector(0)) / sum(rate(http_requests_total{revision="{{args.canary}}"}[10s]))"#;
    json!({
        "name": "error-rate",
        "interval": INTERVAL,
        "count": HORIZON,
        "failureLimit": HORIZON - 1,
        "initialDelay": INTERVAL,
        "provider": {"prometheus": {"address": prometheus, "query": ratio, "timeout": "5s"}},
        "successCondition": "result < 0.05"
    })
}

/// The metric result of Rollout `name`'s finished AnalysisRun for `revision`.
async fn finished_metric(
    runs: &Api<AnalysisRun>,
    name: &str,
    revision: &str,
) -> anyhow::Result<MetricResult> {
    let selector = format!("rollgate.io/rollout={name},rollgate.io/revision={revision}");
    let list = runs.list(&ListParams::default().labels(&selector)).await?;
    let status = list
        .items
        .into_iter()
        .find_map(|run| run.status.filter(|s| s.phase.is_completed()))
        .ok_or_else(|| anyhow::anyhow!("no finished AnalysisRun for {name}"))?;
    anyhow::ensure!(
        status.phase == AnalysisPhase::Failed,
        "the run of {name} ended {:?}: {:?}",
        status.phase,
        status.message
    );
    status
        .metric_results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the run of {name} has no metric result"))
}

#[tokio::test]
async fn the_sequential_test_aborts_a_bad_canary_in_fewer_measurements_than_a_fixed_horizon()
-> anyhow::Result<()> {
    let cluster = shared_cluster();
    shared_controller();
    let began = Instant::now();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "sequential").await?;
    let apps = [
        DemoApp::start(CANARY_APP, 0.2, Duration::from_millis(5))?,
        DemoApp::start(BASELINE_APP, 0.0, Duration::from_millis(5))?,
    ];
    let prometheus = Prometheus::start()?;
    prometheus.set_targets(&apps.each_ref().map(|app| app.scrape_target(&[])))?;
    let _load = LoadGenerator::start(
        &apps.each_ref().map(DemoApp::url),
        40.0,
        Duration::from_secs(300),
    )?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace.name());
    let runs: Api<AnalysisRun> = Api::namespaced(client.clone(), namespace.name());
    let templates: Api<AnalysisTemplate> = Api::namespaced(client, namespace.name());
    let cases = [
        ("sequential", sequential_metric(&prometheus.url())),
        ("fixed-horizon", fixed_horizon_metric(&prometheus.url())),
    ];
    for (name, metric) in &cases {
        templates
            .create(&PostParams::default(), &template(name, metric.clone())?)
            .await?;
        rollouts
            .create(
                &PostParams::default(),
                &analysed_rollout(name, name, DIGEST_V1)?,
            )
            .await?;
    }
    let mut stable = BTreeMap::new();
    for (name, _) in &cases {
        let rollout = wait_for(&rollouts, name, "v1 Healthy", healthy(None)).await?;
        let revision = rollout
            .status
            .and_then(|s| s.stable_revision)
            .unwrap_or_default();
        stable.insert(*name, revision);
    }
    // Every first measurement has data: both apps' rates and the canary's errors are scraped.
    for query in [
        format!(r#"sum(rate(http_requests_total{{revision="{BASELINE_APP}"}}[10s])) > 0"#),
        format!(r#"sum(rate(http_requests_total{{revision="{CANARY_APP}",code="500"}}[10s])) > 0"#),
    ] {
        prometheus.wait_for_result(&query, Duration::from_secs(90))?;
    }
    for (name, _) in &cases {
        set_digest(&rollouts, name, DIGEST_V2).await?;
    }

    let mut decided = BTreeMap::new();
    for (name, _) in &cases {
        let aborted = wait_for(&rollouts, name, "Aborted", in_phase(RolloutPhase::Aborted)).await?;
        let status = aborted.status.unwrap_or_default();
        assert_eq!(
            status.canary_weight,
            Some(0),
            "{name}: traffic is back on stable"
        );
        let abort = status.abort.expect("abort recorded");
        assert_eq!(abort.by, "analysis", "{name}: {}", abort.reason);
        let canary = revision_hash(&analysed_rollout(name, name, DIGEST_V2)?.spec.template)?;
        wait_for_scale(
            &replica_sets,
            name,
            BTreeMap::from([(stable[name].clone(), 2), (canary.clone(), 0)]),
        )
        .await?;
        let metric = finished_metric(&runs, name, &canary).await?;
        assert_eq!(metric.phase, AnalysisPhase::Failed, "{name}: {metric:?}");
        decided.insert(*name, metric);
    }

    let (sequential, fixed) = (&decided["sequential"], &decided["fixed-horizon"]);
    println!(
        "measurements before the Failed verdict: sequential {}, fixed horizon {} ({:.0} s after the shared cluster and controller were up)",
        sequential.count,
        fixed.count,
        began.elapsed().as_secs_f64()
    );
    assert_eq!(
        (fixed.count, fixed.failed),
        (HORIZON, HORIZON),
        "the fixed-horizon test decides on its last measurement: {fixed:?}"
    );
    assert!(
        sequential.count < fixed.count,
        "the sequential test took {} measurements, the fixed horizon {}: {sequential:?}",
        sequential.count,
        fixed.count
    );
    assert_eq!(
        sequential.failed, 1,
        "it stops at its first Failed measurement"
    );
    let message = sequential.message.clone().unwrap_or_default();
    assert!(message.contains("error rate is worse"), "{message}");
    assert!(
        message.contains(&format!(r#"revision="{CANARY_APP}""#)),
        "{message}"
    );
    Ok(())
}
