//! rollgate as its users run it, on the real node: the images `scripts/images.sh` built, pushed
//! by digest and signed; the chart installed by Helm; the controller (two replicas, leader
//! election) and the analysis service as real pods; the demo app as a Rollout of real pods
//! behind Services; requests sent through a Service's ClusterIP by the demo app's load
//! generator on the host; Prometheus discovering the pods through the Kubernetes API.
//!
//! One scenario, in stages, because one real node runs per machine and an install takes a
//! minute:
//!
//! 1. The install: every rollgate pod Ready, each running the image of the digest
//!    `scripts/images.sh` printed, as user 65532; one controller leads, both see the trust
//!    policies in force.
//! 2. rollgate's own ImagePolicy refuses an unsigned build of the controller rolled out as a
//!    Rollout (the signed demo app below passes the same policy).
//! 3. Real requests follow the canary weights: at 25% and 50% the canary pods answer that
//!    share of the requests (counted by each pod's own `http_requests_total`), within a bound
//!    computed from the binomial distribution; the leader controller's process is killed at 25%
//!    and its pod deleted, another replica takes the Lease within the lease duration (plus the
//!    standby's retry) and the rollout goes on; after an abort the canary pods answer none.
//! 4. An analysis step whose canary starts breaching its SLO while both analysis pods are
//!    deleted and replaced mid-analysis: the canary never becomes stable, the rollout aborts.
//!
//! Why the share bound is fair: kube-proxy (iptables mode) sends each new connection to a
//! ready endpoint drawn uniformly at random, and the load generator opens a connection per
//! request, so the canary's count among `n` answered requests is Binomial(n, p) with `p` the
//! canary's share of ready endpoints. The test allows four standard deviations,
//! `4 * sqrt(p (1 - p) / n)`: a correct router fails it about once in 15,000 runs, while a
//! router that ignored the weights (all on stable, or an even split at 25%) fails it every time
//! at the `n` used here (about 1,000 requests: the bound is about ±5.5 points at 25%).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::crane::crane;
use rollgate_testsupport::demo_app::demo_app_binary;
use rollgate_testsupport::demo_workload::{APP_PORT, demo_pod_template, demo_services, serves};
use rollgate_testsupport::manifests::rollout_manifest;
use rollgate_testsupport::process::http_agent;
use rollgate_testsupport::real_install::{
    IMAGE_POLICY, LEASE_DURATION_SECONDS, NAMESPACE, RealInstall, scrape, sum_samples,
};
use rollgate_testsupport::{LoadGenerator, TestNamespace};
use serde_json::{Value, json};

use crate::rollouts::{at, healthy, in_phase, request, wait_for};

/// The whole scenario, with a runtime of its own. Run by `real_host`, in turn with the
/// machine's other real-node scenarios.
pub fn rollgate_runs_as_real_pods_and_real_requests_follow_the_canary() -> Result<()> {
    let began = Instant::now();
    let install = RealInstall::start().context("install rollgate on the real node")?;
    eprintln!(
        "real install: images built, chart installed and every pod Ready in {:.1?}",
        began.elapsed()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let client = install.cluster().client().await?;
        the_install_runs_by_digest_as_non_root(&install, &client).await?;
        an_unsigned_controller_build_is_refused(&install, &client).await?;
        requests_follow_the_weights_through_a_leader_kill(&install, &client).await?;
        an_analysis_restart_never_lets_a_breaching_canary_pass(&install, &client).await
    });
    if outcome.is_err() {
        eprintln!("{}", diagnostics(&install));
    }
    drop(runtime);
    drop(install);
    outcome
}

