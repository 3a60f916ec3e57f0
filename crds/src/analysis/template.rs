//! The `AnalysisTemplate` resource (namespaced) and the spec it shares with the cluster-scoped
//! `ClusterAnalysisTemplate`: the arguments a template takes and the metrics it measures.
//!
//! Each metric has exactly one provider (today `prometheus`) and exactly one judgement:
//! - `successCondition` / `failureCondition`: CEL over `result` (a number for a scalar or a
//!   single-sample result, a list of numbers for a vector), judged with Argo Rollouts'
//!   semantics by the analysis service;
//! - `compare`: a Kayenta-style comparison of the canary's samples against the baseline's, from
//!   a canary query and a baseline query;
//! - `sequential`: an anytime-valid test (mixture SPRT) of the canary's error rate against the
//!   baseline's, from an errors query and a requests query per revision.
//!
//! The API server checks the shape (one provider, one judgement, non-empty conditions, the
//! duration grammar, `interval` whenever `count` is above 1, no negative limit). It cannot
//! check that a condition is valid CEL over `result`: a CEL string is data to the API server,
//! not an expression it compiles. The analysis service compiles each condition and answers
//! `InvalidArgument` naming the condition, so a bad condition surfaces on the first measurement
//! as an `Error` measurement with that message, never as a pass.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{DURATION_CEL_MESSAGE, DURATION_CEL_RULE};

/// The default `failureLimit`: a single failed measurement fails the metric.
pub const DEFAULT_FAILURE_LIMIT: i32 = 0;
/// The default `inconclusiveLimit`: a single inconclusive measurement makes the metric
/// inconclusive.
pub const DEFAULT_INCONCLUSIVE_LIMIT: i32 = 0;
/// The default `consecutiveErrorLimit`: the fifth error in a row makes the metric Error.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;

/// An AnalysisTemplate describes how to judge a revision: the metrics to query, how often, and
/// the conditions or statistics that decide.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "rollgate.io",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "rgat",
    category = "rollgate",
    doc = "An AnalysisTemplate describes how to judge a revision: the metrics to query, how often, and the conditions or statistics that decide."
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// The arguments the template takes, referenced in queries as `{{args.<name>}}`. A Rollout's
    /// analysis step supplies the values; an argument without a value here must be supplied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
        .message("argument names must be unique"))]
    pub args: Vec<TemplateArgument>,

    /// The metrics to measure. The analysis fails when any metric fails.
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, self.exists_one(n, n.name == m.name))")
        .message("metric names must be unique"))]
    pub metrics: Vec<MetricSpec>,
}

/// An argument of a template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateArgument {
    /// Argument name, as queries reference it (`{{args.<name>}}`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_-]*$")
    )]
    pub name: String,

    /// Default value; when unset, the Rollout must supply one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub value: Option<String>,
}

/// One metric: where its values come from, how often it is measured, and how each measurement
/// is judged.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.count) || self.count <= 1 || has(self.interval)")
    .message("interval is required when count is greater than 1").field_path(".interval"))]
#[x_kube(validation = kube::core::Rule::new(
    "[has(self.successCondition) || has(self.failureCondition), has(self.compare), has(self.sequential)].filter(x, x).size() == 1"
).message("a metric sets exactly one judgement: successCondition/failureCondition, compare or sequential"))]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.compare) || has(self.sequential) || (has(self.provider.prometheus) && has(self.provider.prometheus.query))"
).message("provider.prometheus.query is required with successCondition/failureCondition").field_path(".provider.prometheus.query"))]
pub struct MetricSpec {
    /// Metric name, unique within the analysis.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// Time between measurements, for example `30s` or `5m`. Unset: one measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_CEL_RULE).message(DURATION_CEL_MESSAGE))]
    pub interval: Option<String>,

    /// Number of measurements. Unset: one without `interval`, unlimited with it (the analysis
    /// then runs until the rollout ends it, as background analysis does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<i32>,

    /// Time to wait before the first measurement, for example `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_CEL_RULE).message(DURATION_CEL_MESSAGE))]
    pub initial_delay: Option<String>,

    /// Failed measurements tolerated; one more fails the metric. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failure_limit: Option<i32>,

    /// Inconclusive measurements tolerated; one more makes the metric inconclusive, which
    /// pauses the rollout for a person. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub inconclusive_limit: Option<i32>,

    /// Measurement errors in a row tolerated (Prometheus unreachable, a query error, a
    /// timeout); one more makes the metric Error, which aborts the rollout. Defaults to 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub consecutive_error_limit: Option<i32>,

    /// Where the metric's values come from.
    pub provider: MetricProvider,

    /// CEL over `result` that passes a measurement, for example `result < 0.05`. `result` is a
    /// number for a scalar or single-sample result and a list of numbers for a vector. When
    /// set and false, the measurement fails. Checked for CEL syntax by the analysis service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub success_condition: Option<String>,

    /// CEL over `result` that fails a measurement, for example `result >= 0.05`. Checked before
    /// the success condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub failure_condition: Option<String>,

    /// Judge the canary's samples against the baseline's (Mann-Whitney U with a
    /// Hodges-Lehmann effect size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareJudgement>,

    /// Judge the canary's error rate against the baseline's with an anytime-valid sequential
    /// test, which may fail the metric at any measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialJudgement>,
}

impl MetricSpec {
    /// `failureLimit` with its default applied.
    pub fn failure_limit(&self) -> i32 {
        self.failure_limit.unwrap_or(DEFAULT_FAILURE_LIMIT)
    }

    /// `inconclusiveLimit` with its default applied.
    pub fn inconclusive_limit(&self) -> i32 {
        self.inconclusive_limit
            .unwrap_or(DEFAULT_INCONCLUSIVE_LIMIT)
    }

