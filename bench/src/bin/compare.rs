//! Side-by-side benchmark: the same fleet released by rollgate and by Argo Rollouts, each on a
//! fresh local cluster (the same cluster binary), alternating which goes first from round to
//! round. Per controller it prints the time until every Rollout finished, CPU seconds, peak and
//! idle RSS, and the API requests during the rollout and at idle, counted the same way for both
//! by a proxy in front of the API server ([`rollgate_bench::api_count`]); then the ratios
//! rollgate / Argo against the targets of issue 17.
//!
//! The fleet: N Rollouts (default 500), replicas 1, canary steps setWeight 50 / pause 1s /
//! setWeight 100, image by digest, no traffic router, pods on kwok nodes. Each controller first
//! releases the first revision (not measured), then every Rollout gets a new image at once and
//! the clock runs until all have promoted it.
//!
//! Settings, chosen to be fair:
//! - rollgate: this workspace's release build (`ROLLGATE_CONTROLLER_BIN` for another), leader
//!   election on, image verification off (the digests are fake; `verify_latency` measures it),
//!   audit log signed with checkpoints published to a local OCI registry (`--audit unsigned`
//!   for without), Events on, the kube client unthrottled (it has no client-side rate limit).
//! - Argo Rollouts: v1.10.1 built from its Go module (`bench/argo/build.sh`), run out of
//!   cluster with `--leader-elect=false`, its client rate limit raised to match an unthrottled
//!   client (`--qps 1000 --burst 2000`; `--argo-qps`/`--argo-burst` to change), its defaults
//!   otherwise (10 rollout workers, protobuf for core types, informer caches).
//!
//! Both talk to the API server through the proxy with the cluster admin's credentials.
//!
//! Usage: `cargo run --release -p rollgate-bench --bin compare -- --argo <binary>
//! [<rollouts>] [--rounds R] [--audit signed|unsigned]`; `make bench-compare` builds both.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use rollgate_bench::api_count::{CountingProxy, Counts};
use rollgate_bench::fleet::{AuditMode, Usage, set_fleet_image, start_rollgate, usage, wait_all};
use rollgate_testsupport::process::{free_port, spawn_supervised, stop, supervised_pid};
use rollgate_testsupport::{Cluster, TestNamespace, manifests};
use serde_json::{Value, json};

/// How long the idle request rate and RSS are measured, after every Rollout finished.
const IDLE_WINDOW: Duration = Duration::from_secs(60);

const V1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const V2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// The benchmark's command line.
#[derive(Parser, Debug)]
struct Args {
    /// How many Rollouts.
    #[arg(default_value_t = 500)]
    rollouts: usize,
    /// Argo Rollouts' controller binary (`bench/argo/build.sh` prints its path).
    #[arg(long)]
    argo: PathBuf,
    /// How many rounds (each runs both controllers, alternating which goes first).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// rollgate's audit log.
    #[arg(long, value_enum, default_value_t = AuditMode::Signed)]
    audit: AuditMode,
    /// Argo's client rate limit (queries per second).
    #[arg(long, default_value_t = 1000)]
    argo_qps: u32,
    /// Argo's client burst.
    #[arg(long, default_value_t = 2000)]
    argo_burst: u32,
    /// Run only this controller (`rollgate` or `argo-rollouts`), without ratios.
    #[arg(long)]
    only: Option<String>,
}

