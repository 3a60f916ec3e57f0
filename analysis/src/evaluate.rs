//! `Evaluate`: template a metric's query, run it against Prometheus, judge the result with the
//! metric's CEL conditions.
//!
//! Status codes and verdicts:
//! - a bad request (no metric, no query, a condition that is not CEL, an unknown placeholder, a
//!   bad window or timeout) is `InvalidArgument`, with a message that names the culprit;
//! - Prometheus unreachable or refusing the query is `OK` with verdict `ERROR` and the reason:
//!   the controller records an Error measurement (which counts towards `consecutiveErrorLimit`)
//!   and never mistakes it for a pass; an address not on the allow-list, a query out of its
//!   timeout and an oversize response are status codes (see [`crate::service`]), which the
//!   controller records as Error measurements too;
//! - otherwise the conditions decide (see [`crate::condition`]); no data is `INCONCLUSIVE`.

use std::collections::HashMap;
use std::time::Duration;

use rollgate_proto::v1::{self, EvaluateRequest, EvaluateResponse, Verdict};
use tonic::Status;

use crate::condition::{Conditions, Outcome, ResultValue};
use crate::prometheus::{QueryResult, RangeWindow};
use crate::service::Analysis;
use crate::templating::{Bindings, render};

/// How many steps a range query has when the window gives no step.
const DEFAULT_STEPS: f64 = 30.0;

impl Analysis {
    /// Runs one `Evaluate` request.
    pub async fn evaluate(&self, request: EvaluateRequest) -> Result<EvaluateResponse, Status> {
        let metric = request
            .metric
            .ok_or_else(|| Status::invalid_argument("metric is required"))?;
        let name = &metric.name;
        let prometheus = metric.prometheus.as_ref().ok_or_else(|| {
            Status::invalid_argument(format!("metric {name:?}: metric.prometheus is required"))
        })?;
        if prometheus.address.trim().is_empty() {
            return Err(Status::invalid_argument(format!(
                "metric {name:?}: prometheus.address is required"
            )));
        }
        if prometheus.query.trim().is_empty() {
            return Err(Status::invalid_argument(format!(
                "metric {name:?}: prometheus.query is required"
            )));
        }
        let conditions = Conditions::compile(&metric.success_condition, &metric.failure_condition)
            .map_err(|error| Status::invalid_argument(format!("metric {name:?}: {error}")))?;
        let query = template(&prometheus.query, &request.args, request.revisions.as_ref())
            .map_err(|error| Status::invalid_argument(format!("metric {name:?}: {error}")))?;
        let timeout = self.timeout(prometheus.timeout.as_ref())?;
        let window = range_window(request.window.as_ref())?;

        let result = self
            .query(&prometheus.address, &query, window, timeout)
            .await?;
        let response = match result {
            Err(error) => EvaluateResponse {
                verdict: Verdict::Error as i32,
                query: query.clone(),
                reason: format!("metric {name:?}: query `{query}`: {error}"),
                ..EvaluateResponse::default()
            },
            Ok(result) => {
                self.metrics
                    .query_duration
                    .observe(result.elapsed.as_secs_f64());
                judged(name, query, &result, &conditions)
            }
        };
        self.metrics.evaluated(response.verdict());
        tracing::info!(metric = %name, verdict = ?response.verdict(), reason = %response.reason, "evaluated");
        Ok(response)
    }

    /// The timeout of one query: the request's, or the service's default, at most the
    /// operator's maximum.
    pub(crate) fn timeout(
        &self,
        requested: Option<&prost_types::Duration>,
    ) -> Result<Duration, Status> {
        let limits = &self.limits;
        let Some(requested) = requested else {
            return Ok(limits.default_timeout.min(limits.max_timeout));
        };
        let timeout = Duration::try_from(*requested).map_err(|_| {
            Status::invalid_argument("prometheus.timeout must be a positive duration")
        })?;
        if timeout.is_zero() {
            return Ok(limits.default_timeout.min(limits.max_timeout));
        }
        Ok(timeout.min(limits.max_timeout))
    }
}

/// Templates `query` with the request's arguments and revisions.
pub(crate) fn template(
    query: &str,
    args: &HashMap<String, String>,
    revisions: Option<&v1::Revisions>,
) -> Result<String, crate::templating::TemplateError> {
    let bindings = Bindings {
        args,
        canary: revisions.map_or("", |r| r.canary.as_str()),
        stable: revisions.map_or("", |r| r.stable.as_str()),
    };
    render(query, &bindings)
}

/// Converts the request's window into a range query's, or `None` for an instant query.
pub(crate) fn range_window(window: Option<&v1::Window>) -> Result<Option<RangeWindow>, Status> {
    let Some(window) = window else {
        return Ok(None);
    };
    let (Some(start), Some(end)) = (window.start.as_ref(), window.end.as_ref()) else {
        return Err(Status::invalid_argument(
            "window needs both start and end (or no window, for an instant query)",
        ));
    };
    if end.seconds <= start.seconds {
        return Err(Status::invalid_argument(
            "window.end must be after window.start",
        ));
    }
    let span = (end.seconds - start.seconds) as f64;
    let step = match window.step.as_ref() {
        Some(step) => {
            let step = Duration::try_from(*step)
                .map_err(|_| Status::invalid_argument("window.step must be positive"))?;
            if step.is_zero() {
                return Err(Status::invalid_argument("window.step must be positive"));
            }
            step.as_secs_f64()
        }
        None => (span / DEFAULT_STEPS).max(1.0),
    };
    Ok(Some(RangeWindow {
        start: start.seconds,
        end: end.seconds,
        step,
    }))
}

/// The response for a query that answered.
fn judged(
    metric: &str,
    query: String,
    result: &QueryResult,
    conditions: &Conditions,
) -> EvaluateResponse {
    let samples = result.samples();
    let value = (!samples.is_empty()).then(|| ResultValue::from_samples(samples));
    let judgement = conditions.judge(value.as_ref());
    let verdict = match judgement.outcome {
        Outcome::Successful => Verdict::Successful,
        Outcome::Failed => Verdict::Failed,
        Outcome::Inconclusive => Verdict::Inconclusive,
        Outcome::Error => Verdict::Error,
    };
    EvaluateResponse {
        verdict: verdict as i32,
        reason: format!("metric {metric:?}: query `{query}`: {}", judgement.reason),
        query,
        series: result
            .series
            .iter()
            .map(|series| v1::Series {
                labels: series.labels.clone().into_iter().collect(),
                values: series.values.clone(),
            })
            .collect(),
        value: value.map(|v| v.to_string()).unwrap_or_default(),
    }
}
