//! `crds/` must hold exactly what the Rust types generate, so a changed type cannot ship a stale CRD.

use std::{collections::BTreeSet, path::Path};

use ballast::api::crds::{crd_files, crd_yaml, crds_yaml};

const REGENERATE: &str = "run `cargo run --no-default-features --bin crdgen` and commit crds/";

#[test]
fn crds_directory_matches_the_generated_crds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut expected_names = BTreeSet::new();
    for (name, crd) in crd_files() {
        let path = dir.join(&name);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("failed to read {}: {e}; {REGENERATE}", path.display()));
        assert!(
            on_disk == crd_yaml(&crd),
            "{} differs from what the types generate; {REGENERATE}",
            path.display()
        );
        expected_names.insert(name);
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("failed to list {}: {e}; {REGENERATE}", dir.display()))
        .map(|entry| entry.expect("directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    let stale: Vec<&String> = on_disk.difference(&expected_names).collect();
    assert!(stale.is_empty(), "crds/ holds files no type generates: {stale:?}; {REGENERATE}");
}

#[test]
fn crds_yaml_concatenates_the_files() {
    let joined: Vec<String> = crd_files().iter().map(|(_, crd)| crd_yaml(crd)).collect();
    assert_eq!(crds_yaml(), joined.join("---\n"));
}
