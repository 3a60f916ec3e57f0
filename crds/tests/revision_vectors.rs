//! The revision hash of committed pod templates must equal the committed expected values, which
//! an independent implementation of the canonical form (`fixtures/revision/expected.py`)
//! produced. A change here redeploys every workload: it must be deliberate.

use std::path::Path;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use rollgate_crds::revision::revision_hash;

#[test]
fn committed_templates_hash_to_committed_values() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/revision");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).expect("expected.txt");
    let mut checked = 0;
    for line in expected.lines().filter(|line| !line.trim().is_empty()) {
        let (name, want) = line.split_once(' ').expect("`<name> <hash>` lines");
        let yaml = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).expect("fixture");
        let template: PodTemplateSpec = serde_saphyr::from_str(&yaml).expect("pod template");
        assert_eq!(
            revision_hash(&template).expect("hash"),
            want,
            "fixture {name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "every fixture has an expected value");
}

#[test]
fn the_revision_label_and_empty_lists_do_not_change_the_hash() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/revision");
    let load = |name: &str| -> PodTemplateSpec {
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    assert_eq!(
        revision_hash(&load("minimal.yaml")).unwrap(),
        revision_hash(&load("with-revision-label.yaml")).unwrap()
    );
}
