//! Stages 5 and 6: what rollgate stops. A signed revision that breaches its SLO is aborted by
//! its analysis, with traffic back on stable; an unsigned image is refused before anything of
//! it is created.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kube::api::ListParams;
use rollgate_crds::analysis::AnalysisPhase;
use rollgate_crds::rollout::{RolloutPhase, condition_types};

use super::Walk;
use crate::objects::ROLLOUT;
use crate::waits::{Awaited, finished_run, rollout_until};

/// The bad revision's error rate.
const BAD_ERROR_RATE: f64 = 0.3;

impl Walk<'_> {
    /// Stage 5: v3 is signed, but 30% of its requests fail: analysis aborts it.
    pub(super) async fn bad_revision(&mut self) -> Result<()> {
        self.narrator.stage(
            5,
            "A bad revision is aborted by its analysis",
            "v3 is signed, so verification lets it through, but 30% of its requests fail. The\n\
             analysis measures the canary's error ratio above 5% and fails, and the controller\n\
             aborts on its own: all traffic goes back to the stable v2, nobody has to act.",
        );
        self.narrator
            .step("pushing and signing v3; its demo app fails 30% of its requests");
        let (v3, v3_revision) = self.push("checkout v3: a regression", true)?;
        let v2_revision = self.versions[1].1.clone();
        self.stack.start_app(&v3_revision, BAD_ERROR_RATE).await?;
        self.narrator.step("applying v3");
        self.apply_rollout("rollout-v3", &v3)?;
        self.start_watch()?;
        let awaited = Awaited {
            what: "the automatic abort of v3",
            timeout: Duration::from_secs(120),
            fails_on: &[RolloutPhase::Healthy, RolloutPhase::Degraded],
        };
        let aborted = rollout_until(&self.rollouts, awaited, |rollout| {
            rollout.status.as_ref().is_some_and(|status| {
                status.phase == Some(RolloutPhase::Aborted)
                    && status.current_revision.as_deref() == Some(v3_revision.as_str())
            })
        })
        .await?;
        let healthy = self.finish_watch().await?;
        ensure!(
            !healthy,
            "kubectl rollgate status --watch ended Healthy for the bad v3"
        );
        let status = aborted.status.context("the Rollout has no status")?;
        let abort = status.abort.context("the Rollout records no abort")?;
        ensure!(
            status.canary_weight == Some(0),
            "the aborted canary still has weight {:?}",
            status.canary_weight
        );
        ensure!(
            status.stable_revision.as_deref() == Some(v2_revision.as_str()),
            "v2 is no longer stable: {:?}",
            status.stable_revision
        );
        self.narrator.detail(&format!(
            "aborted by {}: {}\ncanary weight 0%; ReplicaSets:\n{}",
            abort.by,
            abort.reason,
            self.replica_sets().await?
        ));

        let run = finished_run(&self.runs, &v3_revision).await?;
        let run_status = run.status.context("the AnalysisRun has no status")?;
        ensure!(
            run_status.phase == AnalysisPhase::Failed,
            "the AnalysisRun of v3 ended {:?}",
            run_status.phase
        );
        let failing = run_status
            .metric_results
            .iter()
            .flat_map(|metric| metric.measurements.iter().map(move |m| (metric, m)))
            .find(|(_, m)| m.phase == AnalysisPhase::Failed)
            .context("the AnalysisRun keeps no failing measurement")?;
        let value = failing.1.value.clone().unwrap_or_default();
        let ratio = value
            .parse::<f64>()
            .map_or_else(|_| value.clone(), |ratio| format!("{ratio:.3}"));
        self.narrator.detail(&format!(
            "AnalysisRun {}: Failed. The failing measurement of {}:\n  value:   {value}\n  \
             message: {}",
            run.metadata.name.unwrap_or_default(),
            failing.0.name,
            failing.1.message.as_deref().unwrap_or("-")
        ));
        self.plugin.run_ok(&self.admin(), &["get", ROLLOUT]).await?;
        self.narrator.done(
            5,
            &format!(
                "v3 aborted automatically by {}: error ratio {ratio} breached the SLO \
                 (result < 0.05); traffic back on stable v2",
                abort.by
            ),
        );
        Ok(())
    }

    /// Stage 6: v4 has no signature: refused, nothing of it runs.
    pub(super) async fn unsigned(&mut self) -> Result<()> {
        self.narrator.stage(
            6,
            "An unsigned image is refused",
            "v4 was pushed but never signed. Before it creates anything for a revision, the\n\
             controller looks for signatures of its digest by a key the ImagePolicy trusts:\n\
             none, so v4 is refused and the stable v2 keeps serving.",
        );
        self.narrator
            .step("pushing v4 without signing it, and applying it");
        let (v4, v4_revision) =
            self.push("checkout v4: built outside the release pipeline", false)?;
        let v2_revision = self.versions[1].1.clone();
        self.apply_rollout("rollout-v4", &v4)?;
        let awaited = Awaited {
            what: "the refusal of v4",
            timeout: Duration::from_secs(60),
            fails_on: &[RolloutPhase::Healthy],
        };
        let refused = rollout_until(&self.rollouts, awaited, |rollout| {
            rollout
                .status
                .as_ref()
                .is_some_and(|status| status.phase == Some(RolloutPhase::Degraded))
        })
        .await?;
        let status = refused.status.context("the Rollout has no status")?;
        let verified = status
            .conditions
            .iter()
            .find(|condition| condition.type_ == condition_types::VERIFIED)
            .context("the Rollout has no Verified condition")?;
        ensure!(
            verified.status == "False",
            "Verified is {}: {}",
            verified.status,
            verified.message
        );
        self.narrator.detail(&format!(
            "condition Verified=False, reason {}: {}",
            verified.reason, verified.message
        ));
        let event = self.refusal_event().await?;
        self.narrator.detail(&format!("Event {event}"));
        let replicas = self.replica_sets().await?;
        ensure!(
            !replicas.contains(&v4_revision),
            "a ReplicaSet was created for the refused v4: {replicas}"
        );
        ensure!(
            status.stable_revision.as_deref() == Some(v2_revision.as_str()),
            "v2 is no longer stable: {:?}",
            status.stable_revision
        );
        self.narrator.detail(&format!(
            "ReplicaSets (none for v4 {v4_revision}):\n{replicas}"
        ));
        self.plugin.run_ok(&self.admin(), &["get", ROLLOUT]).await?;
        self.narrator.done(
            6,
            &format!(
                "unsigned v4 refused by verification (Verified=False, {}); nothing of it was \
                 created and v2 keeps serving",
                verified.reason
            ),
        );
        Ok(())
    }

    /// The controller's `ImageRefused` Event about the Rollout, as `reason: note`.
    async fn refusal_event(&self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events.list(&ListParams::default()).await?;
            let refused = events.items.into_iter().find(|event| {
                event.reason.as_deref() == Some("ImageRefused")
                    && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(ROLLOUT)
            });
            if let Some(event) = refused {
                return Ok(format!(
                    "{} ({}): {}",
                    event.reason.unwrap_or_default(),
                    event.type_.unwrap_or_default(),
                    event.note.unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                bail!("no ImageRefused Event about the Rollout within 20s");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
