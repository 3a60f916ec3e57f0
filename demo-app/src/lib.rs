//! The demo workload of rollgate's tests and demos. Kubernetes pods in the test cluster run no
//! containers, so the traffic that analysis judges comes from this app, started as one local
//! process per revision:
//! - [`serve`]: an HTTP server whose `/` answers 500 at a configured rate after a configured
//!   latency, with Prometheus metrics at `/metrics` (`http_requests_total{revision,code}`,
//!   `http_request_duration_seconds{revision}`) and `POST /admin/config` to change the error
//!   rate and latency while it runs;
//! - [`load`]: a load generator that sends a fixed rate of requests to one or more targets for a
//!   bounded time.

pub mod load;
pub mod serve;

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "rollgate-demo-app",
    about = "rollgate's demo workload and load generator"
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the demo workload.
    Serve(serve::ServeArgs),
    /// Send load to demo workloads.
    Load(load::LoadArgs),
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Load(args) => load::load(args).await,
    }
}

/// Parses a duration in rollgate's grammar (`500ms`, `30s`, `5m`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    rollgate_crds::duration::parse_duration(text).map_err(|error| error.to_string())
}
