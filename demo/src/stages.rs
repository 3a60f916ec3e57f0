//! The walkthrough: seven stages, each with a timeout, each ending with its success line. The
//! [`Walk`] owns the stack, so dropping it (at the end, on an error, or when the demo is
//! interrupted) stops every process.

mod record;
mod refusals;
mod release;
mod traffic;

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use rollgate_crds::Rollout;
use rollgate_crds::analysis::AnalysisRun;
use rollgate_crds::names::{REVISION_LABEL, ROLLOUT_LABEL};
use rollgate_testsupport::crane::crane;
use rollgate_testsupport::oci_push::TestImage;
use rollgate_testsupport::signing::{TestKey, sign};

use crate::narrate::{self, Narrator};
use crate::objects::{self, NAMESPACE, ROLLOUT};
use crate::plugin::{Plugin, User, Watch};
use crate::stack::Stack;

/// The repository the app's releases are pushed to.
const REPOSITORY: &str = "shop/checkout";

/// Runs the whole story.
pub async fn run(narrator: &Narrator) -> Result<()> {
    narrator.stage(
        1,
        "Install rollgate",
        "As a platform team installs it: rollgate's images built here (no container engine),\n\
         pushed by digest and signed; the Helm chart installed with those digests; the\n\
         controller (two replicas, leader election) and the analysis service as real pods on\n\
         a real node (containerd, kubelet, kube-proxy), under the chart's RBAC and admission\n\
         policies. The first run builds the release binaries and takes a few minutes.",
    );
    let plugin = tokio::task::block_in_place(|| Plugin::find(NAMESPACE))?;
    let stack = within(
        1,
        Duration::from_secs(1800),
        Stack::start(narrator, &plugin),
    )
    .await?;
    println!("  $ kubectl get pods -n rollgate-system -o wide");
    narrator.detail(&stack.rollgate_pods()?);
    narrator.done(
        1,
        &format!(
            "rollgate installed by Helm, its controller and analysis pods Ready on the real \
             node, images by digest, after {:.0}s",
            narrator.elapsed().as_secs_f64()
        ),
    );
    narrator.pause().await;

    let mut walk = Walk::new(narrator, stack, plugin);
    // Each stage's number and how long it may take.
    let stages = [(2, 60), (3, 240), (4, 180), (5, 180), (6, 90), (7, 60)];
    for (number, seconds) in stages {
        let stage = within(number, Duration::from_secs(seconds), walk.stage(number)).await;
        walk.with_log(stage)?;
        if number < narrate::STAGES {
            narrator.pause().await;
        }
    }

    println!(
        "\n  → stopping the load, the cluster and its real node (undoing its changes to the host)"
    );
    drop(walk);
    Ok(())
}

/// Runs stage `number`, failing with a clear message when it takes longer than `timeout`.
async fn within<T>(
    number: usize,
    timeout: Duration,
    stage: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(timeout, stage)
        .await
        .with_context(|| format!("stage {number} did not finish within {timeout:?}"))?
        .with_context(|| format!("stage {number} failed"))
}

/// A release of the app: its image by digest, the error rate its pods are set to fail, and
/// the revision hash of its pod template.
#[derive(Debug, Clone)]
struct Version {
    image: String,
    error_rate: f64,
    revision: String,
}

/// The state of the walkthrough.
struct Walk<'a> {
    narrator: &'a Narrator,
    /// The CLI's live view, while a revision rolls out.
    watch: Option<Watch>,
    plugin: Plugin,
    rollouts: Api<Rollout>,
    runs: Api<AnalysisRun>,
    events: Api<Event>,
    replica_sets: Api<ReplicaSet>,
    key: TestKey,
    /// Each version pushed, in order.
    versions: Vec<Version>,
    stack: Stack,
}

impl<'a> Walk<'a> {
    fn new(narrator: &'a Narrator, stack: Stack, plugin: Plugin) -> Self {
        let client = stack.client.clone();
        Walk {
            narrator,
            watch: None,
            plugin,
            rollouts: Api::namespaced(client.clone(), NAMESPACE),
            runs: Api::namespaced(client.clone(), NAMESPACE),
            events: Api::namespaced(client.clone(), NAMESPACE),
            replica_sets: Api::namespaced(client, NAMESPACE),
            key: TestKey::generate(),
            versions: Vec::new(),
            stack,
        }
    }

    /// Runs stage `number` (2 to 7).
    async fn stage(&mut self, number: usize) -> Result<()> {
        match number {
            2 => self.sign_and_trust().await,
            3 => self.canary().await,
            4 => self.approve().await,
            5 => self.bad_revision().await,
            6 => self.unsigned().await,
            7 => self.history_and_audit().await,
            _ => anyhow::bail!("there is no stage {number}"),
        }
    }

    /// Passes a stage's result on; when it failed, shows the end of the controller's log first.
    fn with_log(&self, stage: Result<()>) -> Result<()> {
        if stage.is_err() {
            eprintln!(
                "\nThe controller pods' last log lines:\n{}",
                self.stack.controller_logs()
            );
        }
        stage
    }

