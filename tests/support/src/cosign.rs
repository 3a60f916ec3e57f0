//! The real cosign CLI, built from its Go module in `tests/tools/cosign` (Go's `tool`
//! directive pins the version in go.mod/go.sum) into `target/tools/cosign`, when missing or
//! older than go.mod/go.sum. Used by the interoperability tests: what cosign signs, rollgate
//! must verify.

use std::path::PathBuf;

use anyhow::Result;

/// The main package built from the module.
pub const COSIGN_PACKAGE: &str = "github.com/sigstore/cosign/v3/cmd/cosign";

/// The path of the cosign binary, built first if it is missing or stale. A cold build takes a
/// few minutes on two cores.
pub fn cosign() -> Result<PathBuf> {
    crate::tools::go_tool("cosign", COSIGN_PACKAGE, "cosign")
}
