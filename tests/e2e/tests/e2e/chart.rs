//! The Helm chart (`charts/rollgate`), with helm built from its Go module (`tests/tools/helm`).
//!
//! - The chart's CRDs and admission policies are byte-identical to the generated ones: every
//!   file of `crds/yaml` and `crds/policies`, and nothing else.
//! - `helm lint --strict` and `helm template` pass with the default values (plus the image
//!   digests, `ci/default-values.yaml`) and with every option on (`ci/full-values.yaml`);
//!   without a digest the chart refuses to render; no rendered role has a wildcard verb,
//!   resource or API group; every flag of both binaries gets a value.
//! - Installed with helm into a bare cluster of its own (helm installs the CRDs and the
//!   policies), the controller and the analysis service run as local processes (kwok pods run
//!   no containers) with the flags of the chart's Deployments; the controller authenticates
//!   with a token of the chart's ServiceAccount. It leads on the chart's Lease and carries a
//!   canary with an analysis step and an approval gate, approved over gRPC by an account bound
//!   to the chart's approver role, to completion, logging no forbidden request: the chart's
//!   RBAC is enough.
//! - An account bound only to the viewer role reads, but can neither approve nor abort (403
//!   from the API server, PermissionDenied from the RolloutService); an approver can approve
//!   and still cannot abort.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rollgate_crds::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use rollgate_crds::approval::{ApprovalDecision, approval_request, decision_target};
use rollgate_crds::rollout::intents::{ActionTarget, action_id, user_action_patch};
use rollgate_crds::rollout::{RolloutPhase, UserActionKind};
use rollgate_crds::{Approval, Rollout};
use rollgate_testsupport::analysis::analysis_binary;
use rollgate_testsupport::approvals::approve_current_revision;
use rollgate_testsupport::controller::controller_binary;
use rollgate_testsupport::grpcurl::grpcurl;
use rollgate_testsupport::helm::{
    Helm, chart_dir, client_from, container_args, documents, find, service_account_token,
    token_kubeconfig,
};
use rollgate_testsupport::identity::{Account, service_account, wait_until_allowed};
use rollgate_testsupport::tools::workspace_root;
use rollgate_testsupport::{
    AnalysisServer, Cluster, ControllerOptions, ControllerProcess, Prometheus, TestNamespace,
    manifests,
};
use serde_json::{Value, json};

use crate::rollouts::{DIGEST_V1, DIGEST_V2, at, healthy, set_digest, wait_for};

/// The release, and so the prefix of the chart's object names.
const RELEASE: &str = "rollgate";
/// The namespace the chart is installed in.
const NAMESPACE: &str = "rollgate-system";

/// The YAML files of `dir`, by name.
fn yaml_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect()
}

/// Every file of `generated` is in `copy` with the same bytes, and `copy` has no other.
fn assert_same_files(generated: &Path, copy: &Path) {
    let names = yaml_files(generated);
    assert!(!names.is_empty(), "no files in {}", generated.display());
    assert_eq!(
        names,
        yaml_files(copy),
        "{} must hold exactly the files of {} (copy them over)",
        copy.display(),
        generated.display()
    );
    for name in names {
        let read = |dir: &Path| std::fs::read(dir.join(&name)).expect("read a chart file");
        assert!(
            read(generated) == read(copy),
            "{name} in {} differs from {}: copy it over",
            copy.display(),
            generated.display()
        );
    }
}

#[test]
fn the_charts_crds_and_policies_are_the_generated_ones() {
    let root = workspace_root();
    let chart = chart_dir();
    assert_same_files(&root.join("crds/yaml"), &chart.join("crds"));
    assert_same_files(&root.join("crds/policies"), &chart.join("files/policies"));
}

/// The long flags a binary's `--help` lists, without `--help` and `--version`.
fn flags(binary: &Path) -> BTreeSet<String> {
    let output = Command::new(binary)
        .arg("--help")
        .output()
        .expect("run --help");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line =
                line.split_once(", ").map_or(
                    line,
                    |(short, long)| {
                        if short.len() == 2 { long } else { line }
                    },
                );
            let flag = line.strip_prefix("--")?.split([' ', '=']).next()?;
            Some(flag.to_owned())
        })
        .filter(|flag| flag != "help" && flag != "version")
        .collect()
}

