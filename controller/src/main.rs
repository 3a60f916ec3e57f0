//! `rollgate-controller`: runs the Rollout controller against the cluster in the kubeconfig (or
//! the in-cluster service account). `--help` lists every setting; each has an environment
//! variable too.

use clap::Parser;
use rollgate_controller::run::run;
use rollgate_controller::settings::Settings;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if settings.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    run(settings).await
}
