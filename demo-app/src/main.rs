//! `rollgate-demo-app`: `serve` runs the demo workload, `load` drives traffic at it.
//! `--help` lists the flags.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // In a workspace build reqwest may be built with rustls, which needs a process-wide crypto
    // provider: the same one the controller and the analysis service install.
    let _ = rustls::crypto::ring::default_provider().install_default();
    rollgate_demo_app::run(rollgate_demo_app::Cli::parse()).await
}
