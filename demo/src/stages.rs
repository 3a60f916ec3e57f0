//! The walkthrough: seven stages, each with a timeout, each ending with its success line. The
//! [`Walk`] owns the stack, so dropping it (at the end, on an error, or when the demo is
//! interrupted) stops every process.

mod record;
mod refusals;
mod release;

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use rollgate_crds::Rollout;
use rollgate_crds::analysis::AnalysisRun;
use rollgate_crds::revision::REVISION_LABEL;
use rollgate_testsupport::oci_push::TestImage;
use rollgate_testsupport::signing::{TestKey, sign};

use crate::narrate::{self, Narrator};
use crate::objects::{self, NAMESPACE, ROLLOUT};
use crate::plugin::{Plugin, User, Watch};
use crate::stack::Stack;

/// The repository the demo's images are pushed to.
const REPOSITORY: &str = "shop/checkout";

/// Runs the whole story.
pub async fn run(narrator: &Narrator) -> Result<()> {
    narrator.stage(
        1,
        "Start the stack",
        "Everything runs on this machine as real processes: a real kube-apiserver (kwok plays\n\
         the nodes, so pods are scheduled but run no containers), real Prometheus, a real\n\
         registry, and rollgate's controller and analysis service.",
    );
    let stack = within(1, Duration::from_secs(300), Stack::start(narrator)).await?;
    let plugin = tokio::task::block_in_place(|| Plugin::find(NAMESPACE))?;
    narrator.done(
        1,
        &format!(
            "cluster, Prometheus, registry, analysis service and controller (verification \
             enforced) are up after {:.0}s",
            narrator.elapsed().as_secs_f64()
        ),
    );
    narrator.pause().await;

    let mut walk = Walk::new(narrator, stack, plugin);
    // Each stage's number and how long it may take.
    let stages = [(2, 60), (3, 180), (4, 120), (5, 150), (6, 90), (7, 60)];
    for (number, seconds) in stages {
        let stage = within(number, Duration::from_secs(seconds), walk.stage(number)).await;
        walk.with_log(stage)?;
        if number < narrate::STAGES {
            narrator.pause().await;
        }
    }

    println!("\n  → stopping the controller, the services, the demo apps and the cluster");
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
    /// The image and revision hash of each version pushed, in order.
    versions: Vec<(TestImage, String)>,
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
                "\nThe controller's last log lines:\n{}",
                self.stack.controller.log_tail()
            );
        }
        stage
    }

    /// The admin, who changes the Rollout (the requester).
    fn admin(&self) -> User<'_> {
        User {
            kubeconfig: self.stack.cluster.kubeconfig(),
            name: &self.stack.admin,
        }
    }

    /// Pushes version `content` of the app; signs it with the release key when `signed`.
    fn push(&mut self, content: &str, signed: bool) -> Result<(TestImage, String)> {
        let host = self.stack.registry.host();
        let image = tokio::task::block_in_place(|| TestImage::push(&host, REPOSITORY, content))?;
        let revision = objects::revision_of(&image.reference())?;
        self.narrator.detail(&format!(
            "pushed {}\n  (revision hash of its pod template: {revision})",
            image.reference()
        ));
        if signed {
            tokio::task::block_in_place(|| sign(&image, &[&self.key]))?;
            self.narrator.detail(&format!(
                "signed: signature stored as {}:{}",
                image.name(),
                image.artifact_tag("sig")
            ));
        }
        self.versions.push((image.clone(), revision.clone()));
        Ok((image, revision))
    }

    /// Applies the Rollout running `image` (a new revision when the image changed).
    fn apply_rollout(&self, file: &str, image: &TestImage) -> Result<()> {
        self.stack
            .apply(file, &objects::rollout(&image.reference()))
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
        self.narrator
            .step("pushing checkout v1 and v2 and signing both with the release key");
        self.push("checkout v1: the release in production", true)?;
        self.push("checkout v2: the new release", true)?;
        let key_id = self.key.key_id();
        self.narrator.detail(&format!(
            "release key: ECDSA P-256, key id {}",
            &key_id[..16]
        ));
        self.narrator.step(
            "creating the cluster default ImagePolicy: images under the registry's shop/ need \
             a signature by the release key",
        );
        let policy = objects::image_policy(&self.stack.registry.host(), &self.key.public_pem());
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
            .list(&ListParams::default().labels(&format!("rollgate.io/rollout={ROLLOUT}")))
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
                .position(|(_, known)| *known == revision)
                .context(format!("a ReplicaSet of unknown revision {revision}"))?;
            let expected = self.versions[version].0.reference();
            ensure!(
                image == expected,
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
