//! `kubectl-rollgate`: the kubectl plugin to query and drive rollgate Rollouts.
//!
//! Exit codes: 0 success, 1 an error (or a broken audit chain, a failed lint, a watch that ended
//! Aborted, Degraded or timed out), 2 a usage error.

mod args;
mod commands;
mod connect;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let usage = error.use_stderr();
            let _ = error.print();
            return if usage {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match commands::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