/// The controller under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Rollgate,
    Argo,
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Rollgate => "rollgate",
            Subject::Argo => "argo-rollouts",
        }
    }

    fn resource(self) -> ApiResource {
        let (group, version) = match self {
            Subject::Rollgate => ("rollgate.io", "v1alpha1"),
            Subject::Argo => ("argoproj.io", "v1alpha1"),
        };
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: "Rollout".into(),
            plural: "rollouts".into(),
        }
    }

    /// The Rollout `app-<index>` at the first revision: the same fields for both (Argo's
    /// schema is a superset of this part of rollgate's).
    fn rollout(self, index: usize) -> anyhow::Result<DynamicObject> {
        let template =
            json!({"spec": {"containers": [{"name": "app", "image": manifests::app_image(V1)}]}});
        let strategy = json!({"canary": {"steps": [
            {"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}
        ]}});
        let mut manifest =
            manifests::rollout_manifest(&format!("app-{index}"), 1, template, strategy);
        manifest["apiVersion"] = json!(self.resource().api_version);
        Ok(serde_json::from_value(manifest)?)
    }

    /// Whether `rollout` runs the revision of `digest`, fully promoted and healthy.
    fn finished(self, rollout: &DynamicObject, digest: &str) -> bool {
        let status = &rollout.data["status"];
        let text = |value: &Value| value.as_str().map(str::to_owned);
        let healthy = text(&status["phase"]).as_deref() == Some("Healthy");
        match self {
            Subject::Rollgate => {
                healthy
                    && text(&status["stableRevision"]).is_some()
                    && status["stableRevision"] == status["currentRevision"]
                    && status["currentImages"][0]["image"]
                        .as_str()
                        .is_some_and(|image| image.ends_with(digest))
            }
            Subject::Argo => {
                let image = rollout.data["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .is_some_and(|image| image.ends_with(digest));
                let observed = text(&status["observedGeneration"])
                    == rollout.metadata.generation.map(|g| g.to_string());
                healthy
                    && image
                    && observed
                    && text(&status["stableRS"]).is_some()
                    && status["stableRS"] == status["currentPodHash"]
            }
        }
    }
}

/// One controller's run.
#[derive(Debug, Clone, Default)]
struct Measurement {
    finished: usize,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
    idle_rss_mib: f64,
    requests: Counts,
    idle_requests_per_minute: f64,
}

/// A running controller of either kind.
enum Running {
    Rollgate(rollgate_bench::fleet::RollgateController),
    Argo { child: Child, log: PathBuf },
}

impl Running {
    fn pid(&self) -> Option<u32> {
        match self {
            Running::Rollgate(controller) => controller.processes.first()?.pid(),
            Running::Argo { child, .. } => supervised_pid(child),
        }
    }

    fn usage(&self) -> Usage {
        self.pid().map(usage).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        match self {
            Running::Rollgate(controller) => controller.log_tail(),
            Running::Argo { log, .. } => rollgate_testsupport::process::tail(log),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Argo { child, .. } = self {
            stop(child);
        }
    }
}

/// The directory of Argo's CRDs: the `*-crd.yaml` files of its module, copied (the module's
/// directory also holds a kustomization, which is not an object to apply).
fn argo_crds(argo: &Path, into: &Path) -> anyhow::Result<PathBuf> {
    let version = argo
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.rsplit('-').next())
        .unwrap_or("v1.10.1");
    let source = argo
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("argo-rollouts-src-{version}/manifests/crds"));
    let target = into.join("argo-crds");
    std::fs::create_dir_all(&target)?;
    for entry in std::fs::read_dir(&source)
        .map_err(|error| anyhow::anyhow!("Argo's CRDs in {}: {error}", source.display()))?
    {
        let path = entry?.path();
        if path.to_string_lossy().ends_with("-crd.yaml") {
            std::fs::copy(&path, target.join(path.file_name().unwrap_or_default()))?;
        }
    }
    Ok(target)
}

