//! Writes the CRD YAML of every rollgate resource to a directory (default `crds/yaml`) and the
//! admission policies shipped with them to another (default `crds/policies`).
//!
//! With the default directories it also writes the Helm chart's copies
//! (`charts/rollgate/crds` and `charts/rollgate/files/policies`), which a test keeps identical.
//!
//! Usage: `cargo run -p rollgate-crds --bin crdgen [-- <crd dir> [<policy dir>]]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rollgate_crds::generate::GeneratedFile;

fn main() -> ExitCode {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (crd_dir, policy_dir) = (args.next(), args.next());
    let chart = manifest.join("../charts/rollgate");
    let mut crd_dirs = vec![crd_dir.clone().unwrap_or_else(|| manifest.join("yaml"))];
    let mut policy_dirs = vec![
        policy_dir
            .clone()
            .unwrap_or_else(|| manifest.join("policies")),
    ];
    if crd_dir.is_none() && policy_dir.is_none() && chart.is_dir() {
        crd_dirs.push(chart.join("crds"));
        policy_dirs.push(chart.join("files/policies"));
    }
    let crds = match rollgate_crds::generate::crd_files() {
        Ok(files) => files,
        Err(error) => {
            eprintln!("crdgen: cannot render the CRDs: {error}");
            return ExitCode::FAILURE;
        }
    };
    let policies = match rollgate_crds::policies::policy_files() {
        Ok(files) => files,
        Err(error) => {
            eprintln!("crdgen: cannot render the admission policies: {error}");
            return ExitCode::FAILURE;
        }
    };
    let written = crd_dirs
        .iter()
        .try_for_each(|dir| write_all(dir, crds.clone()))
        .and_then(|()| {
            policy_dirs
                .iter()
                .try_for_each(|dir| write_all(dir, policies.clone()))
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crdgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &Path, files: Vec<GeneratedFile>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for file in files {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, file.content)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
