//! Waiting for the Rollout, with each change of its phase, step, weight and gate printed as it
//! happens, and a clear error naming what was awaited when it does not come in time.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::Api;
use kube::api::ListParams;
use rollgate_crds::Rollout;
use rollgate_crds::analysis::AnalysisRun;
use rollgate_crds::names::{REVISION_LABEL, ROLLOUT_LABEL};
use rollgate_crds::rollout::RolloutPhase;

use crate::objects::ROLLOUT;

/// What a wait is for, and which phases mean it will never come.
pub struct Awaited<'a> {
    /// Words for the error message, for example `the approval gate`.
    pub what: &'a str,
    /// How long to wait.
    pub timeout: Duration,
    /// Phases that end the wait with an error.
    pub fails_on: &'a [RolloutPhase],
}

/// Polls the Rollout until `done` holds for its current generation, printing each change.
pub async fn rollout_until(
    api: &Api<Rollout>,
    awaited: Awaited<'_>,
    done: impl Fn(&Rollout) -> bool,
) -> Result<Rollout> {
    let deadline = Instant::now() + awaited.timeout;
    let mut last = String::new();
    loop {
        let rollout = api.get(ROLLOUT).await?;
        let line = progress_line(&rollout);
        if line != last {
            println!("      · {line}");
            last = line;
        }
        let status = rollout.status.clone().unwrap_or_default();
        let current = status.observed_generation == rollout.metadata.generation;
        if current && done(&rollout) {
            return Ok(rollout);
        }
        if current
            && let Some(phase) = status.phase
            && awaited.fails_on.contains(&phase)
        {
            bail!(
                "waiting for {}, the Rollout became {phase:?}: {}",
                awaited.what,
                status.message.unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the Rollout did not reach {} within {:?}; last seen: {last}",
                awaited.what,
                awaited.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The Rollout in one line: phase, step, weight, revisions, gate.
fn progress_line(rollout: &Rollout) -> String {
    let status = rollout.status.clone().unwrap_or_default();
    let steps = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .map_or(0, |canary| canary.steps.len());
    let mut line = status.phase.map_or_else(
        || "(no status yet)".to_owned(),
        |phase| format!("{phase:?}"),
    );
    if let Some(step) = status.current_step_index {
        line.push_str(&format!(", step {step}/{steps}"));
    }
    if let Some(weight) = status.canary_weight {
        line.push_str(&format!(", canary weight {weight}%"));
    }
    if let Some(gate) = &status.gate {
        line.push_str(&format!(", gate {}/{}", gate.received, gate.required));
    }
    line.push_str(&format!(
        ", revision {} (stable {})",
        status.current_revision.as_deref().unwrap_or("-"),
        status.stable_revision.as_deref().unwrap_or("-")
    ));
    if let Some(message) = status.message.filter(|m| !m.is_empty()) {
        line.push_str(&format!(": {message}"));
    }
    line
}

/// The finished AnalysisRun of `revision` of the Rollout.
pub async fn finished_run(api: &Api<AnalysisRun>, revision: &str) -> Result<AnalysisRun> {
    let selector = format!("{ROLLOUT_LABEL}={ROLLOUT},{REVISION_LABEL}={revision}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = api.list(&ListParams::default().labels(&selector)).await?;
        if let Some(run) = runs.items.into_iter().find(|run| {
            run.status
                .as_ref()
                .is_some_and(|status| status.phase.is_completed())
        }) {
            return Ok(run);
        }
        if Instant::now() > deadline {
            bail!("no finished AnalysisRun for revision {revision} within 30s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
