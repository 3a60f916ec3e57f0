//! A real Prometheus on a free port, built from its Go module in `tests/tools/prometheus` into
//! `target/tools/prometheus` (Debian's package leaves out Kubernetes service discovery). The
//! build keeps only the file, HTTP and Kubernetes discovery plugins (build tags
//! [`PROMETHEUS_TAGS`]), which saves minutes of compiling cloud SDKs nobody here uses.
//! `ROLLGATE_PROMETHEUS` names another binary to use instead.
//!
//! [`Prometheus::start`] scrapes the targets listed in a file-based service-discovery file that
//! [`Prometheus::set_targets`] rewrites, so a test can add the demo app's instances after
//! start-up; [`Prometheus::start_discovering_pods`] finds real pods through the Kubernetes API,
//! as a cluster's Prometheus does. Scrape and evaluation intervals are one second, to keep tests short.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::process::{free_port, spawn_supervised, stop, wait_http_ok};

/// Prometheus' main package, built from the module.
pub const PROMETHEUS_PACKAGE: &str = "github.com/prometheus/prometheus/cmd/prometheus";

/// The build tags: no service discovery but the minimum (file, HTTP) and Kubernetes.
pub const PROMETHEUS_TAGS: &[&str] = &["remove_all_sd", "enable_kubernetes_sd"];

/// The path of the Prometheus binary: `ROLLGATE_PROMETHEUS` when set, else the one built from
/// `tests/tools/prometheus` (built first if it is missing or stale; a cold build takes a few
/// minutes on two cores).
pub fn prometheus_binary() -> Result<PathBuf> {
    match std::env::var_os("ROLLGATE_PROMETHEUS") {
        Some(binary) => Ok(PathBuf::from(binary)),
        None => crate::tools::go_tool_tagged(
            "prometheus",
            PROMETHEUS_PACKAGE,
            "prometheus",
            PROMETHEUS_TAGS,
        ),
    }
}

/// The scrape interval the fixture configures.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// A running Prometheus; dropping it stops the process.
pub struct Prometheus {
    child: Child,
    /// `ip:port` it listens on.
    address: String,
    dir: tempfile::TempDir,
}

/// One scrape target: `host:port` and the labels to attach to its series.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    /// `host:port` to scrape at `/metrics`.
    pub address: String,
    /// Labels attached to every series scraped from it.
    pub labels: Vec<(String, String)>,
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping the targets [`Self::set_targets`]
    /// lists, and waits until `/-/ready` answers.
    pub fn start() -> Result<Self> {
        Self::start_with("127.0.0.1", |targets| {
            format!(
                "  - job_name: rollgate-test\n    file_sd_configs:\n      \
                 - files: ['{}']\n        refresh_interval: 1s\n",
                targets.display()
            )
        })
    }

    /// Starts Prometheus listening on `listen_ip` (for example the real node's address, which
    /// pods reach), discovering pods through the Kubernetes API with `kubeconfig`
    /// (`kubernetes_sd_configs`, role `pod`) in job `kubernetes-pods`. It scrapes, by pod IP,
    /// every pod annotated `prometheus.io/scrape: "true"` on the port named by
    /// `prometheus.io/port`, and labels its series `namespace`, `pod`, `service` (the pod's `app`
    /// label) and `revision` (its `rollgate.io/revision` label).
    pub fn start_discovering_pods(listen_ip: &str, kubeconfig: &Path) -> Result<Self> {
        let kubeconfig = kubeconfig.display().to_string();
        Self::start_with(listen_ip, |_| {
            format!(
                r#"  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: '{kubeconfig}'
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: (.+);(.+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_label_app]
        target_label: service
      - source_labels: [__meta_kubernetes_pod_label_rollgate_io_revision]
        target_label: revision
"#
            )
        })
    }

    /// Starts Prometheus on `listen_ip` with the scrape configs `scrape_configs` returns (given
    /// the path of the file-based discovery file).
    fn start_with(listen_ip: &str, scrape_configs: impl FnOnce(&Path) -> String) -> Result<Self> {
        let binary = prometheus_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rollgate-prometheus-")
            .tempdir()?;
        let port = free_port()?;
        let targets = dir.path().join("targets.json");
        std::fs::write(&targets, "[]")?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}",
                scrape_configs(&targets)
            ),
        )?;
        let log = dir.path().join("prometheus.log");
        let address = format!("{listen_ip}:{port}");
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={address}"),
        ];
        let mut child =
            spawn_supervised(binary.to_str().context("path is not UTF-8")?, &args, &log)?;
        let ready = format!("http://{address}/-/ready");
        if let Err(error) = wait_http_ok(&ready, &mut child, Duration::from_secs(60), &log) {
            stop(&mut child);
            return Err(error.context("Prometheus did not become ready"));
        }
        Ok(Prometheus {
            child,
            address,
            dir,
        })
    }

    /// The base URL, `http://<ip>:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The port Prometheus listens on.
    pub fn port(&self) -> u16 {
        self.address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_default()
    }

    /// Waits up to `timeout` until the instant query `query` returns at least one series (for
    /// example until the demo apps' rates have been scraped).
    pub fn wait_for_result(&self, query: &str, timeout: Duration) -> Result<()> {
        let url = format!("{}/api/v1/query", self.url());
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let body: serde_json::Value = crate::process::http_agent()
                .get(&url)
                .query("query", query)
                .call()
                .with_context(|| format!("query {query}"))?
                .body_mut()
                .read_json()?;
            if body["data"]["result"]
                .as_array()
                .is_some_and(|result| !result.is_empty())
            {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "Prometheus returned nothing for {query} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Replaces the scrape targets; Prometheus picks the change up within a second or two.
    pub fn set_targets(&self, targets: &[ScrapeTarget]) -> Result<()> {
        let groups: Vec<_> = targets
            .iter()
            .map(|target| {
                let labels: serde_json::Map<String, serde_json::Value> = target
                    .labels
                    .iter()
                    .map(|(key, value)| (key.clone(), json!(value)))
                    .collect();
                json!({"targets": [target.address], "labels": labels})
            })
            .collect();
        // Write beside, then rename: Prometheus must never read a half-written file.
        let partial = self.dir.path().join("targets.json.partial");
        std::fs::write(&partial, serde_json::to_vec(&groups)?)?;
        std::fs::rename(&partial, self.targets_file()).context("replace targets.json")
    }

    fn targets_file(&self) -> PathBuf {
        self.dir.path().join("targets.json")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
