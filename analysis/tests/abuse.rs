//! The AnalysisService under abuse, from the caller's side: a real `rollgate-analysis` process
//! reviewing real ServiceAccount tokens against the local cluster, a real Prometheus, a real
//! tonic client. Each case is also shown with the mechanism off (or the attack sent as the
//! template author could), so the test can fail.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rollgate_proto::v1::analysis_service_client::AnalysisServiceClient;
use rollgate_proto::v1::{
    CompareRequest, Comparison, EvaluateRequest, EvaluateResponse, Metric, PrometheusQuery,
};
use rollgate_testsupport::identity::service_account;
use rollgate_testsupport::{AnalysisServer, Callers, Prometheus, TestNamespace, shared_cluster};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rollgate-analysis"))
}

async fn client(analysis: &AnalysisServer) -> AnalysisServiceClient<Channel> {
    AnalysisServiceClient::connect(analysis.grpc_url())
        .await
        .expect("connect to the analysis service")
}

fn evaluate(address: &str, query: &str, args: &[(&str, &str)]) -> EvaluateRequest {
    EvaluateRequest {
        metric: Some(Metric {
            name: "probe".into(),
            prometheus: Some(PrometheusQuery {
                address: address.to_owned(),
                query: query.to_owned(),
                timeout: None,
            }),
            success_condition: "result == 0".into(),
            failure_condition: String::new(),
        }),
        args: args
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect::<HashMap<_, _>>(),
        window: None,
        revisions: None,
    }
}

