//! Only verified digests roll out, end to end: a cluster of its own with a controller that
//! enforces ImagePolicies, the real registry holding images and cosign signatures made in Rust.
//! An unsigned digest is refused (Degraded, Verified=False with the reason) while the stable
//! revision keeps serving; a signed digest rolls out; break-glass lets an unsigned digest
//! through and the override is recorded.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::oci_push::TestImage;
use rollgate_testsupport::signing::{TestKey, sign};
use rollgate_testsupport::{
    Cluster, ControllerOptions, ControllerProcess, Registry, TestNamespace,
};
use serde_json::json;

use crate::rollouts::{healthy, in_phase, replicas_by_revision, wait_for, wait_for_scale};

/// The verifying cluster, its registry, the trusted key and the enforcing controller.
pub(crate) struct Verifying {
    pub(crate) cluster: Cluster,
    pub(crate) registry: Registry,
    pub(crate) key: TestKey,
    _controller: ControllerProcess,
}

pub(crate) fn verifying() -> &'static Verifying {
    static ENVIRONMENT: OnceLock<Verifying> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let cluster = Cluster::start().expect("start the verifying cluster");
        cluster.install_crds().expect("install the CRDs");
        let registry = Registry::start().expect("start the registry");
        let key = TestKey::generate();
        let policy = json!({
            "apiVersion": "rollgate.io/v1alpha1",
            "kind": "ImagePolicy",
            "metadata": {"name": "default", "annotations": {"rollgate.io/default-policy": "true"}},
            "spec": {
                "images": [format!("{}/**", registry.host())],
                "authorities": [{"name": "release", "keys": [{"pem": key.public_pem()}]}],
                "breakGlass": {"allowed": true}
            }
        });
        let file = cluster.dir().join("image-policy.json");
        std::fs::write(&file, policy.to_string()).expect("write the policy");
        let applied = cluster
            .kubectl(&["apply", "-f", &file.to_string_lossy()])
            .expect("kubectl");
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
        let options = ControllerOptions {
            verify_images: true,
            insecure_registries: vec![registry.host()],
            ..ControllerOptions::named("verifying")
        };
        let controller =
            ControllerProcess::start(&cluster, &options).expect("start the controller");
        Verifying {
            cluster,
            registry,
            key,
            _controller: controller,
        }
    })
}

pub(crate) fn rollout(name: &str, image: &str) -> anyhow::Result<Rollout> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}
        }
    }))?)
}

pub(crate) fn push(env: &Verifying, repository: &str, content: &str) -> anyhow::Result<TestImage> {
    TestImage::push(&env.registry.host(), repository, content)
}

async fn set_image(
    api: &Api<Rollout>,
    name: &str,
    image: &str,
    annotations: serde_json::Value,
) -> anyhow::Result<()> {
    let patch = json!({"spec": {"template": {
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": image}]}
    }}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A signed v1 rolled out as the stable revision of Rollout `name`.
async fn stable_v1(env: &Verifying, api: &Api<Rollout>, name: &str) -> anyhow::Result<String> {
    let v1 = push(env, &format!("e2e/{name}"), &format!("{name} v1"))?;
    sign(&v1, &[&env.key])?;
    api.create(&PostParams::default(), &rollout(name, &v1.reference())?)
        .await?;
    let first = wait_for(api, name, "signed v1 Healthy", healthy(None)).await?;
    Ok(first
        .status
        .and_then(|s| s.stable_revision)
        .unwrap_or_default())
}

#[tokio::test]
async fn an_unsigned_digest_is_refused_and_stable_keeps_serving() -> anyhow::Result<()> {
    let env = verifying();
    let client = env.cluster.client().await?;
    let namespace = TestNamespace::create(&env.cluster, &client, "unsigned").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, namespace.name());
    let v1 = stable_v1(env, &rollouts, "vault").await?;

    let unsigned = push(env, "e2e/vault", "vault v2, never signed")?;
    set_image(&rollouts, "vault", &unsigned.reference(), json!({})).await?;
    let degraded = wait_for(
        &rollouts,
        "vault",
        "Degraded",
        in_phase(RolloutPhase::Degraded),
    )
    .await?;
    let status = degraded.status.expect("status");
    let verified = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Verified")
        .expect("a Verified condition");
    assert_eq!(verified.status, "False");
    let expected = format!(
        "No valid signature from a trusted key for {}",
        unsigned.reference()
    );
    assert!(verified.message.contains(&expected), "{}", verified.message);
    // Nothing was created for the refused revision; the stable one keeps all its pods.
    assert_eq!(
        replicas_by_revision(&replica_sets, "vault").await?,
        BTreeMap::from([(v1, 2)])
    );
    Ok(())
}

#[tokio::test]
async fn a_signed_digest_rolls_out() -> anyhow::Result<()> {
    let env = verifying();
    let client = env.cluster.client().await?;
    let namespace = TestNamespace::create(&env.cluster, &client, "signed").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, namespace.name());
    let v1 = stable_v1(env, &rollouts, "ledger").await?;

    let v2 = push(env, "e2e/ledger", "ledger v2")?;
    sign(&v2, &[&env.key])?;
    set_image(&rollouts, "ledger", &v2.reference(), json!({})).await?;
    let done = wait_for(&rollouts, "ledger", "v2 stable", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.phase == Some(RolloutPhase::Healthy)
                && s.stable_revision.is_some()
                && s.stable_revision.as_deref() != Some(v1.as_str())
        })
    })
    .await?;
    let v2_revision = done
        .status
        .and_then(|s| s.stable_revision)
        .unwrap_or_default();
    wait_for_scale(
        &replica_sets,
        "ledger",
        BTreeMap::from([(v1, 0), (v2_revision, 2)]),
    )
    .await
}

#[tokio::test]
async fn break_glass_lets_an_unsigned_digest_through_and_is_recorded() -> anyhow::Result<()> {
    let env = verifying();
    let client = env.cluster.client().await?;
    let namespace = TestNamespace::create(&env.cluster, &client, "glass").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace.name());
    let events: Api<Event> = Api::namespaced(client, namespace.name());
    let v1 = stable_v1(env, &rollouts, "hatch").await?;

    let unsigned = push(env, "e2e/hatch", "hatch v2, hotfix without a signature")?;
    set_image(
        &rollouts,
        "hatch",
        &unsigned.reference(),
        json!({"rollgate.io/break-glass": "INC-4711: signing service down"}),
    )
    .await?;
    let hotfix = wait_for(&rollouts, "hatch", "the hotfix stable", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.phase == Some(RolloutPhase::Healthy)
                && s.stable_revision
                    .as_deref()
                    .is_some_and(|stable| stable != v1)
        })
    })
    .await?;
    let verified = hotfix
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Verified")
        .expect("a Verified condition");
    assert_eq!(
        (verified.status.as_str(), verified.reason.as_str()),
        ("True", "BreakGlass"),
        "{}",
        verified.message
    );
    assert!(
        verified.message.contains("INC-4711"),
        "{}",
        verified.message
    );

    // The override is on record: an Event with the break-glass flag and the justification.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let overridden = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find(|event| {
                event.reason.as_deref() == Some("ImageVerificationOverridden")
                    && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("hatch")
            });
        if let Some(event) = overridden {
            let note = event.note.unwrap_or_default();
            assert!(note.contains("breakGlass=true"), "{note}");
            assert!(note.contains("INC-4711"), "{note}");
            assert!(
                note.contains(&format!("digest={}", unsigned.digest)),
                "{note}"
            );
            assert!(note.contains("result=refused"), "{note}");
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no ImageVerificationOverridden event"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