    /// The admin, who changes the Rollout (the requester).
    fn admin(&self) -> User<'_> {
        User {
            kubeconfig: self.stack.install.cluster().kubeconfig(),
            name: &self.stack.admin,
        }
    }

    /// Makes release `version` of the app from the signed demo-app image `rollgate-demo-app`
    /// (`crane mutate` gives it its own version label, so its own digest) and pushes it to
    /// shop/checkout; signs it with the release key when `signed`. Its pods fail `error_rate`
    /// of their requests.
    fn push(&mut self, version: &str, error_rate: f64, signed: bool) -> Result<Version> {
        let registry = self.stack.install.registry().host();
        let base = self
            .stack
            .install
            .images()
            .reference("demo-app")?
            .to_owned();
        let tag = format!("{registry}/{REPOSITORY}:{version}");
        let crane = crane()?;
        let output = tokio::task::block_in_place(|| {
            std::process::Command::new(&crane)
                .args(["mutate", "--insecure", &base, "-t", &tag, "--label"])
                .arg(format!("org.opencontainers.image.version={version}"))
                .output()
        })?;
        ensure!(
            output.status.success(),
            "crane mutate {base} -t {tag}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let image = String::from_utf8(output.stdout)?.trim().to_owned();
        let digest = image
            .rsplit_once('@')
            .map(|(_, digest)| digest.to_owned())
            .with_context(|| format!("crane mutate printed {image:?}, not a digest"))?;
        let revision = objects::revision_of(&image, error_rate)?;
        self.narrator.detail(&format!(
            "{version}: {image}\n  (the demo app's image with its own version label; revision \
             hash of its pod template: {revision})"
        ));
        if signed {
            let pushed = TestImage {
                host: registry,
                repository: REPOSITORY.to_owned(),
                digest,
            };
            tokio::task::block_in_place(|| sign(&pushed, &[&self.key]))?;
            self.narrator.detail(&format!(
                "signed: signature stored as {}:{}",
                pushed.name(),
                pushed.artifact_tag("sig")
            ));
        }
        let version = Version {
            image,
            error_rate,
            revision,
        };
        self.versions.push(version.clone());
        Ok(version)
    }

    /// Applies the Rollout running `version` (a new revision when it changed).
    fn apply_rollout(&self, file: &str, version: &Version) -> Result<()> {
        self.stack
            .apply(file, &objects::rollout(&version.image, version.error_rate))
    }

    /// Starts the CLI's live view of the Rollout.
    fn start_watch(&mut self) -> Result<()> {
        self.watch = Some(self.plugin.watch(&self.admin(), ROLLOUT)?);
        Ok(())
    }

    /// Waits for the live view to end; returns whether it saw the Rollout Healthy.
    async fn finish_watch(&mut self) -> Result<bool> {
        match self.watch.take() {
            Some(watch) => watch.finish().await,
            None => Ok(false),
        }
    }

    /// Stage 2: push and sign, and trust the key.
    async fn sign_and_trust(&mut self) -> Result<()> {
        self.narrator.stage(
            2,
            "Sign the release and trust the key",
            "rollgate runs only images pinned by digest whose signatures it can verify: the\n\
             registry holds the image and, next to it, a cosign-format signature of its digest.\n\
             An ImagePolicy says which key must have signed which images.",
        );
        self.narrator.step(
            "making checkout v1 and v2 from the signed demo-app image, pushing them and signing \
             both with the release key",
        );
        self.push("v1", 0.0, true)?;
        self.push("v2", 0.0, true)?;
        let key_id = self.key.key_id();
        self.narrator.detail(&format!(
            "release key: ECDSA P-256, key id {}",
            &key_id[..16]
        ));
        self.narrator.step(
            "creating the cluster default ImagePolicy: images under the registry's shop/ need \
             a signature by the release key",
        );
        let policy = objects::image_policy(
            &self.stack.install.registry().host(),
            &self.key.public_pem(),
        );
        self.stack.apply("image-policy", &policy)?;
        self.narrator.done(
            2,
            &format!(
                "v1 and v2 signed by key {}…; ImagePolicy release-signing trusts that key",
                &key_id[..16]
            ),
        );
        Ok(())
    }

    /// The Rollout's ReplicaSets, one line each (version, revision, pods, image digest), after
    /// checking that each runs its own revision's image: a revision's pods never run another
    /// revision's image, so "back to stable" really is the stable image.
    async fn replica_sets(&self) -> Result<String> {
        let sets = self
            .replica_sets
            .list(&ListParams::default().labels(&format!("{ROLLOUT_LABEL}={ROLLOUT}")))
            .await?;
        let mut lines = Vec::new();
        for set in &sets.items {
            let revision = set
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(REVISION_LABEL))
                .cloned()
                .unwrap_or_default();
            let spec = set.spec.as_ref();
            let replicas = spec.and_then(|spec| spec.replicas).unwrap_or(0);
            let image = spec
                .and_then(|spec| spec.template.as_ref())
                .and_then(|template| template.spec.as_ref())
                .and_then(|pod| pod.containers.first())
                .and_then(|container| container.image.clone())
                .unwrap_or_default();
            let version = self
                .versions
                .iter()
                .position(|known| known.revision == revision)
                .context(format!("a ReplicaSet of unknown revision {revision}"))?;
            let expected = &self.versions[version].image;
            ensure!(
                image == *expected,
                "the ReplicaSet of v{} (revision {revision}, {replicas} pods) runs {image}, not \
                 its own image {expected}",
                version + 1
            );
            let digest = image.rsplit_once('@').map_or("", |(_, digest)| digest);
            lines.push(format!(
                "v{} {revision}: {replicas} pods, image @{}…",
                version + 1,
                &digest[..digest.len().min(19)]
            ));
        }
        lines.sort();
        Ok(lines.join("\n"))
    }
}
