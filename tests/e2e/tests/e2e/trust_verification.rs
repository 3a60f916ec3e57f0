//! The platform chooses the ImagePolicy, on the verifying cluster (an enforcing controller, the
//! real registry, signatures made in Rust) with a real identity.
//!
//! The attack: the payments namespace is governed by the platform's enforcing policy
//! `payments-strict` (namespaceSelector `team=payments`), which needs the payments release key.
//! A Rollout author (a ServiceAccount allowed to edit Rollouts, nothing else) ships an image
//! signed only with the cluster key and names another team's dryRun policy in
//! `spec.verification.imagePolicy`, hoping it replaces the strict one, as it used to.
//!
//! With the mechanism on, the named policy only adds a check: the revision is refused, and the
//! Event lists every policy with its result. Signed with the payments key too (what the
//! platform demands), the same Rollout rolls out, and the Verified condition says exactly what
//! happened: `DryRun`, naming the dry-run policy that would refuse and the policies and key ids
//! that verified. With verification off (the shared controller), the condition says
//! `VerificationOff`, never that a policy passed.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_testsupport::identity::{self, Credentials, client_for};
use rollgate_testsupport::signing::{TestKey, sign};
use rollgate_testsupport::{TestNamespace, manifests, shared_cluster, shared_controller};
use serde_json::json;

use crate::rollout_verification::{push, rollout, verifying};
use crate::rollouts::{DIGEST_V1, healthy, in_phase, wait_for};

fn verified_condition(
    rollout: &Rollout,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    rollout
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Verified")
        .cloned()
}

/// Applies an ImagePolicy (cluster-scoped) as the admin.
fn apply_policy(
    cluster: &rollgate_testsupport::Cluster,
    policy: serde_json::Value,
) -> anyhow::Result<()> {
    let file = cluster.dir().join(format!(
        "policy-{}.json",
        policy["metadata"]["name"].as_str().unwrap_or("x")
    ));
    std::fs::write(&file, policy.to_string())?;
    let applied = cluster.kubectl(&["apply", "-f", &file.to_string_lossy()])?;
    anyhow::ensure!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn a_rollout_cannot_swap_the_governing_policy_for_a_dry_run_one() -> anyhow::Result<()> {
    let env = verifying();
    let admin = env.cluster.client().await?;
    let namespace = TestNamespace::create(&env.cluster, &admin, "trust-policy").await?;
    let ns = namespace.name();
    Api::<Namespace>::all(admin.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"team": "payments"}}})),
        )
        .await?;
    let payments_key = TestKey::generate();
    let host = env.registry.host();
    apply_policy(
        &env.cluster,
        json!({
            "apiVersion": "rollgate.io/v1alpha1",
            "kind": "ImagePolicy",
            "metadata": {"name": "payments-strict"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"team": "payments"}},
                "images": [format!("{host}/trust/pay/**")],
                "authorities": [{"name": "payments", "keys": [{"pem": payments_key.public_pem()}]}]
            }
        }),
    )?;
    apply_policy(
        &env.cluster,
        json!({
            "apiVersion": "rollgate.io/v1alpha1",
            "kind": "ImagePolicy",
            "metadata": {"name": "blog-trial"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"team": "blog"}},
                "images": ["**"],
                "mode": "dryRun",
                "authorities": [{"name": "blog", "keys": [{"pem": TestKey::generate().public_pem()}]}]
            }
        }),
    )?;

    // The author: a ServiceAccount that may edit Rollouts and nothing else.
    let author = identity::service_account(&admin, ns, "author").await?;
    identity::grant(
        &admin,
        &author,
        "rollout-author",
        vec![identity::rollgate_rule(
            &["rollouts"],
            &["get", "list", "watch", "create", "patch"],
        )],
    )
    .await?;
    identity::wait_until_allowed(&admin, &author, "create", "rollouts").await?;
    let author_client = client_for(&env.cluster, &Credentials::Token(&author.token)).await?;
    let rollouts: Api<Rollout> = Api::namespaced(author_client, ns);

    let cluster_signed = push(env, "trust/pay/checkout", "checkout, cluster key only")?;
    sign(&cluster_signed, &[&env.key])?;
    let mut attempt = rollout("checkout", &cluster_signed.reference())?;
    attempt.spec.verification = Some(serde_json::from_value(
        json!({"imagePolicy": "blog-trial"}),
    )?);
    rollouts.create(&PostParams::default(), &attempt).await?;
    let refused = wait_for(
        &rollouts,
        "checkout",
        "Degraded",
        in_phase(RolloutPhase::Degraded),
    )
    .await?;
    let condition = verified_condition(&refused).expect("a Verified condition");
    assert_eq!(condition.status, "False", "{}", condition.message);
    assert!(
        condition
            .message
            .contains("No valid signature from a trusted key"),
        "{}",
        condition.message
    );
    let events: Api<Event> = Api::namespaced(admin.clone(), ns);
    let started = Instant::now();
    loop {
        let refusal = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("ImageRefused"));
        if let Some(event) = refusal {
            let note = event.note.unwrap_or_default();
            assert!(note.contains("policy=payments-strict"), "{note}");
            assert!(note.contains("payments-strict=refused"), "{note}");
            assert!(note.contains("blog-trial=refused+dryRun"), "{note}");
            assert!(note.contains("default=verified"), "{note}");
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "no ImageRefused event"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Signed as the platform demands, the same Rollout runs; the condition says what happened.
    let both_signed = push(env, "trust/pay/checkout", "checkout, both keys")?;
    sign(&both_signed, &[&env.key, &payments_key])?;
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": both_signed.reference()}]}}}});
    rollouts
        .patch("checkout", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let done = wait_for(&rollouts, "checkout", "Healthy", healthy(None)).await?;
    let condition = verified_condition(&done).expect("a Verified condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "DryRun"),
        "{}",
        condition.message
    );
    let short = |key: &TestKey| key.key_id()[..16].to_owned();
    for expected in [
        "dry run of ImagePolicy blog-trial, which would refuse".to_owned(),
        format!(
            "verified by ImagePolicy payments-strict (keys {})",
            short(&payments_key)
        ),
        format!("verified by ImagePolicy default (keys {}", short(&env.key)),
    ] {
        assert!(
            condition.message.contains(&expected),
            "{expected:?} not in {}",
            condition.message
        );
    }
    Ok(())
}

#[tokio::test]
async fn with_verification_off_the_condition_says_so() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    shared_controller();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "trust-off").await?;
    let rollouts: Api<Rollout> = Api::namespaced(client, namespace.name());
    let strategy = json!({"canary": {"steps": [{"setWeight": 50}]}});
    rollouts
        .create(
            &PostParams::default(),
            &manifests::rollout("plain", 1, DIGEST_V1, strategy)?,
        )
        .await?;
    let done = wait_for(&rollouts, "plain", "Healthy", healthy(None)).await?;
    let condition = verified_condition(&done).expect("a Verified condition");
    assert_eq!(condition.reason, "VerificationOff", "{}", condition.message);
    assert!(
        !condition.message.contains("passed"),
        "{}",
        condition.message
    );
    Ok(())
}
