//! A real Prometheus (Debian's `prometheus` package) on a free loopback port.
//!
//! It scrapes the targets listed in a file-based service-discovery file that
//! [`Prometheus::set_targets`] rewrites, so a test can add the demo app's instances after
//! start-up. Scrape and evaluation intervals are one second, to keep tests short.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::process::{free_port, spawn_supervised, stop, wait_http_ok};

/// The scrape interval the fixture configures.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// A running Prometheus; dropping it stops the process.
pub struct Prometheus {
    child: Child,
    port: u16,
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
    /// Starts Prometheus and waits until `/-/ready` answers.
    pub fn start() -> Result<Self> {
        let binary = std::env::var("ROLLGATE_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
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
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: rollgate-test\n    file_sd_configs:\n      \
                 - files: ['{}']\n        refresh_interval: 1s\n",
                targets.display()
            ),
        )?;
        let log = dir.path().join("prometheus.log");
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let mut child = spawn_supervised(&binary, &args, &log)?;
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        if let Err(error) = wait_http_ok(&ready, &mut child, Duration::from_secs(60), &log) {
            stop(&mut child);
            return Err(error.context("Prometheus did not become ready"));
        }
        Ok(Prometheus { child, port, dir })
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port Prometheus listens on.
    pub fn port(&self) -> u16 {
        self.port
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
