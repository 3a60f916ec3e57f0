//! Cosign signatures made in Rust, pushed to the real registry, verified (or refused) by
//! rollgate-verify.

mod support;

use rollgate_crds::image_policy::SecretKeyRef;
use rollgate_testsupport::oci_push::{OCI_MANIFEST, TestImage, get_manifest, push_manifest};
use rollgate_testsupport::signing::{
    TestKey, push_signature_layers, sign, signature_layer, signature_layer_with,
    simple_signing_payload,
};
use rollgate_verify::{Outcome, SecretKeys, TAG_OR_MALFORMED_DIGEST, VerificationRequest};
use serde_json::json;
use support::{policy, registry, request, unique_repository, verifier};

fn no_signature(image: &TestImage) -> String {
    format!(
        "No valid signature from a trusted key for {}",
        image.reference()
    )
}

fn push(prefix: &str) -> TestImage {
    TestImage::push(
        &registry().host(),
        &unique_repository(prefix),
        &format!("content of {prefix} {:?}", std::time::Instant::now()),
    )
    .expect("push image")
}

fn details(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Refused { details, .. } => details.join("; "),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_signed_image_is_verified_with_the_key_id_recorded() {
    let image = push("signed");
    let key = TestKey::generate();
    sign(&image, &[&key]).expect("sign");
    let policies = [policy("p", &["127.0.0.1:*/**"], &[&key], 1, json!({}))];
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    let only = &verdict.images[0];
    assert_eq!(only.outcome, Outcome::Verified, "{only:?}");
    assert!(verdict.admitted());
    assert_eq!(only.key_ids, vec![key.key_id()]);
    assert_eq!(only.digest.as_deref(), Some(image.digest.as_str()));
    assert_eq!(
        only.policy
            .as_ref()
            .map(|p| (p.name.as_str(), p.generation)),
        Some(("p", Some(1)))
    );
    assert!(!only.cached && !only.dry_run && !only.break_glass && !only.failed_open);
}

#[tokio::test]
async fn a_tag_is_refused_before_any_lookup() {
    let key = TestKey::generate();
    let policies = [policy(
        "p",
        &["**"],
        &[&key],
        1,
        json!({"mode": "dryRun", "breakGlass": {"allowed": true}}),
    )];
    let images = [format!("{}/some/app:latest", registry().host())];
    let secrets = SecretKeys::new();
    let mut req = request(&images, "p", &policies, &secrets);
    req.break_glass_justification = Some("INC-1");
    let verdict = verifier().verify(&req).await;
    assert_eq!(verdict.message(), Some(TAG_OR_MALFORMED_DIGEST));
    assert!(
        !verdict.admitted(),
        "neither dryRun nor break-glass admits a tag"
    );
    assert!(verdict.images[0].policy.is_none());
}

#[tokio::test]
async fn an_unsigned_image_is_refused() {
    let image = push("unsigned");
    let key = TestKey::generate();
    let policies = [policy("p", &["**"], &[&key], 1, json!({}))];
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(verdict.message(), Some(no_signature(&image).as_str()));
    assert!(details(&verdict.images[0].outcome).contains("no signature manifest"));
    assert!(!verdict.is_transient());
}

#[tokio::test]
async fn a_signature_by_an_untrusted_key_is_refused() {
    let image = push("wrongkey");
    let trusted = TestKey::generate();
    sign(&image, &[&TestKey::generate()]).expect("sign");
    let policies = [policy("p", &["**"], &[&trusted], 1, json!({}))];
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(verdict.message(), Some(no_signature(&image).as_str()));
    assert!(verdict.images[0].key_ids.is_empty());
}

#[tokio::test]
async fn a_signature_copied_from_another_digest_is_refused() {
    let key = TestKey::generate();
    let signed = push("copied");
    let unsigned =
        TestImage::push(&signed.host, &signed.repository, "another revision").expect("push");
    sign(&signed, &[&key]).expect("sign");
    // Copy the signature manifest of the signed digest to the tag of the unsigned one.
    let manifest = get_manifest(
        &signed.host,
        &signed.repository,
        &signed.artifact_tag("sig"),
    )
    .expect("get");
    push_manifest(
        &unsigned.host,
        &unsigned.repository,
        &unsigned.artifact_tag("sig"),
        OCI_MANIFEST,
        &manifest,
    )
    .expect("copy");
    let policies = [policy("p", &["**"], &[&key], 1, json!({}))];
    let images = [unsigned.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(verdict.message(), Some(no_signature(&unsigned).as_str()));
    assert!(
        details(&verdict.images[0].outcome).contains("signed for digest"),
        "{:?}",
        verdict.images[0]
    );
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let key = TestKey::generate();
    let image = push("tampered");
    let payload = simple_signing_payload(&image.name(), &image.digest);
    let signature = key.sign_base64(&payload);
    let mut tampered = payload.clone();
    tampered.extend_from_slice(b" ");
    push_signature_layers(
        &image,
        &image.digest,
        &[signature_layer_with(&tampered, &signature)],
    )
    .expect("push");
    let policies = [policy("p", &["**"], &[&key], 1, json!({}))];
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(verdict.message(), Some(no_signature(&image).as_str()));
}

#[tokio::test]
async fn a_count_of_two_needs_two_distinct_trusted_keys() {
    let (first, second) = (TestKey::generate(), TestKey::generate());
    let image = push("count");
    let payload = simple_signing_payload(&image.name(), &image.digest);
    // The same key twice does not make two signatures.
    push_signature_layers(
        &image,
        &image.digest,
        &[
            signature_layer(&first, &payload),
            signature_layer(&first, &payload),
        ],
    )
    .expect("push");
    let policies = [policy("p", &["**"], &[&first, &second], 2, json!({}))];
    let images = [image.reference()];
    let v = support::verifier();
    let verdict = v
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(verdict.message(), Some(no_signature(&image).as_str()));
    assert!(
        details(&verdict.images[0].outcome)
            .contains("authority release: 1 of 2 required keys signed")
    );

    sign(&image, &[&first, &second]).expect("sign with both");
    let verdict = v
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert!(verdict.admitted(), "{verdict:?}");
    let mut expected = vec![first.key_id(), second.key_id()];
    expected.sort();
    assert_eq!(verdict.images[0].key_ids, expected);
}

#[tokio::test]
async fn a_key_held_in_a_secret_is_passed_in_by_the_caller() {
    let key = TestKey::generate();
    let image = push("secretkey");
    sign(&image, &[&key]).expect("sign");
    let spec = json!({
        "images": ["**"],
        "authorities": [{"name": "ops", "keys": [{"secretRef": {"name": "cosign", "namespace": "rollgate-system", "key": "cosign.pub"}}]}],
        "namespaceSelector": {},
    });
    let policies = [rollgate_crds::ImagePolicy::new(
        "p",
        serde_json::from_value(spec).expect("spec"),
    )];
    let reference = SecretKeyRef {
        name: "cosign".into(),
        namespace: "rollgate-system".into(),
        key: "cosign.pub".into(),
    };
    assert_eq!(policies[0].spec.secret_refs(), vec![&reference]);
    let images = [image.reference()];
    let empty = SecretKeys::new();
    let missing = verifier()
        .verify(&request(&images, "p", &policies, &empty))
        .await;
    assert!(
        details(&missing.images[0].outcome)
            .contains("Secret rollgate-system/cosign key cosign.pub not found")
    );
    let secrets = SecretKeys::from([(reference, key.public_pem())]);
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &secrets))
        .await;
    assert!(verdict.admitted(), "{verdict:?}");
}

