//! A cluster of its own with one real node (`rollgate-cluster up --real-node`): containerd,
//! runc and the CNI bridge plugin, the kubelet and kube-proxy, beside the kwok nodes; it runs
//! real pods from images built here.
//!
//! Only one real node can run on a machine (the kubelet's and kube-proxy's ports, the bridge
//! and the host state are fixed), so [`RealNodeCluster::start_with`] waits (through
//! [`claim_host`]) for the one before it to stop, in this process or another (the demo runs as
//! a process of its own beside the tests): the claim is an exclusive `flock` of
//! [`HOST_LOCK`], released when the claim is dropped or its process dies. It needs root, and the Debian packages `runc`, `containernetworking-plugins`, `iptables` and
//! `conntrack` (`scripts/setup.sh` installs them). The images imported into its containerd are
//! the pause image (`scripts/images.sh --images pause`, built when missing) and the probe
//! ([`PROBE_IMAGE`]), an HTTP server that reaches the API server through the `kubernetes`
//! Service.

use std::ffi::OsString;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cluster::Cluster;
use crate::tools;

/// The real node's name.
pub const NODE_NAME: &str = "rollgate-real-node";

/// The probe image, imported into the node's containerd (pods must use
/// `imagePullPolicy: Never`). It listens on port 8080: `/ready` is 200 once the API server has
/// answered the pod, `/` tells as JSON the address it used (`apiServer`) and who the API server
/// says the pod is (`user`).
pub const PROBE_IMAGE: &str = "rollgate.test/probe:1";

/// The port the probe listens on.
pub const PROBE_PORT: u16 = 8080;

/// The real node's address (on the host's `rg-br0` bridge). Pods reach the host there, so a
/// fixture that pods must reach (a registry, Prometheus) listens on it.
pub const NODE_IP: &str = "198.18.0.2";

/// The file whose exclusive lock is the right to run this machine's real node.
pub const HOST_LOCK: &str = "/run/rollgate-real-node.lock";

/// The right to run this machine's one real node (its ports, bridge and host state are fixed).
/// Holding it keeps every other real node, of this process or another, from starting, so a
/// test can look at the host before a node starts and after it stopped without another node
/// in view. It is an open file description of [`HOST_LOCK`] holding its exclusive `flock`,
/// which excludes every other one, in this process or another.
pub struct HostClaim {
    _lock: File,
}

/// Waits until no other real node of any process runs, and claims the host.
pub fn claim_host() -> Result<HostClaim> {
    let lock = lock_file()?;
    lock.lock().with_context(|| format!("lock {HOST_LOCK}"))?;
    Ok(HostClaim { _lock: lock })
}

/// Claims the host if no other real node runs now; `None` if one does.
pub fn try_claim_host() -> Result<Option<HostClaim>> {
    let lock = lock_file()?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(HostClaim { _lock: lock })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(error)) => {
            Err(anyhow::Error::new(error).context(format!("lock {HOST_LOCK}")))
        }
    }
}

fn lock_file() -> Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(HOST_LOCK)
        .with_context(|| format!("open {HOST_LOCK} (the real node needs root)"))
}

/// How [`RealNodeCluster::start_with`] sets the cluster up.
#[derive(Debug, Clone)]
pub struct RealNodeOptions {
    /// Registries (`host:port`) the node's containerd pulls from over plain HTTP.
    pub plain_http_registries: Vec<String>,
    /// Fake kwok nodes beside the real one (`up --nodes`); with none, every pod runs on the
    /// real node.
    pub kwok_nodes: u32,
}

impl Default for RealNodeOptions {
    fn default() -> Self {
        Self {
            plain_http_registries: Vec::new(),
            kwok_nodes: 2,
        }
    }
}

/// A running cluster with a real node. Dropping it stops the cluster, and `up` undoes the
/// node's changes to the host.
pub struct RealNodeCluster {
    cluster: Cluster,
    claim: HostClaim,
}

