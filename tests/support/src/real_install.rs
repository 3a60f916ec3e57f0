//! rollgate installed as its users install it, on the real node: its images built by
//! `scripts/images.sh`, pushed by digest to a registry the node pulls from, signed with a key
//! of the run; the chart installed by Helm with those digests; the controller (two replicas,
//! leader election) and the analysis service running as real pods under the chart's RBAC; a
//! Prometheus on the host that discovers pods through the Kubernetes API.
//!
//! Addresses: the registry and Prometheus listen on the real node's address ([`NODE_IP`]),
//! which pods reach through their bridge; pods reach the API server through the `kubernetes`
//! Service. The local cluster has no cluster DNS, so the analysis Service gets a fixed ClusterIP
//! ([`ANALYSIS_CLUSTER_IP`]) and the controller is pointed at it (chart values
//! `analysis.service.clusterIP`, `controller.analysisAddr`); on a cluster with DNS neither is
//! needed. The cluster has no kwok nodes, so every pod is a real one.
//!
//! The chart's ImagePolicy `rollgate-images` verifies rollgate's own images (the repositories
//! `rollgate-*` of the run's registry): cosign signature by the run's key, the SLSA provenance
//! naming `scripts/images.sh`, and the SPDX SBOM.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::helm::{Helm, service_account_token, token_kubeconfig};
use crate::process::free_port;
use crate::prometheus::Prometheus;
use crate::real_node::{HostClaim, NODE_IP, RealNodeCluster, RealNodeOptions, claim_host};
use crate::registry::Registry;
use crate::tools::workspace_root;

/// The release name and namespace of the chart.
pub const RELEASE: &str = "rollgate";
/// The namespace the chart is installed in.
pub const NAMESPACE: &str = "rollgate-system";
/// The name of the ImagePolicy the chart creates for rollgate's own images.
pub const IMAGE_POLICY: &str = "rollgate-images";
/// The analysis Service's ClusterIP (in the cluster's Service range, 198.18.128.0/17).
pub const ANALYSIS_CLUSTER_IP: &str = "198.18.200.90";
/// The repository prefix of the audit log's checkpoints in the run's registry.
const AUDIT_STORE_PREFIX: &str = "rollgate-audit";
/// The Secret holding the audit log's signer key, when installed with one.
const AUDIT_KEY_SECRET: &str = "rollgate-audit-key";
/// Seconds a controller leader's Lease stays valid without renewal, as installed.
pub const LEASE_DURATION_SECONDS: u64 = 10;

/// rollgate's images as `scripts/images.sh` pushed them for this run.
#[derive(Debug, Clone)]
pub struct BuiltImages {
    /// `rollgate-<name>` to `registry/rollgate-<name>@sha256:...`.
    pub references: BTreeMap<String, String>,
    /// The public half of the run's signing key (cosign PEM).
    pub public_key: PathBuf,
    /// Chart values pinning the controller and analysis images by digest.
    pub values: PathBuf,
}

impl BuiltImages {
    /// The reference (`repository@digest`) of `rollgate-<name>`.
    pub fn reference(&self, name: &str) -> Result<&str> {
        self.references
            .get(&format!("rollgate-{name}"))
            .map(String::as_str)
            .with_context(|| format!("scripts/images.sh printed no digest for rollgate-{name}"))
    }
}

/// How [`RealInstall::start_with`] installs, beyond the defaults.
#[derive(Default)]
pub struct InstallOptions<'a> {
    /// Told each step as it starts, and each line the image build prints (the first build of
    /// the release binaries takes minutes), so a narrator is never silent.
    pub progress: Option<&'a (dyn Fn(&str) + Sync)>,
    /// The audit log's signer key (`kubectl rollgate audit keygen`): stored as the Secret
    /// `rollgate-audit-key` the chart mounts, and the controller publishes its signed
    /// checkpoints to [`RealInstall::audit_store`]. Without it the records form the hash chain
    /// only.
    pub audit_signer_key: Option<PathBuf>,
}

impl InstallOptions<'_> {
    fn say(&self, line: &str) {
        if let Some(progress) = self.progress {
            progress(line);
        }
    }
}

/// A running install. Dropping it stops Prometheus, the registry and the cluster (fields drop
/// in order, the cluster last).
pub struct RealInstall {
    prometheus: Prometheus,
    registry: Registry,
    images: BuiltImages,
    node: RealNodeCluster,
}

impl RealInstall {
    /// Starts the cluster with its real node, the registry and Prometheus, builds and pushes
    /// the images, installs the chart and waits until every rollgate pod is Ready. Blocking;
    /// the first build of the release binaries takes minutes.
    pub fn start() -> Result<Self> {
        Self::start_with(claim_host()?, &InstallOptions::default())
    }