/// The flags a container's arguments set (`--name=value`).
fn set_flags(deployment: &Value) -> BTreeSet<String> {
    container_args(deployment)
        .iter()
        .filter_map(|arg| {
            arg.strip_prefix("--")?
                .split_once('=')
                .map(|(f, _)| f.to_owned())
        })
        .collect()
}

/// Every wildcard (`*`) in a role's verbs, resources, API groups or URLs, as `kind/name`.
fn wildcards(documents: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    for document in documents {
        if !matches!(document["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        let rules = document["rules"].as_array().cloned().unwrap_or_default();
        for rule in rules {
            for field in ["verbs", "resources", "apiGroups", "nonResourceURLs"] {
                let values = rule[field].as_array().cloned().unwrap_or_default();
                if values
                    .iter()
                    .any(|v| v.as_str().is_some_and(|v| v.contains('*')))
                {
                    found.push(format!(
                        "{}/{}: {field} {rule}",
                        document["kind"], document["metadata"]["name"]
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn helm_lints_and_renders_the_chart_with_least_privilege_and_every_flag() -> anyhow::Result<()> {
    let helm = Helm::new()?;
    let chart = chart_dir();
    let chart_path = chart.to_string_lossy().into_owned();
    let full = chart.join("ci/full-values.yaml");
    let full = full.to_string_lossy().into_owned();
    let defaults = default_values();
    helm.run(&["lint", "--strict", &chart_path, "-f", &defaults])?;
    helm.run(&["lint", "--strict", &chart_path, "-f", &full])?;

    // Images are pulled by digest: without one (or an explicit tag) the chart does not render,
    // and says what to set.
    let error = helm
        .template(RELEASE, NAMESPACE, &[])
        .expect_err("renders without image digests");
    assert!(
        format!("{error:#}").contains("controller.image.digest is not set"),
        "{error:#}"
    );
    let tagged = helm.template(
        RELEASE,
        NAMESPACE,
        &[
            "-f",
            &defaults,
            "--set",
            "analysis.image.digest=",
            "--set",
            "analysis.image.tag=v1",
        ],
    )?;
    let analysis = &find(&tagged, "Deployment", "rollgate-analysis")?["spec"]["template"]["spec"]["containers"]
        [0]["image"];
    assert_eq!(analysis, "ghcr.io/rollgate/rollgate-analysis:v1");

    let default = helm.template(RELEASE, NAMESPACE, &["-f", &defaults])?;
    let everything = helm.template(RELEASE, NAMESPACE, &["-f", &full])?;
    for rendered in [&default, &everything] {
        let roles = rendered
            .iter()
            .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
            .count();
        assert!(
            roles >= 5,
            "the controller's roles and the three user roles"
        );
        assert_eq!(wildcards(rendered), Vec::<String>::new(), "no wildcards");
    }

    // The defaults: two controller replicas electing a leader, probes on the admin port,
    // resource requests, the policies rendered from files/policies.
    let controller = find(&default, "Deployment", "rollgate-controller")?;
    assert_eq!(controller["spec"]["replicas"], 2);
    assert!(container_args(controller).contains(&"--leader-election=true".to_owned()));
    for name in ["rollgate-controller", "rollgate-analysis"] {
        let container =
            &find(&default, "Deployment", name)?["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/live");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
        assert!(
            container["resources"]["requests"]["cpu"].is_string(),
            "{name}"
        );
    }
    // The policies rendered are exactly the documents of files/policies, and go with the value.
    let is_policy = |d: &&Value| {
        d["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("admissionregistration.k8s.io/"))
    };
    let mut expected = Vec::new();
    for name in yaml_files(&chart.join("files/policies")) {
        let text = std::fs::read_to_string(chart.join("files/policies").join(name))?;
        expected.extend(documents(&text)?.iter().map(Value::to_string));
    }
    let mut rendered: Vec<String> = default
        .iter()
        .filter(is_policy)
        .map(Value::to_string)
        .collect();
    expected.sort();
    rendered.sort();
    assert!(!expected.is_empty());
    assert_eq!(rendered, expected, "the rendered admission policies");
    let without = helm.template(
        RELEASE,
        NAMESPACE,
        &["-f", &defaults, "--set", "admissionPolicies.enabled=false"],
    )?;
    assert_eq!(without.iter().filter(is_policy).count(), 0);

    // With everything on, every flag of each binary gets a value from the chart.
    let checks = [
        ("rollgate-controller", controller_binary()?),
        ("rollgate-analysis", analysis_binary()?),
    ];
    for (name, binary) in checks {
        let deployment = find(&everything, "Deployment", name)?;
        let missing: Vec<String> = flags(&binary)
            .difference(&set_flags(deployment))
            .cloned()
            .collect();
        assert_eq!(
            missing,
            Vec::<String>::new(),
            "flags of {name} without a value"
        );
        let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        assert!(image.contains("@sha256:"), "pinned by digest: {image}");
    }
    let policy = find(&everything, "ImagePolicy", "default")?;
    assert_eq!(
        policy["metadata"]["annotations"]["rollgate.io/default-policy"],
        "true"
    );
    Ok(())
}

/// `ci/default-values.yaml`: the default values plus the image digests the chart requires.
fn default_values() -> String {
    chart_dir()
        .join("ci/default-values.yaml")
        .to_string_lossy()
        .into_owned()
}

/// The chart installed into a cluster of its own, with the controller and the analysis
/// service running as processes under the chart's identities and flags.
pub(crate) struct Installed {
    pub(crate) cluster: Cluster,
    pub(crate) controller: ControllerProcess,
    grpc_address: String,
    prometheus: Prometheus,
    _analysis: AnalysisServer,
}

/// `args` without the flags in `drop` (those the test sets for a local process).
fn without(args: Vec<String>, drop: &[&str]) -> Vec<String> {
    args.into_iter()
        .filter(|arg| !drop.iter().any(|flag| arg.starts_with(&format!("{flag}="))))
        .collect()
}

fn install() -> anyhow::Result<Installed> {
    let cluster = Cluster::start()?;
    // The controller watches HTTPRoutes; the Gateway API CRDs are the cluster's, not the
    // chart's.
    let gateway_api = cluster.dir().join("gateway-api-crds");
    rollgate_testsupport::gateway_api::write_crds(&gateway_api)?;
    cluster.apply_crds(&gateway_api)?;

    let helm = Helm::new()?;
    let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
    helm.install(
        &cluster,
        RELEASE,
        NAMESPACE,
        "90s",
        &[
            "--create-namespace",
            "-f",
            &default_values(),
            // The test's digests are in no registry: only the digest rule applies.
            "--set",
            "controller.imageVerification=off",
            "--set",
            "controller.leaderElection.leaseDurationSeconds=5",
        ],
    )?;
    let manifest = documents(&helm.run(&[
        "get",
        "manifest",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
    ])?)?;

    let analysis_args = without(
        container_args(find(&manifest, "Deployment", "rollgate-analysis")?),
        &["--grpc-addr", "--admin-addr"],
    );
    let analysis_args: Vec<&str> = analysis_args.iter().map(String::as_str).collect();
    // The chart's analysis service reviews its callers' tokens (the chart's controller's).
    let callers = rollgate_testsupport::Callers::Reviewed {
        cluster: &cluster,
        allowed: &[],
    };
    let analysis = AnalysisServer::start_with(&analysis_binary()?, callers, &analysis_args)?;

    let token = service_account_token(&cluster, NAMESPACE, "rollgate-controller")?;
    let analysis_token = cluster.dir().join("controller.token");
    std::fs::write(&analysis_token, &token)?;
    let controller_kubeconfig = cluster.dir().join("controller.kubeconfig");
    token_kubeconfig(&cluster, &token, &controller_kubeconfig)?;
    let grpc_port = rollgate_testsupport::process::free_port()?;
    let mut args = without(
        container_args(find(&manifest, "Deployment", "rollgate-controller")?),
        &[
            "--admin-addr",
            "--grpc-addr",
            "--instance",
            "--analysis-addr",
            "--analysis-token-file",
        ],
    );
    args.push(format!(
        "--analysis-token-file={}",
        analysis_token.display()
    ));
    args.push(format!("--grpc-addr=127.0.0.1:{grpc_port}"));
    args.push(format!("--analysis-addr={}", analysis.grpc_url()));
    let options = ControllerOptions {
        kubeconfig: Some(controller_kubeconfig),
        args,
        // Failed watches and trigger errors are logged at debug level: a watch the chart's
        // RBAC refused must show in the log.
        env: vec![(
            "RUST_LOG".into(),
            "info,kube=warn,kube_runtime::watcher=debug,rollgate_controller=debug".into(),
        )],
        ..ControllerOptions::named("chart-controller")
    };
    let controller = ControllerProcess::start(&cluster, &options)?;
    let prometheus = Prometheus::start()?;
    Ok(Installed {
        cluster,
        controller,
        grpc_address: format!("127.0.0.1:{grpc_port}"),
        prometheus,
        _analysis: analysis,
    })
}

pub(crate) fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Result<Installed, String>> = OnceLock::new();
    match INSTALLED.get_or_init(|| install().map_err(|error| format!("{error:#}"))) {
        Ok(installed) => installed,
        Err(error) => panic!("the chart could not be installed and run: {error}"),
    }
}

/// Waits until the chart's controller leads on its Lease (so it reconciles), or fails with its
/// log.
pub(crate) async fn leading(installed: &Installed) -> anyhow::Result<()> {
    let started = Instant::now();
    while installed.controller.metric("rollgate_leader") != Some(1.0) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the chart's controller does not lead on its Lease:\n{}",
            installed.controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Creates `rollout`, retrying while the API server is still loading the chart's admission
/// policies (until then the requested-by policy may refuse it).
pub(crate) async fn create_rollout(api: &Api<Rollout>, rollout: &Rollout) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match api.create(&PostParams::default(), rollout).await {
            Ok(_) => return Ok(()),
            Err(error) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("creating the Rollout: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A ServiceAccount in `namespace` bound (RoleBinding) to the chart's ClusterRole `role`.
pub(crate) async fn bound(
    installed: &Installed,
    admin: &kube::Client,
    namespace: &str,
    role: &str,
) -> anyhow::Result<Account> {
    let account = service_account(admin, namespace, role).await?;
    let binding = installed.cluster.kubectl(&[
        "create",
        "rolebinding",
        role,
        "-n",
        namespace,
        &format!("--clusterrole=rollgate-{role}"),
        &format!("--serviceaccount={namespace}:{role}"),
    ])?;
    anyhow::ensure!(
        binding.status.success(),
        "{}",
        String::from_utf8_lossy(&binding.stderr)
    );
    Ok(account)
}

/// A client that authenticates with `account`'s token.
pub(crate) async fn client_of(
    installed: &Installed,
    account: &Account,
) -> anyhow::Result<kube::Client> {
    let path = installed
        .cluster
        .dir()
        .join(format!("{}-{}.kubeconfig", account.namespace, account.name));
    token_kubeconfig(&installed.cluster, &account.token, &path)?;
    client_from(&path).await
}

/// Calls `method` of the RolloutService with grpcurl as the bearer of `token`: whether it
/// succeeded, and what grpcurl printed.
async fn grpc(
    installed: &Installed,
    token: &str,
    method: &str,
    body: Value,
) -> anyhow::Result<(bool, String)> {
    let grpcurl = tokio::task::spawn_blocking(grpcurl).await??;
    let output = tokio::process::Command::new(grpcurl)
        .args([
            "-plaintext",
            "-H",
            &format!("authorization: Bearer {token}"),
            "-d",
        ])
        .arg(body.to_string())
        .arg(&installed.grpc_address)
        .arg(format!("rollgate.v1.RolloutService/{method}"))
        .output()
        .await?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), printed))
}

/// A canary of 2 pods: 50%, then `gates`, then 100%.
pub(crate) fn canary(name: &str, gates: Value) -> anyhow::Result<Rollout> {
    let mut steps = vec![json!({"setWeight": 50})];
    steps.extend(gates.as_array().cloned().unwrap_or_default());
    steps.push(json!({"setWeight": 100}));
    manifests::rollout(name, 2, DIGEST_V1, json!({"canary": {"steps": steps}}))
}

/// Creates the canary, waits until v1 is stable, moves it to v2 and waits at the approval
/// gate (step `gate_step`); returns v2.
async fn at_the_gate(
    (cluster, namespace): (&Cluster, &str),
    rollouts: &Api<Rollout>,
    rollout: &Rollout,
    gate_step: i32,
) -> anyhow::Result<String> {
    let name = rollout.metadata.name.clone().unwrap_or_default();
    create_rollout(rollouts, rollout).await?;
    // The first revision is gated too.
    approve_current_revision(cluster, namespace, &name, 1, &[]).await?;
    wait_for(rollouts, &name, "v1 Healthy", healthy(None)).await?;
    set_digest(rollouts, &name, DIGEST_V2).await?;
    let waiting = wait_for(
        rollouts,
        &name,
        "the approval gate",
        at(gate_step, RolloutPhase::AwaitingApproval),
    )
    .await?;
    Ok(waiting
        .status
        .and_then(|s| s.current_revision)
        .unwrap_or_default())
}

/// The controller's log lines that report a request RBAC refused (`... is forbidden: User
/// "system:serviceaccount:..." cannot ...`; not, say, a write into a namespace being deleted).
pub(crate) fn forbidden_lines(controller: &ControllerProcess) -> Vec<String> {
    std::fs::read_to_string(controller.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("is forbidden: User "))
        .map(str::to_owned)
        .collect()
}

/// Resolves once the controller has logged a request RBAC refused, with those lines.
async fn refused(controller: &ControllerProcess) -> Vec<String> {
    loop {
        let lines = forbidden_lines(controller);
        if !lines.is_empty() {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `future`'s result, or an error as soon as the controller logs a refused request.
async fn unless_refused<T>(
    controller: &ControllerProcess,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        result = future => result,
        lines = refused(controller) => {
            anyhow::bail!("the controller was refused requests:\n{}", lines.join("\n"))
        }
    }
}

#[tokio::test]
async fn the_installed_charts_rbac_carries_a_canary_through_analysis_and_approval()
-> anyhow::Result<()> {
    let installed = installed();
    let admin = installed.cluster.client().await?;
    leading(installed).await?;

    let namespace = TestNamespace::create(&installed.cluster, &admin, "chart-canary").await?;
    let ns = namespace.name();
    let template: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "no-errors"},
        "spec": {"metrics": [{
            "name": "error-ratio",
            "interval": "1s",
            "count": 2,
            "provider": {"prometheus": {"address": installed.prometheus.url(), "query": "vector(0)"}},
            "successCondition": "result < 0.05"
        }]}
    }))?;
    Api::<AnalysisTemplate>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &template)
        .await?;
    let rollouts: Api<Rollout> = Api::namespaced(admin.clone(), ns);
    let gates =
        json!([{"analysis": {"templates": [{"templateName": "no-errors"}]}}, {"approval": {}}]);
    let controller = &installed.controller;
    let v2 = unless_refused(
        controller,
        at_the_gate(
            (&installed.cluster, namespace.name()),
            &rollouts,
            &canary("web", gates)?,
            2,
        ),
    )
    .await?;

    // The analysis step passed on the way.
    let runs = Api::<AnalysisRun>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await?;
    let phases: Vec<_> = runs
        .items
        .iter()
        .map(|run| run.status.as_ref().map(|s| s.phase))
        .collect();
    assert!(
        phases.contains(&Some(AnalysisPhase::Successful)),
        "AnalysisRuns: {phases:?}"
    );

    // An approver approves over gRPC: the controller checks the token (TokenReview), the
    // caller's right (SubjectAccessReview) and creates the Approval as the caller.
    let approver = bound(installed, &admin, ns, "approver").await?;
    wait_until_allowed(&admin, &approver, "create", "approvals").await?;
    let request =
        json!({"rollout": {"namespace": ns, "name": "web"}, "revision": v2, "comment": "ship it"});
    let (approved, printed) = grpc(installed, &approver.token, "Approve", request).await?;
    assert!(approved, "Approve: {printed}");
    let v2_healthy = wait_for(&rollouts, "web", "v2 Healthy", healthy(Some(v2.clone())));
    unless_refused(controller, v2_healthy).await?;
    // (The first revision's own approval is the test's, made at its gate.)
    let approvals = Api::<Approval>::namespaced(admin, ns)
        .list(&ListParams::default())
        .await?;
    let of_v2: Vec<_> = approvals
        .items
        .iter()
        .filter(|a| a.spec.revision == v2)
        .collect();
    assert_eq!(of_v2.len(), 1, "{of_v2:?}");
    assert_eq!(of_v2[0].spec.approver, approver.username);

    let forbidden = forbidden_lines(controller);
    assert!(
        forbidden.is_empty(),
        "the controller was refused requests:\n{}",
        forbidden.join("\n")
    );
    Ok(())
}

/// Whether `result` is the API server's 403.
pub(crate) fn is_forbidden<T: std::fmt::Debug>(result: &kube::Result<T>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

#[tokio::test]
async fn a_viewer_can_neither_approve_nor_abort_and_an_approver_cannot_abort() -> anyhow::Result<()>
{
    let installed = installed();
    let admin = installed.cluster.client().await?;
    let namespace = TestNamespace::create(&installed.cluster, &admin, "chart-viewer").await?;
    let ns = namespace.name();
    let rollouts: Api<Rollout> = Api::namespaced(admin.clone(), ns);
    let rollout = canary("web", json!([{"approval": {}}]))?;
    let gated = at_the_gate((&installed.cluster, ns), &rollouts, &rollout, 1);
    let v2 = unless_refused(&installed.controller, gated).await?;
    let status = rollouts.get("web").await?.status.unwrap_or_default();
    let target = decision_target("web", &status)?;

    let viewer = bound(installed, &admin, ns, "viewer").await?;
    let approver = bound(installed, &admin, ns, "approver").await?;
    wait_until_allowed(&admin, &viewer, "list", "rollouts").await?;
    wait_until_allowed(&admin, &approver, "create", "approvals").await?;
    let reference = json!({"namespace": ns, "name": "web"});

    // The viewer reads, over the API server and over gRPC.
    let as_viewer: Api<Rollout> = Api::namespaced(client_of(installed, &viewer).await?, ns);
    as_viewer.get("web").await?;
    let (read, printed) = grpc(
        installed,
        &viewer.token,
        "GetRollout",
        json!({"rollout": reference}),
    )
    .await?;
    assert!(read, "GetRollout as the viewer: {printed}");

    // Approving, as the CLI does (an Approval in the viewer's own name) and over gRPC.
    let groups = viewer.groups();
    let approval = approval_request(
        "web",
        &target,
        ApprovalDecision::Approve,
        None,
        &viewer.username,
        &groups,
    );
    let as_viewer_approvals: Api<Approval> =
        Api::namespaced(client_of(installed, &viewer).await?, ns);
    let created = as_viewer_approvals
        .create(&PostParams::default(), &approval)
        .await;
    assert!(is_forbidden(&created), "the viewer approved: {created:?}");
    let request = json!({"rollout": reference, "revision": v2});
    let (approved, printed) = grpc(installed, &viewer.token, "Approve", request).await?;
    assert!(
        !approved && printed.contains("PermissionDenied"),
        "{printed}"
    );

    // Aborting, as the CLI does (the intent in status.userAction) and over gRPC, by the viewer
    // and by the approver.
    for account in [&viewer, &approver] {
        let api: Api<Rollout> = Api::namespaced(client_of(installed, account).await?, ns);
        let now = Timestamp::now();
        let id = action_id(UserActionKind::Abort, now);
        let target = ActionTarget {
            revision: v2.clone(),
            attempt: 0,
        };
        let patch = user_action_patch(
            "web",
            UserActionKind::Abort,
            &target,
            &account.username,
            Some("no"),
            &id,
            now,
        );
        let params = PatchParams::apply("kubectl-rollgate").force();
        let aborted = api
            .patch_status("web", &params, &Patch::Apply(&patch))
            .await;
        assert!(
            is_forbidden(&aborted),
            "{} aborted: {aborted:?}",
            account.name
        );
        let request = json!({"rollout": reference, "reason": "no"});
        let (aborted, printed) = grpc(installed, &account.token, "Abort", request).await?;
        assert!(
            !aborted && printed.contains("PermissionDenied"),
            "{}: {printed}",
            account.name
        );
    }

    // The approver's Approval passes RBAC and the admission policy (a dry run, so the gate
    // stays shut): the refusals above are the roles', not a bad request.
    let as_approver: Api<Approval> = Api::namespaced(client_of(installed, &approver).await?, ns);
    let approval = approval_request(
        "web",
        &target,
        ApprovalDecision::Approve,
        None,
        &approver.username,
        &approver.groups(),
    );
    as_approver
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &approval,
        )
        .await?;

    let after = rollouts.get("web").await?;
    let status = after.status.unwrap_or_default();
    assert_eq!(status.phase, Some(RolloutPhase::AwaitingApproval));
    assert!(status.user_action.is_none(), "{:?}", status.user_action);
    let approvals = Api::<Approval>::namespaced(admin, ns)
        .list(&ListParams::default())
        .await?;
    let waiting = status.current_revision.unwrap_or_default();
    assert!(
        approvals.items.iter().all(|a| a.spec.revision != waiting),
        "no Approval of the waiting revision: {:?}",
        approvals.items
    );
    Ok(())
}
