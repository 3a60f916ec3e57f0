//! The AnalysisService requests for one metric of a run, and the measurement a response (or a
//! failed call) comes to. Pure: the measurer sends the requests.
//!
//! A threshold metric (`successCondition` / `failureCondition`) is one `Evaluate` of its query,
//! an instant query at the time of the measurement. A `sequential` metric is a `Compare` with
//! the four counter queries over the window from the run's start to now, one step per interval:
//! the service replays the evidence and the chosen sequential test decides. A `compare` metric is one `Compare` whose
//! queries the analysis service runs as range queries over the metric's window (by default its
//! interval, or 5 minutes), ending now, sampled every window/30 (at least 1 s). A call that
//! fails is an Error measurement with the gRPC status: never a pass.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rollgate_crds::analysis::{
    AnalysisPhase, AnalysisRunSpec, CompareJudgement, ComparisonClass, ComparisonResult, Direction,
    Measurement, MetricSpec, NanStrategy, SequentialMethod,
};
use rollgate_crds::duration::parse_duration;
use rollgate_proto::v1 as pb;

/// The window of a comparison when neither it nor the metric's interval says.
pub const DEFAULT_COMPARE_WINDOW: Duration = Duration::from_secs(300);

/// A request for one metric.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricRequest {
    /// Run the query and judge it against the conditions.
    Evaluate(Box<pb::EvaluateRequest>),
    /// Compare the canary's samples against the baseline's.
    Compare(Box<pb::CompareRequest>),
}

/// The request that measures `metric` of the run `spec` at `now` (the run started measuring at
/// `run_started`); `None` for a metric with no Prometheus provider (the schema requires one).
pub fn request_for(
    spec: &AnalysisRunSpec,
    metric: &MetricSpec,
    run_started: Timestamp,
    now: Timestamp,
) -> Option<MetricRequest> {
    let prometheus = metric.provider.prometheus.as_ref()?;
    let timeout = prometheus
        .timeout
        .as_deref()
        .and_then(|text| parse_duration(text).ok())
        .and_then(|duration| prost_types::Duration::try_from(duration).ok());
    let args: HashMap<String, String> = spec
        .args
        .iter()
        .map(|arg| (arg.name.clone(), arg.value.clone()))
        .collect();
    let revisions = Some(pb::Revisions {
        canary: spec.revisions.canary.clone(),
        stable: spec.revisions.stable.clone().unwrap_or_default(),
    });
    if let Some(sequential) = &metric.sequential {
        // The test reads the counters at every interval since the run started: the whole
        // evidence, so no state is kept between measurements.
        let interval = metric
            .interval
            .as_deref()
            .and_then(|text| parse_duration(text).ok())
            .unwrap_or(Duration::from_secs(60));
        let mut window = window_ending(now, Duration::ZERO);
        window.start = Some(timestamp(run_started.min(now)));
        window.step = prost_types::Duration::try_from(interval.max(Duration::from_secs(1))).ok();
        return Some(MetricRequest::Compare(Box::new(pb::CompareRequest {
            comparison: None,
            canary: Vec::new(),
            baseline: Vec::new(),
            queries: None,
            args,
            window: Some(window),
            revisions,
            sequential: Some(pb::SequentialQueries {
                address: prometheus.address.clone(),
                canary_errors_query: sequential.canary.errors_query.clone(),
                canary_requests_query: sequential.canary.requests_query.clone(),
                baseline_errors_query: sequential.baseline.errors_query.clone(),
                baseline_requests_query: sequential.baseline.requests_query.clone(),
                timeout,
                alpha: sequential.alpha,
                method: match sequential.method.unwrap_or_default() {
                    SequentialMethod::MixtureSprt => pb::SequentialMethod::MixtureSprt,
                    SequentialMethod::Betting => pb::SequentialMethod::Betting,
                } as i32,
            }),
        })));
    }
    if let Some(compare) = &metric.compare {
        let window = compare_window(metric, compare);
        return Some(MetricRequest::Compare(Box::new(pb::CompareRequest {
            comparison: Some(comparison(&metric.name, compare)),
            canary: Vec::new(),
            baseline: Vec::new(),
            queries: Some(pb::CompareQueries {
                address: prometheus.address.clone(),
                canary_query: compare.canary_query.clone(),
                baseline_query: compare.baseline_query.clone(),
                timeout,
            }),
            args,
            window: Some(window_ending(now, window)),
            revisions,
            sequential: None,
        })));
    }
    Some(MetricRequest::Evaluate(Box::new(pb::EvaluateRequest {
        metric: Some(pb::Metric {
            name: metric.name.clone(),
            prometheus: Some(pb::PrometheusQuery {
                address: prometheus.address.clone(),
                query: prometheus.query.clone().unwrap_or_default(),
                timeout,
            }),
            success_condition: metric.success_condition.clone().unwrap_or_default(),
            failure_condition: metric.failure_condition.clone().unwrap_or_default(),
        }),
        args,
        window: None,
        revisions,
    })))
}

