//! Writes the CRD YAML of every rollgate resource to a directory (default `crds/yaml`) and the
//! admission policies shipped with them to another (default `crds/policies`).
//!
//! Usage: `cargo run -p rollgate-crds --bin crdgen [-- <crd dir> [<policy dir>]]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rollgate_crds::generate::GeneratedFile;

fn main() -> ExitCode {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let crd_dir = args.next().unwrap_or_else(|| manifest.join("yaml"));
    let policy_dir = args.next().unwrap_or_else(|| manifest.join("policies"));
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
    match write_all(&crd_dir, crds).and_then(|()| write_all(&policy_dir, policies)) {
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
