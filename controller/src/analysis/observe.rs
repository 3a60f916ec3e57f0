//! What the Rollout's gates see of its AnalysisRuns: the outcome of each analysis of the
//! desired revision at the current attempt. Runs of other revisions or earlier attempts never
//! count, so a verdict cannot leak from one revision (or one try) to the next.

use std::collections::BTreeMap;

use kube::ResourceExt;
use rollgate_crds::analysis::{AnalysisPhase, AnalysisRun};
use rollgate_crds::names::{ANALYSIS_KEY_LABEL, ATTEMPT_LABEL, REVISION_LABEL};

use super::build::parse_key_label;
use crate::decide::{AnalysisKey, AnalysisOutcome};

/// The outcome of each analysis of `revision` at `attempt`, from the Rollout's runs.
pub fn outcomes(
    runs: &[AnalysisRun],
    revision: &str,
    attempt: i32,
) -> BTreeMap<AnalysisKey, AnalysisOutcome> {
    runs.iter()
        .filter(|run| label(run, REVISION_LABEL) == Some(revision))
        .filter(|run| label(run, ATTEMPT_LABEL) == Some(attempt.to_string().as_str()))
        .filter_map(|run| {
            let key = parse_key_label(label(run, ANALYSIS_KEY_LABEL)?)?;
            Some((key, outcome(run)))
        })
        .collect()
}

/// The outcome of one run.
pub fn outcome(run: &AnalysisRun) -> AnalysisOutcome {
    let Some(status) = run.status.as_ref() else {
        return AnalysisOutcome::Running;
    };
    let reason = || {
        status
            .message
            .clone()
            .unwrap_or_else(|| format!("AnalysisRun {} ended {:?}", run.name_any(), status.phase))
    };
    match status.phase {
        AnalysisPhase::Pending | AnalysisPhase::Running => AnalysisOutcome::Running,
        AnalysisPhase::Successful => AnalysisOutcome::Successful,
        AnalysisPhase::Failed => AnalysisOutcome::Failed(reason()),
        AnalysisPhase::Error => AnalysisOutcome::Error(reason()),
        AnalysisPhase::Inconclusive => AnalysisOutcome::Inconclusive(reason()),
    }
}

fn label<'a>(run: &'a AnalysisRun, key: &str) -> Option<&'a str> {
    run.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(key))
        .map(String::as_str)
}