fn compare_window(metric: &MetricSpec, compare: &CompareJudgement) -> Duration {
    compare
        .window
        .as_deref()
        .or(metric.interval.as_deref())
        .and_then(|text| parse_duration(text).ok())
        .unwrap_or(DEFAULT_COMPARE_WINDOW)
}

fn window_ending(now: Timestamp, length: Duration) -> pb::Window {
    let end = timestamp(now);
    let start_time = now.checked_sub(length).unwrap_or(now);
    let step = (length / 30).max(Duration::from_secs(1));
    pb::Window {
        start: Some(timestamp(start_time)),
        end: Some(end),
        step: prost_types::Duration::try_from(step).ok(),
    }
}

fn timestamp(time: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.as_second(),
        nanos: time.subsec_nanosecond(),
    }
}

fn comparison(metric: &str, compare: &CompareJudgement) -> pb::Comparison {
    let direction = match compare.direction.unwrap_or_default() {
        Direction::Increase => pb::Direction::Increase,
        Direction::Decrease => pb::Direction::Decrease,
        Direction::Either => pb::Direction::Either,
    };
    let nan_strategy = match compare.nan_strategy.unwrap_or_default() {
        NanStrategy::Worst => pb::NanStrategy::Worst,
        NanStrategy::Remove => pb::NanStrategy::Remove,
        NanStrategy::ReplaceWithZero => pb::NanStrategy::ReplaceWithZero,
    };
    pb::Comparison {
        metric: metric.to_owned(),
        direction: direction as i32,
        allowed_increase: compare.allowed_increase,
        critical_increase: compare.critical_increase,
        critical: compare.critical.unwrap_or(false),
        must_have_data: compare.must_have_data.unwrap_or(false),
        nan_strategy: nan_strategy as i32,
        weight: compare.weight,
        confidence: compare.confidence,
    }
}

/// What the analysis service answered, in the controller's terms: mapped once here from the
/// wire, for both calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The verdict.
    pub phase: AnalysisPhase,
    /// The value the decision saw, as text (for a comparison, the effect size).
    pub value: Option<String>,
    /// Why.
    pub reason: String,
    /// A comparison's statistics, kept as numbers.
    pub comparison: Option<ComparisonResult>,
}

/// The phase of a wire verdict: an error, an unspecified or an unknown verdict is never a pass.
fn phase(verdict: i32) -> AnalysisPhase {
    match pb::Verdict::try_from(verdict) {
        Ok(pb::Verdict::Successful) => AnalysisPhase::Successful,
        Ok(pb::Verdict::Failed) => AnalysisPhase::Failed,
        Ok(pb::Verdict::Inconclusive) => AnalysisPhase::Inconclusive,
        _ => AnalysisPhase::Error,
    }
}

/// The answer to an Evaluate call.
pub fn evaluated(response: pb::EvaluateResponse) -> Answer {
    Answer {
        phase: phase(response.verdict),
        value: (!response.value.is_empty()).then_some(response.value),
        reason: response.reason,
        comparison: None,
    }
}

/// The answer to a Compare call: its statistics kept as numbers, a figure that is not finite
/// (not computed) left out.
pub fn compared(response: pb::CompareResponse) -> Answer {
    let finite = |value: f64| value.is_finite().then_some(value);
    let classification = match response.classification() {
        pb::Classification::Pass => Some(ComparisonClass::Pass),
        pb::Classification::High => Some(ComparisonClass::High),
        pb::Classification::Low => Some(ComparisonClass::Low),
        pb::Classification::NoData => Some(ComparisonClass::NoData),
        pb::Classification::Unspecified => None,
    };
    let comparison = ComparisonResult {
        classification,
        u_statistic: finite(response.u_statistic),
        p_value: response.p_value.and_then(finite),
        hodges_lehmann: finite(response.hodges_lehmann),
        interval_lower: finite(response.interval_lower),
        interval_upper: finite(response.interval_upper),
        effect_size: finite(response.effect_size),
    };
    Answer {
        phase: phase(response.verdict),
        value: comparison.effect_size.map(|effect| format!("{effect:.4}")),
        reason: response.reason,
        comparison: Some(comparison),
    }
}

/// The measurement an answer comes to.
pub fn measurement(answer: Answer, started: Timestamp, finished: Timestamp) -> Measurement {
    Measurement {
        phase: answer.phase,
        value: answer.value,
        message: Some(answer.reason),
        started_at: Some(Time(started)),
        finished_at: Some(Time(finished)),
        comparison: answer.comparison,
    }
}

/// The Error measurement of a call that failed.
pub fn failed_call(status: &tonic::Status, started: Timestamp, finished: Timestamp) -> Measurement {
    Measurement {
        phase: AnalysisPhase::Error,
        value: None,
        message: Some(format!(
            "the analysis service failed: {:?}: {}",
            status.code(),
            status.message()
        )),
        started_at: Some(Time(started)),
        finished_at: Some(Time(finished)),
        comparison: None,
    }
}
