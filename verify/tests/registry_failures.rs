//! What the verifier does when the registry is down, answers 5xx, stalls, or serves content
//! over the limits or not matching its digests. 5xx, stalls and corrupted bodies come from
//! `FaultyRegistryProxy` in front of the real registry, since the registry cannot produce
//! them on demand.

mod support;

use std::time::Duration;

use rollgate_testsupport::oci_push::TestImage;
use rollgate_testsupport::process::free_port;
use rollgate_testsupport::signing::{
    TestKey, push_signature_layers, sign, signature_layer, simple_signing_payload,
};
use rollgate_verify::{Outcome, RegistryLimits, SecretKeys};
use serde_json::json;
use support::fault_proxy::{Fault, FaultyRegistryProxy};
use support::{policy, registry, request, unique_repository, verifier, verifier_with};

fn signed_image(key: &TestKey, prefix: &str) -> TestImage {
    let image = TestImage::push(
        &registry().host(),
        &unique_repository(prefix),
        &format!("{prefix} {:?}", std::time::Instant::now()),
    )
    .expect("push");
    sign(&image, &[key]).expect("sign");
    image
}

/// The image's reference as seen through another host (the proxy, or a dead port).
fn through(host: &str, image: &TestImage) -> String {
    format!("{host}/{}@{}", image.repository, image.digest)
}

