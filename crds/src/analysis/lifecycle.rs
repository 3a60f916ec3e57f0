//! The AnalysisRun lifecycle as one pure function, [`advance`]: given the run's spec, its
//! status, the time and (optionally) a new measurement, it returns the next status, the metrics
//! due for a measurement now, and when the next one falls due. No I/O: the controller fetches,
//! calls the analysis service for each due metric, calls [`advance`] with each result, writes
//! the status and requeues at [`Transition::next_measurement_at`].
//!
//! The rules follow Argo Rollouts' analysis semantics:
//! - a metric without `interval` is measured once; with `interval` it is measured every
//!   interval, `count` times, or until the run is terminated when `count` is unset;
//! - the first measurement waits `initialDelay` from the run's start;
//! - a metric is Failed when its failed measurements exceed `failureLimit` (default 0),
//!   Inconclusive when its inconclusive ones exceed `inconclusiveLimit` (default 0), Error when
//!   its errors in a row exceed `consecutiveErrorLimit` (default 4), checked in that order;
//!   otherwise Successful once it has `count` measurements that are not errors;
//! - an error is not a measurement towards `count`: it is retried after `interval`, or after
//!   [`ERROR_RETRY_INTERVAL`] when that is shorter or there is no interval;
//! - the run takes the worst phase of its metrics (Failed, then Error, then Inconclusive): it
//!   ends as soon as one metric fails, errors or is inconclusive, and is Successful when every
//!   metric is; `spec.terminate` ends metrics still running as Inconclusive, or as Error when
//!   one of their measurements failed or errored: a terminated metric never passes, so
//!   terminating a run (which people may do) cannot skip an analysis or hide a failure;
//! - each metric keeps its last [`MAX_MEASUREMENTS`] measurements; counters count them all.
//!
//! Missing data and errors are never a pass: an Error measurement only counts towards
//! `consecutiveErrorLimit`, and the analysis service reports empty results as Inconclusive.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::run::{
    AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, MAX_MEASUREMENTS, Measurement, MetricResult,
};
use super::template::MetricSpec;
use crate::duration::{DurationError, parse_duration};

/// How long after an error a metric is measured again, unless its interval is shorter.
pub const ERROR_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// A measurement to record: which metric, and its outcome (phase Successful, Failed,
/// Inconclusive or Error).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMeasurement {
    /// The metric's name.
    pub metric: String,
    /// The outcome. `finished_at` defaults to `now` when unset.
    pub measurement: Measurement,
}

/// What [`advance`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The next status to write.
    pub status: AnalysisRunStatus,
    /// Metrics to measure now, in the spec's order. Empty once the run is completed.
    pub due: Vec<String>,
    /// When the next measurement not yet due falls due: requeue then. `None` when the run is
    /// completed, or every running metric is due now.
    pub next_measurement_at: Option<Timestamp>,
}

/// Why [`advance`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The measurement names a metric the spec does not have.
    #[error("the AnalysisRun has no metric {0:?}")]
    UnknownMetric(String),
    /// The measurement's phase is Pending or Running.
    #[error("measurement of metric {metric:?} has phase {phase}, not a measurement outcome")]
    NotAnOutcome {
        /// The metric.
        metric: String,
        /// The phase given.
        phase: AnalysisPhase,
    },
    /// A duration of a metric does not parse (the API server's rule prevents this).
    #[error("metric {metric:?}: {field}: {source}")]
    BadDuration {
        /// The metric.
        metric: String,
        /// `interval` or `initialDelay`.
        field: &'static str,
        /// Why it does not parse.
        source: DurationError,
    },
}

