//! The local Kubernetes cluster: `rollgate-cluster up` (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok, as separate processes on loopback).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::process::tail;
use crate::tools;

/// How long the cluster may take to start before a test run gives up.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A running local cluster. Dropping it stops every component.
pub struct Cluster {
    up: Child,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    startup: Duration,
}

/// The user name of the admin kubeconfig's client certificate.
pub const ADMIN_USER: &str = "rollgate-admin";

static SHARED: OnceLock<std::result::Result<Cluster, String>> = OnceLock::new();

/// The cluster shared by every test of this process, started on first use with rollgate's CRDs
/// installed. It stops when the test process exits (`up --exit-with-parent`).
pub fn shared_cluster() -> &'static Cluster {
    let started = SHARED.get_or_init(|| {
        Cluster::start()
            .and_then(|cluster| cluster.install_crds().map(|()| cluster))
            .map_err(|error| format!("{error:#}"))
    });
    match started {
        Ok(cluster) => cluster,
        Err(error) => panic!("the local cluster could not start: {error}"),
    }
}

impl Cluster {
    /// Starts a new cluster in a temporary directory and waits for its ready line.
    pub fn start() -> Result<Self> {
        Self::start_with(|_| Vec::new())
    }

    /// Starts a new cluster like [`Cluster::start`], with more `up` flags, made from the
    /// cluster's directory (for files they name).
    pub fn start_with(extra_args: impl FnOnce(&Path) -> Vec<std::ffi::OsString>) -> Result<Self> {
        let binary = tools::cluster_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rollgate-cluster-")
            .tempdir()?;
        let up_log = dir.path().join("up.log");
        let began = Instant::now();
        let mut up = Command::new(&binary)
            .args(["up", "--exit-with-parent", "--remove-dir", "--dir"])
            .arg(dir.path())
            .args(extra_args(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&up_log)?)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let stdout = up.stdout.take().context("cluster stdout")?;
        let (lines, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|line| line.ok()) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            match ready.recv_timeout(START_TIMEOUT.saturating_sub(began.elapsed())) {
                Ok(line) if line.starts_with("rollgate-cluster ready") => break,
                Ok(_) => continue,
                Err(_) => {
                    let _ = up.kill();
                    let _ = up.wait();
                    bail!(
                        "the cluster printed no ready line within {START_TIMEOUT:?}:\n{}",
                        tail(&up_log)
                    );
                }
            }
        }
        let kubeconfig = dir.path().join("kubeconfig");
        Ok(Cluster {
            up,
            dir,
            kubeconfig,
            startup: began.elapsed(),
        })
    }

    /// Starts a cluster of its own, with rollgate's CRDs installed, without blocking the async
    /// runtime, and returns it with an admin client.
    pub async fn start_with_crds() -> Result<(Cluster, kube::Client)> {
        let cluster = tokio::task::spawn_blocking(|| {
            let cluster = Cluster::start()?;
            cluster.install_crds()?;
            anyhow::Ok(cluster)
        })
        .await??;
        let client = cluster.client().await?;
        Ok((cluster, client))
    }

    /// The admin kubeconfig (user `rollgate-admin`, group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster's working directory: `pki/` holds the CA (`ca.crt`, `ca.key`) so tests can
    /// mint client certificates; `logs/` holds each component's log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How long the cluster took from start to its ready line.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The process id of `rollgate-cluster up`.
    pub fn pid(&self) -> u32 {
        self.up.id()
    }

    /// A new admin client. Make one per test: a client belongs to the runtime that made it.
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Runs the cluster's kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        Command::new(tools::kubectl()?)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .context("run kubectl")
    }

    /// Runs kubectl like [`Cluster::kubectl`]; its trimmed standard output, or an error naming
    /// the command with its stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.kubectl(args)?;
        if !output.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Applies `manifest` (JSON) with kubectl, keeping it as `<cluster dir>/<name>.json` for
    /// whoever reads the run afterwards.
    pub fn apply_json(&self, name: &str, manifest: &serde_json::Value) -> Result<()> {
        let path = self.dir().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(manifest)?)?;
        self.kubectl_ok(&["apply", "-f", path.to_str().context("path is not UTF-8")?])
            .with_context(|| format!("apply {name}"))?;
        Ok(())
    }

    /// Applies rollgate's generated CRDs (`crds/yaml`) and the Gateway API CRDs (generated from
    /// the `gateway-api` crate), waits until they are established, then installs rollgate's
    /// admission policies (`crds/policies`) and waits until the API server enforces them.
    pub fn install_crds(&self) -> Result<()> {
        self.install_crds_of(&tools::workspace_root())
    }

    /// [`Cluster::install_crds`] with the CRDs and policies of another checkout of rollgate
    /// (`<root>/crds/yaml`, `<root>/crds/policies`): benchmarks compare an earlier build.
    pub fn install_crds_of(&self, root: &Path) -> Result<()> {
        self.apply_crds(&root.join("crds/yaml"))?;
        let gateway_api = self.dir().join("gateway-api-crds");
        crate::gateway_api::write_crds(&gateway_api)?;
        self.apply_crds(&gateway_api)?;
        self.install_policies(&root.join("crds/policies"))
    }

    /// Applies the admission policies in `policies` and waits until both kinds are in force: a
    /// server-side dry run of a new Rollout gets the requested-by annotation stamped, and one of
    /// an Approval in someone else's name is refused. (The API server loads policies
    /// asynchronously, a moment after they are created.)
    fn install_policies(&self, policies: &Path) -> Result<()> {
        // The controller processes of the tests run with the admin kubeconfig, so the admin is
        // the controller's identity the ownership policies let write the controller's state.
        self.install_controller_identity(ADMIN_USER)?;
        let policies = policies.to_str().context("policy path is not UTF-8")?;
        let applied = self.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            policies,
        ])?;
        if !applied.status.success() {
            bail!(
                "kubectl apply of the admission policies: {}",
                String::from_utf8_lossy(&applied.stderr)
            );
        }
        let probes = self.dir().join("policy-probes");
        std::fs::create_dir_all(&probes)?;
        let rollout = probes.join("rollout.json");
        std::fs::write(
            &rollout,
            serde_json::to_vec(&crate::manifests::rollout(
                "policy-probe",
                1,
                &"0".repeat(64),
                serde_json::json!({"canary": {"steps": [{"setWeight": 50}]}}),
            )?)?,
        )?;
        let approval = probes.join("approval.json");
        std::fs::write(
            &approval,
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "rollgate.io/v1alpha1",
                "kind": "Approval",
                "metadata": {"name": "policy-probe"},
                "spec": {"rollout": "policy-probe", "revision": "0", "digests": [],
                         "decision": "Approve", "approver": "somebody-else"}
            }))?,
        )?;
        let path = |file: &Path| {
            file.to_str()
                .map(str::to_owned)
                .context("probe path is not UTF-8")
        };
        let replica_set = probes.join("replica-set.json");
        std::fs::write(
            &replica_set,
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "policy-probe", "labels": {"rollgate.io/rollout": "policy-probe"}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "policy-probe"}},
                         "template": {"metadata": {"labels": {"app": "policy-probe"}},
                                      "spec": {"containers": [{"name": "c", "image": "probe"}]}}}
            }))?,
        )?;
        let (rollout, approval, replica_set) =
            (path(&rollout)?, path(&approval)?, path(&replica_set)?);
        // This checkout's policies must guard ReplicaSets; only an earlier checkout's (a
        // benchmark comparing builds) may predate that guard.
        let own_policies = Path::new(policies) == tools::workspace_root().join("crds/policies");
        let guards_replica_sets = own_policies
            || Path::new(policies)
                .join("rollgate-controller-replicasets.yaml")
                .exists();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stamped = self.kubectl(&[
                "create",
                "--dry-run=server",
                "-n",
                "default",
                "-f",
                &rollout,
                "-o",
                "jsonpath={.metadata.annotations.rollgate\\.io/requested-by}",
            ])?;
            let refused = self.kubectl(&[
                "create",
                "--dry-run=server",
                "-n",
                "default",
                "-f",
                &approval,
            ])?;
            // Someone with every RBAC permission who is not the controller.
            let forged = self.kubectl(&[
                "create",
                "--dry-run=server",
                "--as=policy-probe",
                "--as-group=system:masters",
                "-n",
                "default",
                "-f",
                &replica_set,
            ])?;
            let stamped = String::from_utf8_lossy(&stamped.stdout).trim() == ADMIN_USER;
            let replica_sets_guarded = !guards_replica_sets || !forged.status.success();
            if stamped && !refused.status.success() && replica_sets_guarded {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the admission policies were not in force after 30 s (requested-by stamped: {stamped}, approval refused: {}, forged ReplicaSet refused: {}: {})",
                    !refused.status.success(),
                    !forged.status.success(),
                    String::from_utf8_lossy(&forged.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Names `username` as the rollgate controller's identity: the ConfigMap the ownership
    /// policies (`rollgate-controller-owned`, `rollgate-controller-replicasets`) take as their
    /// parameter, in its namespace.
    pub fn install_controller_identity(&self, username: &str) -> Result<()> {
        use rollgate_crds::policies::controller_owned::{
            CONTROLLER_IDENTITY_KEY, CONTROLLER_IDENTITY_NAMESPACE, CONTROLLER_IDENTITY_PARAM,
        };
        let manifest = self.dir().join("controller-identity.json");
        std::fs::write(
            &manifest,
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": CONTROLLER_IDENTITY_NAMESPACE}},
                    {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": CONTROLLER_IDENTITY_PARAM,
                                  "namespace": CONTROLLER_IDENTITY_NAMESPACE},
                     "data": {CONTROLLER_IDENTITY_KEY: username}}
                ]
            }))?,
        )?;
        let manifest = manifest.to_str().context("manifest path is not UTF-8")?;
        let applied = self.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            manifest,
        ])?;
        if !applied.status.success() {
            bail!(
                "kubectl apply of the controller identity: {}",
                String::from_utf8_lossy(&applied.stderr)
            );
        }
        Ok(())
    }

    /// Applies the CRDs in `path` (a file or a directory) and waits until they are established.
    pub fn apply_crds(&self, path: &Path) -> Result<()> {
        let crds = path.to_str().context("CRD path is not UTF-8")?;
        let applied = self.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", crds])?;
        if !applied.status.success() {
            bail!(
                "kubectl apply of the CRDs in {crds}: {}",
                String::from_utf8_lossy(&applied.stderr)
            );
        }
        // `kubectl wait` fails at once (rather than waiting) while a new CRD has no conditions
        // yet, so it is retried until the deadline.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let waited = self.kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=10s",
                "-f",
                crds,
            ])?;
            if waited.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the CRDs in {crds} were not established: {}",
                    String::from_utf8_lossy(&waited.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the cluster (SIGTERM to `up`, which stops every component) and waits for it.
    pub fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        if self.up.try_wait()?.is_some() {
            return Ok(());
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.up.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.up.id());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.up.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.up.kill()?;
                bail!("the cluster did not stop within 30s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}
