//! The betting sequential test (`sequential.method: Betting`) on the real cluster, with a real
//! Prometheus scraping demo apps:
//! - `betting-bad`: a canary that fails 40% of its requests against a baseline that fails 2%
//!   must be aborted by the analysis;
//! - `betting-noisy`: a healthy but noisy canary: both demo apps' error rates jump
//!   independently between 1% and 15% every second (error counts far more variable than
//!   binomial, the case where the mixture SPRT aborts healthy canaries), and the canary's
//!   process is restarted mid-analysis (its counters reset to zero). It must pass every
//!   measurement and be promoted.
//!
//! Both Rollouts pause at 50% in an analysis step whose template names the demo apps through
//! arguments, so equal traffic reaches both (the split the betting test is exact for).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use kube::api::{Api, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use rollgate_crds::revision::revision_hash;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{
    DemoApp, LoadGenerator, Prometheus, TestNamespace, manifests, shared_cluster, shared_controller,
};
use serde_json::{Value, json};

use crate::rollouts::{
    DIGEST_V1, DIGEST_V2, healthy, in_phase, set_digest, wait_for, wait_for_within,
};

/// Time between measurements.
const INTERVAL: &str = "2s";
/// Measurements of the noisy canary's analysis.
const COUNT: i32 = 30;

fn rollout(name: &str, digest: &str) -> anyhow::Result<Rollout> {
    let strategy = json!({"canary": {"steps": [
        {"setWeight": 50},
        {"analysis": {"templates": [{"templateName": name}]}},
        {"setWeight": 100}
    ]}});
    manifests::rollout(name, 2, digest, strategy)
}

fn counter(arg: &str, errors: bool) -> String {
    if errors {
        format!(
            r#"sum(http_requests_total{{revision="{{{{args.{arg}}}}}",code="500"}}) or vector(0)"#
        )
    } else {
        format!(r#"sum(http_requests_total{{revision="{{{{args.{arg}}}}}"}})"#)
    }
}

/// A template with one Betting metric over demo apps `canary` and `baseline`.
fn template(
    name: &str,
    prometheus: &str,
    (canary, baseline): (&str, &str),
) -> anyhow::Result<AnalysisTemplate> {
    let queries = |arg: &str| json!({"errorsQuery": counter(arg, true), "requestsQuery": counter(arg, false)});
    let metric: Value = json!({
        "name": "error-rate",
        "interval": INTERVAL,
        "count": COUNT,
        "initialDelay": INTERVAL,
        "provider": {"prometheus": {"address": prometheus, "timeout": "5s"}},
        "sequential": {
            "method": "Betting",
            "alpha": 0.01,
            "canary": queries("canary"),
            "baseline": queries("baseline")
        }
    });
    Ok(serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": "canary", "value": canary}, {"name": "baseline", "value": baseline}],
            "metrics": [metric]
        }
    }))?)
}