#[tokio::test]
async fn an_unreachable_registry_fails_closed_by_default_and_open_when_asked() {
    let key = TestKey::generate();
    let image = signed_image(&key, "down");
    let dead = format!("127.0.0.1:{}", free_port().expect("port"));
    let images = [through(&dead, &image)];
    let v = verifier_with(std::slice::from_ref(&dead), RegistryLimits::default());

    let closed = [policy("p", &["**"], &[&key], 1, json!({}))];
    let verdict = v
        .verify(&request(&images, "p", &closed, &SecretKeys::new()))
        .await;
    assert!(
        matches!(verdict.images[0].outcome, Outcome::Unavailable { .. }),
        "{verdict:?}"
    );
    assert!(!verdict.admitted() && verdict.is_transient());
    assert!(
        verdict
            .message()
            .expect("reason")
            .starts_with("Could not reach the registry to verify")
    );

    let open = [policy(
        "p",
        &["**"],
        &[&key],
        1,
        json!({"registryFailure": "failOpen"}),
    )];
    let verdict = v
        .verify(&request(&images, "p", &open, &SecretKeys::new()))
        .await;
    assert!(
        verdict.admitted() && verdict.images[0].failed_open,
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_registry_answering_5xx_is_unavailable_not_unsigned() {
    let key = TestKey::generate();
    let image = signed_image(&key, "fivexx");
    let proxy = FaultyRegistryProxy::start(&registry().host(), Fault::None);
    let images = [through(&proxy.host(), &image)];
    let v = verifier_with(&[proxy.host()], RegistryLimits::default());
    let policies = [policy("p", &["**"], &[&key], 1, json!({}))];

    let through_proxy = v
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert!(
        through_proxy.admitted(),
        "the proxy forwards faithfully: {through_proxy:?}"
    );

    v.cache().clear();
    proxy.set_fault(Fault::ServerError(503));
    let verdict = v
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    let message = verdict.message().expect("blocked");
    assert!(
        matches!(verdict.images[0].outcome, Outcome::Unavailable { .. }),
        "{verdict:?}"
    );
    assert!(message.contains("503"), "{message}");
}

#[tokio::test]
async fn a_stalled_registry_times_out_as_unavailable() {
    let key = TestKey::generate();
    let image = signed_image(&key, "stall");
    let proxy =
        FaultyRegistryProxy::start(&registry().host(), Fault::Stall(Duration::from_secs(8)));
    let images = [through(&proxy.host(), &image)];
    let v = verifier_with(&[proxy.host()], RegistryLimits::default());
    let policies = [policy("p", &["**"], &[&key], 1, json!({}))];
    let started = std::time::Instant::now();
    let verdict = v
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert!(
        matches!(verdict.images[0].outcome, Outcome::Unavailable { .. }),
        "{verdict:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_is_refused_even_with_fail_open() {
    let key = TestKey::generate();
    let image = signed_image(&key, "corrupt");
    let proxy = FaultyRegistryProxy::start(&registry().host(), Fault::CorruptBlobs);
    let images = [through(&proxy.host(), &image)];
    let v = verifier_with(&[proxy.host()], RegistryLimits::default());
    let policies = [policy(
        "p",
        &["**"],
        &[&key],
        1,
        json!({"registryFailure": "failOpen"}),
    )];
    let verdict = v
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert!(!verdict.admitted(), "{verdict:?}");
    let Outcome::Refused { reason, details } = &verdict.images[0].outcome else {
        panic!("{verdict:?}")
    };
    assert!(
        reason.starts_with("No valid signature from a trusted key for"),
        "{reason}"
    );
    assert!(
        details.iter().any(|d| d.contains("does not match")),
        "{details:?}"
    );
}

#[tokio::test]
async fn an_oversized_manifest_and_too_many_layers_are_refused() {
    let key = TestKey::generate();
    let image = TestImage::push(
        &registry().host(),
        &unique_repository("oversized"),
        "oversized",
    )
    .expect("push");
    let payload = simple_signing_payload(&image.name(), &image.digest);
    let mut layer = signature_layer(&key, &payload);
    layer
        .annotations
        .insert("padding".into(), "x".repeat(16 * 1024).into());
    push_signature_layers(&image, &image.digest, &[layer]).expect("push");
    let images = [image.reference()];
    let policies = [policy(
        "p",
        &["**"],
        &[&key],
        1,
        json!({"registryFailure": "failOpen"}),
    )];

    let small = RegistryLimits {
        max_manifest_bytes: 8 * 1024,
        ..RegistryLimits::default()
    };
    let verdict = verifier_with(&[registry().host()], small)
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert!(!verdict.admitted(), "{verdict:?}");
    let Outcome::Refused { details, .. } = &verdict.images[0].outcome else {
        panic!("{verdict:?}")
    };
    assert!(
        details.iter().any(|d| d.contains("over the limit of 8192")),
        "{details:?}"
    );

    let few_layers = RegistryLimits {
        max_layers: 0,
        ..RegistryLimits::default()
    };
    let verdict = verifier_with(&[registry().host()], few_layers)
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    let Outcome::Refused { details, .. } = &verdict.images[0].outcome else {
        panic!("{verdict:?}")
    };
    assert!(
        details
            .iter()
            .any(|d| d.contains("layers, over the limit of 0")),
        "{details:?}"
    );

    let small_blobs = RegistryLimits {
        max_blob_bytes: 16,
        ..RegistryLimits::default()
    };
    let verdict = verifier_with(&[registry().host()], small_blobs)
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    let Outcome::Refused { details, .. } = &verdict.images[0].outcome else {
        panic!("{verdict:?}")
    };
    assert!(
        details.iter().any(|d| d.contains("over the limit of 16")),
        "{details:?}"
    );

    // With default limits the same signature verifies.
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert!(verdict.admitted(), "{verdict:?}");
}

#[tokio::test]
async fn a_registry_not_listed_as_insecure_is_reached_over_https() {
    // Nothing listens on the port: the TLS client is built and the failure is "unavailable".
    let key = TestKey::generate();
    let dead = format!("127.0.0.1:{}", free_port().expect("port"));
    let images = [format!("{dead}/app@sha256:{}", "0".repeat(64))];
    let policies = [policy("p", &["**"], &[&key], 1, json!({}))];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    let message = verdict.message().expect("blocked");
    assert!(
        matches!(verdict.images[0].outcome, Outcome::Unavailable { .. }),
        "{verdict:?}"
    );
    assert!(message.contains("https://"), "{message}");
}