/// Advances an AnalysisRun: starts it when `status` is `None` (or Pending), records
/// `measurement` if given, applies the limits and `spec.terminate`, and schedules what is due.
/// A completed run is returned unchanged; a measurement for a completed metric is ignored.
pub fn advance(
    spec: &AnalysisRunSpec,
    status: Option<&AnalysisRunStatus>,
    now: Timestamp,
    measurement: Option<NewMeasurement>,
) -> Result<Transition, LifecycleError> {
    let mut status = status.cloned().unwrap_or_default();
    if status.phase.is_completed() {
        return Ok(Transition {
            status,
            due: Vec::new(),
            next_measurement_at: None,
        });
    }
    if status.phase == AnalysisPhase::Pending || status.started_at.is_none() {
        status.phase = AnalysisPhase::Running;
        status.started_at.get_or_insert(Time(now));
    }
    align_results(spec, &mut status);

    if let Some(new) = measurement {
        record(spec, &mut status, new, now)?;
    }
    if spec.is_terminated() {
        for result in &mut status.metric_results {
            if !result.phase.is_completed() {
                terminate(result);
            }
        }
    }
    assess_run(&mut status, now);
    if status.phase.is_completed() {
        return Ok(Transition {
            status,
            due: Vec::new(),
            next_measurement_at: None,
        });
    }
    let started = status.started_at.as_ref().map_or(now, |time| time.0);
    let mut due = Vec::new();
    let mut next_measurement_at: Option<Timestamp> = None;
    for (metric, result) in spec.metrics.iter().zip(&status.metric_results) {
        if result.phase.is_completed() {
            continue;
        }
        let Some(at) = next_time(metric, result, started)? else {
            continue;
        };
        if at <= now {
            due.push(metric.name.clone());
        } else if next_measurement_at.is_none_or(|next| at < next) {
            next_measurement_at = Some(at);
        }
    }
    Ok(Transition {
        status,
        due,
        next_measurement_at,
    })
}

/// Ends a running metric because its run was terminated: never as a pass.
fn terminate(result: &mut MetricResult) {
    if result.failed > 0 || result.error > 0 {
        result.phase = AnalysisPhase::Error;
        result.message = Some(format!(
            "terminated before its last measurement, with {} failed and {} errored measurements",
            result.failed, result.error
        ));
    } else {
        result.phase = AnalysisPhase::Inconclusive;
        result.message = Some(format!(
            "terminated before its last measurement ({} of its measurements taken, none failed)",
            result.count
        ));
    }
}

/// Makes `metric_results` one entry per spec metric, in the spec's order, keeping what was
/// recorded for metrics that still exist.
fn align_results(spec: &AnalysisRunSpec, status: &mut AnalysisRunStatus) {
    let mut previous = std::mem::take(&mut status.metric_results);
    status.metric_results = spec
        .metrics
        .iter()
        .map(|metric| {
            previous
                .iter()
                .position(|result| result.name == metric.name)
                .map(|index| previous.swap_remove(index))
                .unwrap_or_else(|| MetricResult {
                    name: metric.name.clone(),
                    phase: AnalysisPhase::Running,
                    ..MetricResult::default()
                })
        })
        .collect();
    for result in &mut status.metric_results {
        if result.phase == AnalysisPhase::Pending {
            result.phase = AnalysisPhase::Running;
        }
    }
}

fn record(
    spec: &AnalysisRunSpec,
    status: &mut AnalysisRunStatus,
    new: NewMeasurement,
    now: Timestamp,
) -> Result<(), LifecycleError> {
    let index = spec
        .metrics
        .iter()
        .position(|metric| metric.name == new.metric)
        .ok_or_else(|| LifecycleError::UnknownMetric(new.metric.clone()))?;
    let metric = &spec.metrics[index];
    let result = &mut status.metric_results[index];
    let mut measurement = new.measurement;
    if !measurement.phase.is_completed() {
        return Err(LifecycleError::NotAnOutcome {
            metric: new.metric,
            phase: measurement.phase,
        });
    }
    if result.phase.is_completed() {
        return Ok(());
    }
    measurement.finished_at.get_or_insert(Time(now));
    match measurement.phase {
        AnalysisPhase::Error => {
            result.error += 1;
            result.consecutive_error += 1;
        }
        phase => {
            result.count += 1;
            result.consecutive_error = 0;
            match phase {
                AnalysisPhase::Successful => result.successful += 1,
                AnalysisPhase::Failed => result.failed += 1,
                _ => result.inconclusive += 1,
            }
        }
    }
    result.measurements.push(measurement);
    let excess = result.measurements.len().saturating_sub(MAX_MEASUREMENTS);
    result.measurements.drain(..excess);
    assess_metric(metric, result);
    Ok(())
}

