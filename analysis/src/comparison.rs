//! `Compare`: judge canary samples against baseline samples with [`crate::judge::compare`]
//! (Mann-Whitney U, Hodges-Lehmann shift, Kayenta's classification).
//!
//! The samples come in the request, or, when `queries` is set, from the canary and baseline
//! queries, which the service templates and runs itself (a range query over `window`, every
//! series' samples thinned to one per the query's longest range selector, so that
//! overlapping windows are not counted as independent samples: [`crate::judge::samples`]). Verdicts: Pass is SUCCESSFUL; High or Low, or a failing critical
//! metric, is FAILED; NoData is FAILED when the metric must have data and INCONCLUSIVE
//! otherwise, never a pass. A query that fails is an ERROR verdict, as in `Evaluate`.
//!
//! With `sequential` set, `Compare` runs the sequential test instead (see
//! [`crate::sequential`]).
//!
//! Zero in a numeric field of the request means "unset": allowed and critical increase 1.0,
//! weight 1, confidence 0.98. An unspecified direction is INCREASE, as in the CRD.

use rollgate_proto::v1::{
    self, Classification as WireClassification, CompareRequest, CompareResponse, Verdict,
};
use tonic::Status;

use crate::evaluate::{range_window, template};
use crate::judge::samples::{range_of, thin};
use crate::judge::{Classification, Direction, MetricConfig, NanStrategy, compare};
use crate::prometheus::QueryResult;
use crate::service::Analysis;

impl Analysis {
    /// Runs one `Compare` request.
    pub async fn compare(&self, request: CompareRequest) -> Result<CompareResponse, Status> {
        if let Some(sequential) = request.sequential.as_ref() {
            return self.sequential(&request, sequential).await;
        }
        let comparison = request
            .comparison
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("comparison is required"))?;
        let config = config(comparison);
        config
            .validate()
            .map_err(|error| Status::invalid_argument(format!("comparison: {error}")))?;
        let (canary, baseline, queries) = match request.queries.as_ref() {
            None => (request.canary.clone(), request.baseline.clone(), None),
            Some(queries) => match self.samples(&request, queries).await? {
                Ok((canary, baseline, texts)) => (canary, baseline, Some(texts)),
                Err(reason) => {
                    self.metrics.compared(Verdict::Error);
                    return Ok(CompareResponse {
                        verdict: Verdict::Error as i32,
                        reason,
                        ..CompareResponse::default()
                    });
                }
            },
        };
        let judgement = compare(&config, &canary, &baseline)
            .map_err(|error| Status::invalid_argument(format!("comparison: {error}")))?;
        let verdict = match judgement.classification {
            _ if judgement.failed_critical => Verdict::Failed,
            Classification::Pass => Verdict::Successful,
            Classification::High | Classification::Low => Verdict::Failed,
            Classification::NoData if judgement.no_data_failure => Verdict::Failed,
            Classification::NoData => Verdict::Inconclusive,
        };
        let classification = match judgement.classification {
            Classification::Pass => WireClassification::Pass,
            Classification::High => WireClassification::High,
            Classification::Low => WireClassification::Low,
            Classification::NoData => WireClassification::NoData,
        };
        let reason = match queries {
            Some((canary, baseline)) => format!(
                "{} (canary query `{canary}`, baseline query `{baseline}`)",
                judgement.reason
            ),
            None => judgement.reason.clone(),
        };
        self.metrics.compared(verdict);
        Ok(CompareResponse {
            verdict: verdict as i32,
            classification: classification as i32,
            u_statistic: judgement.u_statistic,
            // The judge marks a p-value it did not compute as NaN: absent on the wire.
            p_value: Some(judgement.p_value).filter(|p| p.is_finite()),
            hodges_lehmann: judgement.hodges_lehmann,
            interval_lower: judgement.interval.lower,
            interval_upper: judgement.interval.upper,
            effect_size: judgement.effect_size,
            reason,
        })
    }

    /// Runs the canary and baseline queries: the samples and the templated queries, or the
    /// reason a query failed (an Error verdict).
    #[allow(clippy::type_complexity)]
    async fn samples(
        &self,
        request: &CompareRequest,
        queries: &v1::CompareQueries,
    ) -> Result<Result<(Vec<f64>, Vec<f64>, (String, String)), String>, Status> {
        if queries.address.trim().is_empty() {
            return Err(Status::invalid_argument("queries.address is required"));
        }
        let render = |field: &str, query: &str| {
            if query.trim().is_empty() {
                return Err(Status::invalid_argument(format!(
                    "queries.{field} is required"
                )));
            }
            template(query, &request.args, request.revisions.as_ref())
                .map_err(|error| Status::invalid_argument(format!("queries.{field}: {error}")))
        };
        let canary_query = render("canary_query", &queries.canary_query)?;
        let baseline_query = render("baseline_query", &queries.baseline_query)?;
        let timeout = self.timeout(queries.timeout.as_ref())?;
        let window = range_window(request.window.as_ref())?;
        let (canary, baseline) = tokio::join!(
            self.query(&queries.address, &canary_query, window, timeout),
            self.query(&queries.address, &baseline_query, window, timeout),
        );
        let canary = match canary? {
            Ok(result) => result,
            Err(error) => return Ok(Err(format!("canary query `{canary_query}`: {error}"))),
        };
        let baseline = match baseline? {
            Ok(result) => result,
            Err(error) => return Ok(Err(format!("baseline query `{baseline_query}`: {error}"))),
        };
        for result in [&canary, &baseline] {
            self.metrics
                .query_duration
                .observe(result.elapsed.as_secs_f64());
        }
        Ok(Ok((
            independent(&canary, &canary_query),
            independent(&baseline, &baseline_query),
            (canary_query, baseline_query),
        )))
    }
}

/// Every series' samples, thinned to one per the query's longest range
/// ([`crate::judge::samples`]): overlapping windows would be dependent samples.
fn independent(result: &QueryResult, query: &str) -> Vec<f64> {
    let spacing = range_of(query).unwrap_or_default();
    result
        .series
        .iter()
        .flat_map(|series| thin(&series.timestamps, &series.values, spacing))
        .collect()
}

/// The judge's configuration from the request: what it sets, and the judge's defaults
/// ([`MetricConfig::new`]) for what it leaves absent.
fn config(comparison: &v1::Comparison) -> MetricConfig {
    let mut config = MetricConfig::new(if comparison.metric.is_empty() {
        "metric"
    } else {
        comparison.metric.as_str()
    });
    config.direction = match comparison.direction() {
        v1::Direction::Decrease => Direction::Decrease,
        v1::Direction::Either => Direction::Either,
        v1::Direction::Increase | v1::Direction::Unspecified => Direction::Increase,
    };
    config.allowed_increase = comparison
        .allowed_increase
        .unwrap_or(config.allowed_increase);
    config.critical_increase = comparison
        .critical_increase
        .unwrap_or(config.critical_increase);
    config.critical = comparison.critical;
    config.must_have_data = comparison.must_have_data;
    config.nan_strategy = match comparison.nan_strategy() {
        v1::NanStrategy::ReplaceWithZero => NanStrategy::ReplaceWithZero,
        v1::NanStrategy::Remove => NanStrategy::Remove,
        v1::NanStrategy::Worst | v1::NanStrategy::Unspecified => NanStrategy::Worst,
    };
    config.weight = comparison.weight.unwrap_or(config.weight);
    config.confidence = comparison.confidence.unwrap_or(config.confidence);
    config
}
