//! The rollgate controller as a real process against the local cluster.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::Cluster;
use crate::tools::workspace_root;

/// A running controller process; dropping it kills the process.
pub struct ControllerProcess {
    child: Child,
    log: PathBuf,
}

static BINARY: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

/// The controller binary of this workspace (`target/debug/rollgate-controller`), built by
/// `cargo build` first when it is missing.
pub fn controller_binary() -> Result<PathBuf> {
    let found = BINARY.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let binary = target.join("debug/rollgate-controller");
        if !binary.exists() {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "build",
                    "-p",
                    "rollgate-controller",
                    "--bin",
                    "rollgate-controller",
                ])
                .current_dir(workspace_root())
                .status()
                .map_err(|error| format!("run cargo build: {error}"))?;
            if !status.success() {
                return Err(format!(
                    "cargo build of rollgate-controller failed: {status}"
                ));
            }
        }
        Ok(binary)
    });
    found.clone().map_err(anyhow::Error::msg)
}

impl ControllerProcess {
    /// Starts a controller against `cluster`, logging to a file in the cluster's directory.
    /// It runs under the cluster binary's supervisor, so it dies with the test process.
    pub fn start(cluster: &Cluster, name: &str) -> Result<Self> {
        let binary = controller_binary()?;
        let log = cluster.dir().join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(crate::tools::cluster_binary()?)
            .arg("supervise")
            .arg("--")
            .arg(&binary)
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("ROLLGATE_INSTANCE", name)
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut process = ControllerProcess { child, log };
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Some(status) = process.child.try_wait()? {
            bail!(
                "the controller exited at once ({status}):\n{}",
                process.log_tail()
            );
        }
        Ok(process)
    }

    /// The last lines of the controller's log.
    pub fn log_tail(&self) -> String {
        crate::process::tail(&self.log)
    }

    /// Kills the controller (SIGKILL, as a crash would).
    pub fn kill(&mut self) {
        crate::process::stop(&mut self.child);
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

static SHARED: OnceLock<std::result::Result<ControllerProcess, String>> = OnceLock::new();

/// One controller for every test of this process, against the shared cluster.
pub fn shared_controller() -> &'static ControllerProcess {
    let started = SHARED.get_or_init(|| {
        ControllerProcess::start(crate::shared_cluster(), "controller-shared")
            .map_err(|error| format!("{error:#}"))
    });
    match started {
        Ok(controller) => controller,
        Err(error) => panic!("the controller could not start: {error}"),
    }
}
