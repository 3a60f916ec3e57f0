//! Building an AnalysisRun from a Rollout's analysis step and the templates it names: the
//! metrics of every template, in order, and the argument values (the step's values override
//! the templates' defaults). Pure: the caller fetches the templates.
//!
//! A run is named `<rollout>-<revision>-<key>-<attempt>` and labelled with the same four facts,
//! so a restarted controller finds the run it created instead of starting another, and a retry
//! (a new attempt) starts fresh ones. Runs are owned by the Rollout (deleted with it).

use std::collections::BTreeMap;

use kube::Resource;
use kube::api::ObjectMeta;
use kube::core::ResourceExt;
use rollgate_crds::Rollout;
use rollgate_crds::analysis::{AnalysisRun, AnalysisRunSpec, AnalysisTemplateSpec, RunRevisions};
use rollgate_crds::rollout::{AnalysisArg, AnalysisStep};

use crate::decide::AnalysisKey;
use rollgate_crds::names::{ANALYSIS_KEY_LABEL, ATTEMPT_LABEL, REVISION_LABEL, ROLLOUT_LABEL};

/// A template the step names, as fetched.
#[derive(Debug, Clone)]
pub struct ResolvedTemplate {
    /// The template's name.
    pub name: String,
    /// Its spec.
    pub spec: AnalysisTemplateSpec,
}

/// Why a run cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A template argument has no value from the step nor a default.
    #[error(
        "analysis {key}: argument {argument:?} of AnalysisTemplate {template} has no value (set it in the step's args)"
    )]
    MissingArgument {
        /// The analysis.
        key: String,
        /// The template.
        template: String,
        /// The argument.
        argument: String,
    },
    /// Two templates define a metric of the same name.
    #[error("analysis {key}: metric {metric:?} is defined by more than one template")]
    DuplicateMetric {
        /// The analysis.
        key: String,
        /// The metric.
        metric: String,
    },
}

/// The label value of an analysis key.
pub fn key_label(key: &AnalysisKey) -> String {
    match key {
        AnalysisKey::Step(index) => format!("step-{index}"),
        AnalysisKey::Background => "background".to_owned(),
        AnalysisKey::PrePromotion => "pre-promotion".to_owned(),
        AnalysisKey::PostPromotion => "post-promotion".to_owned(),
    }
}

/// The analysis key of a label value.
pub fn parse_key_label(label: &str) -> Option<AnalysisKey> {
    match label {
        "background" => Some(AnalysisKey::Background),
        "pre-promotion" => Some(AnalysisKey::PrePromotion),
        "post-promotion" => Some(AnalysisKey::PostPromotion),
        _ => label
            .strip_prefix("step-")
            .and_then(|index| index.parse().ok())
            .map(AnalysisKey::Step),
    }
}

/// The name of the run of `key` for `revision` at `attempt`.
pub fn run_name(rollout: &str, revision: &str, key: &AnalysisKey, attempt: i32) -> String {
    format!("{rollout}-{revision}-{}-{attempt}", key_label(key))
}

/// Which analysis step of the Rollout `key` refers to.
pub fn step_of<'a>(rollout: &'a Rollout, key: &AnalysisKey) -> Option<&'a AnalysisStep> {
    let strategy = &rollout.spec.strategy;
    match key {
        AnalysisKey::Step(index) => strategy
            .canary
            .as_ref()?
            .steps
            .get(*index)?
            .analysis
            .as_ref(),
        AnalysisKey::Background => strategy.canary.as_ref()?.analysis.as_ref(),
        AnalysisKey::PrePromotion => strategy
            .blue_green
            .as_ref()?
            .pre_promotion_analysis
            .as_ref(),
        AnalysisKey::PostPromotion => strategy
            .blue_green
            .as_ref()?
            .post_promotion_analysis
            .as_ref(),
    }
}

/// The run for `key` of `rollout`'s `revisions.canary` at `attempt`, from `step` and its
/// fetched `templates` (in the step's order).
pub fn build_run(
    rollout: &Rollout,
    key: &AnalysisKey,
    step: &AnalysisStep,
    templates: &[ResolvedTemplate],
    revisions: RunRevisions,
    attempt: i32,
) -> Result<AnalysisRun, BuildError> {
    let key_text = key_label(key);
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut metrics = Vec::new();
    for template in templates {
        for argument in &template.spec.args {
            let given = step
                .args
                .iter()
                .find(|arg| arg.name == argument.name)
                .map(|arg| arg.value.clone());
            let Some(value) = given.or_else(|| argument.value.clone()) else {
                return Err(BuildError::MissingArgument {
                    key: key_text,
                    template: template.name.clone(),
                    argument: argument.name.clone(),
                });
            };
            values.entry(argument.name.clone()).or_insert(value);
        }
        for metric in &template.spec.metrics {
            if metrics
                .iter()
                .any(|known: &rollgate_crds::analysis::MetricSpec| known.name == metric.name)
            {
                return Err(BuildError::DuplicateMetric {
                    key: key_text,
                    metric: metric.name.clone(),
                });
            }
            metrics.push(metric.clone());
        }
    }
    // Arguments the step gives that no template declares are passed on too.
    for arg in &step.args {
        values
            .entry(arg.name.clone())
            .or_insert_with(|| arg.value.clone());
    }
    let name = rollout.name_any();
    let labels = BTreeMap::from([
        (ROLLOUT_LABEL.to_owned(), name.clone()),
        (REVISION_LABEL.to_owned(), revisions.canary.clone()),
        (ANALYSIS_KEY_LABEL.to_owned(), key_text),
        (ATTEMPT_LABEL.to_owned(), attempt.to_string()),
    ]);
    let run_name = run_name(&name, &revisions.canary, key, attempt);
    let mut run = AnalysisRun::new(
        &run_name,
        AnalysisRunSpec {
            rollout: name,
            revisions,
            args: values
                .into_iter()
                .map(|(name, value)| AnalysisArg { name, value })
                .collect(),
            metrics,
            terminate: None,
        },
    );
    run.metadata = ObjectMeta {
        name: Some(run_name),
        namespace: rollout.namespace(),
        labels: Some(labels),
        owner_references: rollout.controller_owner_ref(&()).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    };
    Ok(run)
}
