//! Audit log figures: the latency and throughput of appending a record with its leaf signature,
//! a signed checkpoint over the whole tree and its publication to a real OCI registry (the
//! Debian `docker-registry` fixture on loopback, plain HTTP), and the time `audit verify`
//! takes for a Rollout with 10,000 records (authenticating the published hashes, matching every
//! record by content, an inclusion proof per record, a consistency proof from a kept
//! checkpoint). The AuditRecord create on the API server is not included here: it is the same
//! single POST as before the Merkle log (see the fleet benchmark for API requests).
//!
//! Usage: `cargo run --release -p rollgate-bench --bin audit_log [-- <appends> <records>]`.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use rollgate_crds::audit::checkpoint::{LogSigner, LogVerifier, generate_key, origin};
use rollgate_crds::audit::log_check::verify_log;
use rollgate_crds::audit::merkle::{Hash, record_leaf_hash};
use rollgate_crds::audit::store::{CheckpointStore, RegistryAuth, StoreLocation};
use rollgate_crds::audit::{AuditEvent, AuditEventKind, next_record};
use rollgate_crds::{AuditRecord, AuditRecordSpec};
use rollgate_testsupport::registry::Registry;

const UID: &str = "0b6c7f3e-1111-2222-3333-444455556666";

fn event(index: usize) -> AuditEvent {
    AuditEvent {
        kind: AuditEventKind::StepCompleted,
        actor: "rollgate-controller".to_owned(),
        revision: Some("5d8f9c7b6a".to_owned()),
        reason: Some("StepCompleted".to_owned()),
        message: Some(format!("step {index} (setWeight) completed")),
        details: [("canaryWeight".to_owned(), "20".to_owned())]
            .into_iter()
            .collect(),
    }
}

fn next(
    signer: &LogSigner,
    tree: &str,
    previous: Option<&AuditRecordSpec>,
    index: usize,
) -> anyhow::Result<(AuditRecordSpec, Hash)> {
    let mut spec = next_record(previous, "bench", UID, event(index), Timestamp::now())?;
    let leaf = signer.sign_record(tree, &mut spec)?;
    Ok((spec, leaf))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let appends = args.first().copied().unwrap_or(300);
    let size = args.get(1).copied().unwrap_or(10_000);
    let (skey, vkey) = generate_key("rollgate-audit-bench");
    let signer = LogSigner::new(&skey)?;
    let verifier = LogVerifier::new(&vkey)?;
    let tree = origin("bench", "bench", UID);

    let registry = Registry::start()?;
    let store = CheckpointStore::new(
        StoreLocation::parse(&format!("{}/audit", registry.host()), true)?,
        RegistryAuth::Anonymous,
    );
    let mut leaves: Vec<Hash> = Vec::new();
    let mut previous: Option<AuditRecordSpec> = None;
    let mut latencies = Vec::with_capacity(appends);
    let started = Instant::now();
    for index in 0..appends {
        let begin = Instant::now();
        let (spec, leaf) = next(&signer, &tree, previous.as_ref(), index)?;
        leaves.push(leaf);
        let publication = signer.publication(&tree, &leaves)?;
        store
            .publish(("bench", "bench", UID), leaves.len() as u64, &publication)
            .await?;
        latencies.push(begin.elapsed());
        previous = Some(spec);
    }
    let total = started.elapsed();
    latencies.sort();
    println!(
        "audit append (sign leaf + sign checkpoint + publish to OCI registry), {appends} appends: p50 {:.2} ms, p99 {:.2} ms, {:.0} appends/s",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        appends as f64 / total.as_secs_f64()
    );

    let mut specs: Vec<AuditRecordSpec> = Vec::with_capacity(size);
    let mut leaves: Vec<Hash> = Vec::with_capacity(size);
    for index in 0..size {
        let (spec, leaf) = next(&signer, &tree, specs.last(), index)?;
        specs.push(spec);
        leaves.push(leaf);
    }
    let kept = signer.publication(&tree, &leaves[..size / 2])?.checkpoint;
    let published = signer.publication(&tree, &leaves)?;
    let records: Vec<AuditRecord> = specs
        .into_iter()
        .map(|s| AuditRecord::for_spec("bench", s))
        .collect();
    let begin = Instant::now();
    let report = verify_log(&verifier, &tree, &published, &records, &[kept]);
    let elapsed = begin.elapsed();
    anyhow::ensure!(
        report.intact() && report.verified == size as u64,
        "{report:?}"
    );
    println!(
        "audit verify of {size} records (published hashes, content match, {size} inclusion proofs, 1 consistency proof): {:.0} ms",
        elapsed.as_secs_f64() * 1e3
    );
    let leaf_check = Instant::now();
    for record in &records {
        std::hint::black_box(record_leaf_hash(&record.spec)?);
    }
    println!(
        "  of which leaf hashing alone: {:.0} ms",
        leaf_check.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
