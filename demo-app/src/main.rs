//! `rollgate-demo-app`: `serve` runs the demo workload, `load` drives traffic at it.
//! `--help` lists the flags.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rollgate_demo_app::run(rollgate_demo_app::Cli::parse()).await
}
