//! The Rollout's side of analysis: create the runs a plan starts (from
//! the templates its steps name), and end the runs it no longer needs (another revision or
//! attempt, or a rollout that completed or aborted: background analysis ends when the rollout
//! does).

use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rollgate_crds::Rollout;
use rollgate_crds::analysis::{
    AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, RunRevisions,
};
use rollgate_crds::names::{ATTEMPT_LABEL, REVISION_LABEL};
use rollgate_crds::rollout::{AnalysisStep, RolloutPhase};
use serde_json::json;

use super::build::{ResolvedTemplate, build_run, step_of};
use crate::decide::AnalysisKey;
use crate::error::Error;
use crate::write::{self, FieldManager, Part};

/// Creates the runs for `keys`; returns, for each that cannot start, why (a missing template
/// or argument).
pub async fn start(
    client: &kube::Client,
    rollout: &Rollout,
    keys: &[AnalysisKey],
    revisions: &RunRevisions,
    attempt: i32,
) -> Result<Vec<String>, Error> {
    let namespace = rollout.namespace().ok_or(Error::NoNamespace)?;
    let runs: Api<AnalysisRun> = Api::namespaced(client.clone(), &namespace);
    let mut problems = Vec::new();
    for key in keys {
        let Some(step) = step_of(rollout, key) else {
            continue;
        };
        let templates = match resolve_templates(client, &namespace, step).await? {
            Ok(templates) => templates,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let run = match build_run(rollout, key, step, &templates, revisions.clone(), attempt) {
            Ok(run) => run,
            Err(error) => {
                problems.push(error.to_string());
                continue;
            }
        };
        match runs.create(&PostParams::default(), &run).await {
            Ok(_) => {}
            // Created by an earlier reconcile whose status write has not come back yet.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(problems)
}

/// The templates `step` names, or why one cannot be found.
async fn resolve_templates(
    client: &kube::Client,
    namespace: &str,
    step: &AnalysisStep,
) -> Result<Result<Vec<ResolvedTemplate>, String>, Error> {
    let mut resolved = Vec::new();
    for reference in &step.templates {
        let name = &reference.template_name;
        let spec = if reference.cluster_scope == Some(true) {
            let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
            api.get_opt(name).await?.map(|template| template.spec)
        } else {
            let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), namespace);
            api.get_opt(name).await?.map(|template| template.spec)
        };
        match spec {
            Some(spec) => resolved.push(ResolvedTemplate {
                name: name.clone(),
                spec,
            }),
            None if reference.cluster_scope == Some(true) => {
                return Ok(Err(format!(
                    "ClusterAnalysisTemplate {name} does not exist"
                )));
            }
            None => {
                return Ok(Err(format!(
                    "AnalysisTemplate {name} does not exist in namespace {namespace}"
                )));
            }
        }
    }
    Ok(Ok(resolved))
}

/// Whether a running run is no longer needed: it judges another revision or attempt, or the
/// rollout has completed or aborted.
pub fn is_stale(
    run: &AnalysisRun,
    revision: &str,
    attempt: i32,
    phase: Option<RolloutPhase>,
) -> bool {
    let running = run
        .status
        .as_ref()
        .is_none_or(|status| !status.phase.is_completed());
    if !running || run.spec.is_terminated() {
        return false;
    }
    let label = |key: &str| {
        run.metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(key))
            .cloned()
    };
    label(REVISION_LABEL).as_deref() != Some(revision)
        || label(ATTEMPT_LABEL) != Some(attempt.to_string())
        || matches!(phase, Some(RolloutPhase::Healthy | RolloutPhase::Aborted))
}

/// Asks the stale runs among `runs` to stop measuring.
pub async fn terminate_stale(
    client: &kube::Client,
    runs: &[AnalysisRun],
    revision: &str,
    attempt: i32,
    phase: Option<RolloutPhase>,
) -> Result<(), Error> {
    for run in runs
        .iter()
        .filter(|run| is_stale(run, revision, attempt, phase))
    {
        let Some(namespace) = run.namespace() else {
            continue;
        };
        let api: Api<AnalysisRun> = Api::namespaced(client.clone(), &namespace);
        let body = write::partial::<AnalysisRun>(
            json!({"name": run.name_any()}),
            [("spec", json!({"terminate": true}))],
        );
        write::apply(
            &api,
            FieldManager::Controller,
            Part::Object,
            &run.name_any(),
            &body,
        )
        .await?;
    }
    Ok(())
}
