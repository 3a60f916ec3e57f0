//! Interoperability with the real cosign CLI (built from `tests/tools/cosign`): what
//! `cosign sign` and `cosign attest` store, rollgate-verify accepts with the cosign public key;
//! tampered copies it refuses; and what the Rust test helpers sign, `cosign verify` accepts.
//! No transparency log and no Fulcio: key-based signing only, on a loopback registry.

mod support;

use std::path::Path;
use std::process::Command;

use rollgate_testsupport::cosign::cosign;
use rollgate_testsupport::oci_push::{
    OCI_MANIFEST, TestImage, get_blob, get_manifest, push_blob, push_manifest,
};
use rollgate_testsupport::signing::{TestKey, sign};
use rollgate_verify::{Outcome, SecretKeys, key_id};
use serde_json::json;
use support::{policy, registry, request, unique_repository, verifier};

const PREDICATE_TYPE: &str = "https://example.com/ci-predicate/v1";

/// Flags that keep cosign v3 offline and on the storage layout rollgate reads: no Rekor upload,
/// no signing config (which would ask for Fulcio and a TSA), the `.sig`/`.att` tags rather
/// than the new bundle format, and plain HTTP to the loopback registry.
const OFFLINE: [&str; 6] = [
    "--tlog-upload=false",
    "--use-signing-config=false",
    "--new-bundle-format=false",
    "--allow-insecure-registry",
    "--allow-http-registry",
    "--yes",
];

fn run_cosign(dir: &Path, args: &[&str]) {
    let output = Command::new(cosign().expect("cosign binary"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "")
        .output()
        .expect("run cosign");
    assert!(
        output.status.success(),
        "cosign {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn cosign_policy(public_pem: &str) -> Vec<rollgate_crds::ImagePolicy> {
    let spec = json!({
        "images": ["127.0.0.1:*/**"],
        "authorities": [{"name": "cosign", "keys": [{"pem": public_pem}]}],
        "namespaceSelector": {},
        "attestations": [{"predicateType": PREDICATE_TYPE, "condition": "predicate.level >= 3 && predicate.buildType == 'https://example.com/ci@v1'"}],
    });
    vec![rollgate_crds::ImagePolicy::new(
        "cosign",
        serde_json::from_value(spec).expect("spec"),
    )]
}

#[tokio::test]
async fn images_signed_and_attested_by_cosign_verify_and_tampered_copies_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_cosign(dir.path(), &["generate-key-pair"]);
    let public_pem = std::fs::read_to_string(dir.path().join("cosign.pub")).expect("cosign.pub");
    let host = registry().host();
    let image =
        TestImage::push(&host, &unique_repository("cosign"), "signed by cosign").expect("push");
    let reference = image.reference();

    let mut sign_args = vec!["sign", "--key", "cosign.key"];
    sign_args.extend(OFFLINE);
    sign_args.push(&reference);
    run_cosign(dir.path(), &sign_args);
    std::fs::write(
        dir.path().join("predicate.json"),
        r#"{"buildType":"https://example.com/ci@v1","level":3}"#,
    )
    .expect("predicate");
    let mut attest_args = vec![
        "attest",
        "--key",
        "cosign.key",
        "--type",
        PREDICATE_TYPE,
        "--predicate",
        "predicate.json",
    ];
    attest_args.extend(OFFLINE);
    attest_args.push(&reference);
    run_cosign(dir.path(), &attest_args);

    let policies = cosign_policy(&public_pem);
    let images = [reference.clone()];
    let verdict = verifier()
        .verify(&request(&images, "cosign", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(verdict.images[0].outcome, Outcome::Verified, "{verdict:?}");
    let expected_id = rollgate_verify::PublicKey::from_pem(&public_pem)
        .expect("pem")
        .id()
        .to_owned();
    assert_eq!(verdict.images[0].key_ids, vec![expected_id]);

    // Another digest with cosign's signature and attestation manifests copied to its tags.
    let copy = TestImage::push(&host, &image.repository, "an unsigned revision").expect("push");
    for suffix in ["sig", "att"] {
        let manifest =
            get_manifest(&host, &image.repository, &image.artifact_tag(suffix)).expect("get");
        push_manifest(
            &host,
            &copy.repository,
            &copy.artifact_tag(suffix),
            OCI_MANIFEST,
            &manifest,
        )
        .expect("copy");
    }
    let images = [copy.reference()];
    let verdict = verifier()
        .verify(&request(&images, "cosign", &policies, &SecretKeys::new()))
        .await;
    assert_eq!(
        verdict.message(),
        Some(
            format!(
                "No valid signature from a trusted key for {}",
                copy.reference()
            )
            .as_str()
        )
    );

    // The signature layer's payload modified (and re-pushed with a correct blob digest).
    let tag = image.artifact_tag("sig");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&get_manifest(&host, &image.repository, &tag).expect("get"))
            .expect("json");
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let payload = get_blob(&host, &image.repository, &layer_digest).expect("blob");
    let tampered = String::from_utf8(payload)
        .expect("utf-8")
        .replace("\"optional\":null", "\"optional\":{\"by\":\"mallory\"}");
    let tampered_digest = push_blob(&host, &image.repository, tampered.as_bytes()).expect("push");
    manifest["layers"][0]["digest"] = tampered_digest.into();
    manifest["layers"][0]["size"] = tampered.len().into();
    push_manifest(
        &host,
        &image.repository,
        &tag,
        OCI_MANIFEST,
        &serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("push");
    let images = [reference];
    let verdict = verifier()
        .verify(&request(&images, "cosign", &policies, &SecretKeys::new()))
        .await;
    assert!(!verdict.admitted(), "{verdict:?}");
    assert_eq!(
        verdict.images[0].reason(),
        Some(
            format!(
                "No valid signature from a trusted key for {}",
                image.reference()
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn cosign_verify_accepts_what_the_rust_helpers_sign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TestKey::generate();
    std::fs::write(dir.path().join("rust.pub"), key.public_pem()).expect("write key");
    let der_id = key_id(&pem_body(&key.public_pem()));
    assert_eq!(der_id, key.key_id());
    let image = TestImage::push(
        &registry().host(),
        &unique_repository("rustsigned"),
        "signed in rust",
    )
    .expect("push");
    sign(&image, &[&key]).expect("sign");
    run_cosign(
        dir.path(),
        &[
            "verify",
            "--key",
            "rust.pub",
            "--insecure-ignore-tlog=true",
            "--allow-insecure-registry",
            "--allow-http-registry",
            &image.reference(),
        ],
    );
    let policies = [policy("p", &["**"], &[&key], 1, json!({}))];
    let images = [image.reference()];
    assert!(
        verifier()
            .verify(&request(&images, "p", &policies, &SecretKeys::new()))
            .await
            .admitted()
    );
}

/// The DER bytes inside a PEM block.
fn pem_body(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}
