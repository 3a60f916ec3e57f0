//! `Compare` with `sequential`: a sequential test ([`crate::judge::ErrorRateTest`]: the mixture
//! SPRT or the betting test, as the request's `method` says; unspecified is the mixture SPRT)
//! of the canary's error rate against the baseline's, without state between calls.
//!
//! The four queries return running totals (errors and requests of each revision). The service
//! reads them with range queries over the request's window (the analysis' start to now, one
//! step per measurement interval), takes the increments between consecutive steps where all
//! four have a value, and replays them through the test: Prometheus keeps the history, so any
//! replica can answer any call and every call sees the same evidence.
//!
//! Verdicts: the canary is worse at level `alpha` → FAILED (classification HIGH); no evidence
//! yet → SUCCESSFUL (the test is anytime-valid, so continuing is safe); fewer than two aligned
//! steps, or no requests on a side → INCONCLUSIVE (missing data is never a pass); a query that
//! fails → ERROR. A counter that goes down (a reset: a pod restarted) skips that step
//! ([`crate::judge::counters`]); it is neither a failure nor an error.

use std::collections::BTreeMap;

use rollgate_proto::v1::{
    self as v1, Classification, CompareRequest, CompareResponse, SequentialQueries, Verdict,
};
use tonic::Status;

use crate::evaluate::{range_window, template};
use crate::judge::{Counts, ErrorRateTest, SequentialDecision, SequentialMethod, increments};
use crate::prometheus::QueryResult;
use crate::service::Analysis;

/// The false-failure bound when the request sets none (the default of the AnalysisTemplate's
/// `sequential.alpha`, applied here and nowhere else).
pub const DEFAULT_ALPHA: f64 = 0.05;

