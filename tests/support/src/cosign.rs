//! The real cosign CLI, built from its Go module in `tests/tools/cosign` (Go's `tool`
//! directive pins the version in go.mod/go.sum) into `target/tools/cosign`, when missing or
//! older than go.mod/go.sum. Used by the interoperability tests: what cosign signs, rollgate
//! must verify.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::tools::{tools_dir, workspace_root};

/// The main package built from the module.
pub const COSIGN_PACKAGE: &str = "github.com/sigstore/cosign/v3/cmd/cosign";

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The path of the cosign binary, built first if it is missing or stale. A cold build takes a
/// few minutes on two cores.
pub fn cosign() -> Result<PathBuf> {
    let _guard = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let module = workspace_root().join("tests/tools/cosign");
    let binary = tools_dir().join("cosign");
    if is_stale(&binary, &module) {
        std::fs::create_dir_all(tools_dir())?;
        eprintln!(
            "building {} (a cold build takes a few minutes)",
            binary.display()
        );
        let status = Command::new("go")
            .args(["build", "-trimpath", "-ldflags", "-s -w", "-o"])
            .arg(&binary)
            .arg(COSIGN_PACKAGE)
            .current_dir(&module)
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .status()
            .context("run `go build` for tests/tools/cosign (is Go installed?)")?;
        if !status.success() {
            bail!("`go build` of cosign failed: {status}");
        }
    }
    Ok(binary)
}

fn is_stale(binary: &std::path::Path, module: &std::path::Path) -> bool {
    let modified = |path: PathBuf| path.metadata().and_then(|m| m.modified()).ok();
    let Some(built) = modified(binary.to_path_buf()) else {
        return true;
    };
    let newest = ["go.mod", "go.sum"]
        .into_iter()
        .filter_map(|name| modified(module.join(name)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    newest > built
}
