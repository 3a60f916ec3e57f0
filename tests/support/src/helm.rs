//! Helm and the rollgate chart (`charts/rollgate`).
//!
//! helm is built from its own Go module in `tests/tools/helm` (go.mod pins helm v4) into
//! `target/tools/helm` when missing or stale; a cold build takes about three minutes on two
//! cores. [`Helm`] runs it with a configuration, cache and data home of its own, so tests never
//! read or write the user's helm settings. The rest serves tests that run rollgate's binaries
//! as the chart's ServiceAccounts: rendered manifests as JSON documents, the container flags a
//! Deployment gives, ServiceAccount tokens and kubeconfigs that carry them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use crate::Cluster;

/// helm's main package, built from the module.
pub const HELM_PACKAGE: &str = "helm.sh/helm/v4/cmd/helm";

/// The path of the helm binary, built first if it is missing or stale.
pub fn helm_binary() -> Result<PathBuf> {
    crate::tools::go_tool("helm", HELM_PACKAGE, "helm")
}

/// The chart's directory, `charts/rollgate` in the workspace.
pub fn chart_dir() -> PathBuf {
    crate::tools::workspace_root().join("charts/rollgate")
}

/// helm with a home of its own (removed when dropped).
pub struct Helm {
    binary: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    /// Builds helm if needed and makes its home.
    pub fn new() -> Result<Self> {
        Ok(Helm {
            binary: helm_binary()?,
            home: tempfile::Builder::new()
                .prefix("rollgate-helm-")
                .tempdir()?,
        })
    }

    /// A helm command with its own configuration, cache and data directories and no
    /// kubeconfig from the environment (pass `--kubeconfig`).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        let home = self.home.path();
        command
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env_remove("KUBECONFIG");
        command
    }

    /// Runs helm with `args`; its standard output, or an error with both outputs.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let output = self
            .command()
            .args(args)
            .output()
            .with_context(|| format!("run {}", self.binary.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "helm {} failed ({}):\n{stdout}\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }

    /// `helm install <release> charts/rollgate --namespace <namespace> --wait` against
    /// `cluster` (its admin kubeconfig), waiting up to `timeout` (`90s`) for every resource to
    /// be ready, with `extra` arguments (`-f`, `--set`, `--create-namespace`).
    pub fn install(
        &self,
        cluster: &Cluster,
        release: &str,
        namespace: &str,
        timeout: &str,
        extra: &[&str],
    ) -> Result<String> {
        let kubeconfig = cluster
            .kubeconfig()
            .to_str()
            .context("kubeconfig path is not UTF-8")?;
        let chart = chart_dir();
        let chart = chart.to_str().context("chart path is not UTF-8")?;
        let mut args = vec![
            "install",
            release,
            chart,
            "--namespace",
            namespace,
            "--kubeconfig",
            kubeconfig,
            "--wait",
            "--timeout",
            timeout,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `helm template <release> charts/rollgate --namespace <namespace>` with `extra`
    /// arguments (`-f`, `--set`), as JSON documents.
    pub fn template(&self, release: &str, namespace: &str, extra: &[&str]) -> Result<Vec<Value>> {
        let chart = chart_dir();
        let chart = chart.to_str().context("chart path is not UTF-8")?;
        let mut args = vec!["template", release, chart, "--namespace", namespace];
        args.extend_from_slice(extra);
        documents(&self.run(&args)?)
    }
}

/// The documents of a multi-document YAML stream (helm's rendered manifests), empty ones left
/// out.
pub fn documents(yaml: &str) -> Result<Vec<Value>> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(yaml).context("parse the rendered manifests")?;
    Ok(documents
        .into_iter()
        .filter(|document| !document.is_null())
        .collect())
}

/// The document of `kind` named `name`.
pub fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name} in the manifests"))
}

/// The command-line flags of a Deployment's first container.
pub fn container_args(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .map(|args| {
            args.iter()
                .filter_map(|arg| arg.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A token of the ServiceAccount `namespace/name`, from the TokenRequest API (`kubectl create
/// token`). It lasts four hours: the chart's controller runs on it for the whole test run, and
/// a token that expired mid-run (it was ten minutes) silently stopped every later test's
/// Rollouts.
pub fn service_account_token(cluster: &Cluster, namespace: &str, name: &str) -> Result<String> {
    let output = cluster.kubectl(&["create", "token", name, "-n", namespace, "--duration=4h"])?;
    if !output.status.success() {
        bail!(
            "kubectl create token {namespace}/{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Writes to `path` a kubeconfig for `cluster` that authenticates with the bearer `token`
/// alone (the admin kubeconfig's server and CA, none of its credentials).
pub fn token_kubeconfig(cluster: &Cluster, token: &str, path: &Path) -> Result<()> {
    let admin: Value = serde_saphyr::from_str(&std::fs::read_to_string(cluster.kubeconfig())?)
        .context("parse the admin kubeconfig")?;
    let server = admin["clusters"][0].clone();
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [server],
        "users": [{"name": "token", "user": {"token": token}}],
        "contexts": [{"name": "token", "context": {"cluster": server["name"], "user": "token"}}],
        "current-context": "token"
    });
    std::fs::write(path, serde_json::to_vec_pretty(&kubeconfig)?)
        .with_context(|| format!("write {}", path.display()))
}

/// A client that authenticates with the kubeconfig at `path`.
pub async fn client_from(path: &Path) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}