impl Analysis {
    /// Runs the sequential test of a `Compare` request.
    pub(crate) async fn sequential(
        &self,
        request: &CompareRequest,
        queries: &SequentialQueries,
    ) -> Result<CompareResponse, Status> {
        let invalid = |message: String| Status::invalid_argument(format!("sequential: {message}"));
        if queries.address.trim().is_empty() {
            return Err(invalid("address is required".to_owned()));
        }
        let alpha = queries.alpha.unwrap_or(DEFAULT_ALPHA);
        let method = match queries.method() {
            v1::SequentialMethod::Betting => SequentialMethod::Betting,
            v1::SequentialMethod::MixtureSprt | v1::SequentialMethod::Unspecified => {
                SequentialMethod::MixtureSprt
            }
        };
        let mut test =
            ErrorRateTest::new(method, alpha).map_err(|error| invalid(error.to_string()))?;
        let window = range_window(request.window.as_ref())?
            .ok_or_else(|| invalid("a window (analysis start to now) is required".to_owned()))?;
        let mut rendered = Vec::with_capacity(4);
        for (field, query) in [
            ("canary_errors_query", &queries.canary_errors_query),
            ("canary_requests_query", &queries.canary_requests_query),
            ("baseline_errors_query", &queries.baseline_errors_query),
            ("baseline_requests_query", &queries.baseline_requests_query),
        ] {
            if query.trim().is_empty() {
                return Err(invalid(format!("{field} is required")));
            }
            let query = template(query, &request.args, request.revisions.as_ref())
                .map_err(|error| invalid(format!("{field}: {error}")))?;
            rendered.push(query);
        }
        let timeout = self.timeout(queries.timeout.as_ref())?;
        let run = |index: usize| {
            let query: &str = &rendered[index];
            self.query(&queries.address, query, Some(window), timeout)
        };
        let (canary_errors, canary_requests, baseline_errors, baseline_requests) =
            tokio::join!(run(0), run(1), run(2), run(3));
        let mut totals = Vec::with_capacity(4);
        for (query, result) in rendered.iter().zip([
            canary_errors,
            canary_requests,
            baseline_errors,
            baseline_requests,
        ]) {
            match result? {
                Ok(result) => {
                    self.metrics
                        .query_duration
                        .observe(result.elapsed.as_secs_f64());
                    totals.push(by_time(&result));
                }
                Err(error) => {
                    return Ok(self.answer(Verdict::Error, format!("query `{query}`: {error}")));
                }
            }
        }
        let aligned: Vec<Counts> = totals[0]
            .iter()
            .filter_map(|(time, canary_errors)| {
                Some(Counts {
                    canary_errors: *canary_errors,
                    canary_requests: *totals[1].get(time)?,
                    baseline_errors: *totals[2].get(time)?,
                    baseline_requests: *totals[3].get(time)?,
                })
            })
            .collect();
        let queries_text = format!(
            "canary errors `{}`, canary requests `{}`, baseline errors `{}`, baseline requests `{}`",
            rendered[0], rendered[1], rendered[2], rendered[3]
        );
        if aligned.len() < 2 {
            return Ok(self.answer(
                Verdict::Inconclusive,
                format!(
                    "sequential test: {} step(s) where all four counters have data, it needs two ({queries_text})",
                    aligned.len()
                ),
            ));
        }
        let steps = increments(&aligned);
        for increment in steps.intervals {
            if let Err(error) = test.observe(increment) {
                return Ok(self.answer(
                    Verdict::Error,
                    format!("sequential test: {error} ({queries_text})"),
                ));
            }
        }
        let result = test.result();
        let seen = result.totals;
        let summary = format!(
            "{method:?} test: canary {} errors of {} requests, baseline {} of {}, over {} interval(s) ({} skipped for a counter reset); rate ratio {:.3}, always-valid p-value {:.4}, alpha {alpha}",
            seen.canary_errors,
            seen.canary_requests,
            seen.baseline_errors,
            seen.baseline_requests,
            result.intervals,
            steps.resets,
            result.rate_ratio,
            result.p_value
        );
        let no_data = seen.canary_requests <= 0.0 || seen.baseline_requests <= 0.0;
        let (verdict, classification, finding) = if no_data {
            (
                Verdict::Inconclusive,
                Classification::NoData,
                "no requests on a side",
            )
        } else if result.decision == SequentialDecision::CanaryWorse {
            (
                Verdict::Failed,
                Classification::High,
                "the canary's error rate is worse",
            )
        } else {
            (
                Verdict::Successful,
                Classification::Pass,
                "no evidence that the canary is worse",
            )
        };
        self.metrics.compared(verdict);
        Ok(CompareResponse {
            verdict: verdict as i32,
            classification: classification as i32,
            // Without requests on both sides no test was run: no p-value.
            p_value: Some(result.p_value).filter(|p| !no_data && p.is_finite()),
            effect_size: result.rate_ratio,
            reason: format!("sequential test: {finding}: {summary} ({queries_text})"),
            ..CompareResponse::default()
        })
    }

    fn answer(&self, verdict: Verdict, reason: String) -> CompareResponse {
        self.metrics.compared(verdict);
        CompareResponse {
            verdict: verdict as i32,
            reason,
            ..CompareResponse::default()
        }
    }
}

/// The result's values by time (milliseconds), summed over its series.
fn by_time(result: &QueryResult) -> BTreeMap<i64, f64> {
    let mut totals = BTreeMap::new();
    for series in &result.series {
        for (time, value) in series.timestamps.iter().zip(&series.values) {
            *totals.entry((time * 1000.0).round() as i64).or_insert(0.0) += value;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::prometheus::Series;

    #[test]
    fn values_are_summed_per_time_over_series() {
        let series = |values: Vec<f64>, timestamps: Vec<f64>| Series {
            labels: BTreeMap::new(),
            values,
            timestamps,
        };
        let result = QueryResult {
            series: vec![
                series(vec![1.0, 2.0], vec![100.0, 102.0]),
                series(vec![10.0, 20.0], vec![102.0, 104.5]),
            ],
            elapsed: Duration::ZERO,
        };
        let totals = by_time(&result);
        assert_eq!(
            totals.into_iter().collect::<Vec<_>>(),
            [(100_000, 1.0), (102_000, 12.0), (104_500, 20.0)]
        );
    }
}
