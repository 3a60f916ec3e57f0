//! Stage 1's stack: rollgate installed as a platform team installs it, on a local cluster of
//! the demo's own with one real node (containerd, kubelet, kube-proxy): rollgate's images built
//! and signed here, the chart installed by Helm with those digests, the controller (two
//! replicas, leader election) and the analysis service as real pods, a Prometheus that finds
//! pods through the Kubernetes API, and the registry the node pulls from
//! ([`RealInstall`]). The audit log is signed with a key made for the run (the verifier half
//! stays on the host) and its checkpoints go to the registry, outside the cluster's API.
//!
//! A machine runs one real node at a time: when a test (or another demo) holds it, the demo
//! says so and waits its turn. Later stages send real requests through the app's Service.
//! Dropping the stack stops every process (the load first, the cluster last, which undoes the
//! node's changes to the host).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Api;
use kube::api::PostParams;
use rollgate_testsupport::LoadGenerator;
use rollgate_testsupport::process::http_agent;
use rollgate_testsupport::real_install::RealInstall;
use rollgate_testsupport::real_install::{InstallOptions, NAMESPACE as ROLLGATE_NAMESPACE};
use rollgate_testsupport::real_node::{claim_host, try_claim_host};
use serde_json::Value;

use crate::narrate::{Narrator, Progress};
use crate::plugin::Plugin;

/// Requests per second sent through the app's Service.
pub const RPS: f64 = 40.0;

/// Everything the demo runs on.
pub struct Stack {
    /// The load through the app's Service, once started.
    load: Option<LoadGenerator>,
    /// An admin client.
    pub client: kube::Client,
    /// The admin's user name.
    pub admin: String,
    /// The audit log's verifier key (on the host, out of the cluster's reach).
    pub audit_verifier: PathBuf,
    /// rollgate, installed on the cluster with its real node.
    pub install: RealInstall,
    /// The audit key pair's directory (removed at the end).
    _keys: tempfile::TempDir,
}

/// Runs a blocking fixture call on a blocking thread, so signals are still seen meanwhile. If
/// the demo is interrupted first, whatever it returns is dropped, and so stopped.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await?
}

impl Stack {
    /// Claims the machine's real node (waiting for another run to let go of it), makes the
    /// audit key pair, and installs rollgate.
    pub async fn start(narrator: &Narrator, plugin: &Plugin) -> Result<Stack> {
        let progress = Arc::new(Progress::new());
        let claim = match try_claim_host()? {
            Some(claim) => claim,
            None => {
                narrator.note(
                    "another run (a test, or another demo) is using this machine's real node: \
                     waiting until it has stopped",
                );
                progress.around(blocking(claim_host)).await?
            }
        };

        narrator.step(
            "making the audit log's signing key pair: the controller gets the signer half (a \
             Secret, for the demo; docs/audit.md keeps it out of a cluster admin's reach), the \
             auditor keeps the verifier half on this machine",
        );
        let keys = tempfile::Builder::new()
            .prefix("rollgate-demo-keys-")
            .tempdir()?;
        let signer = keys.path().join("audit.key");
        let verifier = keys.path().join("audit.pub");
        plugin
            .run_plain(&[
                "audit",
                "keygen",
                "--key-name",
                "rollgate-demo-audit",
                "--private-key",
                &signer.to_string_lossy(),
                "--public-key",
                &verifier.to_string_lossy(),
            ])
            .await?;

        narrator.step(
            "installing rollgate on a local cluster with one real node; each step and each line \
             of the image build is shown as it happens",
        );
        let reporter = Arc::clone(&progress);
        let install = progress
            .around(blocking(move || {
                let say = |line: &str| reporter.line(line);
                RealInstall::start_with(
                    claim,
                    &InstallOptions {
                        progress: Some(&say),
                        audit_signer_key: Some(signer),
                    },
                )
            }))
            .await?;
        let cluster = install.cluster();
        narrator.detail(&format!(
            "cluster:    working directory {} (removed at the end)\n\
             kubeconfig: {}\n\
             registry:   {} (plain HTTP, on the node's bridge)\n\
             Prometheus: {} (finds pods through the Kubernetes API, scrapes them by pod IP)\n\
             audit:      checkpoints signed and published to {}",
            cluster.dir().display(),
            cluster.kubeconfig().display(),
            install.registry().host(),
            install.prometheus().url(),
            install.audit_store(),
        ));
        for (name, reference) in &install.images().references {
            narrator.detail(&format!("image {name}: {reference}"));
        }
        let client = cluster.client().await?;
        let admin = whoami(&client).await?;
        std::fs::create_dir_all(cluster.dir().join("manifests"))?;
        Ok(Stack {
            load: None,
            client,
            admin,
            audit_verifier: verifier,
            install,
            _keys: keys,
        })
    }

    /// The rollgate pods, as `kubectl get pods -n rollgate-system -o wide` shows them.
    pub fn rollgate_pods(&self) -> Result<String> {
        self.kubectl_ok(&["get", "pods", "-n", ROLLGATE_NAMESPACE, "-o", "wide"])
    }

    /// Where the demo writes the manifests it applies.
    pub fn manifests(&self) -> PathBuf {
        self.install.cluster().dir().join("manifests")
    }

    /// Writes `object` to `manifests/<file>.json` and `kubectl apply`s it, showing both.
    pub fn apply(&self, file: &str, object: &Value) -> Result<()> {
        let path = self.manifests().join(format!("{file}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(object)?)?;
        println!("  $ kubectl apply -f manifests/{file}.json");
        let output = self.kubectl(&["apply", "-f", &path.to_string_lossy()])?;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            println!("      {line}");
        }
        if !output.status.success() {
            bail!(
                "kubectl apply -f {}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Runs the cluster's kubectl as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Result<std::process::Output> {
        tokio::task::block_in_place(|| self.install.cluster().kubectl(args))
    }

    /// Runs the cluster's kubectl as the admin; its stdout, or an error with its stderr.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        tokio::task::block_in_place(|| self.install.cluster().kubectl_ok(args))
    }

    /// The last log lines of the controller pods, for a failed stage.
    pub fn controller_logs(&self) -> String {
        self.kubectl_ok(&[
            "logs",
            "-n",
            ROLLGATE_NAMESPACE,
            "-l",
            "app.kubernetes.io/component=controller",
            "--tail=30",
            "--prefix",
        ])
        .unwrap_or_else(|error| format!("{error:#}"))
    }

    /// Waits until kube-proxy has programmed the Service at `url` (a request through it is
    /// answered), then sends [`RPS`] requests a second (a new connection each, so kube-proxy
    /// picks a pod for every one) through it until the stack stops.
    pub async fn start_load(&mut self, url: &str) -> Result<()> {
        let health = format!("{url}healthz");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = tokio::task::block_in_place(|| {
                http_agent()
                    .get(&health)
                    .call()
                    .is_ok_and(|response| response.status() == 200)
            });
            if answered {
                break;
            }
            if Instant::now() > deadline {
                bail!("{health} did not answer within 60s of the pods being Ready");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let load = LoadGenerator::start_over_new_connections(
            &[url.to_owned()],
            RPS,
            Duration::from_secs(1800),
        )?;
        self.load = Some(load);
        Ok(())
    }
}

/// The user name the API server gives `client`.
pub async fn whoami(client: &kube::Client) -> Result<String> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .context("SelfSubjectReview")?;
    review
        .status
        .and_then(|status| status.user_info)
        .and_then(|user| user.username)
        .context("the SelfSubjectReview named no user")
}