fn with_token<T>(token: Option<&str>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("header value");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn call(
    client: &mut AnalysisServiceClient<Channel>,
    token: Option<&str>,
    request: EvaluateRequest,
) -> Result<EvaluateResponse, Status> {
    client
        .evaluate(with_token(token, request))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn only_the_allowed_caller_gets_an_answer() -> anyhow::Result<()> {
    let cluster = shared_cluster();
    let admin = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &admin, "analysis-callers").await?;
    let controller = service_account(&admin, namespace.name(), "controller").await?;
    let intruder = service_account(&admin, namespace.name(), "intruder").await?;
    let prometheus = Prometheus::start()?;
    let allowed = [controller.username.as_str()];
    let callers = Callers::Reviewed {
        cluster,
        allowed: &allowed,
    };
    let analysis = AnalysisServer::start_with(binary(), callers, &[])?;
    let mut client = client(&analysis).await;
    let probe = || evaluate(&prometheus.url(), "vector(0)", &[]);

    let anonymous = call(&mut client, None, probe()).await.unwrap_err();
    println!("no token: {anonymous:?}");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let junk = call(&mut client, Some("junk"), probe()).await.unwrap_err();
    println!("junk token: {junk:?}");
    assert_eq!(junk.code(), Code::Unauthenticated);
    let other = call(&mut client, Some(&intruder.token), probe())
        .await
        .unwrap_err();
    println!("another ServiceAccount: {other:?}");
    assert_eq!(other.code(), Code::PermissionDenied);
    assert!(other.message().contains(&intruder.username), "{other:?}");
    let answered = call(&mut client, Some(&controller.token), probe()).await?;
    assert_eq!(answered.value, "0", "{answered:?}");

    // With authentication off, the anonymous call is answered: the check above is what refused it.
    let open = AnalysisServer::start_with(binary(), Callers::Anyone, &[])?;
    let mut open_client = self::client(&open).await;
    call(&mut open_client, None, probe()).await?;
    Ok(())
}

#[tokio::test]
async fn a_prometheus_address_off_the_allow_list_is_permission_denied_naming_it()
-> anyhow::Result<()> {
    let prometheus = Prometheus::start()?;
    let allowed = format!("--prometheus-allowed={}", prometheus.url());
    let analysis = AnalysisServer::start_with(binary(), Callers::Anyone, &[&allowed])?;
    let mut client = client(&analysis).await;
    // Any other listener, here a second Prometheus: the service must not be a proxy to it.
    let elsewhere = Prometheus::start()?;
    for address in [elsewhere.url(), "http://198.18.0.1:9090".to_owned()] {
        let refused = call(&mut client, None, evaluate(&address, "vector(0)", &[]))
            .await
            .unwrap_err();
        println!("{address}: {refused:?}");
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(refused.message().contains(&address), "{refused:?}");
    }
    call(
        &mut client,
        None,
        evaluate(&prometheus.url(), "vector(0)", &[]),
    )
    .await?;
    // The same address is answered by a service that allows it.
    let open = AnalysisServer::start_with(binary(), Callers::Anyone, &[])?;
    call(
        &mut self::client(&open).await,
        None,
        evaluate(&elsewhere.url(), "vector(0)", &[]),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_argument_cannot_change_the_meaning_of_a_platform_query() -> anyhow::Result<()> {
    let prometheus = Prometheus::start()?;
    let analysis = AnalysisServer::start_with(binary(), Callers::Anyone, &[])?;
    let mut client = client(&analysis).await;
    let template = r#"count(up{job="{{args.job}}"}) or vector(0)"#;
    let injection = r#"none"}) or vector(42) #"#;

    // Sent as the text it would make, the injection changes the answer to 42...
    let spliced = template.replace("{{args.job}}", injection);
    let injected = call(
        &mut client,
        None,
        evaluate(&prometheus.url(), &spliced, &[]),
    )
    .await?;
    assert_eq!(injected.value, "42", "{injected:?}");
    // ...as an argument, it stays the label value it claims to be: no such job, 0.
    let answered = call(
        &mut client,
        None,
        evaluate(&prometheus.url(), template, &[("job", injection)]),
    )
    .await?;
    println!("templated query: {}", answered.query);
    assert_eq!(answered.value, "0", "{answered:?}");
    assert!(
        answered.query.contains(r#"job="none\"}) or vector(42) #""#),
        "{answered:?}"
    );

    // Outside a string literal only a bare token may stand.
    let outside = "rate(up[{{args.window}}])";
    let refused = call(
        &mut client,
        None,
        evaluate(
            &prometheus.url(),
            outside,
            &[("window", "5m]) or vector(42")],
        ),
    )
    .await
    .unwrap_err();
    println!("outside a literal: {refused:?}");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("{{args.window}}"), "{refused:?}");
    Ok(())
}

#[tokio::test]
async fn oversize_responses_and_slow_queries_are_cut_by_the_operators_limits() -> anyhow::Result<()>
{
    let prometheus = Prometheus::start()?;
    let analysis = AnalysisServer::start_with(
        binary(),
        Callers::Anyone,
        &["--max-response-bytes=400", "--max-query-timeout=300ms"],
    )?;
    let mut client = client(&analysis).await;
    let padding = "x".repeat(1000);
    let big = format!(r#"label_replace(vector(0), "padding", "{padding}", "", "")"#);
    let too_large = call(&mut client, None, evaluate(&prometheus.url(), &big, &[]))
        .await
        .unwrap_err();
    println!("oversize: {too_large:?}");
    assert_eq!(too_large.code(), Code::ResourceExhausted);
    assert!(too_large.message().contains("400 bytes"), "{too_large:?}");
    // The same query under the limit is answered.
    call(
        &mut client,
        None,
        evaluate(&prometheus.url(), "vector(0)", &[]),
    )
    .await?;

    // A listener that never answers, with a request asking for a minute: the cap applies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = format!("http://{}", silent.local_addr()?);
    let mut slow = evaluate(&address, "vector(0)", &[]);
    if let Some(query) = slow.metric.as_mut().and_then(|m| m.prometheus.as_mut()) {
        query.timeout = Some(prost_types::Duration {
            seconds: 60,
            nanos: 0,
        });
    }
    let started = Instant::now();
    let deadline = call(&mut client, None, slow).await.unwrap_err();
    let took = started.elapsed();
    println!("slow query cut after {took:?}: {deadline:?}");
    assert_eq!(deadline.code(), Code::DeadlineExceeded);
    assert!(took < Duration::from_secs(3), "{took:?}");
    Ok(())
}

#[tokio::test]
async fn a_p_value_that_was_not_computed_is_absent() -> anyhow::Result<()> {
    let analysis = AnalysisServer::start_with(binary(), Callers::Anyone, &[])?;
    let mut client = client(&analysis).await;
    let compare = |canary: Vec<f64>, baseline: Vec<f64>| CompareRequest {
        comparison: Some(Comparison {
            metric: "latency".into(),
            ..Comparison::default()
        }),
        canary,
        baseline,
        ..CompareRequest::default()
    };
    let empty = client.compare(compare(vec![], vec![])).await?.into_inner();
    println!("no samples: {empty:?}");
    assert_eq!(empty.p_value, None, "{empty:?}");
    let samples: Vec<f64> = (0..20).map(f64::from).collect();
    let computed = client
        .compare(compare(samples.clone(), samples))
        .await?
        .into_inner();
    assert!(computed.p_value.is_some(), "{computed:?}");
    Ok(())
}
