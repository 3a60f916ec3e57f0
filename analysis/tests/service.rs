//! The analysis service against real components: a real Prometheus (built from its Go module) scraping
//! real demo-app processes under load, and the real `rollgate-analysis` binary called by a real
//! tonic client.
//!
//! One environment is shared by the tests of this file: Prometheus, a `good` revision failing
//! 0% of its requests, a `bad` revision failing 20%, a load generator, and the service.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rollgate_proto::v1::analysis_service_client::AnalysisServiceClient;
use rollgate_proto::v1::{
    CompareQueries, CompareRequest, Comparison, EvaluateRequest, EvaluateResponse, Metric,
    PrometheusQuery, Revisions, SequentialQueries, Verdict, Window,
};
use rollgate_testsupport::{AnalysisServer, DemoApp, LoadGenerator, Prometheus};
use tonic::Code;
use tonic::transport::Channel;

/// The error ratio of one revision over the last 10 seconds (0 when it served no errors).
const ERROR_RATIO: &str = r#"(sum(rate(http_requests_total{revision="{{revision.canary}}",code="500"}[10s])) or vector(0)) / sum(rate(http_requests_total{revision="{{revision.canary}}"}[10s]))"#;

struct Environment {
    prometheus: Prometheus,
    analysis: AnalysisServer,
    _good: DemoApp,
    _bad: DemoApp,
    _load: LoadGenerator,
}

fn environment() -> &'static Environment {
    static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let prometheus = Prometheus::start().expect("start Prometheus");
        let good = DemoApp::start("good", 0.0, Duration::from_millis(2)).expect("good app");
        let bad = DemoApp::start("bad", 0.2, Duration::from_millis(2)).expect("bad app");
        prometheus
            .set_targets(&[good.scrape_target(&[]), bad.scrape_target(&[])])
            .expect("set targets");
        let load = LoadGenerator::start(&[good.url(), bad.url()], 40.0, Duration::from_secs(600))
            .expect("start load");
        let analysis =
            AnalysisServer::start_binary(Path::new(env!("CARGO_BIN_EXE_rollgate-analysis")), &[])
                .expect("start the analysis service");
        Environment {
            prometheus,
            analysis,
            _good: good,
            _bad: bad,
            _load: load,
        }
    })
}

async fn client(analysis: &AnalysisServer) -> AnalysisServiceClient<Channel> {
    AnalysisServiceClient::connect(analysis.grpc_url())
        .await
        .expect("connect to the analysis service")
}

fn request(address: &str, query: &str, success: &str, canary: &str) -> EvaluateRequest {
    EvaluateRequest {
        metric: Some(Metric {
            name: "error-ratio".into(),
            prometheus: Some(PrometheusQuery {
                address: address.to_owned(),
                query: query.to_owned(),
                timeout: None,
            }),
            success_condition: success.to_owned(),
            failure_condition: String::new(),
        }),
        args: HashMap::new(),
        window: None,
        revisions: Some(Revisions {
            canary: canary.to_owned(),
            stable: "good".to_owned(),
        }),
    }
}