/// Error rates that jump, independently per app, between 1% and 15% every second, until
/// stopped.
struct Jitter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Jitter {
    fn start(apps: Vec<Arc<DemoApp>>, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // A fixed-seed xorshift: the noise is reproducible.
            let mut state = seed | 1;
            while !flag.load(Ordering::Relaxed) {
                for app in &apps {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let rate = if state.is_multiple_of(2) { 0.01 } else { 0.15 };
                    // A failed call only skips one change.
                    let _ = app.set_error_rate(rate);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Jitter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test]
async fn the_betting_test_aborts_a_bad_canary_and_passes_a_noisy_healthy_one() -> anyhow::Result<()>
{
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "betting").await?;
    let bad = DemoApp::start("betting-bad-canary", 0.4, Duration::from_millis(2))?;
    let good = DemoApp::start("betting-good-baseline", 0.02, Duration::from_millis(2))?;
    let start_canary = || -> anyhow::Result<Arc<DemoApp>> {
        Ok(Arc::new(DemoApp::start(
            "betting-noisy-canary",
            0.08,
            Duration::from_millis(2),
        )?))
    };
    let mut noisy_canary = start_canary()?;
    let noisy_baseline = Arc::new(DemoApp::start(
        "betting-noisy-baseline",
        0.08,
        Duration::from_millis(2),
    )?);
    let prometheus = Prometheus::start()?;
    let targets = |apps: &[&DemoApp]| {
        apps.iter()
            .map(|app| app.scrape_target(&[]))
            .collect::<Vec<_>>()
    };
    prometheus.set_targets(&targets(&[&bad, &good, &*noisy_canary, &*noisy_baseline]))?;
    let _load = LoadGenerator::start(
        &[bad.url(), good.url(), noisy_baseline.url()],
        40.0,
        Duration::from_secs(300),
    )?;
    let mut canary_load =
        LoadGenerator::start(&[noisy_canary.url()], 40.0, Duration::from_secs(300))?;
    let mut jitter = Jitter::start(vec![noisy_canary.clone(), noisy_baseline.clone()], 15);

    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let runs: Api<AnalysisRun> = Api::namespaced(client.clone(), namespace.name());
    let templates: Api<AnalysisTemplate> = Api::namespaced(client, namespace.name());
    let cases = [
        (
            "betting-bad",
            ("betting-bad-canary", "betting-good-baseline"),
        ),
        (
            "betting-noisy",
            ("betting-noisy-canary", "betting-noisy-baseline"),
        ),
    ];
    for (name, apps) in cases {
        templates
            .create(
                &PostParams::default(),
                &template(name, &prometheus.url(), apps)?,
            )
            .await?;
        rollouts
            .create(&PostParams::default(), &rollout(name, DIGEST_V1)?)
            .await?;
    }
    for (name, _) in cases {
        wait_for(&rollouts, name, "v1 Healthy", healthy(None)).await?;
    }
    for revision in [
        "betting-bad-canary",
        "betting-good-baseline",
        "betting-noisy-canary",
        "betting-noisy-baseline",
    ] {
        let query = format!(r#"sum(rate(http_requests_total{{revision="{revision}"}}[10s])) > 0"#);
        prometheus.wait_for_result(&query, Duration::from_secs(90))?;
    }
    for (name, _) in cases {
        set_digest(&rollouts, name, DIGEST_V2).await?;
    }

    // Mid-analysis the noisy canary's process restarts: a new process (new port, counters from
    // zero) replaces it in Prometheus' targets and in the load.
    tokio::time::sleep(Duration::from_secs(12)).await;
    drop(jitter);
    canary_load.stop();
    drop(noisy_canary);
    noisy_canary = start_canary()?;
    prometheus.set_targets(&targets(&[&bad, &good, &*noisy_canary, &*noisy_baseline]))?;
    canary_load = LoadGenerator::start(&[noisy_canary.url()], 40.0, Duration::from_secs(300))?;
    jitter = Jitter::start(vec![noisy_canary.clone(), noisy_baseline.clone()], 16);

    let aborted = wait_for(
        &rollouts,
        "betting-bad",
        "Aborted",
        in_phase(RolloutPhase::Aborted),
    )
    .await?;
    let abort = aborted
        .status
        .and_then(|s| s.abort)
        .expect("abort recorded");
    assert_eq!(abort.by, "analysis", "{}", abort.reason);

    let v2 = revision_hash(&rollout("betting-noisy", DIGEST_V2)?.spec.template)?;
    // The noisy canary's analysis runs all its COUNT measurements INTERVAL apart before the
    // rollout goes on; on a busy machine measurements and pods come late, so the wait allows
    // the whole analysis again on top of its own length.
    let analysis = rollgate_crds::duration::parse_duration(INTERVAL)? * u32::try_from(COUNT)?;
    let promoted = wait_for_within(
        &rollouts,
        "betting-noisy",
        "v2 Healthy",
        healthy(Some(v2)),
        analysis * 2 + Duration::from_secs(60),
    )
    .await;
    drop(jitter);
    canary_load.stop();
    let mut messages = Vec::new();
    for run in runs.list(&Default::default()).await?.items {
        let name = run.metadata.name.clone().unwrap_or_default();
        for metric in run.status.map(|s| s.metric_results).unwrap_or_default() {
            let message = metric.message.clone().unwrap_or_default();
            messages.push(format!(
                "{name}: {:?} after {} measurements: {message}",
                metric.phase, metric.count
            ));
            if name.starts_with("betting-noisy") {
                assert!(
                    !matches!(metric.phase, AnalysisPhase::Failed | AnalysisPhase::Error),
                    "{name}: {message}"
                );
            }
            if name.starts_with("betting-bad") && metric.phase == AnalysisPhase::Failed {
                assert!(message.contains("Betting test"), "{message}");
            }
        }
    }
    println!("{}", messages.join("\n"));
    promoted?;
    Ok(())
}
