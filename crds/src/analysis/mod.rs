//! The analysis resources: `AnalysisTemplate` (namespaced) and `ClusterAnalysisTemplate`
//! (cluster-scoped), which share one spec, and `AnalysisRun`, one execution of an analysis;
//! plus the pure lifecycle of a run ([`lifecycle::advance`]), which the controller calls.

mod cluster;
pub mod lifecycle;
mod run;
mod template;

pub use cluster::ClusterAnalysisTemplate;
pub use run::{
    AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisRunStatus, ComparisonClass,
    ComparisonResult, MAX_MEASUREMENTS, Measurement, MetricResult, RunRevisions,
};
pub use template::{
    AnalysisTemplate, AnalysisTemplateSpec, CompareJudgement, DEFAULT_CONSECUTIVE_ERROR_LIMIT,
    DEFAULT_FAILURE_LIMIT, DEFAULT_INCONCLUSIVE_LIMIT, Direction, MetricProvider, MetricSpec,
    NanStrategy, PrometheusMetric, RevisionCountQueries, SequentialJudgement, SequentialMethod,
    TemplateArgument,
};
