//! `rollgate-controller`: runs the Rollout controller against the cluster in the kubeconfig (or
//! the in-cluster service account). `--help` lists every setting; each has an environment
//! variable too.

use clap::Parser;
use rollgate_controller::run::run;
use rollgate_controller::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    rollgate_runtime::logging::init(settings.process.log_format);
    run(settings).await
}
