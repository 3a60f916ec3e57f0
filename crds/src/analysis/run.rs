//! The `AnalysisRun` resource: one execution of an analysis, created by the controller with the
//! templates' metrics resolved, the argument values and the revisions it judges. Its status
//! keeps each metric's latest measurements (bounded), its counters and a phase; the pure
//! transitions live in [`super::lifecycle`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::template::MetricSpec;
use crate::rollout::AnalysisArg;

/// The number of measurements each metric keeps in status; older ones are dropped (the
/// counters still count them).
pub const MAX_MEASUREMENTS: usize = 10;

/// An AnalysisRun is one execution of an analysis: the resolved metrics, the revisions they
/// judge, and the measurements and verdict so far.
// The printer columns repeat `type_ = ...` by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "rollgate.io",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    status = "AnalysisRunStatus",
    shortname = "rgar",
    category = "rollgate",
    doc = "An AnalysisRun is one execution of an analysis: the resolved metrics, the revisions they judge, and the measurements and verdict so far.",
    printcolumn(
        name = "Rollout",
        type_ = "string",
        json_path = ".spec.rollout",
        description = "The Rollout the analysis judges"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Phase of the analysis"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        description = "What decided",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// Name of the Rollout (in the same namespace) whose revision this run judges.
    #[schemars(length(min = 1, max = 253))]
    pub rollout: String,

    /// The revisions the queries compare (`{{revision.canary}}`, `{{revision.stable}}`).
    pub revisions: RunRevisions,

    /// The argument values, resolved from the templates' defaults and the Rollout's step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub args: Vec<AnalysisArg>,

    /// The metrics, copied from the templates when the run was created (a later template change
    /// does not change a running analysis).
    #[schemars(length(min = 1, max = 50))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, self.exists_one(n, n.name == m.name))")
        .message("metric names must be unique"))]
    pub metrics: Vec<MetricSpec>,

    /// Stop measuring (set by the controller when a run is no longer needed, or by a person):
    /// metrics still running end Inconclusive, or Error when a measurement failed or errored;
    /// never Successful, so terminating cannot skip an analysis. A failed metric stays failed.
    /// People may change this field alone, and only to `true` (the `rollgate-controller-owned`
    /// admission policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<bool>,
}

impl AnalysisRunSpec {
    /// Whether the run was asked to stop.
    pub fn is_terminated(&self) -> bool {
        self.terminate.unwrap_or(false)
    }
}

/// The revision hashes an analysis judges.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunRevisions {
    /// Revision hash of the canary (the new revision).
    #[schemars(length(min = 1, max = 63))]
    pub canary: String,

    /// Revision hash of the stable revision, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
}

/// The phase of an AnalysisRun, of one of its metrics, or of one measurement (which is never
/// Pending or Running).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AnalysisPhase {
    /// Not started.
    #[default]
    Pending,
    /// Measuring.
    Running,
    /// Passed.
    Successful,
    /// Failed: the rollout aborts.
    Failed,
    /// Neither passed nor failed: the rollout pauses for a person.
    Inconclusive,
    /// Could not be measured (errors beyond the limit): the rollout aborts.
    Error,
}

impl AnalysisPhase {
    /// Whether the phase is final.
    pub fn is_completed(self) -> bool {
        !matches!(self, AnalysisPhase::Pending | AnalysisPhase::Running)
    }

    /// How bad the phase is, to combine metrics: the worst phase decides a run.
    pub fn severity(self) -> u8 {
        match self {
            AnalysisPhase::Successful => 0,
            AnalysisPhase::Pending => 1,
            AnalysisPhase::Running => 2,
            AnalysisPhase::Inconclusive => 3,
            AnalysisPhase::Error => 4,
            AnalysisPhase::Failed => 5,
        }
    }
}

impl std::fmt::Display for AnalysisPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The observed state of an AnalysisRun, written by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Where the run is: Pending, Running, Successful, Failed, Inconclusive or Error.
    #[serde(default)]
    pub phase: AnalysisPhase,

    /// What decided the phase: which metric, query, value and threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When the run started measuring (the clock of `initialDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,

    /// When the run reached its final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,

    /// One entry per metric of the spec, in the spec's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_results: Vec<MetricResult>,
}

/// The measurements and verdict of one metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric's name.
    pub name: String,

    /// The metric's phase.
    #[serde(default)]
    pub phase: AnalysisPhase,

    /// What decided the metric's phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Measurements that returned a value (every measurement but errors).
    #[serde(default)]
    pub count: i32,

    /// Successful measurements.
    #[serde(default)]
    pub successful: i32,

    /// Failed measurements.
    #[serde(default)]
    pub failed: i32,

    /// Inconclusive measurements.
    #[serde(default)]
    pub inconclusive: i32,

    /// Measurements that could not be taken.
    #[serde(default)]
    pub error: i32,

    /// Errors in a row, since the last measurement that was not an error.
    #[serde(default)]
    pub consecutive_error: i32,

    /// The latest measurements, oldest first, at most ten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub measurements: Vec<Measurement>,
}

/// One measurement of a metric.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Successful, Failed, Inconclusive or Error.
    pub phase: AnalysisPhase,

    /// The measured value as text (a number, or a list of numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Why: the query, the value and the condition or statistic that decided, or the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When the measurement started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,

    /// When the measurement finished (the clock of `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,

    /// The statistics of a `compare` or `sequential` measurement, as the analysis service
    /// computed them (absent for a `successCondition` query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonResult>,
}

/// The statistics of a canary-against-baseline measurement. A figure that was not computed (no
/// data, too few samples, not finite) is absent, never 0.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonResult {
    /// How the canary compares with the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<ComparisonClass>,

    /// The Mann-Whitney U statistic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u_statistic: Option<f64>,

    /// The test's p-value (for a sequential test, the always-valid one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,

    /// The Hodges-Lehmann shift, canary minus baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hodges_lehmann: Option<f64>,

    /// The lower bound of the shift's confidence interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_lower: Option<f64>,

    /// The upper bound of the shift's confidence interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_upper: Option<f64>,

    /// The effect size: the ratio of means canary/baseline (for a sequential test, of error
    /// rates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_size: Option<f64>,
}

/// How a canary metric compares with its baseline.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComparisonClass {
    /// No meaningful difference in a bad direction.
    Pass,
    /// The canary is higher than the baseline.
    High,
    /// The canary is lower than the baseline.
    Low,
    /// A side had no data.
    NoData,
}
