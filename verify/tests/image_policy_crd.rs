//! The ImagePolicy CRD on a real kube-apiserver (the local cluster of `tests/cluster`): a
//! good policy is accepted, and each kind of bad input is rejected with a message that names
//! the field. Server-side dry runs: nothing is stored.

use std::path::Path;

use rollgate_testsupport::Cluster;
use rollgate_testsupport::tools::workspace_root;

/// A PEM public key as a double-quoted YAML string.
const PEM_YAML: &str = r#""-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdLg2eCSlUveM98gHzXO0ifVEPBJO\nBQmYRhimA2Od4XZR+ylXQSNOSFOeh+LrkdyHNsEp8qrmig0opuOmYVwi2A==\n-----END PUBLIC KEY-----\n""#;

fn manifest(spec: &str) -> String {
    format!(
        "apiVersion: rollgate.io/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: test\nspec:\n{spec}"
    )
}

fn dry_run(cluster: &Cluster, dir: &Path, name: &str, spec: &str) -> (bool, String) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, manifest(spec)).expect("write manifest");
    let output = cluster
        .kubectl(&[
            "create",
            "--dry-run=server",
            "-f",
            file.to_str().expect("utf-8"),
        ])
        .expect("kubectl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_api_server_accepts_good_policies_and_names_the_field_of_bad_ones() {
    let cluster = Cluster::start().expect("start the local cluster");
    cluster
        .apply_crds(&workspace_root().join("crds/yaml/imagepolicies.rollgate.io.yaml"))
        .expect("install the ImagePolicy CRD");
    let dir = tempfile::tempdir().expect("tempdir");
    let good = format!(
        "  images: [\"registry.example.com/**\"]\n  authorities:\n  - name: release\n    count: 2\n    keys:\n    - pem: {PEM_YAML}\n    - secretRef: {{name: keys, namespace: ops, key: cosign.pub}}\n  attestations:\n  - predicateType: https://slsa.dev/provenance/v1\n    condition: predicate.level >= 3\n  mode: dryRun\n  registryFailure: failOpen\n  breakGlass: {{allowed: true}}\n"
    );
    let (ok, stderr) = dry_run(&cluster, dir.path(), "good", &good);
    assert!(ok, "a good policy is refused: {stderr}");

    let key = "{secretRef: {name: k, namespace: ops, key: cosign.pub}}";
    let cases = [
        (
            "both-key-sources",
            "  images: [\"**\"]\n  authorities:\n  - name: a\n    keys:\n    - pem: \"-----BEGIN PUBLIC KEY-----\"\n      secretRef: {name: k, namespace: ops, key: cosign.pub}\n"
                .to_owned(),
            "a key sets exactly one of pem or secretRef",
        ),
        (
            "no-key-source",
            "  images: [\"**\"]\n  authorities:\n  - name: a\n    keys:\n    - {}\n".to_owned(),
            "a key sets exactly one of pem or secretRef",
        ),
        (
            "count-over-keys",
            format!(
                "  images: [\"**\"]\n  authorities:\n  - name: a\n    count: 2\n    keys: [{key}]\n"
            ),
            "spec.authorities[0].count: Invalid value",
        ),
        (
            "count-zero",
            format!(
                "  images: [\"**\"]\n  authorities:\n  - name: a\n    count: 0\n    keys: [{key}]\n"
            ),
            "spec.authorities[0].count",
        ),
        (
            "duplicate-authorities",
            format!(
                "  images: [\"**\"]\n  authorities:\n  - name: a\n    keys: [{key}]\n  - name: a\n    keys: [{key}]\n"
            ),
            "authorities[].name must be unique",
        ),
        (
            "bad-mode",
            format!(
                "  images: [\"**\"]\n  mode: audit\n  authorities:\n  - name: a\n    keys: [{key}]\n"
            ),
            "spec.mode: Unsupported value: \"audit\"",
        ),
        (
            "bad-registry-failure",
            format!(
                "  images: [\"**\"]\n  registryFailure: ignore\n  authorities:\n  - name: a\n    keys: [{key}]\n"
            ),
            "spec.registryFailure: Unsupported value",
        ),
        (
            "not-a-pem",
            "  images: [\"**\"]\n  authorities:\n  - name: a\n    keys:\n    - pem: hello\n"
                .to_owned(),
            "pem must be a PEM public key",
        ),
        (
            "no-images",
            format!("  images: []\n  authorities:\n  - name: a\n    keys: [{key}]\n"),
            "spec.images",
        ),
        (
            "empty-glob",
            format!("  images: [\"\"]\n  authorities:\n  - name: a\n    keys: [{key}]\n"),
            "spec.images[0]",
        ),
        (
            "no-authorities",
            "  images: [\"**\"]\n  authorities: []\n".to_owned(),
            "spec.authorities",
        ),
        (
            "attestation-without-type",
            format!(
                "  images: [\"**\"]\n  authorities:\n  - name: a\n    keys: [{key}]\n  attestations:\n  - condition: \"true\"\n"
            ),
            "spec.attestations[0].predicateType: Required value",
        ),
    ];
    for (name, spec, expected) in cases {
        let (ok, stderr) = dry_run(&cluster, dir.path(), name, &spec);
        assert!(!ok, "{name}: accepted");
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in: {stderr}"
        );
    }
}
