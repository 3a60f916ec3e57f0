use super::*;

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

#[test]
fn known_roots_of_rfc_6962() {
    // The empty tree is the hash of the empty string; one empty leaf is SHA-256(0x00).
    assert_eq!(
        hex::encode(root_of_hashes(&[])),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hex::encode(root_of_hashes(&[leaf_hash(b"")])),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
}

#[test]
fn root_of_hashes_is_the_root_ct_merkle_computes() {
    for n in 1..40 {
        let leaves = leaves(n);
        let hashes: Vec<Hash> = leaves.iter().map(|leaf| leaf_hash(leaf)).collect();
        let tree = RecordTree::new(leaves);
        assert_eq!(tree.root(), root_of_hashes(&hashes), "size {n}");
    }
}

#[test]
fn inclusion_holds_for_every_leaf_and_fails_for_another_root() {
    let tree = RecordTree::new(leaves(13));
    let root = tree.root();
    for index in 0..13 {
        tree.check_inclusion(index, &root, 13).unwrap();
    }
    let other = RecordTree::new(leaves(12)).root();
    assert!(tree.check_inclusion(3, &other, 13).is_err());
    assert!(tree.check_inclusion(13, &root, 13).is_err());
    assert!(tree.check_inclusion(0, &root, 12).is_err());
}

#[test]
fn consistency_holds_for_prefixes_and_fails_for_a_fork() {
    let tree = RecordTree::new(leaves(21));
    let root = tree.root();
    for old in 1..=21 {
        let prefix = RecordTree::new(leaves(old as usize)).root();
        tree.check_consistency((old, &prefix), &root).unwrap();
    }
    let mut forked = leaves(8);
    forked[5] = b"rewritten".to_vec();
    let fork = RecordTree::new(forked).root();
    assert!(tree.check_consistency((8, &fork), &root).is_err());
    assert!(tree.check_consistency((22, &root), &root).is_err());
}
