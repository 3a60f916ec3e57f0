//! Stages 5 and 6: what rollgate stops. A signed revision that breaches its SLO is aborted by
//! its analysis, with every real request back on stable; an unsigned image is refused before
//! anything of it is created.

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
            "v3 is signed, so verification lets it through, but its pods fail 30% of their\n\
             requests. The analysis measures the canary's error ratio above 5% and fails, and the\n\
             controller aborts on its own: all requests go back to the stable v2, nobody acts.",
        );
        self.narrator
            .step("pushing and signing v3, a release whose pods fail 30% of their requests");
        let v3 = self.push("v3", BAD_ERROR_RATE, true)?;
        let v3_revision = v3.revision.clone();
        let v2_revision = self.versions[1].revision.clone();
        self.narrator.step("applying v3");
        self.apply_rollout("rollout-v3", &v3)?;
        self.start_watch()?;
        let awaited = Awaited {
            what: "the automatic abort of v3",
            timeout: Duration::from_secs(150),
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
        self.narrator
            .step("counting where the requests go now that the canary is aborted");
        let shares = self.measure_shares().await?;
        shares.expect(&v2_revision, 1.0)?;
        self.narrator.done(
            5,
            &format!(
                "v3 aborted automatically by {}: error ratio {ratio} breached the SLO \
                 (result < 0.05); {:.0}% of the real requests back on stable v2",
                abort.by,
                shares.of(&v2_revision) * 100.0
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
        let v4 = self.push("v4", 0.0, false)?;
        let v4_revision = v4.revision.clone();
        let v2_revision = self.versions[1].revision.clone();
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
