//! `serve`: the demo workload.
//!
//! - `GET /`: waits the configured latency (plus a uniform jitter), then answers 200, or 500
//!   for the configured fraction of requests. Errors are spread evenly and deterministically
//!   (an error budget grows by the rate on each request and an error spends 1), so 20% means
//!   exactly one request in five, which keeps tests fast and stable.
//! - `GET /metrics`: `http_requests_total{revision,code}` and the histogram
//!   `http_request_duration_seconds{revision}`, in Prometheus' text format.
//! - `GET /admin/config`: the current settings; `POST /admin/config?error_rate=0.2&latency_ms=50
//!   &latency_jitter_ms=10`: changes any of them at run time.
//! - `GET /healthz`: 200 once listening.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Flags of `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The revision label of every metric.
    #[arg(long, env = "DEMO_REVISION", default_value = "stable")]
    pub revision: String,
    /// Fraction of requests answered with 500, from 0 to 1.
    #[arg(long, env = "DEMO_ERROR_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// Latency of every request, in milliseconds.
    #[arg(long, env = "DEMO_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Extra latency, uniform between 0 and this many milliseconds.
    #[arg(long, env = "DEMO_LATENCY_JITTER_MS", default_value_t = 0)]
    pub latency_jitter_ms: u64,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "the error rate must be between 0 and 1, not {rate}"
        ))
    }
}

/// The settings that `POST /admin/config` changes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct Config {
    /// Fraction of requests answered with 500.
    pub error_rate: f64,
    /// Latency of every request, in milliseconds.
    pub latency_ms: u64,
    /// Extra uniform latency, in milliseconds.
    pub latency_jitter_ms: u64,
}

/// A change of some settings.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct ConfigChange {
    /// New error rate.
    pub error_rate: Option<f64>,
    /// New latency.
    pub latency_ms: Option<u64>,
    /// New jitter.
    pub latency_jitter_ms: Option<u64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    revision: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
}

struct Mutable {
    config: Config,
    /// Grows by the error rate on each request; an error spends 1.
    error_budget: f64,
    /// State of the jitter's pseudo-random generator.
    random: u64,
}

struct App {
    revision: String,
    state: Mutex<Mutable>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RevisionLabels, Histogram>,
}

impl App {
    fn new(args: &ServeArgs) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by revision and status code",
            requests.clone(),
        );
        let durations = Family::<RevisionLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 14))) as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Seconds to serve a request, by revision",
            durations.clone(),
        );
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        App {
            revision: args.revision.clone(),
            state: Mutex::new(Mutable {
                config: Config {
                    error_rate: args.error_rate,
                    latency_ms: args.latency_ms,
                    latency_jitter_ms: args.latency_jitter_ms,
                },
                error_budget: 0.0,
                random: seed,
            }),
            registry,
            requests,
            durations,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mutable> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides one request: its delay and whether it fails.
    fn decide(&self) -> (Duration, bool) {
        let mut state = self.lock();
        let config = state.config;
        state.error_budget += config.error_rate;
        let fail = state.error_budget >= 1.0 - 1e-9;
        if fail {
            state.error_budget -= 1.0;
        }
        let jitter = if config.latency_jitter_ms > 0 {
            // xorshift64: enough randomness for a jitter.
            state.random ^= state.random << 13;
            state.random ^= state.random >> 7;
            state.random ^= state.random << 17;
            state.random % (config.latency_jitter_ms + 1)
        } else {
            0
        };
        (Duration::from_millis(config.latency_ms + jitter), fail)
    }
}

/// Runs the workload until the process is stopped.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let app = Arc::new(App::new(&args));
    let router = Router::new()
        .route("/", get(root))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/admin/config", get(show_config).post(change_config))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "rollgate-demo-app revision {} listening on {}",
        args.revision,
        listener.local_addr()?
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(rollgate_runtime::shutdown_signal())
        .await?;
    Ok(())
}

async fn root(State(app): State<Arc<App>>) -> (StatusCode, String) {
    let started = Instant::now();
    let (delay, fail) = app.decide();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    app.requests
        .get_or_create(&RequestLabels {
            revision: app.revision.clone(),
            code: status.as_u16().to_string(),
        })
        .inc();
    app.durations
        .get_or_create(&RevisionLabels {
            revision: app.revision.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    let body = if fail {
        format!("revision {}: injected error\n", app.revision)
    } else {
        format!("revision {}: ok\n", app.revision)
    };
    (status, body)
}

async fn metrics(State(app): State<Arc<App>>) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &app.registry);
    text
}

fn describe(config: Config) -> String {
    format!(
        "error_rate={} latency_ms={} latency_jitter_ms={}\n",
        config.error_rate, config.latency_ms, config.latency_jitter_ms
    )
}

async fn show_config(State(app): State<Arc<App>>) -> String {
    describe(app.lock().config)
}

async fn change_config(
    State(app): State<Arc<App>>,
    Query(change): Query<ConfigChange>,
) -> (StatusCode, String) {
    if let Some(rate) = change.error_rate
        && !(0.0..=1.0).contains(&rate)
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("error_rate must be between 0 and 1, not {rate}\n"),
        );
    }
    let mut state = app.lock();
    if let Some(rate) = change.error_rate {
        state.config.error_rate = rate;
        state.error_budget = 0.0;
    }
    if let Some(latency) = change.latency_ms {
        state.config.latency_ms = latency;
    }
    if let Some(jitter) = change.latency_jitter_ms {
        state.config.latency_jitter_ms = jitter;
    }
    (StatusCode::OK, describe(state.config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(error_rate: f64) -> App {
        App::new(&ServeArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            revision: "r1".into(),
            error_rate,
            latency_ms: 5,
            latency_jitter_ms: 0,
        })
    }

    #[test]
    fn errors_follow_the_rate_exactly() {
        for (rate, expected) in [(0.0, 0), (0.2, 20), (0.5, 50), (1.0, 100)] {
            let app = app(rate);
            let failures = (0..100).filter(|_| app.decide().1).count();
            assert_eq!(failures, expected, "rate {rate}");
        }
    }

    #[test]
    fn latency_includes_the_jitter() {
        let app = app(0.0);
        app.lock().config.latency_jitter_ms = 10;
        for _ in 0..50 {
            let delay = app.decide().0;
            assert!((5..=15).contains(&(delay.as_millis() as u64)), "{delay:?}");
        }
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        assert!(parse_rate("0.2").is_ok());
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("x").is_err());
    }
}
