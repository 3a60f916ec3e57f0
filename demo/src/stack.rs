//! Stage 1's stack: a local cluster of the demo's own (with rollgate's CRDs and admission
//! policies), Prometheus, an OCI registry, the analysis service and the controller enforcing
//! image verification, all from the test-support fixtures; later stages add one demo app per
//! revision, under load. Dropping the stack stops every process (fields drop in order: the
//! controller first, the cluster last).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Api;
use kube::api::PostParams;
use rollgate_testsupport::process::http_agent;
use rollgate_testsupport::{
    AnalysisServer, Cluster, ControllerOptions, ControllerProcess, DemoApp, LoadGenerator,
    Prometheus, Registry,
};
use serde_json::Value;

use crate::narrate::Narrator;

/// Requests per second sent to each revision's demo app.
const RPS: f64 = 20.0;

/// Everything the demo runs on.
pub struct Stack {
    /// The controller, enforcing image verification and measuring through the analysis service.
    pub controller: ControllerProcess,
    loads: Vec<LoadGenerator>,
    apps: Vec<DemoApp>,
    /// The analysis service (kept for its lifetime: dropping it stops the process).
    _analysis: AnalysisServer,
    /// Prometheus, scraping the demo apps.
    pub prometheus: Prometheus,
    /// The OCI registry holding the images and their signatures.
    pub registry: Registry,
    /// An admin client.
    pub client: kube::Client,
    /// The admin's user name.
    pub admin: String,
    /// The local cluster.
    pub cluster: Cluster,
}

/// Runs a blocking fixture call on a blocking thread, so signals are still seen meanwhile. If
/// the demo is interrupted first, whatever it returns is dropped, and so stopped.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await?
}

impl Stack {
    /// Starts the stack: the cluster, Prometheus, the registry and the analysis service at
    /// once, then the controller.
    pub async fn start(narrator: &Narrator) -> Result<Stack> {
        narrator.step(
            "starting a local Kubernetes cluster of the demo's own (etcd, kube-apiserver, \
             controller-manager, scheduler, kwok for fake nodes), Prometheus, an OCI registry \
             and the analysis service, side by side",
        );
        let (cluster, prometheus, registry, analysis) = tokio::try_join!(
            blocking(|| {
                let cluster = Cluster::start()?;
                cluster.install_crds()?;
                Ok(cluster)
            }),
            blocking(Prometheus::start),
            blocking(Registry::start),
            blocking(AnalysisServer::start),
        )?;
        narrator.detail(&format!(
            "cluster:    up in {:.1}s, working directory {} (removed at the end)\n\
             kubeconfig: {}\n\
             CRDs:       rollgate.io Rollout, AnalysisTemplate, AnalysisRun, ImagePolicy, \
             Approval, AuditRecord\n\
             policies:   admission policies from crds/policies (who approves, who requested, \
             audit immutability)\n\
             Prometheus: {} (scrapes every second)\n\
             registry:   {} (plain HTTP on loopback)\n\
             analysis:   gRPC {}",
            cluster.startup_time().as_secs_f64(),
            cluster.dir().display(),
            cluster.kubeconfig().display(),
            prometheus.url(),
            registry.host(),
            analysis.grpc_address(),
        ));

        narrator.step(
            "starting the controller with ROLLGATE_IMAGE_VERIFICATION=enforce: no revision \
             runs unless its image digests carry signatures an ImagePolicy trusts",
        );
        let options = ControllerOptions {
            analysis_addr: Some(analysis.grpc_url()),
            verify_images: true,
            insecure_registries: vec![registry.host()],
            ..ControllerOptions::named("rollgate-controller")
        };
        let controller =
            tokio::task::block_in_place(|| ControllerProcess::start(&cluster, &options))?;
        wait_ready(&controller).await?;
        narrator.detail(&format!(
            "controller: ready; admin {}; log {}",
            controller.admin_url(),
            cluster.dir().join("rollgate-controller.log").display()
        ));
        let client = cluster.client().await?;
        let admin = whoami(&client).await?;
        std::fs::create_dir_all(cluster.dir().join("manifests"))?;
        Ok(Stack {
            controller,
            loads: Vec::new(),
            apps: Vec::new(),
            _analysis: analysis,
            prometheus,
            registry,
            client,
            admin,
            cluster,
        })
    }

    /// Where the demo writes the manifests it applies.
    pub fn manifests(&self) -> PathBuf {
        self.cluster.dir().join("manifests")
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
        tokio::task::block_in_place(|| self.cluster.kubectl(args))
    }

    /// Starts the demo app that plays `revision`'s pods (kwok pods run no containers), failing
    /// `error_rate` of its requests, sends it load, adds it to Prometheus' targets and waits
    /// until Prometheus has a request rate for it.
    pub async fn start_app(&mut self, revision: &str, error_rate: f64) -> Result<()> {
        let owned = revision.to_owned();
        let app =
            blocking(move || DemoApp::start(&owned, error_rate, Duration::from_millis(5))).await?;
        let load = app.load(RPS, Duration::from_secs(600))?;
        println!(
            "      demo app for revision {revision}: {} with {:.0}% errors, {RPS:.0} requests/s",
            app.url(),
            error_rate * 100.0
        );
        self.apps.push(app);
        self.loads.push(load);
        let targets: Vec<_> = self.apps.iter().map(|app| app.scrape_target(&[])).collect();
        self.prometheus.set_targets(&targets)?;
        self.wait_for_rate(revision).await
    }

    async fn wait_for_rate(&self, revision: &str) -> Result<()> {
        let query = format!(r#"sum(rate(http_requests_total{{revision="{revision}"}}[10s])) > 0"#);
        let url = format!("{}/api/v1/query", self.prometheus.url());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = tokio::task::block_in_place(|| -> Result<Value> {
                Ok(http_agent()
                    .get(&url)
                    .query("query", &query)
                    .call()?
                    .body_mut()
                    .read_json()?)
            });
            if answer.is_ok_and(|body| {
                body["data"]["result"]
                    .as_array()
                    .is_some_and(|result| !result.is_empty())
            }) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let load = self.loads.last().map(LoadGenerator::output);
                bail!(
                    "Prometheus had no request rate for revision {revision} within 60s; the \
                     load generator's output:\n{}",
                    load.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

async fn wait_ready(controller: &ControllerProcess) -> Result<()> {
    let url = format!("{}/ready", controller.admin_url());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = tokio::task::block_in_place(|| {
            http_agent()
                .get(&url)
                .call()
                .is_ok_and(|response| response.status() == 200)
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the controller was not ready within 60s; its log:\n{}",
                controller.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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
