//! The demo workload (`rollgate-demo-app serve`) as real processes, one per revision, and its
//! load generator (`rollgate-demo-app load`). Kwok pods run no containers, so these processes
//! produce the metrics that Prometheus scrapes and analysis judges.
//!
//! Binaries come from this workspace's cargo target directory (`CARGO_TARGET_DIR` when set);
//! the first use in a test process runs `cargo build` for them, which is quick when they are
//! up to date. `ROLLGATE_DEMO_APP_BIN` overrides the path. Every process runs under the cluster
//! binary's `supervise` command, so it dies with the test process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::{free_port, http_agent, spawn_supervised, stop, wait_http_ok};
use crate::prometheus::ScrapeTarget;
use crate::tools::workspace_root;

/// The requests per second a load generator sends by default.
pub const DEFAULT_RPS: f64 = 20.0;

/// The binaries built by this process: name and path, or why the build failed.
type Built = Vec<(String, std::result::Result<PathBuf, String>)>;

static BUILT: Mutex<Built> = Mutex::new(Vec::new());

/// The path of binary `bin` of workspace package `package`: `$override_env` if set, else
/// `<target>/debug/<bin>`, built (or brought up to date) by `cargo build` once per process.
pub fn workspace_binary(package: &str, bin: &str, override_env: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(override_env) {
        return Ok(PathBuf::from(path));
    }
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, found)) = built.iter().find(|(name, _)| name == bin) {
        return found.clone().map_err(anyhow::Error::msg);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let binary = target.join("debug").join(bin);
    let found = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(workspace_root())
        .status()
        .map_err(|error| format!("run cargo build for {bin}: {error}"))
        .and_then(|status| {
            if status.success() {
                Ok(binary)
            } else {
                Err(format!("cargo build of {bin} failed: {status}"))
            }
        });
    built.push((bin.to_owned(), found.clone()));
    found.map_err(anyhow::Error::msg)
}

/// The demo app's binary.
pub fn demo_app_binary() -> Result<PathBuf> {
    workspace_binary(
        "rollgate-demo-app",
        "rollgate-demo-app",
        "ROLLGATE_DEMO_APP_BIN",
    )
}

/// A running demo workload for one revision; dropping it stops the process.
pub struct DemoApp {
    child: Child,
    port: u16,
    revision: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DemoApp {
    /// Starts `rollgate-demo-app serve` for `revision`, failing `error_rate` (0 to 1) of its
    /// requests after `latency`, and waits until it answers.
    pub fn start(revision: &str, error_rate: f64, latency: Duration) -> Result<Self> {
        let binary = demo_app_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rollgate-demo-app-")
            .tempdir()?;
        let port = free_port()?;
        let log = dir.path().join(format!("demo-app-{revision}.log"));
        let args = vec![
            "serve".to_owned(),
            format!("--listen=127.0.0.1:{port}"),
            format!("--revision={revision}"),
            format!("--error-rate={error_rate}"),
            format!("--latency-ms={}", latency.as_millis()),
        ];
        let mut child = spawn_supervised(&binary.to_string_lossy(), &args, &log)?;
        let health = format!("http://127.0.0.1:{port}/healthz");
        if let Err(error) = wait_http_ok(&health, &mut child, Duration::from_secs(30), &log) {
            stop(&mut child);
            return Err(error.context(format!("the demo app for {revision} did not start")));
        }
        Ok(DemoApp {
            child,
            port,
            revision: revision.to_owned(),
            log,
            _dir: dir,
        })
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`, as a Prometheus scrape target.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The revision this instance serves.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// A scrape target for this instance with `labels` attached to its series.
    pub fn scrape_target(&self, labels: &[(&str, &str)]) -> ScrapeTarget {
        ScrapeTarget {
            address: self.address(),
            labels: labels
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// Changes the fraction of requests that fail, at once.
    pub fn set_error_rate(&self, error_rate: f64) -> Result<()> {
        self.configure(&format!("error_rate={error_rate}"))
    }

    /// Changes the latency of every request, at once.
    pub fn set_latency(&self, latency: Duration) -> Result<()> {
        self.configure(&format!("latency_ms={}", latency.as_millis()))
    }

    fn configure(&self, query: &str) -> Result<()> {
        let url = format!("{}/admin/config?{query}", self.url());
        let mut response = http_agent()
            .post(&url)
            .send_empty()
            .with_context(|| format!("POST {url}"))?;
        if response.status() != 200 {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            bail!("POST {url} answered {}: {body}", response.status());
        }
        Ok(())
    }

    /// Starts a load generator that sends `rps` requests per second to this instance for
    /// `duration`.
    pub fn load(&self, rps: f64, duration: Duration) -> Result<LoadGenerator> {
        LoadGenerator::start(&[self.url()], rps, duration)
    }

    /// The last lines of the app's log.
    pub fn log_tail(&self) -> String {
        crate::process::tail(&self.log)
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A running load generator; dropping it stops the process.
pub struct LoadGenerator {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoadGenerator {
    /// Sends `rps` requests per second, round-robin over `targets` (URLs), for `duration`
    /// (at most an hour; the generator then exits by itself).
    pub fn start(targets: &[String], rps: f64, duration: Duration) -> Result<Self> {
        Self::spawn(targets, rps, duration, false)
    }

    /// As [`Self::start`], opening a new connection for every request, so that a Service in
    /// front of several pods (kube-proxy picks a pod per connection) spreads the requests over
    /// them.
    pub fn start_over_new_connections(
        targets: &[String],
        rps: f64,
        duration: Duration,
    ) -> Result<Self> {
        Self::spawn(targets, rps, duration, true)
    }

    fn spawn(
        targets: &[String],
        rps: f64,
        duration: Duration,
        new_connection_per_request: bool,
    ) -> Result<Self> {
        if targets.is_empty() {
            bail!("a load generator needs at least one target");
        }
        let binary = demo_app_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rollgate-load-")
            .tempdir()?;
        let log = dir.path().join("load.log");
        let mut args = vec![
            "load".to_owned(),
            format!("--rps={rps}"),
            format!("--duration={}", duration_flag(duration)),
        ];
        args.extend(targets.iter().map(|target| format!("--target={target}")));
        if new_connection_per_request {
            args.push("--new-connection-per-request".to_owned());
        }
        let child = spawn_supervised(&binary.to_string_lossy(), &args, &log)?;
        Ok(LoadGenerator {
            child,
            log,
            _dir: dir,
        })
    }

    /// Whether it still sends load.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its output so far (the summary once it has finished).
    pub fn output(&self) -> String {
        crate::process::tail(&self.log)
    }

    /// Stops it now.
    pub fn stop(&mut self) {
        stop(&mut self.child);
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `duration` in the demo app's duration grammar (at most six digits a number): whole seconds
/// when it is whole seconds, milliseconds otherwise.
fn duration_flag(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_stay_within_six_digits_a_number() {
        assert_eq!(duration_flag(Duration::from_secs(1800)), "1800s");
        assert_eq!(duration_flag(Duration::from_millis(1500)), "1500ms");
    }
}
