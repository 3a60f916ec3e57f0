//! Running a PromQL query through the `prometheus-http-query` crate: an instant query, or a
//! range query when a window is given, bounded by a timeout (sent to Prometheus as its query
//! timeout too, and enforced here around the whole request) and by a response size: the body
//! is read chunk by chunk and the query fails with [`QueryError::TooLarge`] as soon as it
//! passes the limit, so a query selecting millions of series cannot exhaust the service's
//! memory. The crate sends the request; the capped body is parsed into its response types.
//!
//! Every failure is a [`QueryError`]; the service turns it into an Error verdict, never a pass.
//! Prometheus is reached over plain HTTP (`http://` addresses, typically its in-cluster
//! Service); an `https://` address is refused with a clear error, as this build carries no TLS
//! client (reqwest 0.13's rustls backend would need a process-wide crypto provider).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus_http_query::Client;
use prometheus_http_query::error::PrometheusError;
use prometheus_http_query::response::{Data, PromqlResult};

/// The time range of a range query, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeWindow {
    /// Start, Unix seconds.
    pub start: i64,
    /// End, Unix seconds.
    pub end: i64,
    /// Resolution, seconds.
    pub step: f64,
}

/// One series of a result: its labels and its values, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels (empty for a scalar).
    pub labels: BTreeMap<String, String>,
    /// The values.
    pub values: Vec<f64>,
    /// The time of each value, Unix seconds.
    pub timestamps: Vec<f64>,
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The series, in Prometheus' order.
    pub series: Vec<Series>,
    /// How long the query took.
    pub elapsed: Duration,
}

impl QueryResult {
    /// Every value of every series, series by series.
    pub fn samples(&self) -> Vec<f64> {
        self.series
            .iter()
            .flat_map(|series| series.values.iter().copied())
            .collect()
    }
}

/// Why a query returned nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The address is not a usable URL.
    #[error("Prometheus address {address:?} is not usable: {message}")]
    BadAddress {
        /// The address.
        address: String,
        /// Why.
        message: String,
    },
    /// Prometheus could not be reached, or its answer could not be read.
    #[error("Prometheus at {address} is unreachable: {message}")]
    Unreachable {
        /// The address.
        address: String,
        /// The client's message.
        message: String,
    },
    /// Prometheus answered with an error (bad PromQL, its own timeout, overload).
    #[error("Prometheus at {address} refused the query: {message}")]
    Prometheus {
        /// The address.
        address: String,
        /// Prometheus' error type and message.
        message: String,
    },
    /// The query took longer than the timeout.
    #[error("the query timed out after {0:?}")]
    Timeout(Duration),
    /// The response was larger than the limit.
    #[error("Prometheus' response is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// What bounds one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// The whole request's timeout (also sent to Prometheus).
    pub timeout: Duration,
    /// The largest response body read, in bytes.
    pub max_bytes: usize,
}

/// Prometheus' answer: the data, or its error.
#[derive(serde::Deserialize)]
#[serde(tag = "status")]
enum Envelope {
    #[serde(rename = "success")]
    Success { data: PromqlResult },
    #[serde(rename = "error")]
    Error(PrometheusError),
}

/// Runs `query` against the Prometheus at `address`.
pub async fn run_query(
    http: &reqwest::Client,
    address: &str,
    query: &str,
    window: Option<RangeWindow>,
    limits: QueryLimits,
) -> Result<QueryResult, QueryError> {
    let timeout = limits.timeout;
    if address.starts_with("https://") {
        return Err(QueryError::BadAddress {
            address: address.to_owned(),
            message: "https is not supported yet: reach Prometheus over http (for example \
                      its in-cluster Service)"
                .to_owned(),
        });
    }
    let client = Client::from(http.clone(), address).map_err(|error| QueryError::BadAddress {
        address: address.to_owned(),
        message: error.to_string(),
    })?;
    let timeout_ms = i64::try_from(timeout.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let started = Instant::now();
    let request = async {
        let response = match window {
            Some(w) => {
                client
                    .query_range(query, w.start, w.end, w.step)
                    .timeout(timeout_ms)
                    .post_raw()
                    .await
            }
            None => client.query(query).timeout(timeout_ms).post_raw().await,
        };
        let response = response.map_err(|error| classify(address, error, timeout))?;
        read_capped(address, response, limits.max_bytes).await
    };
    let body = tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| QueryError::Timeout(timeout))??;
    let envelope: Envelope =
        serde_json::from_slice(&body).map_err(|error| QueryError::Unreachable {
            address: address.to_owned(),
            message: format!("the answer is not a Prometheus API response: {error}"),
        })?;
    let response = match envelope {
        Envelope::Success { data } => data,
        Envelope::Error(error) => {
            return Err(classify(
                address,
                prometheus_http_query::Error::Prometheus(error),
                timeout,
            ));
        }
    };
    let series = match response.into_inner().0 {
        Data::Scalar(sample) => vec![Series {
            labels: BTreeMap::new(),
            values: vec![sample.value()],
            timestamps: vec![sample.timestamp()],
        }],
        Data::Vector(vector) => vector
            .into_iter()
            .map(|instant| {
                let (labels, sample) = instant.into_inner();
                Series {
                    labels: labels.into_iter().collect(),
                    values: vec![sample.value()],
                    timestamps: vec![sample.timestamp()],
                }
            })
            .collect(),
        Data::Matrix(matrix) => matrix
            .into_iter()
            .map(|range| {
                let (labels, samples) = range.into_inner();
                Series {
                    labels: labels.into_iter().collect(),
                    values: samples.iter().map(|s| s.value()).collect(),
                    timestamps: samples.iter().map(|s| s.timestamp()).collect(),
                }
            })
            .collect(),
    };
    Ok(QueryResult {
        series,
        elapsed: started.elapsed(),
    })
}

/// The body of `response`, or [`QueryError::TooLarge`] once it passes `max_bytes`.
async fn read_capped(
    address: &str,
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, QueryError> {
    let too_large = QueryError::TooLarge { limit: max_bytes };
    if response
        .content_length()
        .is_some_and(|length| length > max_bytes as u64)
    {
        return Err(too_large);
    }
    let mut body = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|error| QueryError::Unreachable {
                address: address.to_owned(),
                message: error_chain(&error),
            })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
}

fn classify(address: &str, error: prometheus_http_query::Error, timeout: Duration) -> QueryError {
    use prometheus_http_query::Error;
    match error {
        Error::Prometheus(error) if error.is_timeout() => QueryError::Timeout(timeout),
        Error::Prometheus(error) => QueryError::Prometheus {
            address: address.to_owned(),
            message: error.to_string(),
        },
        Error::ParseUrl(error) => QueryError::BadAddress {
            address: address.to_owned(),
            message: error.to_string(),
        },
        other => QueryError::Unreachable {
            address: address.to_owned(),
            message: error_chain(&other),
        },
    }
}

/// An error with its sources, `outer: inner: innermost`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