    /// As [`Self::start`], on a host already claimed, installed as `options` say.
    pub fn start_with(claim: HostClaim, options: &InstallOptions<'_>) -> Result<Self> {
        let registry_address = format!("{NODE_IP}:{}", free_port()?);
        options.say("starting the cluster with its real node (containerd, kubelet, kube-proxy)");
        let node = RealNodeCluster::start_claimed(
            claim,
            &RealNodeOptions {
                plain_http_registries: vec![registry_address.clone()],
                kwok_nodes: 0,
            },
        )?;
        let cluster = node.cluster();
        options.say(&format!(
            "cluster up in {:.0}s; starting the registry on {registry_address}",
            cluster.startup_time().as_secs_f64()
        ));
        let registry = Registry::start_on(&registry_address)?;
        options.say(
            "building rollgate's images (release binaries, SBOM, provenance), pushing them by \
             digest and signing them with a key of this run",
        );
        let images = build_images(cluster, &registry, options)?;
        options.say("starting Prometheus, discovering pods through the Kubernetes API");
        let prometheus = discovering_prometheus(cluster)?;
        let gateway_api = cluster.dir().join("gateway-api-crds");
        crate::gateway_api::write_crds(&gateway_api)?;
        cluster.apply_crds(&gateway_api)?;
        options.say(&format!(
            "helm install {RELEASE} charts/rollgate -n {NAMESPACE}, images by digest; waiting \
             until every pod is Ready"
        ));
        install_chart(cluster, &registry, &images, &prometheus, options)?;
        Ok(Self {
            prometheus,
            registry,
            images,
            node,
        })
    }

    /// Where the controller publishes the audit log's signed checkpoints
    /// (`<registry host>/rollgate-audit`), when installed with a signer key.
    pub fn audit_store(&self) -> String {
        format!("{}/{AUDIT_STORE_PREFIX}", self.registry.host())
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        self.node.cluster()
    }

    /// The images of the run.
    pub fn images(&self) -> &BuiltImages {
        &self.images
    }

    /// The registry (on the node's address).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus (on the node's address, so the analysis pods reach it).
    pub fn prometheus(&self) -> &Prometheus {
        &self.prometheus
    }
}

/// Runs `scripts/images.sh` for the controller, the analysis service and the demo app, pushing
/// to `registry` and signing with a key generated for the run; its output goes line by line to
/// the progress callback.
fn build_images(
    cluster: &Cluster,
    registry: &Registry,
    options: &InstallOptions<'_>,
) -> Result<BuiltImages> {
    let out = cluster.dir().join("images");
    let root = workspace_root();
    let mut command = Command::new("bash");
    command
        .arg(root.join("scripts/images.sh"))
        .args(["--registry", &registry.host(), "--insecure", "--out"])
        .arg(&out)
        .args(["--images", "controller analysis demo-app"])
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if options.progress.is_some() {
        command.arg("--progress");
    }
    let mut child = command.spawn().context("run scripts/images.sh")?;
    let stdout = child
        .stdout
        .take()
        .context("the stdout of scripts/images.sh")?;
    let stderr = child
        .stderr
        .take()
        .context("the stderr of scripts/images.sh")?;
    // Both pipes are read at once (a full one would stall the script); every line is kept
    // for the error message and passed on.
    let lines = std::thread::scope(|scope| {
        let forward = |pipe: Box<dyn Read + Send>| {
            scope.spawn(move || {
                let mut kept = Vec::new();
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    options.say(&line);
                    kept.push(line);
                }
                kept
            })
        };
        let out = forward(Box::new(stdout));
        let err = forward(Box::new(stderr));
        let mut lines = out.join().unwrap_or_default();
        lines.extend(err.join().unwrap_or_default());
        lines
    });
    let status = child.wait().context("wait for scripts/images.sh")?;
    if !status.success() {
        bail!("scripts/images.sh failed ({status}):\n{}", lines.join("\n"));
    }
    let digests = std::fs::read_to_string(out.join("digests.txt"))?;
    let references = digests
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, reference)| (name.to_owned(), reference.to_owned()))
        .collect();
    Ok(BuiltImages {
        references,
        public_key: out.join("cosign.pub"),
        values: out.join("values-images.yaml"),
    })
}