/// Evaluates until the verdict is not Inconclusive (Prometheus needs a few scrapes before a
/// rate has data), for at most a minute.
async fn settled(
    client: &mut AnalysisServiceClient<Channel>,
    request: EvaluateRequest,
) -> EvaluateResponse {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = client
            .evaluate(request.clone())
            .await
            .expect("Evaluate answers")
            .into_inner();
        if response.verdict() != Verdict::Inconclusive || Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn zero_errors_is_successful_with_the_reason() {
    let env = environment();
    let mut client = client(&env.analysis).await;
    let response = settled(
        &mut client,
        request(&env.prometheus.url(), ERROR_RATIO, "result < 0.05", "good"),
    )
    .await;
    assert_eq!(response.verdict(), Verdict::Successful, "{response:?}");
    assert!(
        response.query.contains(r#"revision="good""#),
        "{response:?}"
    );
    assert_eq!(response.value, "0", "{response:?}");
    assert!(
        response
            .reason
            .contains("successCondition `result < 0.05` is true for result 0"),
        "{}",
        response.reason
    );
}

#[tokio::test]
async fn twenty_percent_errors_fails_naming_query_value_and_threshold() {
    let env = environment();
    let mut client = client(&env.analysis).await;
    let response = settled(
        &mut client,
        request(&env.prometheus.url(), ERROR_RATIO, "result < 0.05", "bad"),
    )
    .await;
    assert_eq!(response.verdict(), Verdict::Failed, "{response:?}");
    let value: f64 = response.value.parse().expect("a number");
    assert!((0.15..=0.25).contains(&value), "{response:?}");
    assert!(
        response.reason.contains(r#"revision="bad""#),
        "{}",
        response.reason
    );
    assert!(
        response
            .reason
            .contains("successCondition `result < 0.05` is false"),
        "{}",
        response.reason
    );
    assert!(
        response.reason.contains(&response.value),
        "{}",
        response.reason
    );
}

#[tokio::test]
async fn an_empty_result_is_inconclusive() {
    let env = environment();
    let mut client = client(&env.analysis).await;
    let response = client
        .evaluate(request(
            &env.prometheus.url(),
            r#"http_requests_total{revision="{{revision.canary}}"}"#,
            "result < 0.05",
            "no-such-revision",
        ))
        .await
        .expect("Evaluate answers")
        .into_inner();
    assert_eq!(response.verdict(), Verdict::Inconclusive, "{response:?}");
    assert!(response.reason.contains("no data"), "{}", response.reason);
}

#[tokio::test]
async fn a_stopped_prometheus_is_an_error_never_a_pass() {
    let env = environment();
    // Where a Prometheus was and is no more: a port bound but never listening, so connections
    // are refused, and (unlike a stopped Prometheus' port) no fixture of a parallel test can
    // take it over and answer.
    let gone = tokio::net::TcpSocket::new_v4().expect("a socket");
    gone.bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind a loopback port");
    let address = format!("http://{}", gone.local_addr().expect("its address"));
    let mut client = client(&env.analysis).await;
    let response = client
        .evaluate(request(&address, ERROR_RATIO, "result < 0.05", "good"))
        .await
        .expect("Evaluate answers")
        .into_inner();
    assert_eq!(response.verdict(), Verdict::Error, "{response:?}");
    assert!(
        response.reason.contains("unreachable"),
        "{}",
        response.reason
    );
    assert!(response.reason.contains(&address), "{}", response.reason);
}

#[tokio::test]
async fn a_query_that_takes_too_long_is_deadline_exceeded() {
    let env = environment();
    // A listening socket that never answers: the query can only time out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://{}", silent.local_addr().expect("address"));
    let mut request = request(&address, "vector(0)", "result < 0.05", "good");
    if let Some(prometheus) = request.metric.as_mut().and_then(|m| m.prometheus.as_mut()) {
        prometheus.timeout = Some(prost_types::Duration {
            seconds: 0,
            nanos: 300_000_000,
        });
    }
    let mut client = client(&env.analysis).await;
    let started = Instant::now();
    let status = client
        .evaluate(request)
        .await
        .expect_err("a query out of its time is no answer");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("timed out"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn bad_cel_is_invalid_argument_naming_the_condition() {
    let env = environment();
    let mut client = client(&env.analysis).await;
    let status = client
        .evaluate(request(
            &env.prometheus.url(),
            "vector(0)",
            "result <",
            "good",
        ))
        .await
        .expect_err("a bad condition is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("successCondition `result <`"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn an_unknown_placeholder_is_invalid_argument_naming_it() {
    let env = environment();
    let mut client = client(&env.analysis).await;
    let status = client
        .evaluate(request(
            &env.prometheus.url(),
            r#"up{revision="{{revision.baseline}}"}"#,
            "result < 1",
            "good",
        ))
        .await
        .expect_err("an unknown placeholder is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("{{revision.baseline}}"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn compare_fails_a_canary_worse_than_its_baseline() {
    let env = environment();
    let mut client = client(&env.analysis).await;
    // Wait until both revisions have data (the bad one fails its threshold when it has).
    settled(
        &mut client,
        request(&env.prometheus.url(), ERROR_RATIO, "result < 0.05", "bad"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let per_revision = |revision: &str| ERROR_RATIO.replace("revision.canary", revision);
    let response = client
        .compare(CompareRequest {
            comparison: Some(Comparison {
                metric: "error-ratio".into(),
                ..Comparison::default()
            }),
            queries: Some(CompareQueries {
                address: env.prometheus.url(),
                canary_query: per_revision("revision.canary"),
                baseline_query: per_revision("revision.stable"),
                timeout: None,
            }),
            window: Some(Window {
                start: Some(prost_types::Timestamp {
                    seconds: now - 8,
                    nanos: 0,
                }),
                end: Some(prost_types::Timestamp {
                    seconds: now,
                    nanos: 0,
                }),
                step: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
            }),
            revisions: Some(Revisions {
                canary: "bad".into(),
                stable: "good".into(),
            }),
            ..CompareRequest::default()
        })
        .await
        .expect("Compare answers")
        .into_inner();
    assert_eq!(response.verdict(), Verdict::Failed, "{response:?}");
    assert!(
        response.reason.contains(r#"revision="bad""#),
        "{}",
        response.reason
    );
}

fn last_seconds(seconds: i64, step: i64) -> Window {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    Window {
        start: Some(prost_types::Timestamp {
            seconds: now - seconds,
            nanos: 0,
        }),
        end: Some(prost_types::Timestamp {
            seconds: now,
            nanos: 0,
        }),
        step: Some(prost_types::Duration {
            seconds: step,
            nanos: 0,
        }),
    }
}

fn sequential_request(address: &str, canary: &str, stable: &str) -> CompareRequest {
    let errors = |revision: &str| {
        format!(
            r#"sum(http_requests_total{{revision="{{{{revision.{revision}}}}}",code="500"}}) or vector(0)"#
        )
    };
    let requests = |revision: &str| {
        format!(r#"sum(http_requests_total{{revision="{{{{revision.{revision}}}}}"}})"#)
    };
    CompareRequest {
        sequential: Some(SequentialQueries {
            address: address.to_owned(),
            canary_errors_query: errors("canary"),
            canary_requests_query: requests("canary"),
            baseline_errors_query: errors("stable"),
            baseline_requests_query: requests("stable"),
            timeout: None,
            alpha: Some(0.05),
            ..SequentialQueries::default()
        }),
        window: Some(last_seconds(20, 2)),
        revisions: Some(Revisions {
            canary: canary.into(),
            stable: stable.into(),
        }),
        ..CompareRequest::default()
    }
}

#[tokio::test]
async fn sequential_test_fails_a_worse_canary_and_passes_an_equal_one() {
    let env = environment();
    let mut client = client(&env.analysis).await;
    settled(
        &mut client,
        request(&env.prometheus.url(), ERROR_RATIO, "result < 0.05", "bad"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let worse = client
        .compare(sequential_request(&env.prometheus.url(), "bad", "good"))
        .await
        .expect("Compare answers")
        .into_inner();
    assert_eq!(worse.verdict(), Verdict::Failed, "{worse:?}");
    assert!(worse.reason.contains("worse"), "{}", worse.reason);
    assert!(worse.p_value.is_some_and(|p| p < 0.05), "{worse:?}");
    let equal = client
        .compare(sequential_request(&env.prometheus.url(), "good", "good"))
        .await
        .expect("Compare answers")
        .into_inner();
    assert_eq!(equal.verdict(), Verdict::Successful, "{equal:?}");
    let missing = client
        .compare(sequential_request(&env.prometheus.url(), "nobody", "good"))
        .await
        .expect("Compare answers")
        .into_inner();
    assert_eq!(missing.verdict(), Verdict::Inconclusive, "{missing:?}");
}

#[tokio::test]
async fn health_reflection_and_metrics_answer() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let env = environment();
    let channel = Channel::from_shared(env.analysis.grpc_url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "rollgate.v1.AnalysisService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "service {service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![list]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = stream
        .message()
        .await
        .expect("a reflection message")
        .expect("not the end of the stream");
    let Some(MessageResponse::ListServicesResponse(services)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "rollgate.v1.AnalysisService"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );

    let agent = rollgate_testsupport::process::http_agent();
    for path in ["/live", "/ready"] {
        let response = agent
            .get(format!("{}{path}", env.analysis.admin_url()))
            .call()
            .expect("admin answers");
        assert_eq!(response.status(), 200, "{path}");
    }
    // At least one evaluation, so the counter has a series.
    let mut client = client(&env.analysis).await;
    client
        .evaluate(request(
            &env.prometheus.url(),
            "vector(0)",
            "result == 0",
            "good",
        ))
        .await
        .expect("Evaluate answers");
    let metrics = agent
        .get(format!("{}/metrics", env.analysis.admin_url()))
        .call()
        .expect("metrics answer")
        .body_mut()
        .read_to_string()
        .expect("text");
    assert!(
        metrics.contains("rollgate_analysis_evaluations_total{verdict=\"successful\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rollgate_analysis_query_duration_seconds_bucket"),
        "{metrics}"
    );
}

/// An independent client: grpcurl (built from its own Go module) finds Evaluate by reflection
/// and gets the same verdict and reason as the Rust client, as JSON.
#[tokio::test]
async fn grpcurl_calls_evaluate_through_reflection() {
    let env = environment();
    // Wait, with the Rust client, until Prometheus has the rates.
    let mut client = client(&env.analysis).await;
    settled(
        &mut client,
        request(&env.prometheus.url(), ERROR_RATIO, "result < 0.05", "bad"),
    )
    .await;
    let body = serde_json::json!({
        "metric": {
            "name": "error-ratio",
            "prometheus": {"address": env.prometheus.url(), "query": ERROR_RATIO},
            "successCondition": "result < 0.05"
        },
        "revisions": {"canary": "bad", "stable": "good"}
    });
    let grpcurl = rollgate_testsupport::grpcurl::grpcurl().expect("grpcurl");
    let output = tokio::process::Command::new(grpcurl)
        .args(["-plaintext", "-d", &body.to_string()])
        .arg(env.analysis.grpc_address())
        .arg("rollgate.v1.AnalysisService/Evaluate")
        .output()
        .await
        .expect("run grpcurl");
    assert!(
        output.status.success(),
        "grpcurl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("grpcurl prints JSON");
    assert_eq!(response["verdict"], "VERDICT_FAILED", "{response}");
    let reason = response["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("successCondition `result < 0.05` is false"),
        "{reason}"
    );
    assert!(reason.contains(r#"revision="bad""#), "{reason}");
}