/// Sets a metric's phase and message from its counters and limits.
fn assess_metric(metric: &MetricSpec, result: &mut MetricResult) {
    let last = result
        .measurements
        .last()
        .and_then(|m| m.message.clone())
        .unwrap_or_default();
    let (phase, message) = if result.failed > metric.failure_limit() {
        (
            AnalysisPhase::Failed,
            format!(
                "{} failed measurement(s), more than failureLimit {}: {last}",
                result.failed,
                metric.failure_limit()
            ),
        )
    } else if result.inconclusive > metric.inconclusive_limit() {
        (
            AnalysisPhase::Inconclusive,
            format!(
                "{} inconclusive measurement(s), more than inconclusiveLimit {}: {last}",
                result.inconclusive,
                metric.inconclusive_limit()
            ),
        )
    } else if result.consecutive_error > metric.consecutive_error_limit() {
        (
            AnalysisPhase::Error,
            format!(
                "{} errors in a row, more than consecutiveErrorLimit {}: {last}",
                result.consecutive_error,
                metric.consecutive_error_limit()
            ),
        )
    } else if effective_count(metric).is_some_and(|count| result.count >= count) {
        (
            AnalysisPhase::Successful,
            format!(
                "{} of {} measurement(s) successful: {last}",
                result.successful, result.count
            ),
        )
    } else {
        (AnalysisPhase::Running, last)
    };
    result.phase = phase;
    result.message = (!message.is_empty()).then_some(message);
}

/// The number of measurements a metric takes: `count`, or 1 without an interval, or
/// unlimited (`None`).
fn effective_count(metric: &MetricSpec) -> Option<i32> {
    match (metric.count, &metric.interval) {
        (Some(count), _) => Some(count),
        (None, None) => Some(1),
        (None, Some(_)) => None,
    }
}

/// Sets the run's phase from its metrics: the worst completed phase ends the run unless it is
/// Successful; the run is Successful when every metric is.
fn assess_run(status: &mut AnalysisRunStatus, now: Timestamp) {
    let worst = status
        .metric_results
        .iter()
        .filter(|result| result.phase.is_completed() && result.phase != AnalysisPhase::Successful)
        .max_by_key(|result| result.phase.severity());
    if let Some(worst) = worst {
        status.phase = worst.phase;
        status.message = Some(format!(
            "metric {:?} {}: {}",
            worst.name,
            worst.phase,
            worst.message.as_deref().unwrap_or("no message")
        ));
        status.finished_at = Some(Time(now));
        return;
    }
    if status
        .metric_results
        .iter()
        .all(|result| result.phase == AnalysisPhase::Successful)
    {
        status.phase = AnalysisPhase::Successful;
        let summary: Vec<String> = status
            .metric_results
            .iter()
            .map(|result| {
                format!(
                    "{:?}: {}",
                    result.name,
                    result.message.as_deref().unwrap_or("successful")
                )
            })
            .collect();
        status.message = Some(format!("all metrics successful; {}", summary.join("; ")));
        status.finished_at = Some(Time(now));
    } else {
        status.phase = AnalysisPhase::Running;
    }
}

/// When a running metric is next measured, or `None` when it takes no more measurements.
fn next_time(
    metric: &MetricSpec,
    result: &MetricResult,
    started: Timestamp,
) -> Result<Option<Timestamp>, LifecycleError> {
    let duration = |field: &'static str, value: &Option<String>| {
        value
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|source| LifecycleError::BadDuration {
                metric: metric.name.clone(),
                field,
                source,
            })
    };
    let interval = duration("interval", &metric.interval)?;
    let Some(last) = result.measurements.last() else {
        let delay = duration("initialDelay", &metric.initial_delay)?.unwrap_or_default();
        return Ok(Some(add(started, delay)));
    };
    let finished = last
        .finished_at
        .as_ref()
        .or(last.started_at.as_ref())
        .map_or(started, |time| time.0);
    if last.phase == AnalysisPhase::Error {
        let wait = interval.map_or(ERROR_RETRY_INTERVAL, |i| i.min(ERROR_RETRY_INTERVAL));
        return Ok(Some(add(finished, wait)));
    }
    if effective_count(metric).is_some_and(|count| result.count >= count) {
        return Ok(None);
    }
    Ok(interval.map(|interval| add(finished, interval)))
}

fn add(at: Timestamp, duration: Duration) -> Timestamp {
    at.saturating_add(duration).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
