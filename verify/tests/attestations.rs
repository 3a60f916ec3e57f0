//! In-toto attestations in DSSE envelopes, made in Rust, pushed to the real registry and
//! checked against a policy's required predicate types and CEL conditions.

mod support;

use rollgate_testsupport::oci_push::TestImage;
use rollgate_testsupport::signing::{
    TestKey, attest, envelope_layer, push_attestation_layers, sign, statement,
};
use rollgate_verify::{Outcome, SecretKeys};
use serde_json::json;
use support::{policy, registry, request, unique_repository, verifier};

const SLSA: &str = "https://slsa.dev/provenance/v1";

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

fn requiring(key: &TestKey, condition: &str) -> Vec<rollgate_crds::ImagePolicy> {
    vec![policy(
        "p",
        &["**"],
        &[key],
        1,
        json!({"attestations": [{"predicateType": SLSA, "condition": condition}]}),
    )]
}

fn attestation_refusal(image: &TestImage) -> String {
    format!(
        "No valid attestation of type {SLSA} signed by a trusted key for {}",
        image.reference()
    )
}

#[tokio::test]
async fn an_attestation_that_meets_the_condition_passes() {
    let key = TestKey::generate();
    let image = signed_image(&key, "attested");
    attest(
        &image,
        &key,
        SLSA,
        &json!({"buildDefinition": {"buildType": "https://example.com/ci@v1"}}),
    )
    .expect("attest");
    let policies = requiring(
        &key,
        "predicate.buildDefinition.buildType == 'https://example.com/ci@v1'",
    );
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(verdict.images[0].outcome, Outcome::Verified, "{verdict:?}");
}

#[tokio::test]
async fn a_false_condition_is_refused_with_the_reason() {
    let key = TestKey::generate();
    let image = signed_image(&key, "falsecond");
    attest(
        &image,
        &key,
        SLSA,
        &json!({"buildDefinition": {"buildType": "https://evil.example/ci"}}),
    )
    .expect("attest");
    let policies = requiring(
        &key,
        "predicate.buildDefinition.buildType == 'https://example.com/ci@v1'",
    );
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(
        verdict.message(),
        Some(attestation_refusal(&image).as_str())
    );
    let Outcome::Refused { details, .. } = &verdict.images[0].outcome else {
        panic!("{verdict:?}")
    };
    assert!(
        details.iter().any(|d| d.contains("is false")),
        "{details:?}"
    );
}

#[tokio::test]
async fn an_attestation_about_another_digest_is_refused() {
    let key = TestKey::generate();
    let image = signed_image(&key, "wrongsubject");
    let other = format!("sha256:{}", "ab".repeat(32));
    let layer = envelope_layer(&key, &statement(&other, SLSA, &json!({})));
    push_attestation_layers(&image, &[layer]).expect("push");
    let policies = requiring(&key, "true");
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(
        verdict.message(),
        Some(attestation_refusal(&image).as_str())
    );
    let Outcome::Refused { details, .. } = &verdict.images[0].outcome else {
        panic!("{verdict:?}")
    };
    assert!(
        details.iter().any(|d| d.contains("no subject has digest")),
        "{details:?}"
    );
}

#[tokio::test]
async fn an_attestation_of_another_predicate_type_is_refused() {
    let key = TestKey::generate();
    let image = signed_image(&key, "wrongtype");
    attest(&image, &key, "https://spdx.dev/Document", &json!({})).expect("attest");
    let policies = requiring(&key, "true");
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(
        verdict.message(),
        Some(attestation_refusal(&image).as_str())
    );
}

#[tokio::test]
async fn an_attestation_by_an_untrusted_key_or_none_at_all_is_refused() {
    let key = TestKey::generate();
    let image = signed_image(&key, "untrustedatt");
    let policies = requiring(&key, "true");
    let images = [image.reference()];
    let missing = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(
        missing.message(),
        Some(attestation_refusal(&image).as_str())
    );
    attest(&image, &TestKey::generate(), SLSA, &json!({})).expect("attest");
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(
        verdict.message(),
        Some(attestation_refusal(&image).as_str())
    );
}
