//! The analysis service (`rollgate-analysis`) as a real process on free loopback ports.
//!
//! The binary comes from this workspace's cargo target directory, built once per test process
//! (see [`crate::demo_app::workspace_binary`]); `ROLLGATE_ANALYSIS_BIN` overrides the path. It
//! runs under the cluster binary's `supervise` command, so it dies with the test process.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::Result;

use crate::Cluster;
use crate::demo_app::workspace_binary;
use crate::process::{free_port, spawn_supervised_with_env, stop, wait_http_ok};

/// The user name the test controller authenticates to the analysis service as.
pub const CONTROLLER_CALLER: &str = "system:serviceaccount:rollgate-system:rollgate-controller";

/// Who may call a test analysis service.
#[derive(Clone, Copy)]
pub enum Callers<'a> {
    /// Anyone (`--authentication=none`), for tests about analysis rather than its callers.
    Anyone,
    /// Bearer tokens reviewed against `cluster`, of the users in `allowed` (unless the extra
    /// arguments name the callers themselves).
    Reviewed {
        /// The cluster whose TokenReview API checks tokens.
        cluster: &'a Cluster,
        /// The user names allowed.
        allowed: &'a [&'a str],
    },
}

/// The test controller's identity for the analysis service: the ServiceAccount
/// `rollgate-system/rollgate-controller` on `cluster` (created if missing) and a file in the
/// cluster's directory holding a token of it valid for six hours.
pub fn controller_token_file(cluster: &Cluster) -> Result<PathBuf> {
    let manifest = cluster.dir().join("rollgate-controller-account.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: rollgate-system}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\n\
         metadata: {name: rollgate-controller, namespace: rollgate-system}\n",
    )?;
    let manifest_path = manifest.to_string_lossy().into_owned();
    let applied = cluster.kubectl(&["apply", "-f", &manifest_path])?;
    anyhow::ensure!(
        applied.status.success(),
        "create the controller's ServiceAccount: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let token = cluster.kubectl(&[
        "create",
        "token",
        "rollgate-controller",
        "--namespace=rollgate-system",
        "--duration=6h",
    ])?;
    anyhow::ensure!(
        token.status.success(),
        "a token for the controller: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    let file = cluster.dir().join("rollgate-controller.token");
    std::fs::write(&file, String::from_utf8_lossy(&token.stdout).trim())?;
    Ok(file)
}

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
    /// Starts the workspace's analysis service, open to anyone, and waits until it is ready.
    pub fn start() -> Result<Self> {
        Self::start_binary(&analysis_binary()?, &[])
    }

    /// Starts the workspace's analysis service admitting only the test controller
    /// ([`CONTROLLER_CALLER`], see [`controller_token_file`]), its tokens reviewed by `cluster`.
    pub fn start_for_controller(cluster: &Cluster) -> Result<Self> {
        let callers = Callers::Reviewed {
            cluster,
            allowed: &[CONTROLLER_CALLER],
        };
        Self::start_with(&analysis_binary()?, callers, &[])
    }

    /// Starts `binary`, open to anyone, with `extra_args` added to its command line (for
    /// example `--query-timeout=1s`) and waits until it is ready.
    pub fn start_binary(binary: &Path, extra_args: &[&str]) -> Result<Self> {
        Self::start_with(binary, Callers::Anyone, extra_args)
    }

    /// Starts `binary` admitting `callers`, with `extra_args` added to its command line, and
    /// waits until it is ready. Unless `extra_args` say otherwise, Prometheus on any loopback
    /// port is allowed (`--prometheus-allowed=http://127.0.0.1:*`).
    pub fn start_with(binary: &Path, callers: Callers<'_>, extra_args: &[&str]) -> Result<Self> {
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
        let given = |flag: &str| extra_args.iter().any(|arg| arg.starts_with(flag));
        if !given("--prometheus-allowed") {
            args.push("--prometheus-allowed=http://127.0.0.1:*".to_owned());
        }
        let mut env = Vec::new();
        match callers {
            Callers::Anyone if !given("--authentication") => {
                args.push("--authentication=none".to_owned());
            }
            Callers::Anyone => {}
            Callers::Reviewed { cluster, allowed } => {
                if !given("--authentication") {
                    args.push("--authentication=token-review".to_owned());
                }
                if !given("--allowed-callers") {
                    args.push(format!("--allowed-callers={}", allowed.join(",")));
                }
                let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
                env.push(("KUBECONFIG".to_owned(), kubeconfig));
            }
        }
        args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
        let mut child = spawn_supervised_with_env(&binary.to_string_lossy(), &args, &env, &log)?;
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
