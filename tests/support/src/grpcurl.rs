//! grpcurl, an independent gRPC client, built from its Go module in `tests/tools/grpcurl`
//! (the version is pinned by go.mod/go.sum) into `target/tools/grpcurl` when missing or stale.
//! A cold build takes about two minutes on two cores.

use std::path::PathBuf;

use anyhow::Result;

/// The main package built from the module.
pub const GRPCURL_PACKAGE: &str = "github.com/fullstorydev/grpcurl/cmd/grpcurl";

/// The path of the grpcurl binary, built first if it is missing or stale.
pub fn grpcurl() -> Result<PathBuf> {
    crate::tools::go_tool("grpcurl", GRPCURL_PACKAGE, "grpcurl")
}
