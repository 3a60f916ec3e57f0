//! Image verification latency against the real registry fixture (Debian's docker-registry on
//! loopback): cold verification (every registry read: signature manifest, payload blob,
//! attestation manifest and envelope, plus ECDSA and CEL), cached verification, and verdicts
//! per second with the cache, one at a time and 64 at a time.
//!
//! Usage: `cargo run --release -p rollgate-bench --bin verify_latency [-- <images>]`
//! (default 200 images, each signed and attested with a fresh P-256 key pair).

use std::time::{Duration, Instant};

use rollgate_crds::ImagePolicy;
use rollgate_testsupport::Registry;
use rollgate_testsupport::oci_push::TestImage;
use rollgate_testsupport::signing::{TestKey, attest, sign};
use rollgate_verify::{
    RegistryConnection, RegistryLimits, SecretKeys, VerificationRequest, Verifier, VerifierConfig,
};
use serde_json::json;

const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    println!(
        "{label}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms mean={:.3} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3 / samples.len() as f64,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let registry = Registry::start()?;
    let host = registry.host();
    let key = TestKey::generate();
    let push_started = Instant::now();
    let mut references = Vec::with_capacity(count);
    for index in 0..count {
        let image = TestImage::push(
            &host,
            &format!("bench/app{index}"),
            &format!("layer {index}"),
        )?;
        sign(&image, &[&key])?;
        attest(
            &image,
            &key,
            PREDICATE_TYPE,
            &json!({"builder": {"id": "ci"}, "level": 3}),
        )?;
        references.push(image.reference());
    }
    println!(
        "setup: pushed, signed and attested {count} images in {:.1} s",
        push_started.elapsed().as_secs_f64()
    );
    let spec = json!({
        "images": ["127.0.0.1:*/bench/**"],
        "authorities": [{"name": "ci", "keys": [{"pem": key.public_pem()}]}],
        "attestations": [{"predicateType": PREDICATE_TYPE, "condition": "predicate.level >= 3"}],
    });
    let mut policy = ImagePolicy::new("bench", serde_json::from_value(spec)?);
    policy.metadata.generation = Some(1);
    policy.metadata.annotations = Some(
        [(
            rollgate_crds::names::DEFAULT_POLICY_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    let policies = [policy];
    let secrets = SecretKeys::new();
    let verifier = Verifier::new(VerifierConfig {
        connection: RegistryConnection {
            insecure_registries: vec![host.clone()],
            ..VerifierConfig::default().connection
        },
        limits: RegistryLimits::default(),
        cache_capacity: 100_000,
        ..VerifierConfig::default()
    });

    let mut cold = Vec::with_capacity(count);
    for reference in &references {
        let images = [reference.clone()];
        let request = request(&images, &policies, &secrets);
        let started = Instant::now();
        let verdict = verifier.verify(&request).await;
        cold.push(started.elapsed());
        anyhow::ensure!(
            verdict.admitted() && !verdict.images[0].cached,
            "{verdict:?}"
        );
    }
    report(
        "cold verification (signature + attestation, 4 registry reads)",
        cold,
    );

    let mut cached = Vec::with_capacity(count);
    for reference in &references {
        let images = [reference.clone()];
        let request = request(&images, &policies, &secrets);
        let started = Instant::now();
        let verdict = verifier.verify(&request).await;
        cached.push(started.elapsed());
        anyhow::ensure!(verdict.images[0].cached, "{verdict:?}");
    }
    report("cached verification", cached);

    let rounds = 20_000usize;
    let started = Instant::now();
    for index in 0..rounds {
        let images = [references[index % count].clone()];
        std::hint::black_box(
            verifier
                .verify(&request(&images, &policies, &secrets))
                .await,
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "cached verdicts, one at a time: {:.0} verdicts/s",
        rounds as f64 / elapsed
    );

    let batch: Vec<String> = references.iter().cycle().take(64).cloned().collect();
    let batches = 500usize;
    let started = Instant::now();
    for _ in 0..batches {
        let verdict = verifier.verify(&request(&batch, &policies, &secrets)).await;
        std::hint::black_box(verdict);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "cached verdicts, 64 images per revision: {:.0} verdicts/s",
        (batches * batch.len()) as f64 / elapsed
    );

    verifier.cache().clear();
    let started = Instant::now();
    let verdict = verifier
        .verify(&request(&references, &policies, &secrets))
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(verdict.admitted(), "{:?}", verdict.message());
    println!(
        "cold verdicts, all {count} images concurrently: {elapsed:.3} s = {:.0} verdicts/s",
        count as f64 / elapsed
    );
    Ok(())
}

/// The bench Rollouts' namespace has no labels (the bench policy is the cluster default).
static NO_LABELS: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

fn request<'a>(
    images: &'a [String],
    policies: &'a [ImagePolicy],
    secrets: &'a SecretKeys,
) -> VerificationRequest<'a> {
    VerificationRequest {
        images,
        policy_name: None,
        policies,
        namespace: rollgate_verify::NamespaceScope {
            name: "bench",
            labels: &NO_LABELS,
        },
        secret_keys: secrets,
        break_glass_justification: None,
    }
}
