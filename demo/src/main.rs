//! `rollgate-demo`: the whole product as its users run it, one stage at a time, each stage
//! saying what happens and why.
//!
//! 1. rollgate installed by Helm on a local cluster with one real node: its images built here,
//!    pushed by digest and signed; controller (two replicas) and analysis service as real pods;
//! 2. releases of the app made from the signed demo-app image, signed with a release key, and
//!    an ImagePolicy that trusts that key;
//! 3. a canary of real pods: 20% of the pods answer about 20% of the real requests sent through
//!    the app's Service (counted by each pod), an error-rate analysis on Prometheus metrics
//!    scraped from the pods, then an approval gate, followed live by
//!    `kubectl rollgate status --watch`;
//! 4. the gate approved from the CLI by a release manager (the requester's own approval does not
//!    count), and the rollout completes;
//! 5. a signed but bad revision breaches its SLO: the analysis fails, the Rollout aborts, and
//!    every request goes back to stable;
//! 6. an unsigned image is refused before anything runs;
//! 7. the Rollout's history, and its audit log verified against the signed checkpoints
//!    published outside the cluster.
//!
//! A machine runs one real node at a time: when a test or another demo holds it, the demo says
//! so and waits. Long steps (the image build, the install) print their lines as they go and
//! say they are still at work after 15 quiet seconds. Every process it starts stops when it
//! ends, fails, or is interrupted (Ctrl-C or SIGTERM), and the real node's changes to the host
//! are undone: the fixtures stop their processes when dropped, and each is supervised so that
//! it also dies with this process.
//!
//! Exit codes: 0 the story ran to the end, 1 a stage failed, 130 interrupted.

mod narrate;
mod objects;
mod plugin;
mod stack;
mod stages;
mod waits;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use crate::narrate::Narrator;

/// Walk through rollgate on a local cluster: signed canary, analysis, approval, automatic abort,
/// refusal of an unsigned image, history and audit.
#[derive(Debug, Parser)]
#[command(name = "rollgate-demo", version)]
struct Args {
    /// Run straight through without pausing between stages (the default when stdin is not a
    /// terminal).
    #[arg(long)]
    non_interactive: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(Narrator::new(interactive)));
    // A pause may still be reading stdin on a blocking thread: do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// Races the walkthrough against SIGINT and SIGTERM; whichever way it ends, the walkthrough
/// (which owns every fixture) is dropped, and so every process stopped, before this returns.
async fn run(narrator: Narrator) -> ExitCode {
    // Registered before anything starts, so a signal never takes the default action (an
    // immediate exit that would skip the clean-up).
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("error: cannot handle signals: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut walkthrough = Box::pin(stages::run(&narrator));
    let outcome = tokio::select! {
        result = &mut walkthrough => Some(result),
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
    };
    match outcome {
        Some(Ok(())) => {
            drop(walkthrough);
            narrator.finished();
            ExitCode::SUCCESS
        }
        Some(Err(error)) => {
            drop(walkthrough);
            eprintln!("\nerror: {error:#}");
            eprintln!("The demo stopped every process it had started.");
            ExitCode::FAILURE
        }
        None => {
            println!("\nInterrupted: stopping every process the demo started…");
            drop(walkthrough);
            println!("Stopped. Nothing the demo started is left running.");
            ExitCode::from(130)
        }
    }
}