impl RealNodeCluster {
    /// Claims the host (waiting for any other real node of the process to stop), builds the
    /// images, starts the cluster set up as `options` say and waits until the real node is
    /// Ready (`up` prints its ready line only then). Blocking.
    pub fn start_with(options: &RealNodeOptions) -> Result<Self> {
        Self::start_claimed(claim_host()?, options)
    }

    /// As [`Self::start_with`], on a host already claimed with [`claim_host`].
    pub fn start_claimed(claim: HostClaim, options: &RealNodeOptions) -> Result<Self> {
        let (pause, pause_name) = pause_image()?;
        let probe = probe_binary()?;
        let binary = tools::cluster_binary()?;
        let mut archive_error = None;
        let cluster = Cluster::start_with(|dir| {
            let probe_archive = dir.join("probe.tar");
            let made = Command::new(&binary)
                .args(["image-archive", "--name", PROBE_IMAGE, "--binary"])
                .arg(&probe)
                .arg("--out")
                .arg(&probe_archive)
                .args(["--", "--listen", &format!(":{PROBE_PORT}")])
                .output();
            match made {
                Ok(out) if out.status.success() => {}
                Ok(out) => archive_error = Some(String::from_utf8_lossy(&out.stderr).into_owned()),
                Err(error) => archive_error = Some(error.to_string()),
            }
            let mut args: Vec<OsString> =
                ["--real-node", "--sandbox-image", &pause_name, "--import"]
                    .into_iter()
                    .map(OsString::from)
                    .collect();
            args.push(pause.clone().into());
            args.push("--import".into());
            args.push(probe_archive.into());
            args.push(format!("--nodes={}", options.kwok_nodes).into());
            for registry in &options.plain_http_registries {
                args.push(format!("--plain-http-registry={registry}").into());
            }
            args
        });
        if let Some(error) = archive_error {
            bail!("image-archive of the probe: {error}");
        }
        Ok(Self {
            cluster: cluster?,
            claim,
        })
    }

    /// The cluster (kubeconfig, kubectl, clients, its directory).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Stops the cluster and waits until `up` has exited, its teardown done. The host stays
    /// claimed until the returned claim is dropped.
    pub fn stop(self) -> Result<HostClaim> {
        self.cluster.stop()?;
        Ok(self.claim)
    }
}

/// The pause image's tarball and name, built by `scripts/images.sh` when missing.
fn pause_image() -> Result<(PathBuf, String)> {
    let root = tools::workspace_root();
    let archive = root.join("target/images/rollgate-pause.tar");
    let name = format!(
        "rollgate.local/rollgate-pause:{}",
        env!("CARGO_PKG_VERSION")
    );
    if !archive.exists() {
        let status = Command::new("bash")
            .arg(root.join("scripts/images.sh"))
            .args(["--images", "pause", "--no-sign"])
            .current_dir(&root)
            .status()
            .context("run scripts/images.sh")?;
        if !status.success() || !archive.exists() {
            bail!(
                "scripts/images.sh --images pause did not write {}",
                archive.display()
            );
        }
    }
    Ok((archive, name))
}

/// The probe's static binary, built from `tests/cluster/probe` when missing or stale.
fn probe_binary() -> Result<PathBuf> {
    let module = tools::workspace_root().join("tests/cluster");
    let source = module.join("probe/main.go");
    let binary = tools::tools_dir().join("rollgate-probe");
    let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    if modified(&binary).is_none_or(|built| modified(&source).is_some_and(|s| s > built)) {
        std::fs::create_dir_all(tools::tools_dir())?;
        let status = Command::new("go")
            .args(["build", "-trimpath", "-ldflags", "-s -w", "-o"])
            .arg(&binary)
            .arg("./probe")
            .current_dir(&module)
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .status()
            .context("run `go build ./probe` in tests/cluster")?;
        if !status.success() {
            bail!("`go build ./probe` failed: {status}");
        }
    }
    Ok(binary)
}
