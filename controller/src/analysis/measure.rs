//! The AnalysisRun reconciler: measures the metrics that are due through the AnalysisService,
//! records each measurement with the pure lifecycle ([`rollgate_crds::analysis::lifecycle`]),
//! writes the status and comes back when the next measurement falls due. The analysis service
//! is stateless; the schedule lives in the run's status, so a restarted controller picks up
//! where the last one stopped.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use rollgate_crds::analysis::lifecycle::{NewMeasurement, advance};
use rollgate_crds::analysis::{AnalysisRun, AnalysisRunStatus, Measurement};
use serde_json::json;

use super::requests::{MetricRequest, compared, evaluated, failed_call, measurement, request_for};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::write::{self, FieldManager, Part};

/// What the measurer shares between runs.
pub struct MeasureContext {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The AnalysisService, when one is configured.
    pub analysis: Option<super::client::AnalysisClient>,
    /// Exported metrics.
    pub metrics: Arc<Metrics>,
    /// The shards this replica writes for: a run is measured by the holder of its Rollout's.
    pub shards: crate::shards::Shards,
}

/// Measures what is due of one run and writes its status.
pub async fn reconcile(
    run: Arc<AnalysisRun>,
    context: Arc<MeasureContext>,
) -> Result<Action, Error> {
    let namespace = run.namespace().ok_or(Error::NoNamespace)?;
    let rollout_uid = run
        .owner_references()
        .iter()
        .find(|owner| owner.controller == Some(true))
        .map_or_else(|| run.uid().unwrap_or_default(), |owner| owner.uid.clone());
    let Some(shard) = context.shards.hold(&rollout_uid).await else {
        return Ok(Action::await_change());
    };
    let mut transition = advance(&run.spec, run.status.as_ref(), Timestamp::now(), None)?;
    for metric_name in transition.due.clone() {
        let Some(metric) = run.spec.metrics.iter().find(|m| m.name == metric_name) else {
            continue;
        };
        let started = Timestamp::now();
        let run_started = transition
            .status
            .started_at
            .as_ref()
            .map_or(started, |time| time.0);
        let measured = match request_for(&run.spec, metric, run_started, started) {
            Some(request) => measure(&context, request, started).await,
            None => error_measurement("the metric has no provider", started),
        };
        context
            .metrics
            .measurement(&format!("{:?}", measured.phase));
        transition = advance(
            &run.spec,
            Some(&transition.status),
            Timestamp::now(),
            Some(NewMeasurement {
                metric: metric_name,
                measurement: measured,
            }),
        )?;
    }
    if !shard.valid() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    write_status(&context, &namespace, &run, &transition.status).await?;
    Ok(match transition.next_measurement_at {
        Some(at) => {
            let wait = Timestamp::now().duration_until(at);
            Action::requeue(
                Duration::try_from(wait)
                    .unwrap_or_default()
                    .max(Duration::from_millis(100)),
            )
        }
        None => Action::await_change(),
    })
}

async fn measure(
    context: &MeasureContext,
    request: MetricRequest,
    started: Timestamp,
) -> Measurement {
    let Some(mut client) = context.analysis.clone() else {
        return error_measurement(
            "no analysis service is configured (--analysis-addr / ROLLGATE_ANALYSIS_ADDR)",
            started,
        );
    };
    let answer = match request {
        MetricRequest::Evaluate(request) => client
            .evaluate(*request)
            .await
            .map(|response| evaluated(response.into_inner())),
        MetricRequest::Compare(request) => client
            .compare(*request)
            .await
            .map(|response| compared(response.into_inner())),
    };
    match answer {
        Ok(answer) => measurement(answer, started, Timestamp::now()),
        Err(status) => failed_call(&status, started, Timestamp::now()),
    }
}

fn error_measurement(reason: &str, started: Timestamp) -> Measurement {
    failed_call(
        &tonic::Status::failed_precondition(reason),
        started,
        Timestamp::now(),
    )
}

async fn write_status(
    context: &MeasureContext,
    namespace: &str,
    run: &AnalysisRun,
    status: &AnalysisRunStatus,
) -> Result<(), Error> {
    if run.status.as_ref() == Some(status) {
        return Ok(());
    }
    let body = write::partial::<AnalysisRun>(
        json!({"name": run.name_any()}),
        [(
            "status",
            serde_json::to_value(status).map_err(kube::Error::SerdeError)?,
        )],
    );
    let runs: Api<AnalysisRun> = Api::namespaced(context.client.clone(), namespace);
    write::apply(
        &runs,
        FieldManager::Controller,
        Part::Status,
        &run.name_any(),
        &body,
    )
    .await?;
    Ok(())
}

/// Transient errors are retried after a short delay.
pub fn error_policy(run: Arc<AnalysisRun>, error: &Error, context: Arc<MeasureContext>) -> Action {
    let kind = crate::metrics::ErrorLabels {
        kind: error.metric_label().to_owned(),
    };
    context.metrics.reconcile_errors.get_or_create(&kind).inc();
    tracing::warn!(analysis_run = %run.name_any(), %error, "measuring failed");
    Action::requeue(Duration::from_secs(5))
}
