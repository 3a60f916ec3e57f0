//! The analysis service (`rollgate-analysis`) as a real process on free loopback ports.
//!
//! The binary comes from this workspace's cargo target directory, built once per test process
//! (see [`crate::demo_app::workspace_binary`]); `ROLLGATE_ANALYSIS_BIN` overrides the path. It
//! runs under the cluster binary's `supervise` command, so it dies with the test process.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::Result;

use crate::demo_app::workspace_binary;
use crate::process::{free_port, spawn_supervised, stop, wait_http_ok};

/// The analysis service's binary.
pub fn analysis_binary() -> Result<PathBuf> {
    workspace_binary(
        "rollgate-analysis",
        "rollgate-analysis",
        "ROLLGATE_ANALYSIS_BIN",
    )
}

/// A running analysis service; dropping it stops the process.
pub struct AnalysisServer {
    child: Child,
    grpc_port: u16,
    admin_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl AnalysisServer {
    /// Starts the workspace's analysis service and waits until it is ready.
    pub fn start() -> Result<Self> {
        Self::start_binary(&analysis_binary()?, &[])
    }

    /// Starts `binary` with `extra_args` added to its command line (for example
    /// `--query-timeout=1s`) and waits until it is ready.
    pub fn start_binary(binary: &Path, extra_args: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rollgate-analysis-")
            .tempdir()?;
        let grpc_port = free_port()?;
        let admin_port = free_port()?;
        let log = dir.path().join("analysis.log");
        let mut args = vec![
            format!("--grpc-addr=127.0.0.1:{grpc_port}"),
            format!("--admin-addr=127.0.0.1:{admin_port}"),
        ];
        args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
        let mut child = spawn_supervised(&binary.to_string_lossy(), &args, &log)?;
        let ready = format!("http://127.0.0.1:{admin_port}/ready");
        if let Err(error) = wait_http_ok(&ready, &mut child, Duration::from_secs(30), &log) {
            stop(&mut child);
            return Err(error.context("the analysis service did not become ready"));
        }
        Ok(AnalysisServer {
            child,
            grpc_port,
            admin_port,
            log,
            _dir: dir,
        })
    }

    /// The gRPC address, `127.0.0.1:<port>`.
    pub fn grpc_address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    /// The gRPC endpoint URL, `http://127.0.0.1:<port>`, for a tonic channel.
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// The admin server's base URL (`/live`, `/ready`, `/metrics`).
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The last lines of the service's log.
    pub fn log_tail(&self) -> String {
        crate::process::tail(&self.log)
    }

    /// Stops the service now.
    pub fn stop(&mut self) {
        stop(&mut self.child);
    }
}

impl Drop for AnalysisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
