//! Fleet benchmark: N Rollouts (default 500) on the local cluster, each walking a 3-step canary
//! (`setWeight 50`, `pause 1s`, `setWeight 100`) to a new revision, with the controller running
//! as a process. Prints the controller's peak RSS and CPU seconds, the time until every Rollout
//! finished, the API requests the controller sent during the rollout and at idle (counted by a
//! proxy in front of the API server, by verb and resource: [`rollgate_bench::api_count`]), and
//! p50/p99 of the delay from a step being allowed (the canary's pods available) to the
//! controller's next write (the step index advancing), as seen by one watcher.
//!
//! The Rollouts' images are fake digests that no registry holds, so the controller runs with
//! `--image-verification=off` (the test default of `ControllerOptions`): this measures the
//! rollout machinery; `verify_latency` measures verification.
//!
//! The audit log is signed and its checkpoints published to a local OCI registry
//! (`--audit signed`, the default, as production runs it) or written without a key
//! (`--audit unsigned`). To compare an earlier build, point `ROLLGATE_CONTROLLER_BIN` at its
//! binary and `--crds-of` at its checkout, whose CRDs and policies the cluster then installs;
//! the audit settings reach the controller as environment variables, which a build without
//! them ignores.
//!
//! With `--replicas R` (R > 1) R controllers run sharded and share the fleet; CPU and RSS are
//! then summed over the replicas.
//!
//! Usage: `cargo run --release -p rollgate-bench --bin fleet [-- <rollouts>] [--audit
//! signed|unsigned] [--replicas R] [--crds-of <checkout>]`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use rollgate_bench::api_count::CountingProxy;
use rollgate_bench::fleet::{
    AuditMode, FLEET_SHARDS, percentile, set_fleet_image, start_rollgate, wait_all,
};
use rollgate_crds::Rollout;
use rollgate_crds::names::{REVISION_LABEL, ROLLOUT_LABEL};
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::{Cluster, TestNamespace, manifests};
use serde_json::json;

/// How long the idle request rate is measured, after every Rollout finished.
const IDLE_WINDOW: Duration = Duration::from_secs(60);

/// The benchmark's command line.
#[derive(Parser, Debug)]
struct Args {
    /// How many Rollouts.
    #[arg(default_value_t = 500)]
    rollouts: usize,
    /// Whether the controller signs its audit log and publishes checkpoints.
    #[arg(long, value_enum, default_value_t = AuditMode::Signed)]
    audit: AuditMode,
    /// Controller replicas: 1 (leader election) or more (sharded, sharing the work).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Install the CRDs and policies of this rollgate checkout (an earlier build's).
    #[arg(long)]
    crds_of: Option<PathBuf>,
}