async fn measure(subject: Subject, args: &Args) -> anyhow::Result<Measurement> {
    let n = args.rollouts;
    let argo = args.argo.clone();
    let cluster = tokio::task::spawn_blocking(move || {
        let cluster = Cluster::start()?;
        match subject {
            Subject::Rollgate => cluster.install_crds()?,
            Subject::Argo => cluster.apply_crds(&argo_crds(&argo, cluster.dir())?)?,
        }
        anyhow::Ok(cluster)
    })
    .await??;
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(&cluster, &client, "fleet").await?;
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace.name(), &subject.resource());
    let proxy = CountingProxy::start(client.clone()).await?;
    let kubeconfig = cluster.dir().join("counted.kubeconfig");
    proxy.write_kubeconfig(&kubeconfig)?;
    let running = match subject {
        Subject::Rollgate => {
            Running::Rollgate(start_rollgate(&cluster, kubeconfig, args.audit, 1)?)
        }
        Subject::Argo => {
            let log = cluster.dir().join("argo-rollouts.log");
            let flags = [
                format!("--kubeconfig={}", kubeconfig.display()),
                "--leader-elect=false".to_owned(),
                format!("--qps={}", args.argo_qps),
                format!("--burst={}", args.argo_burst),
                format!("--metricsport={}", free_port()?),
                format!("--healthzPort={}", free_port()?),
                "--loglevel=warn".to_owned(),
            ];
            let child = spawn_supervised(&args.argo.display().to_string(), &flags, &log)?;
            Running::Argo { child, log }
        }
    };

    stream::iter(0..n)
        .map(|index| {
            let rollouts = rollouts.clone();
            async move {
                rollouts
                    .create(&PostParams::default(), &subject.rollout(index)?)
                    .await
                    .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let first = |rollout: &DynamicObject| subject.finished(rollout, V1);
    let ready = wait_all(&rollouts, n, first, Duration::from_secs(1800)).await?;
    if ready != n {
        anyhow::bail!(
            "{}: only {ready} of {n} first revisions became Healthy:\n{}",
            subject.name(),
            running.log_tail()
        );
    }

    let before = proxy.snapshot();
    let cpu_before = running.usage().cpu_seconds;
    let started = Instant::now();
    set_fleet_image(&rollouts, n, V2).await?;
    let second = |rollout: &DynamicObject| subject.finished(rollout, V2);
    let finished = wait_all(&rollouts, n, second, Duration::from_secs(3600)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = running.usage();
    let requests = proxy.snapshot().since(&before);
    let idle_from = proxy.snapshot();
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle = proxy.snapshot().since(&idle_from);
    let measurement = Measurement {
        finished,
        seconds,
        cpu_seconds: after.cpu_seconds - cpu_before,
        peak_rss_mib: after.peak_rss_mib,
        idle_rss_mib: running.usage().rss_mib,
        requests,
        idle_requests_per_minute: idle.total() as f64 * 60.0 / IDLE_WINDOW.as_secs_f64(),
    };
    if finished != n {
        eprintln!(
            "{}: only {finished} of {n} Rollouts finished:\n{}",
            subject.name(),
            running.log_tail()
        );
    }
    drop(running);
    drop(namespace);
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    Ok(measurement)
}

fn print(subject: Subject, round: usize, n: usize, m: &Measurement) {
    let name = subject.name();
    println!(
        "compare: round {round} {name}: {}/{n} finished in {:.1} s, CPU {:.1} s, peak RSS {:.1} MiB, idle RSS {:.1} MiB",
        m.finished, m.seconds, m.cpu_seconds, m.peak_rss_mib, m.idle_rss_mib
    );
    println!(
        "compare: round {round} {name}: API requests during the rollout {} ({:.1} per Rollout), at idle {:.1} a minute",
        m.requests.total(),
        m.requests.total() as f64 / n as f64,
        m.idle_requests_per_minute
    );
    for line in m.requests.breakdown(n) {
        println!("compare:   {line}");
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        len if len % 2 == 1 => values[len / 2],
        len => (values[len / 2 - 1] + values[len / 2]) / 2.0,
    }
}

/// Prints the medians' ratios rollgate / Argo against issue 17's targets.
fn ratios(n: usize, rollgate: &[Measurement], argo: &[Measurement]) {
    let medians = |field: &dyn Fn(&Measurement) -> f64| {
        (
            median(rollgate.iter().map(field).collect()),
            median(argo.iter().map(field).collect()),
        )
    };
    let rows = [
        (
            "API requests per Rollout",
            medians(&|m| m.requests.total() as f64 / n as f64),
            0.75,
        ),
        ("CPU seconds", medians(&|m| m.cpu_seconds), 0.3),
        ("peak RSS (MiB)", medians(&|m| m.peak_rss_mib), 0.3),
        ("time to finish (s)", medians(&|m| m.seconds), 0.7),
    ];
    println!(
        "compare: medians over {} round(s), rollgate / argo-rollouts:",
        rollgate.len()
    );
    for (what, (ours, theirs), target) in rows {
        let ratio = ours / theirs;
        let verdict = if ratio <= target { "met" } else { "NOT met" };
        println!(
            "compare:   {what}: {ours:.1} / {theirs:.1} = {ratio:.2}x (target at most {target}x: {verdict})"
        );
    }
    let (idle_ours, idle_theirs) = medians(&|m| m.idle_requests_per_minute);
    let (rss_ours, rss_theirs) = medians(&|m| m.idle_rss_mib);
    println!(
        "compare:   at idle: {idle_ours:.1} / {idle_theirs:.1} requests a minute, RSS {rss_ours:.1} / {rss_theirs:.1} MiB"
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.rollouts;
    println!(
        "compare: {n} Rollouts, {} round(s); rollgate audit log {:?}, Argo Rollouts {} with --qps={} --burst={}",
        args.rounds,
        args.audit,
        args.argo.display(),
        args.argo_qps,
        args.argo_burst
    );
    let (mut rollgate, mut argo) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let order = if round % 2 == 1 {
            [Subject::Rollgate, Subject::Argo]
        } else {
            [Subject::Argo, Subject::Rollgate]
        };
        for subject in order {
            if args
                .only
                .as_deref()
                .is_some_and(|only| only != subject.name())
            {
                continue;
            }
            let measurement = measure(subject, &args).await?;
            print(subject, round, n, &measurement);
            match subject {
                Subject::Rollgate => rollgate.push(measurement),
                Subject::Argo => argo.push(measurement),
            }
        }
    }
    if !rollgate.is_empty() && !argo.is_empty() {
        ratios(n, &rollgate, &argo);
    }
    Ok(())
}