/// Prometheus on the node's address, discovering pods with a ServiceAccount of its own that may
/// only list and watch pods.
fn discovering_prometheus(cluster: &Cluster) -> Result<Prometheus> {
    let grants = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "prometheus", "namespace": "monitoring"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "prometheus-pods"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "prometheus-pods"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "prometheus-pods"},
         "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]}
    ]});
    cluster.apply_json("prometheus-grants", &grants)?;
    let token = service_account_token(cluster, "monitoring", "prometheus")?;
    let kubeconfig = cluster.dir().join("prometheus.kubeconfig");
    token_kubeconfig(cluster, &token, &kubeconfig)?;
    Prometheus::start_discovering_pods(NODE_IP, &kubeconfig)
}

/// The chart values of this install, beside the image digests.
fn values(registry: &Registry, prometheus: &Prometheus, signed_audit: bool) -> Value {
    let analysis_port = 8090;
    let audit = if signed_audit {
        json!({
            "signingKeySecret": AUDIT_KEY_SECRET,
            "signingKeySecretKey": "audit.key",
            "store": format!("{}/{AUDIT_STORE_PREFIX}", registry.host()),
            "storeInsecure": true,
        })
    } else {
        json!({})
    };
    json!({
        "controller": {
            "insecureRegistries": [registry.host()],
            "analysisAddr": format!("http://{ANALYSIS_CLUSTER_IP}:{analysis_port}"),
            "leaderElection": {"leaseDurationSeconds": LEASE_DURATION_SECONDS},
            "logFormat": "text",
            "audit": audit,
        },
        "analysis": {
            "service": {"clusterIP": ANALYSIS_CLUSTER_IP, "grpcPort": analysis_port},
            "prometheusAllowed": [prometheus.url()],
            "logFormat": "text",
        },
        "imagePolicy": {
            "enabled": true,
            "name": IMAGE_POLICY,
            "spec": {
                "images": [format!("{}/rollgate-*", registry.host())],
                // Every namespace: wherever rollgate's images are rolled out, this governs them.
                "namespaceSelector": {},
                "authorities": [{"name": "rollgate-images", "keys": [{"secretRef": {
                    "name": "rollgate-images-key", "namespace": NAMESPACE, "key": "cosign.pub"
                }}]}],
                "attestations": [
                    {"predicateType": "https://slsa.dev/provenance/v1",
                     "condition": "predicate.buildDefinition.buildType == \"https://github.com/rollgate/rollgate/scripts/images.sh@v1\""},
                    {"predicateType": "https://spdx.dev/Document",
                     "condition": "size(predicate.packages) > 0"}
                ],
                "mode": "enforce",
                "registryFailure": "failClosed"
            }
        }
    })
}

/// Creates the namespace, the images' public key Secret and (when set) the audit signer key
/// Secret, then installs the chart and waits until both Deployments are available.
fn install_chart(
    cluster: &Cluster,
    registry: &Registry,
    images: &BuiltImages,
    prometheus: &Prometheus,
    options: &InstallOptions<'_>,
) -> Result<()> {
    let key = read(&images.public_key)?;
    let mut items = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "rollgate-images-key", "namespace": NAMESPACE},
         "stringData": {"cosign.pub": key}}),
    ];
    if let Some(signer) = &options.audit_signer_key {
        items.push(json!({"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": AUDIT_KEY_SECRET, "namespace": NAMESPACE},
         "stringData": {"audit.key": read(signer)?}}));
    }
    let namespace = json!({"apiVersion": "v1", "kind": "List", "items": items});
    cluster.apply_json("rollgate-namespace", &namespace)?;
    let values_file = cluster.dir().join("values-real-node.json");
    std::fs::write(
        &values_file,
        serde_json::to_vec_pretty(&values(
            registry,
            prometheus,
            options.audit_signer_key.is_some(),
        ))?,
    )?;
    let digests = images.values.to_str().context("path is not UTF-8")?;
    let values_file = values_file.to_str().context("path is not UTF-8")?;
    Helm::new()?
        .install(
            cluster,
            RELEASE,
            NAMESPACE,
            "180s",
            &["-f", digests, "-f", values_file],
        )
        .context("helm install the chart on the real node")?;
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

/// Reads the metrics text at `http://<address>/metrics` (a pod IP and port).
pub fn scrape(address: &str) -> Result<String> {
    let mut response = crate::process::http_agent()
        .get(&format!("http://{address}/metrics"))
        .call()
        .with_context(|| format!("scrape {address}"))?;
    if !response.status().is_success() {
        bail!("scrape {address}: HTTP {}", response.status());
    }
    Ok(response.body_mut().read_to_string()?)
}

/// The sum of the samples of `metric` in the metrics text `text` whose labels include every
/// `name="value"` of `labels`.
pub fn sum_samples(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            if name != metric {
                return None;
            }
            labels
                .iter()
                .all(|(label, value)| series.contains(&format!("{label}=\"{value}\"")))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}