/// Pods, Lease and controller logs, printed when a stage fails.
fn diagnostics(install: &RealInstall) -> String {
    let mut report = String::new();
    for args in [
        &["get", "pods", "-A", "-o", "wide"][..],
        &["get", "lease", "-n", NAMESPACE, "-o", "yaml"],
        &[
            "logs",
            "-n",
            NAMESPACE,
            "-l",
            "app.kubernetes.io/component=controller",
            "--tail=40",
        ],
        &[
            "logs",
            "-n",
            NAMESPACE,
            "-l",
            "app.kubernetes.io/component=analysis",
            "--tail=20",
        ],
        &["get", "rollouts", "-A", "-o", "yaml"],
        &["get", "analysisruns", "-A", "-o", "yaml"],
    ] {
        report.push_str(&format!("$ kubectl {}\n", args.join(" ")));
        match install.cluster().kubectl_ok(args) {
            Ok(out) => report.push_str(&out),
            Err(error) => report.push_str(&format!("{error:#}")),
        }
        report.push('\n');
    }
    report
}

// --- 1. The install ------------------------------------------------------------------------

async fn the_install_runs_by_digest_as_non_root(
    install: &RealInstall,
    client: &kube::Client,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    for (component, image) in [("controller", "controller"), ("analysis", "analysis")] {
        let reference = install.images().reference(image)?;
        let digest = reference.rsplit_once('@').context("a digest")?.1;
        let listed = pods
            .list(
                &ListParams::default().labels(&format!("app.kubernetes.io/component={component}")),
            )
            .await?;
        ensure!(
            listed.items.len() == 2,
            "{component}: {} pods",
            listed.items.len()
        );
        for pod in &listed.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let status = pod.status.as_ref().context("pod status")?;
            let container = &status.container_statuses.as_ref().context("statuses")?[0];
            ensure!(container.ready, "{name} is not Ready");
            ensure!(
                container.image_id.ends_with(digest),
                "{name} runs {} , not the digest {digest} scripts/images.sh printed",
                container.image_id
            );
            let spec = pod.spec.as_ref().context("pod spec")?;
            assert_eq!(spec.containers[0].image.as_deref(), Some(reference));
        }
    }
    // The container processes on the host run as the image's non-root user.
    for binary in ["rollgate-controller", "rollgate-analysis"] {
        let uids = process_uids(&format!("/usr/bin/{binary}"));
        ensure!(
            uids.len() == 2,
            "{binary}: {} processes on the host",
            uids.len()
        );
        ensure!(
            uids.iter().all(|uid| *uid == 65532),
            "{binary} runs as {uids:?}"
        );
    }
    // One replica leads; both find the ownership policies in force.
    let holder = lease_holder(client).await?;
    let controllers = pod_ips(client, NAMESPACE, "app.kubernetes.io/component=controller").await?;
    let mut leaders = Vec::new();
    for (name, ip) in &controllers {
        let metrics = scrape(&format!("{ip}:8080"))?;
        ensure!(
            sum_samples(&metrics, "rollgate_trust_policies_in_force", &[]) == 1.0,
            "{name} does not find the trust policies in force"
        );
        if sum_samples(&metrics, "rollgate_leader", &[]) == 1.0 {
            leaders.push(name.clone());
        }
    }
    assert_eq!(leaders, vec![holder], "exactly the Lease holder leads");
    Ok(())
}

/// The uid of every process on the host whose program is `binary`.
fn process_uids(binary: &str) -> Vec<u32> {
    host_processes(binary)
        .iter()
        .filter_map(|process| process.uid)
        .collect()
}

/// A process on the host: its pid, command-line arguments and real uid.
struct HostProcess {
    pid: u32,
    args: Vec<String>,
    uid: Option<u32>,
}

/// Every process on the host whose program (first argument) is `binary`, read from /proc.
fn host_processes(binary: &str) -> Vec<HostProcess> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        if args.first().map(String::as_str) != Some(binary) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|uid| uid.parse().ok());
        processes.push(HostProcess { pid, args, uid });
    }
    processes
}

async fn lease_holder(client: &kube::Client) -> Result<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let lease = leases.get("rollgate-controller").await?;
    lease
        .spec
        .and_then(|spec| spec.holder_identity)
        .filter(|holder| !holder.is_empty())
        .context("the controller Lease has no holder")
}

