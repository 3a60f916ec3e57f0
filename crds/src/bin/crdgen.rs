//! Writes the CRD YAML of every rollgate resource to a directory (default `crds/yaml`).
//!
//! Usage: `cargo run -p rollgate-crds --bin crdgen [-- <dir>]`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yaml"));
    let files = match rollgate_crds::generate::crd_files() {
        Ok(files) => files,
        Err(error) => {
            eprintln!("crdgen: cannot render the CRDs: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("crdgen: cannot create {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    for file in files {
        let path = dir.join(&file.file_name);
        if let Err(error) = std::fs::write(&path, file.content) {
            eprintln!("crdgen: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
