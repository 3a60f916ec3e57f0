//! Where the Go-built tools live, and building them when they are missing or stale.
//!
//! The tools are built into `target/tools/` of the workspace (override with
//! `ROLLGATE_TOOLS_DIR`). `.ci/run` builds them up front; a test run started by hand builds
//! them here, once, so `cargo test` works on its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support lies two levels below the workspace root")
        .to_path_buf()
}

/// The directory the Go-built tools are installed in.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("ROLLGATE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/tools"))
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The path of the cluster binary, built first if it is missing or older than its sources.
/// The same binary is kubectl: [`kubectl`] returns the symlink to it.
pub fn cluster_binary() -> Result<PathBuf> {
    let _guard = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let module = workspace_root().join("tests/cluster");
    let binary = tools_dir().join("rollgate-cluster");
    if is_stale(&binary, &module)? {
        std::fs::create_dir_all(tools_dir())?;
        eprintln!(
            "building {} (a cold build takes several minutes)",
            binary.display()
        );
        let status = Command::new("go")
            .args(["build", "-trimpath", "-ldflags", "-s -w", "-o"])
            .arg(&binary)
            .arg(".")
            .current_dir(&module)
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .status()
            .context("run `go build` for tests/cluster (is Go installed?)")?;
        if !status.success() {
            bail!("`go build` of tests/cluster failed: {status}");
        }
    }
    let kubectl = tools_dir().join("kubectl");
    if !kubectl.exists() {
        std::os::unix::fs::symlink("rollgate-cluster", &kubectl)
            .with_context(|| format!("symlink {}", kubectl.display()))?;
    }
    Ok(binary)
}

/// The path of kubectl (the cluster binary under the name `kubectl`).
pub fn kubectl() -> Result<PathBuf> {
    cluster_binary()?;
    Ok(tools_dir().join("kubectl"))
}

/// The path of a client tool built from its own small Go module under `tests/tools/<module>`
/// (Go's `tool` directive pins it in go.mod/go.sum): `go build` of `package` into
/// `target/tools/<binary>`, when the binary is missing or older than go.mod/go.sum. Builds are
/// serialised in this process.
pub fn go_tool(module: &str, package: &str, binary: &str) -> Result<PathBuf> {
    go_tool_tagged(module, package, binary, &[])
}

/// [`go_tool`] with Go build tags (`-tags`), for tools whose optional parts are chosen by tags.
/// `scripts/setup.sh` builds the same tools with the same tags.
pub fn go_tool_tagged(module: &str, package: &str, binary: &str, tags: &[&str]) -> Result<PathBuf> {
    let _guard = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let module_dir = workspace_root().join("tests/tools").join(module);
    let path = tools_dir().join(binary);
    let modified = |file: &Path| file.metadata().and_then(|m| m.modified()).ok();
    let newest_source = ["go.mod", "go.sum"]
        .into_iter()
        .filter_map(|name| modified(&module_dir.join(name)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if modified(&path).is_none_or(|built| newest_source > built) {
        std::fs::create_dir_all(tools_dir())?;
        eprintln!("building {} from tests/tools/{module}", path.display());
        let status = Command::new("go")
            .args([
                "build",
                "-trimpath",
                "-ldflags",
                "-s -w",
                "-tags",
                &tags.join(","),
            ])
            .arg("-o")
            .arg(&path)
            .arg(package)
            .current_dir(&module_dir)
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .status()
            .with_context(|| {
                format!("run `go build` in tests/tools/{module} (is Go installed?)")
            })?;
        if !status.success() {
            bail!("`go build` of {package} failed: {status}");
        }
    }
    Ok(path)
}

fn is_stale(binary: &Path, module: &Path) -> Result<bool> {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else {
        return Ok(true);
    };
    let newest_source = std::fs::read_dir(module)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".go") || name == "go.mod" || name == "go.sum"
        })
        .filter_map(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(newest_source > built)
}
