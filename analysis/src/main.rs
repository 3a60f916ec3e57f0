//! `rollgate-analysis`: serves the AnalysisService over gRPC. `--help` lists every setting;
//! each has an environment variable too.

use clap::Parser;
use rollgate_analysis::run::{Settings, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    rollgate_runtime::logging::init(settings.process.log_format);
    run(settings).await
}