#[tokio::test]
async fn the_second_verification_is_a_cache_hit() {
    let key = TestKey::generate();
    let image = push("cached");
    sign(&image, &[&key]).expect("sign");
    let policies = [policy("p", &["**"], &[&key], 1, json!({}))];
    let images = [image.reference()];
    let v = verifier();
    let first = v
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert!(first.admitted() && !first.images[0].cached);
    let second = v
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    assert!(second.admitted() && second.images[0].cached, "{second:?}");
    assert_eq!(second.images[0].key_ids, vec![key.key_id()]);
    // A new policy generation is a miss.
    let mut changed = policies.clone();
    changed[0].metadata.generation = Some(2);
    let third = v
        .verify(&request(&images, "p", &changed, &SecretKeys::new()))
        .await;
    assert!(third.admitted() && !third.images[0].cached);
}

#[tokio::test]
async fn an_image_outside_the_policy_globs_or_without_a_policy_is_refused() {
    let key = TestKey::generate();
    let image = push("uncovered");
    sign(&image, &[&key]).expect("sign");
    let narrow = policy("p", &["registry.example.com/**"], &[&key], 1, json!({}));
    let everything = policy("base", &["**"], &[&key], 1, json!({}));
    let policies = [narrow.clone(), everything];
    let images = [image.reference()];
    let verdict = verifier()
        .verify(&request(&images, "p", &policies, &SecretKeys::new()))
        .await;
    let message = verdict.message().expect("refused");
    assert!(
        message.contains("is not covered by ImagePolicy p"),
        "{message}"
    );
    let secrets = SecretKeys::new();
    let only_narrow = [narrow];
    let none = VerificationRequest {
        policy_name: None,
        ..request(&images, "p", &only_narrow, &secrets)
    };
    let verdict = verifier().verify(&none).await;
    assert!(
        verdict
            .message()
            .expect("refused")
            .contains("no ImagePolicy governs image")
    );
}

#[tokio::test]
async fn dry_run_and_break_glass_admit_a_failure_and_say_so() {
    let key = TestKey::generate();
    let image = push("override");
    let images = [image.reference()];
    let dry = [policy("p", &["**"], &[&key], 1, json!({"mode": "dryRun"}))];
    let verdict = verifier()
        .verify(&request(&images, "p", &dry, &SecretKeys::new()))
        .await;
    assert!(verdict.admitted() && verdict.images[0].dry_run);
    assert_eq!(
        verdict.images[0].reason(),
        Some(no_signature(&image).as_str())
    );

    let allowed = [policy(
        "p",
        &["**"],
        &[&key],
        1,
        json!({"breakGlass": {"allowed": true}}),
    )];
    let secrets = SecretKeys::new();
    let mut req = request(&images, "p", &allowed, &secrets);
    req.break_glass_justification = Some("INC-42: signing service down");
    let verdict = verifier().verify(&req).await;
    assert!(
        verdict.admitted() && verdict.images[0].break_glass,
        "{verdict:?}"
    );
    assert_eq!(
        verdict.images[0].break_glass_justification.as_deref(),
        Some("INC-42: signing service down")
    );

    let denied = [policy("p", &["**"], &[&key], 1, json!({}))];
    req.policies = &denied;
    let verdict = verifier().verify(&req).await;
    assert!(!verdict.admitted() && !verdict.images[0].break_glass);
    assert!(details(&verdict.images[0].outcome).contains("does not allow it"));
}