    /// `consecutiveErrorLimit` with its default applied.
    pub fn consecutive_error_limit(&self) -> i32 {
        self.consecutive_error_limit
            .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    }
}

/// Where a metric's values come from. Exactly one provider is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.prometheus)].filter(x, x).size() == 1")
    .message("exactly one provider must be set: prometheus"))]
pub struct MetricProvider {
    /// Query a Prometheus server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
}

/// A Prometheus query.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Base URL of the Prometheus server, for example `http://prometheus.monitoring:9090`. The
    /// analysis service reaches Prometheus over http today; an https address is measured as an
    /// error.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('http://') || self.startsWith('https://')")
        .message("must be an http:// or https:// URL"))]
    pub address: String,

    /// PromQL, templated with `{{args.<name>}}`, `{{revision.canary}}` and
    /// `{{revision.stable}}`. Required with successCondition/failureCondition; compare and
    /// sequential judgements carry their own queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8192))]
    pub query: Option<String>,

    /// How long one query may take, for example `10s`. Defaults to the analysis service's
    /// default (10s). A query that times out is an Error measurement, never a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_CEL_RULE).message(DURATION_CEL_MESSAGE))]
    pub timeout: Option<String>,
}

/// Which change of a metric is bad.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    /// Higher is worse (error rate, latency).
    #[default]
    Increase,
    /// Lower is worse (throughput, success rate).
    Decrease,
    /// Any significant change is bad.
    Either,
}

/// What to do with NaN and infinite samples before judging.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NanStrategy {
    /// Keep +Inf and -Inf as the largest and smallest values and count NaN as the worst value
    /// for the direction (+Inf for Increase, -Inf for Decrease); with direction Either a NaN
    /// fails the measurement. Nothing is dropped.
    #[default]
    Worst,
    /// Drop them (the measurement's message says how many).
    Remove,
    /// Count them as zero.
    ReplaceWithZero,
}

/// A Kayenta-style comparison of the canary's samples against the baseline's. The controller
/// runs both queries over the same window (a range query) and asks the analysis service to
/// compare the samples.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CompareJudgement {
    /// PromQL whose samples describe the canary, for example
    /// `rate(http_requests_total{code=~"5..",revision="{{revision.canary}}"}[1m])`.
    #[schemars(length(min = 1, max = 8192))]
    pub canary_query: String,

    /// PromQL whose samples describe the baseline (the stable revision), for example with
    /// `revision="{{revision.stable}}"`.
    #[schemars(length(min = 1, max = 8192))]
    pub baseline_query: String,

    /// Which change is bad. Defaults to Increase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,

    /// Allowed ratio of the canary's mean to the baseline's before a significant change counts,
    /// for example 1.1 for +10%. Defaults to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub allowed_increase: Option<f64>,

    /// Ratio beyond which a critical metric fails the whole analysis, for example 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub critical_increase: Option<f64>,

    /// Whether a failure of this metric fails the whole judgement at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,

    /// Whether missing data fails the metric (otherwise it is inconclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_have_data: Option<bool>,

    /// What to do with NaN and infinite samples. Defaults to Worst (nothing is dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nan_strategy: Option<NanStrategy>,

    /// Weight of the metric in the score. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub weight: Option<f64>,

    /// Confidence level of the interval, strictly between 0 and 1. Defaults to 0.98.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0.0 && self < 1.0")
        .message("confidence must be strictly between 0 and 1"))]
    pub confidence: Option<f64>,

    /// The window of samples each measurement compares, for example `5m`, ending at the
    /// measurement. Defaults to the metric's interval, or 5m without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_CEL_RULE).message(DURATION_CEL_MESSAGE))]
    pub window: Option<String>,

    /// Resolution of the range queries, for example `15s`. Defaults to the window divided
    /// into 30 steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_CEL_RULE).message(DURATION_CEL_MESSAGE))]
    pub step: Option<String>,
}

/// The PromQL counting one revision's failed and total requests: each query returns one
/// cumulative count (a counter such as `sum(http_requests_total{...})`), and the test uses the
/// growth of the counts since the analysis started.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevisionCountQueries {
    /// PromQL for the revision's failed requests, for example
    /// `sum(http_requests_total{code=~"5..",revision="{{revision.canary}}"})`.
    #[schemars(length(min = 1, max = 8192))]
    pub errors_query: String,

    /// PromQL for all of the revision's requests.
    #[schemars(length(min = 1, max = 8192))]
    pub requests_query: String,
}

/// An anytime-valid sequential test (mixture SPRT) of the canary's error rate against the
/// baseline's: every measurement may look at the evidence, and a clearly worse canary fails as
/// soon as the evidence is there, with the false-failure rate held at `alpha`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SequentialJudgement {
    /// Error and request counts of the canary.
    pub canary: RevisionCountQueries,

    /// Error and request counts of the baseline (the stable revision).
    pub baseline: RevisionCountQueries,

    /// Bound on the probability of failing a canary that is no worse than the baseline,
    /// strictly between 0 and 1. Defaults to 0.05.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self > 0.0 && self < 1.0")
        .message("alpha must be strictly between 0 and 1"))]
    pub alpha: Option<f64>,

    /// The test: `MixtureSPRT` (the default; assumes binomial or Poisson error counts) or
    /// `Betting` (assumes no count model: valid when error rates vary from interval to
    /// interval; recommended for real traffic). See docs/analysis.md for when to use which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<SequentialMethod>,
}

/// Which sequential test judges the error rates.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SequentialMethod {
    /// The mixture SPRT on Poisson counts.
    #[default]
    #[serde(rename = "MixtureSPRT")]
    MixtureSprt,
    /// The betting test on each interval's share of the errors.
    Betting,
}