/// Name and IP of every Running pod matching `selector`, in name order.
async fn pod_ips(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Result<BTreeMap<String, String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods.list(&ListParams::default().labels(selector)).await?;
    Ok(listed
        .items
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| {
            let ip = pod.status.as_ref()?.pod_ip.clone()?;
            Some((pod.metadata.name?, ip))
        })
        .collect())
}

// --- 2. An unsigned build of the controller --------------------------------------------------

async fn an_unsigned_controller_build_is_refused(
    install: &RealInstall,
    client: &kube::Client,
) -> Result<()> {
    // A build that differs from the signed one by a label: a digest no key signed.
    let signed = install.images().reference("controller")?;
    let repository = signed.rsplit_once('@').context("a digest")?.0;
    let tag = format!("{repository}:unsigned-build");
    let crane = crane()?;
    let output = std::process::Command::new(&crane)
        .args(["mutate", "--insecure", signed, "-t", &tag])
        .args([
            "--label",
            "org.opencontainers.image.revision=unsigned-local-build",
        ])
        .output()?;
    ensure!(
        output.status.success(),
        "crane mutate: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let unsigned = String::from_utf8(output.stdout)?.trim().to_owned();
    ensure!(
        unsigned.starts_with(&format!("{repository}@sha256:")) && unsigned != signed,
        "crane printed {unsigned}"
    );

    let namespace = TestNamespace::create(install.cluster(), client, "unsigned").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let rollout = controller_rollout("controller-build", &unsigned);
    rollouts
        .create(&PostParams::default(), &serde_json::from_value(rollout)?)
        .await?;
    let degraded = wait_for(
        &rollouts,
        "controller-build",
        "the unsigned controller build refused",
        in_phase(RolloutPhase::Degraded),
    )
    .await?;
    let verified = degraded
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Verified"))
        .context("a Verified condition")?;
    assert_eq!(verified.status, "False");
    assert!(
        verified.message.contains(&format!(
            "No valid signature from a trusted key for {unsigned}"
        )),
        "{}",
        verified.message
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace.name());
    assert!(
        pods.list(&ListParams::default()).await?.items.is_empty(),
        "no pod of the refused build exists"
    );
    Ok(())
}

/// A Rollout of the controller image (as a team might roll out a build of it).
fn controller_rollout(name: &str, image: &str) -> Value {
    let template = json!({"spec": {"containers": [{"name": "controller", "image": image}]}});
    let strategy = json!({"canary": {"steps": [{"setWeight": 50}]}});
    let mut rollout = rollout_manifest(name, 1, template, strategy);
    rollout["spec"]["verification"] = json!({"imagePolicy": IMAGE_POLICY});
    rollout
}

// --- 3. Requests follow the weights ------------------------------------------------------------

/// The demo app's Rollout: `replicas` pods of the signed demo-app image, labelled `release`
/// (a change of it is a new revision), released by `steps`, behind the Services
/// `<name>-stable` and `<name>-canary`.
fn demo_rollout(name: &str, image: &str, release: &str, replicas: i32, steps: Value) -> Value {
    let template = demo_pod_template(image, &[("release", release)], 0.0);
    let strategy = json!({"canary": {
        "stableService": format!("{name}-stable"),
        "canaryService": format!("{name}-canary"),
        "maxSurge": 1,
        "maxUnavailable": 0,
        "steps": steps
    }});
    let mut rollout = rollout_manifest(name, replicas, template, strategy);
    rollout["spec"]["verification"] = json!({"imagePolicy": IMAGE_POLICY});
    rollout
}

/// The demo app as one stage deploys it.
struct Demo {
    /// Its namespace (deleted when dropped).
    namespace: TestNamespace,
    /// The Rollouts of the namespace.
    rollouts: Api<Rollout>,
    /// The ClusterIP of the Service in front of every pod.
    service_ip: String,
    /// The revision of release `v1`, stable once deployed.
    stable: String,
}

/// A namespace with the demo Services, the AnalysisTemplate `template` if any, and Rollout
/// `name` (at release `v1`), Healthy.
async fn demo(
    install: &RealInstall,
    client: &kube::Client,
    name: &str,
    replicas: i32,
    steps: Value,
    template: Option<Value>,
) -> Result<Demo> {
    let namespace = TestNamespace::create(install.cluster(), client, name).await?;
    if let Some(template) = template {
        let templates: Api<AnalysisTemplate> = Api::namespaced(client.clone(), namespace.name());
        templates
            .create(&PostParams::default(), &serde_json::from_value(template)?)
            .await?;
    }
    install.cluster().apply_json(
        &format!("{name}-services"),
        &demo_services(name, namespace.name()),
    )?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let image = install.images().reference("demo-app")?;
    let rollout = demo_rollout(name, image, "v1", replicas, steps);
    rollouts
        .create(&PostParams::default(), &serde_json::from_value(rollout)?)
        .await?;
    let stable = wait_long(&rollouts, name, "v1 Healthy", healthy(None))
        .await?
        .status
        .and_then(|s| s.stable_revision)
        .context("a stable revision")?;
    let service_ip = install.cluster().kubectl_ok(&[
        "get",
        "service",
        name,
        "-n",
        namespace.name(),
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])?;
    Ok(Demo {
        namespace,
        rollouts,
        service_ip,
        stable,
    })
}

/// Starts the next revision of the demo Rollout: release `release`, error rate unchanged.
async fn release(rollouts: &Api<Rollout>, name: &str, release: &str) -> Result<()> {
    let patch = json!({"spec": {"template": {"metadata": {"labels": {"release": release}}}}});
    rollouts
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// As `wait_for`, with room for real pods to start (image pulls, readiness probes).
async fn wait_long(
    rollouts: &Api<Rollout>,
    name: &str,
    what: &str,
    done: impl Fn(&Rollout) -> bool,
) -> Result<Rollout> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let rollout = rollouts.get(name).await?;
        if done(&rollout) {
            return Ok(rollout);
        }
        if Instant::now() > deadline {
            bail!(
                "timed out waiting for {what}; status: {:#?}",
                rollout.status
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Requests answered per revision (by each pod's own counter) while a burst of load went
/// through `service_ip`.
#[derive(Debug)]
struct Burst {
    /// Answered requests per revision label.
    by_revision: BTreeMap<String, f64>,
    /// Requests the load generator counted as answered with a 2xx.
    answered_ok: u64,
}

impl Burst {
    fn total(&self) -> f64 {
        self.by_revision.values().sum()
    }

    fn share(&self, revision: &str) -> f64 {
        self.by_revision.get(revision).copied().unwrap_or_default() / self.total()
    }
}

/// Waits until the Service's endpoints are exactly the ready pods of `expected` (revision to
/// pod count) and every one of them answers, then sends about 1,000 requests through the
/// Service (a new connection each) and counts them by each pod's `http_requests_total`.
async fn burst(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    service_ip: &str,
    expected: &BTreeMap<String, usize>,
) -> Result<Burst> {
    let pods = settled_endpoints(client, namespace, name, expected).await?;
    let counts = |pods: &BTreeMap<String, (String, String)>| -> Result<BTreeMap<String, f64>> {
        let mut by_pod = BTreeMap::new();
        for (pod, (ip, _)) in pods {
            let metrics = scrape(&format!("{ip}:{APP_PORT}"))?;
            by_pod.insert(
                pod.clone(),
                sum_samples(&metrics, "http_requests_total", &[]),
            );
        }
        Ok(by_pod)
    };
    let before = counts(&pods)?;
    let binary = demo_app_binary()?;
    let output = tokio::process::Command::new(binary)
        .args([
            "load",
            "--rps=200",
            "--duration=5s",
            "--new-connection-per-request",
        ])
        .arg(format!("--target=http://{service_ip}/"))
        .output()
        .await?;
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "load: {summary}");
    let answered_ok = summary
        .lines()
        .find_map(|line| line.strip_prefix("sent "))
        .and_then(|line| line.split(": ").nth(1))
        .and_then(|counts| counts.split(' ').next())
        .and_then(|ok| ok.parse().ok())
        .with_context(|| format!("no summary in {summary}"))?;
    let after = counts(&pods)?;
    let mut by_revision = BTreeMap::new();
    for (pod, (_, revision)) in &pods {
        *by_revision.entry(revision.clone()).or_default() += after[pod] - before[pod];
    }
    Ok(Burst {
        by_revision,
        answered_ok,
    })
}

/// The Service `name`'s ready endpoints once they are the pods of `expected` (revision to
/// count), each answering on its pod IP: pod name to (IP, revision).
async fn settled_endpoints(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    expected: &BTreeMap<String, usize>,
) -> Result<BTreeMap<String, (String, String)>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let listed = pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await?;
        let ready: BTreeMap<String, (String, String)> = listed
            .items
            .iter()
            .filter(|pod| serves(pod))
            .filter_map(|pod| {
                let ip = pod.status.as_ref()?.pod_ip.clone()?;
                let revision = pod.metadata.labels.as_ref()?.get("rollgate.io/revision")?;
                Some((pod.metadata.name.clone()?, (ip, revision.clone())))
            })
            .collect();
        let mut per_revision: BTreeMap<String, usize> = BTreeMap::new();
        for (_, revision) in ready.values() {
            *per_revision.entry(revision.clone()).or_default() += 1;
        }
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
        let slices = slices
            .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
            .await?;
        let mut endpoint_ips: Vec<String> = slices
            .items
            .iter()
            .flat_map(|slice| slice.endpoints.iter().flatten())
            .filter(|endpoint| {
                endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(false)
            })
            .filter_map(|endpoint| endpoint.addresses.first().cloned())
            .collect();
        endpoint_ips.sort_unstable();
        let mut pod_ips: Vec<String> = ready.values().map(|(ip, _)| ip.clone()).collect();
        pod_ips.sort_unstable();
        let every_pod_answers = ready.values().all(|(ip, _)| {
            http_agent()
                .get(&format!("http://{ip}:{APP_PORT}/healthz"))
                .call()
                .is_ok()
        });
        if &per_revision == expected && endpoint_ips == pod_ips && every_pod_answers {
            // kube-proxy programs the endpoints shortly after the EndpointSlice changes.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Ok(ready);
        }
        if Instant::now() > deadline {
            bail!(
                "{name}: ready pods per revision {per_revision:?} (expected {expected:?}), \
                 endpoints {endpoint_ips:?}, pods {pod_ips:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Checks that the canary's share of a burst is `expected` within four binomial standard
/// deviations, and that the pods' own counters account for every answered request.
fn assert_share(burst: &Burst, canary: &str, expected: f64, step: &str) -> Result<()> {
    let n = burst.total();
    ensure!(
        n == burst.answered_ok as f64,
        "{step}: the pods counted {n} requests, the load generator {} answered",
        burst.answered_ok
    );
    ensure!(n >= 500.0, "{step}: only {n} requests answered");
    let share = burst.share(canary);
    let bound = 4.0 * (expected * (1.0 - expected) / n).sqrt();
    eprintln!(
        "real traffic, {step}: canary answered {:.1}% of {n} requests (expected {:.0}% ± {:.1})",
        share * 100.0,
        expected * 100.0,
        bound * 100.0
    );
    ensure!(
        (share - expected).abs() <= bound,
        "{step}: canary share {share:.3} of {n} requests, expected {expected} ± {bound:.3}: {burst:?}"
    );
    Ok(())
}

async fn requests_follow_the_weights_through_a_leader_kill(
    install: &RealInstall,
    client: &kube::Client,
) -> Result<()> {
    let name = "shop";
    let steps = json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]);
    let Demo {
        namespace,
        rollouts,
        service_ip,
        stable: v1,
    } = demo(install, client, name, 4, steps, None).await?;
    let ns = namespace.name();

    // The signed demo app passed rollgate's own policy.
    let verified = rollouts.get(name).await?;
    let condition = verified
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Verified"))
        .context("a Verified condition")?;
    assert_eq!(condition.status, "True", "{condition:?}");

    release(&rollouts, name, "v2").await?;
    let at_25 = wait_long(
        &rollouts,
        name,
        "paused at 25%",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    let v2 = at_25
        .status
        .and_then(|s| s.current_revision)
        .context("a canary revision")?;
    let at_25_burst = burst(
        client,
        ns,
        name,
        &service_ip,
        &BTreeMap::from([(v1.clone(), 3), (v2.clone(), 1)]),
    )
    .await?;
    assert_share(&at_25_burst, &v2, 0.25, "setWeight 25 (1 of 4 pods)")?;

    // Prometheus found the pods through the Kubernetes API and scraped them by pod IP.
    install.prometheus().wait_for_result(
        &format!(
            r#"count(up{{job="kubernetes-pods",namespace="{ns}",service="{name}",revision="{v2}"}} == 1) == 1"#
        ),
        Duration::from_secs(30),
    )?;

    // The leader's process dies and its pod goes away.
    let leader = lease_holder(client).await?;
    let killed = Instant::now();
    kill_pod_process(&leader)?;
    let controller_pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    controller_pods
        .delete(&leader, &DeleteParams::default().grace_period(0))
        .await?;
    let new_leader = loop {
        let holder = lease_holder(client).await.unwrap_or_default();
        if !holder.is_empty() && holder != leader {
            break holder;
        }
        ensure!(
            killed.elapsed() < Duration::from_secs(3 * LEASE_DURATION_SECONDS),
            "no other replica took the Lease from {leader}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let handover = killed.elapsed();
    eprintln!(
        "leader {leader} killed: {new_leader} holds the Lease after {handover:.1?} (lease duration {LEASE_DURATION_SECONDS} s)"
    );
    // Expiry of the dead leader's Lease, plus one retry of the standby (a third of it).
    ensure!(
        handover <= Duration::from_secs(LEASE_DURATION_SECONDS + LEASE_DURATION_SECONDS / 3 + 1),
        "leadership moved after {handover:?}"
    );

    // The rollout goes on under the new leader.
    request(&rollouts, name, "Promote", "promote-to-50").await?;
    wait_long(
        &rollouts,
        name,
        "paused at 50%",
        at(3, RolloutPhase::Paused),
    )
    .await?;
    let at_50_burst = burst(
        client,
        ns,
        name,
        &service_ip,
        &BTreeMap::from([(v1.clone(), 2), (v2.clone(), 2)]),
    )
    .await?;
    assert_share(&at_50_burst, &v2, 0.5, "setWeight 50 (2 of 4 pods)")?;

    request(&rollouts, name, "Abort", "abort").await?;
    let aborted = wait_long(&rollouts, name, "Aborted", in_phase(RolloutPhase::Aborted)).await?;
    assert_eq!(aborted.status.and_then(|s| s.canary_weight), Some(0));
    let after_abort = burst(
        client,
        ns,
        name,
        &service_ip,
        &BTreeMap::from([(v1.clone(), 4)]),
    )
    .await?;
    ensure!(
        after_abort.total() == after_abort.answered_ok as f64 && after_abort.total() >= 500.0,
        "after the abort the stable pods answered {} of {} requests: the rest went elsewhere",
        after_abort.total(),
        after_abort.answered_ok
    );
    eprintln!(
        "real traffic, after the abort: stable answered all {} requests",
        after_abort.answered_ok
    );
    Ok(())
}

/// SIGKILLs the container process of the controller pod `pod` (found on the host by its
/// `--instance` flag), as a crash or an OOM kill would.
fn kill_pod_process(pod: &str) -> Result<()> {
    let flag = format!("--instance={pod}");
    let process = host_processes("/usr/bin/rollgate-controller")
        .into_iter()
        .find(|process| process.args.contains(&flag))
        .with_context(|| format!("no process of controller pod {pod} on the host"))?;
    let pid = process.pid.to_string();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()?;
    ensure!(status.success(), "kill -KILL {pid}");
    Ok(())
}

// --- 4. The analysis service restarted mid-analysis -----------------------------------------

async fn an_analysis_restart_never_lets_a_breaching_canary_pass(
    install: &RealInstall,
    client: &kube::Client,
) -> Result<()> {
    let name = "ledger";
    let steps = json!([
        {"setWeight": 50},
        {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        {"setWeight": 100}
    ]);
    // The canary's error ratio over the last 10 s; revision hashes tell the pods apart.
    let query = r#"(sum(rate(http_requests_total{revision="{{revision.canary}}",code=~"5.."}[10s])) or vector(0)) / sum(rate(http_requests_total{revision="{{revision.canary}}"}[10s]))"#;
    let template = json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {"metrics": [{
            "name": "error-ratio",
            "interval": "3s",
            "count": 8,
            // Time for Prometheus to find the new pod (its discovery hands new targets to the
            // scrapes at most every 5 s) and take the two samples `rate` needs.
            "initialDelay": "15s",
            "provider": {"prometheus": {"address": install.prometheus().url(), "query": query}},
            "successCondition": "result < 0.05"
        }]}
    });
    let Demo {
        namespace,
        rollouts,
        service_ip,
        stable: v1,
    } = demo(install, client, name, 2, steps, Some(template)).await?;
    let ns = namespace.name().to_owned();
    let _load = LoadGenerator::start_over_new_connections(
        &[format!("http://{service_ip}/")],
        40.0,
        Duration::from_secs(600),
    )?;
    release(&rollouts, name, "v2").await?;
    let runs: Api<AnalysisRun> = Api::namespaced(client.clone(), &ns);
    // Wait for the first measurement, which the healthy canary passes.
    let deadline = Instant::now() + Duration::from_secs(180);
    let run_name = loop {
        let listed = runs.list(&ListParams::default()).await?;
        if let Some(run) = listed.items.iter().find(|run| {
            run.status
                .as_ref()
                .is_some_and(|s| s.metric_results.first().is_some_and(|m| m.successful >= 1))
        }) {
            break run.metadata.name.clone().context("a name")?;
        }
        ensure!(
            Instant::now() < deadline,
            "no successful first measurement: {:#?}",
            listed
                .items
                .iter()
                .map(|run| &run.status)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The canary starts failing half its requests, and both analysis pods are replaced.
    let canary = pod_ips(client, &ns, &format!("app={name},release=v2")).await?;
    for ip in canary.values() {
        http_agent()
            .post(&format!(
                "http://{ip}:{APP_PORT}/admin/config?error_rate=0.5"
            ))
            .send_empty()
            .with_context(|| format!("configure the canary pod at {ip}"))?;
    }
    let analysis_pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    analysis_pods
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels("app.kubernetes.io/component=analysis"),
        )
        .await?;
    // Whatever the measurements during the restart say, the canary never becomes stable.
    let deadline = Instant::now() + Duration::from_secs(180);
    let aborted = loop {
        let rollout = rollouts.get(name).await?;
        let status = rollout.status.clone().unwrap_or_default();
        ensure!(
            status.stable_revision.as_deref() == Some(v1.as_str()),
            "the breaching canary became stable: {status:#?}"
        );
        if status.phase == Some(RolloutPhase::Aborted) {
            break status;
        }
        ensure!(Instant::now() < deadline, "no abort: {status:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(aborted.canary_weight, Some(0));
    let run = runs.get(&run_name).await?;
    let phase = run.status.as_ref().map(|s| s.phase);
    ensure!(
        matches!(phase, Some(AnalysisPhase::Failed | AnalysisPhase::Error)),
        "the AnalysisRun ended {phase:?}"
    );
    eprintln!(
        "analysis restarted mid-run: the canary aborted ({}), its run {phase:?}",
        aborted.abort.map(|a| a.reason).unwrap_or_default()
    );
    Ok(())
}
