//! The Prometheus and registry fixtures start real servers that answer, and stop them when
//! dropped.

use std::time::{Duration, Instant};

use rollgate_testsupport::process::http_agent;
use rollgate_testsupport::{Prometheus, Registry};

fn status(url: &str) -> Option<u16> {
    http_agent()
        .get(url)
        .call()
        .ok()
        .map(|response| response.status().as_u16())
}

/// Waits until nothing answers at `url`.
fn assert_stops_answering(url: &str) {
    let started = Instant::now();
    while status(url).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{url} still answers after stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn prometheus_starts_answers_and_stops() -> anyhow::Result<()> {
    let prometheus = Prometheus::start()?;
    let ready = format!("{}/-/ready", prometheus.url());
    assert_eq!(status(&ready), Some(200));
    // It evaluates PromQL: `vector(1)` needs no scraped data.
    let body: serde_json::Value = http_agent()
        .get(&format!(
            "{}/api/v1/query?query=vector(42)",
            prometheus.url()
        ))
        .call()?
        .body_mut()
        .read_json()?;
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["result"][0]["value"][1], "42");
    drop(prometheus);
    assert_stops_answering(&ready);
    Ok(())
}

#[test]
fn prometheus_scrapes_the_targets_it_is_given() -> anyhow::Result<()> {
    use rollgate_testsupport::prometheus::ScrapeTarget;
    let prometheus = Prometheus::start()?;
    // Prometheus scrapes itself through the discovery file: `up` appears with our label.
    prometheus.set_targets(&[ScrapeTarget {
        address: format!("127.0.0.1:{}", prometheus.port()),
        labels: vec![("revision".into(), "abc123".into())],
    }])?;
    let query = format!(
        "{}/api/v1/query?query=up%7Brevision%3D%22abc123%22%7D",
        prometheus.url()
    );
    let started = Instant::now();
    loop {
        let body: serde_json::Value = http_agent().get(&query).call()?.body_mut().read_json()?;
        if body["data"]["result"][0]["value"][1] == "1" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "target never scraped: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

#[test]
fn the_registry_starts_answers_and_stops() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let v2 = format!("{}/v2/", registry.url());
    assert_eq!(status(&v2), Some(200));
    // A real distribution registry: the catalog of an empty registry is empty.
    let catalog: serde_json::Value = http_agent()
        .get(&format!("{}/v2/_catalog", registry.url()))
        .call()?
        .body_mut()
        .read_json()?;
    assert_eq!(catalog["repositories"], serde_json::json!([]));
    drop(registry);
    assert_stops_answering(&v2);
    Ok(())
}
