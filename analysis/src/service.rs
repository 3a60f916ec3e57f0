//! The AnalysisService: the tonic service around [`Analysis`], which holds what every request
//! shares (the HTTP client for Prometheus, the default timeout, the metrics). Stateless: the
//! controller schedules every measurement, so any replica can answer any request.

use std::sync::Arc;
use std::time::Duration;

use rollgate_proto::v1::analysis_service_server::AnalysisService;
use rollgate_proto::v1::{CompareRequest, CompareResponse, EvaluateRequest, EvaluateResponse};
use tonic::{Request, Response, Status};

use crate::metrics::Metrics;

/// The analysis service's shared state; its methods implement the RPCs.
#[derive(Clone)]
pub struct Analysis {
    /// The HTTP client every Prometheus query uses (connection pooling).
    pub(crate) http: reqwest::Client,
    /// The timeout of a query whose metric sets none.
    pub(crate) default_timeout: Duration,
    /// Exported metrics.
    pub(crate) metrics: Arc<Metrics>,
}

impl Analysis {
    /// A service whose queries time out after `default_timeout` unless a metric says otherwise.
    pub fn new(default_timeout: Duration, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Analysis {
            http,
            default_timeout,
            metrics,
        })
    }
}

#[tonic::async_trait]
impl AnalysisService for Analysis {
    async fn evaluate(
        &self,
        request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        self.evaluate(request.into_inner()).await.map(Response::new)
    }

    async fn compare(
        &self,
        request: Request<CompareRequest>,
    ) -> Result<Response<CompareResponse>, Status> {
        self.compare(request.into_inner()).await.map(Response::new)
    }
}
