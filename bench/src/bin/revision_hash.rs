//! Revision-hash throughput: how many pod templates per second one core canonicalises and
//! hashes. The controller hashes every Rollout's template on every reconcile, so this bounds
//! the cost of that step at fleet scale.
//!
//! Usage: `cargo run --release -p rollgate-bench --bin revision_hash [-- <iterations>]`.

use std::hint::black_box;
use std::time::Instant;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use rollgate_crds::revision::revision_hash;
use serde_json::json;

fn template(index: usize) -> serde_json::Result<PodTemplateSpec> {
    serde_json::from_value(json!({
        "metadata": {"labels": {"app": format!("app-{index}"), "tier": "backend"},
                     "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {
            "serviceAccountName": "app",
            "containers": [{
                "name": "app",
                "image": format!("registry.example/app-{index}@sha256:{:064x}", index),
                "args": ["--port=8080", "--log-format=json"],
                "env": [{"name": "MODE", "value": "production"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}
            }]
        }
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(50_000);
    let templates: Vec<PodTemplateSpec> = (0..64).map(template).collect::<Result<_, _>>()?;
    // Warm up caches and the allocator.
    for template in &templates {
        black_box(revision_hash(template)?);
    }
    let started = Instant::now();
    for index in 0..iterations {
        black_box(revision_hash(&templates[index % templates.len()])?);
    }
    let elapsed = started.elapsed();
    println!(
        "revision_hash: {iterations} templates in {:.3} s = {:.0} hashes/s, {:.2} µs/hash (one core)",
        elapsed.as_secs_f64(),
        iterations as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / iterations as f64
    );
    Ok(())
}
