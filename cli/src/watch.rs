//! `status --watch`: a live view of one Rollout until it settles (Healthy, Aborted, Degraded).
//!
//! A progress bar shows the steps done and the canary weight; each change of the status view is
//! printed above it. Exits 0 when Healthy, 1 when Aborted, Degraded or timed out.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use kube::runtime::{WatchStreamExt, watcher};
use kubectl_rollgate::render;
use rollgate_crds::Rollout;
use rollgate_crds::rollout::RolloutPhase;

use crate::connect::Connection;

pub async fn run(connection: &Connection, name: &str, timeout: Duration) -> Result<ExitCode> {
    let api = connection.rollouts();
    api.get(name).await?;
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] step {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>."),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).applied_objects().boxed();
    let mut last_view = String::new();
    let followed = tokio::time::timeout(timeout, async {
        while let Some(rollout) = stream.try_next().await? {
            let view = render::status_view(&rollout);
            if view != last_view {
                // A hidden bar (output not a terminal) prints nothing, so print plainly.
                if bar.is_hidden() {
                    println!("{view}");
                } else {
                    bar.println(&view);
                }
                last_view = view;
            }
            update_bar(&bar, &rollout);
            if let Some(phase) = render::settled(&rollout) {
                return Ok(phase);
            }
        }
        bail!("the watch of rollout {name} ended")
    })
    .await;
    bar.finish_and_clear();
    match followed {
        Ok(Ok(RolloutPhase::Healthy)) => {
            println!("rollout {name} is Healthy");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(phase)) => {
            println!("rollout {name} is {phase:?}");
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(error)) => Err(error),
        Err(_) => {
            println!("rollout {name} did not settle within {timeout:?}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn update_bar(bar: &ProgressBar, rollout: &Rollout) {
    let steps = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .map_or(0, |canary| canary.steps.len());
    let status = rollout.status.clone().unwrap_or_default();
    bar.set_length(steps.max(1) as u64);
    let index = status.current_step_index.unwrap_or(0).max(0) as u64;
    bar.set_position(index.min(steps.max(1) as u64));
    let mut message = render::phase(rollout);
    if let Some(weight) = status.canary_weight {
        message.push_str(&format!(", weight {weight}%"));
    }
    if let Some(gate) = &status.gate {
        message.push_str(&format!(", gate {}/{}", gate.received, gate.required));
    }
    bar.set_message(message);
}
