//! The rollgate controller as a real process against the local cluster.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::Cluster;
use crate::analysis::AnalysisServer;

/// A running controller process; dropping it kills the process.
pub struct ControllerProcess {
    child: Child,
    log: PathBuf,
    admin_port: u16,
}

/// How a test controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Instance name (in the Lease, Events and the log file name).
    pub name: String,
    /// Seconds the leader Lease stays valid without renewal.
    pub lease_duration_seconds: u64,
    /// The AnalysisService's URL (`ROLLGATE_ANALYSIS_ADDR`), if analyses should run.
    pub analysis_addr: Option<String>,
    /// Verify signatures against ImagePolicies (`ROLLGATE_IMAGE_VERIFICATION=enforce`). Off by
    /// default here: the rollout-mechanics tests use fake digests that no registry holds; the
    /// verification tests turn it on, on a cluster of their own.
    pub verify_images: bool,
    /// Registries reached over plain HTTP (`ROLLGATE_INSECURE_REGISTRIES`).
    pub insecure_registries: Vec<String>,
    /// The file holding the token the controller sends to the analysis service
    /// (`ROLLGATE_ANALYSIS_TOKEN_FILE`), if any.
    pub analysis_token_file: Option<PathBuf>,
    /// The kubeconfig the controller runs with (for example a ServiceAccount token's); the
    /// cluster's admin kubeconfig when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// Extra command-line flags; a flag given here overrides the environment variable above.
    pub args: Vec<String>,
    /// Extra environment variables, set last (so `RUST_LOG` here replaces the default).
    pub env: Vec<(String, String)>,
}

impl ControllerOptions {
    /// Options for an instance called `name`, with a 4-second lease for quick failovers.
    pub fn named(name: &str) -> Self {
        ControllerOptions {
            name: name.to_owned(),
            lease_duration_seconds: 4,
            analysis_addr: None,
            analysis_token_file: None,
            verify_images: false,
            insecure_registries: Vec::new(),
            kubeconfig: None,
            args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// The controller binary: `ROLLGATE_CONTROLLER_BIN` if set (benchmarks use the release build),
/// else this workspace's debug build, brought up to date once per process.
pub fn controller_binary() -> Result<PathBuf> {
    crate::demo_app::workspace_binary(
        "rollgate-controller",
        "rollgate-controller",
        "ROLLGATE_CONTROLLER_BIN",
    )
}

impl ControllerProcess {
    /// Starts a controller against `cluster`, logging to a file in the cluster's directory.
    /// It runs under the cluster binary's supervisor, so it dies with the test process.
    pub fn start(cluster: &Cluster, options: &ControllerOptions) -> Result<Self> {
        let binary = controller_binary()?;
        let name = &options.name;
        let admin_port = crate::process::free_port()?;
        let log = cluster.dir().join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut command = Command::new(crate::tools::cluster_binary()?);
        if let Some(address) = &options.analysis_addr {
            command.env("ROLLGATE_ANALYSIS_ADDR", address);
        }
        if let Some(file) = &options.analysis_token_file {
            command.env("ROLLGATE_ANALYSIS_TOKEN_FILE", file);
        }
        let verification = if options.verify_images {
            "enforce"
        } else {
            "off"
        };
        command
            .env("ROLLGATE_IMAGE_VERIFICATION", verification)
            .env(
                "ROLLGATE_INSECURE_REGISTRIES",
                options.insecure_registries.join(","),
            );
        let child = command
            .arg("supervise")
            .arg("--")
            .arg(&binary)
            .args(&options.args)
            .env(
                "KUBECONFIG",
                options
                    .kubeconfig
                    .as_deref()
                    .unwrap_or(cluster.kubeconfig()),
            )
            .env("ROLLGATE_INSTANCE", name)
            .env("ROLLGATE_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("ROLLGATE_GRPC_ADDR", "127.0.0.1:0")
            .env(
                "ROLLGATE_LEASE_DURATION_SECONDS",
                options.lease_duration_seconds.to_string(),
            )
            .env("RUST_LOG", "info,kube=warn")
            .envs(options.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut process = ControllerProcess {
            child,
            log,
            admin_port,
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Some(status) = process.child.try_wait()? {
            bail!(
                "the controller exited at once ({status}):\n{}",
                process.log_tail()
            );
        }
        Ok(process)
    }

    /// The admin server's base URL (`/live`, `/ready`, `/metrics`).
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The value of a metric summed over its labels (`rollgate_leader`,
    /// `rollgate_api_requests_total`), or `None` when the admin server does not answer or has
    /// no series of that name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let url = format!("{}/metrics", self.admin_url());
        let mut response = crate::process::http_agent().get(&url).call().ok()?;
        let text = response.body_mut().read_to_string().ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(name)?;
                let value = match rest.strip_prefix('{') {
                    Some(labelled) => labelled.split_once("} ")?.1,
                    None => rest.strip_prefix(' ')?,
                };
                value.trim().parse().ok()
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// The process id of the controller itself (the supervisor's child), if it runs.
    pub fn pid(&self) -> Option<u32> {
        crate::process::supervised_pid(&self.child)
    }

    /// The controller's log file.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// The last lines of the controller's log.
    pub fn log_tail(&self) -> String {
        crate::process::tail(&self.log)
    }

    /// Kills the controller (SIGKILL, as a crash would): the controller itself first, then its
    /// supervisor (whose death alone would only send the controller SIGTERM, a graceful stop).
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
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
        let analysis = shared_analysis_server().map_err(|error| format!("{error:#}"))?;
        let token = crate::analysis::controller_token_file(crate::shared_cluster())
            .map_err(|error| format!("{error:#}"))?;
        let options = ControllerOptions {
            analysis_addr: Some(analysis.grpc_url()),
            analysis_token_file: Some(token),
            ..ControllerOptions::named("controller-shared")
        };
        ControllerProcess::start(crate::shared_cluster(), &options)
            .map_err(|error| format!("{error:#}"))
    });
    match started {
        Ok(controller) => controller,
        Err(error) => panic!("the controller could not start: {error}"),
    }
}

static SHARED_ANALYSIS: OnceLock<std::result::Result<AnalysisServer, String>> = OnceLock::new();

/// The analysis service the shared controller measures through, started once per test process;
/// it admits only the shared controller's ServiceAccount.
pub fn shared_analysis_server() -> Result<&'static AnalysisServer> {
    let started = SHARED_ANALYSIS.get_or_init(|| {
        AnalysisServer::start_for_controller(crate::shared_cluster())
            .map_err(|error| format!("{error:#}"))
    });
    match started {
        Ok(server) => Ok(server),
        Err(error) => bail!("the analysis service could not start: {error}"),
    }
}
