//! go-containerregistry's crane CLI, built from its Go module in `tests/tools/crane` into
//! `target/tools/crane` when missing or older than go.mod/go.sum. `scripts/images.sh` assembles
//! and pushes rollgate's images with it; tests read image configs and layers with it.

use std::path::PathBuf;

use anyhow::Result;

/// The main package built from the module.
pub const CRANE_PACKAGE: &str = "github.com/google/go-containerregistry/cmd/crane";

/// The path of the crane binary, built first if it is missing or stale (a cold build takes
/// about a minute on two cores).
pub fn crane() -> Result<PathBuf> {
    crate::tools::go_tool("crane", CRANE_PACKAGE, "crane")
}
