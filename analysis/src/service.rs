//! The AnalysisService: the tonic service around [`Analysis`], which holds what every request
//! shares (the HTTP client for Prometheus, the operator's limits, who may call, the metrics).
//! Stateless: the controller schedules every measurement, so any replica can answer any request.
//!
//! # Under abuse
//!
//! - every call is authenticated and its caller checked against the allowed callers
//!   ([`crate::callers`]) before anything else;
//! - a Prometheus address not on the operator's allow-list ([`crate::allowlist`]) is
//!   `PERMISSION_DENIED` naming the address;
//! - a requested query timeout above the operator's `--max-query-timeout` is lowered to it; a
//!   query that runs out of its timeout is `DEADLINE_EXCEEDED`, a response larger than
//!   `--max-response-bytes` is `RESOURCE_EXHAUSTED` (the controller records either as an Error
//!   measurement, never a pass);
//! - template arguments cannot change a query's meaning ([`crate::templating`]).

use std::sync::Arc;
use std::time::Duration;

use rollgate_proto::v1::analysis_service_server::AnalysisService;
use rollgate_proto::v1::{CompareRequest, CompareResponse, EvaluateRequest, EvaluateResponse};
use tonic::{Request, Response, Status};

use crate::allowlist::AllowList;
use crate::callers::Callers;
use crate::metrics::Metrics;
use crate::prometheus::{QueryError, QueryLimits, QueryResult, RangeWindow, run_query};

/// What the operator bounds.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The timeout of a query whose metric sets none.
    pub default_timeout: Duration,
    /// The longest timeout a query may have.
    pub max_timeout: Duration,
    /// The largest Prometheus response read, in bytes.
    pub max_response_bytes: usize,
    /// The Prometheus addresses that may be queried.
    pub prometheus: AllowList,
}

/// The analysis service's shared state; its methods implement the RPCs.
#[derive(Clone)]
pub struct Analysis {
    /// The HTTP client every Prometheus query uses (connection pooling).
    pub(crate) http: reqwest::Client,
    /// The operator's limits.
    pub(crate) limits: Arc<Limits>,
    /// Who may call; `None` when authentication is off.
    pub(crate) callers: Option<Arc<Callers>>,
    /// Exported metrics.
    pub(crate) metrics: Arc<Metrics>,
}

impl Analysis {
    /// A service bounded by `limits` that admits `callers` (everyone when `None`).
    pub fn new(
        limits: Limits,
        callers: Option<Arc<Callers>>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // An allowed address must not redirect the query elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Analysis {
            http,
            limits: Arc::new(limits),
            callers,
            metrics,
        })
    }

    async fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match &self.callers {
            Some(callers) => callers.check(request.metadata()).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// `PERMISSION_DENIED` naming `address` unless the operator allows it.
    pub(crate) fn check_address(&self, address: &str) -> Result<(), Status> {
        if self.limits.prometheus.allows(address) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "Prometheus address {address:?} is not on this service's allow-list (--prometheus-allowed)"
        )))
    }

    /// Runs `query` at an allowed `address`: the result, or the failure to report as an Error
    /// verdict; `DEADLINE_EXCEEDED` and `RESOURCE_EXHAUSTED` when the operator's limits cut it.
    pub(crate) async fn query(
        &self,
        address: &str,
        query: &str,
        window: Option<RangeWindow>,
        timeout: Duration,
    ) -> Result<Result<QueryResult, QueryError>, Status> {
        self.check_address(address)?;
        let limits = QueryLimits {
            timeout,
            max_bytes: self.limits.max_response_bytes,
        };
        match run_query(&self.http, address, query, window, limits).await {
            Err(QueryError::Timeout(after)) => Err(Status::deadline_exceeded(format!(
                "query `{query}` timed out after {after:?} (this service allows at most {:?}, --max-query-timeout)",
                self.limits.max_timeout
            ))),
            Err(QueryError::TooLarge { limit }) => Err(Status::resource_exhausted(format!(
                "query `{query}`: Prometheus' response is larger than this service's limit of {limit} bytes (--max-response-bytes); select fewer series"
            ))),
            other => Ok(other),
        }
    }
}

#[tonic::async_trait]
impl AnalysisService for Analysis {
    async fn evaluate(
        &self,
        request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        self.admit(&request).await?;
        self.evaluate(request.into_inner()).await.map(Response::new)
    }

    async fn compare(
        &self,
        request: Request<CompareRequest>,
    ) -> Result<Response<CompareResponse>, Status> {
        self.admit(&request).await?;
        self.compare(request.into_inner()).await.map(Response::new)
    }
}