const V1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const V2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn rollout(index: usize) -> anyhow::Result<Rollout> {
    let strategy = json!({"canary": {"steps": [
        {"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}
    ]}});
    manifests::rollout(&format!("app-{index}"), 1, V1, strategy)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.rollouts;
    let cluster = tokio::task::spawn_blocking(move || {
        let cluster = Cluster::start()?;
        match &args.crds_of {
            Some(root) => cluster.install_crds_of(root)?,
            None => cluster.install_crds()?,
        }
        anyhow::Ok(cluster)
    })
    .await??;
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(&cluster, &client, "fleet").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace.name());
    let proxy = CountingProxy::start(client.clone()).await?;
    let counted_kubeconfig = cluster.dir().join("counted.kubeconfig");
    proxy.write_kubeconfig(&counted_kubeconfig)?;
    let controller = start_rollgate(&cluster, counted_kubeconfig, args.audit, args.replicas)?;
    let registry = &controller.registry;
    println!(
        "fleet: audit log {}, controller {}",
        match registry {
            Some(registry) => format!("signed, checkpoints published to {}", registry.host()),
            None => "unsigned".to_owned(),
        },
        std::env::var("ROLLGATE_CONTROLLER_BIN").unwrap_or_else(|_| "of this workspace".into())
    );

    println!(
        "fleet: {n} Rollouts, 3-step canary each, {} controller replica(s){}",
        args.replicas,
        if args.replicas > 1 {
            format!(", sharded ({FLEET_SHARDS} shards)")
        } else {
            String::new()
        }
    );
    let created = Instant::now();
    stream::iter(0..n)
        .map(|index| {
            let rollouts = rollouts.clone();
            async move {
                rollouts
                    .create(&PostParams::default(), &rollout(index)?)
                    .await
                    .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let healthy_v1 = |r: &Rollout| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == Some(RolloutPhase::Healthy))
    };
    let ready = wait_all(&rollouts, n, healthy_v1, Duration::from_secs(1800)).await?;
    println!(
        "fleet: {ready}/{n} first revisions Healthy after {:.1} s",
        created.elapsed().as_secs_f64()
    );

    // Watch step advances and canary availability, to time the controller's reactions.
    let mut available_at: HashMap<String, Instant> = HashMap::new();
    let mut advanced_at: HashMap<String, Instant> = HashMap::new();
    let rs_events = watcher(replica_sets.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let ro_events = watcher(rollouts.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tx_rs = tx.clone();
    let rs_task = tokio::spawn(async move {
        let mut events = rs_events;
        while let Some(Ok(rs)) = events.next().await {
            let labels = rs.metadata.labels.clone().unwrap_or_default();
            let available = rs
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            if available >= 1
                && let Some(app) = labels.get(ROLLOUT_LABEL)
            {
                let revision = labels.get(REVISION_LABEL).cloned().unwrap_or_default();
                let _ = tx_rs.send((true, app.clone(), revision, Instant::now()));
            }
        }
    });
    let ro_task = tokio::spawn(async move {
        let mut events = ro_events;
        while let Some(Ok(rollout)) = events.next().await {
            let status = rollout.status.unwrap_or_default();
            if status.current_step_index == Some(1) {
                let _ = tx.send((
                    false,
                    rollout.metadata.name.unwrap_or_default(),
                    status.current_revision.unwrap_or_default(),
                    Instant::now(),
                ));
            }
        }
    });

    let before_requests = proxy.snapshot();
    let cpu_before = controller.usage().cpu_seconds;
    let started = Instant::now();
    set_fleet_image(&rollouts, n, V2).await?;
    let all_v2 = |r: &Rollout| {
        r.status.as_ref().is_some_and(|s| {
            s.phase == Some(RolloutPhase::Healthy)
                && s.stable_revision.is_some()
                && s.stable_revision == s.current_revision
                && s.current_images
                    .first()
                    .is_some_and(|i| i.image.ends_with(V2))
        })
    };
    let finished = wait_all(&rollouts, n, all_v2, Duration::from_secs(3600)).await?;
    let elapsed = started.elapsed();
    rs_task.abort();
    ro_task.abort();

    // Pair "canary of the new revision available" with "step index advanced to 1".
    let mut current_revision: HashMap<String, String> = HashMap::new();
    while let Ok((is_rs, app, revision, at)) = rx.try_recv() {
        if is_rs {
            available_at
                .entry(format!("{app}/{revision}"))
                .or_insert(at);
        } else {
            current_revision.insert(app.clone(), revision.clone());
            advanced_at.entry(format!("{app}/{revision}")).or_insert(at);
        }
    }
    let mut delays: Vec<Duration> = advanced_at
        .iter()
        .filter_map(|(key, advanced)| {
            available_at
                .get(key)
                .map(|available| advanced.saturating_duration_since(*available))
        })
        .collect();
    delays.sort();

    let after = controller.usage();
    let (peak_mib, cpu_after) = (after.peak_rss_mib, after.cpu_seconds);
    let requests = proxy.snapshot().since(&before_requests);
    let before_idle = proxy.snapshot();
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle = proxy.snapshot().since(&before_idle);
    println!(
        "fleet: {finished}/{n} Rollouts finished the canary in {:.1} s",
        elapsed.as_secs_f64()
    );
    println!(
        "fleet: controller peak RSS {peak_mib:.1} MiB, CPU {:.1} s during the rollout ({:.1} s in all; replicas summed)",
        cpu_after - cpu_before,
        cpu_after
    );
    println!(
        "fleet: API requests during the rollout: {} ({:.1} per Rollout)",
        requests.total(),
        requests.total() as f64 / n as f64
    );
    for line in requests.breakdown(n) {
        println!("fleet:   {line}");
    }
    println!(
        "fleet: API requests at idle: {:.1} a minute",
        idle.total() as f64 * 60.0 / IDLE_WINDOW.as_secs_f64()
    );
    println!(
        "fleet: step allowed -> next write: p50 {:.0} ms, p99 {:.0} ms over {} steps",
        percentile(&delays, 0.5).as_secs_f64() * 1000.0,
        percentile(&delays, 0.99).as_secs_f64() * 1000.0,
        delays.len()
    );
    if finished != n {
        anyhow::bail!(
            "only {finished} of {n} Rollouts finished:\n{}",
            controller.log_tail()
        );
    }
    Ok(())
}
