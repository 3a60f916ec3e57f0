//! The audit log from an auditor's and an attacker's side. The controller runs with its signing
//! key in a file only its process reads (not in the cluster) and publishes checkpoints to the
//! OCI registry fixture over plain HTTP on loopback. A cluster administrator (the cluster's
//! admin kubeconfig) then rewrites, deletes, inserts, reorders and truncates records, also the
//! way the hash chain could not see (hashes recomputed, `status.auditHead` patched), and
//! `kubectl rollgate audit verify --public-key --store` names the first bad record each time;
//! the old chain check is shown passing the recomputed rewrite, so the test can fail.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rollgate_crds::audit::checkpoint::generate_key;
use rollgate_crds::audit::record_hash;
use rollgate_crds::rollout::RolloutPhase;
use rollgate_crds::{AuditRecord, AuditRecordSpec, Rollout};
use rollgate_testsupport::demo_app::workspace_binary;
use rollgate_testsupport::registry::Registry;
use rollgate_testsupport::{
    Cluster, ControllerOptions, ControllerProcess, TestNamespace, manifests,
};
use serde_json::json;

use crate::rollouts::{DIGEST_V1, DIGEST_V2, at, healthy, promote, set_digest, wait_for};

/// A cluster of its own with a controller that signs and publishes its audit log.
pub struct SignedLog {
    pub cluster: Cluster,
    pub client: kube::Client,
    pub namespace: TestNamespace,
    pub registry: Registry,
    pub keys: tempfile::TempDir,
    pub controller: ControllerProcess,
}

impl SignedLog {
    pub async fn start(prefix: &str, extra_args: &[&str]) -> anyhow::Result<SignedLog> {
        let (cluster, client) = Cluster::start_with_crds().await?;
        let namespace = TestNamespace::create(&cluster, &client, prefix).await?;
        let registry = Registry::start()?;
        let keys = tempfile::tempdir()?;
        let (signer, verifier) = generate_key("rollgate-audit-e2e");
        std::fs::write(keys.path().join("signer.key"), signer)?;
        std::fs::write(keys.path().join("verifier.pub"), verifier)?;
        let controller = ControllerProcess::start(
            &cluster,
            &controller_options("audited", &keys, &registry, extra_args),
        )?;
        let log = SignedLog {
            controller,
            cluster,
            client,
            namespace,
            registry,
            keys,
        };
        Ok(log)
    }

    pub fn start_controller(
        &self,
        name: &str,
        extra: &[&str],
    ) -> anyhow::Result<ControllerProcess> {
        let options = controller_options(name, &self.keys, &self.registry, extra);
        ControllerProcess::start(&self.cluster, &options)
    }

    pub fn ns(&self) -> &str {
        self.namespace.name()
    }

    pub fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    pub fn records_api(&self) -> Api<AuditRecord> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    /// Runs the plugin with `args` then `-n <namespace>`.
    pub fn plugin(&self, args: &[&str]) -> anyhow::Result<Output> {
        let binary = workspace_binary("kubectl-rollgate", "kubectl-rollgate", "ROLLGATE_CLI_BIN")?;
        Ok(std::process::Command::new(binary)
            .args(args)
            .args(["-n", self.ns()])
            .env("KUBECONFIG", self.cluster.kubeconfig())
            .output()?)
    }

    /// `audit verify` against the published checkpoints, with kept checkpoint files.
    pub fn verify(&self, name: &str, kept: &[PathBuf]) -> anyhow::Result<(bool, String)> {
        let key = self.keys.path().join("verifier.pub").display().to_string();
        let store = format!("{}/audit", self.registry.host());
        let mut args = vec![
            "audit",
            "verify",
            name,
            "--public-key",
            &key,
            "--store",
            &store,
            "--store-insecure",
        ];
        let kept: Vec<String> = kept.iter().map(|p| p.display().to_string()).collect();
        for file in &kept {
            args.extend(["--checkpoint", file]);
        }
        let output = self.plugin(&args)?;
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        Ok((output.status.success(), text))
    }

    /// The records of `name`, by sequence.
    pub async fn records(&self, name: &str) -> anyhow::Result<Vec<AuditRecord>> {
        let mut records: Vec<AuditRecord> = self
            .records_api()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|r| r.spec.rollout == name)
            .collect();
        records.sort_by_key(|r| r.spec.sequence);
        Ok(records)
    }

    /// Waits until every record of `name` is written and published (`status.auditHead`).
    pub async fn settled(&self, name: &str) -> anyhow::Result<Vec<AuditRecord>> {
        let started = Instant::now();
        loop {
            let records = self.records(name).await?;
            let head = self
                .rollouts()
                .get(name)
                .await?
                .status
                .and_then(|s| s.audit_head);
            if let Some(head) = &head
                && head.behind == Some(0)
                && head.published_size == Some(records.len() as u64)
                && Some(head.sequence) == records.last().map(|r| r.spec.sequence)
            {
                return Ok(records);
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the audit trail never settled: {head:?}, {} records\n{}",
                records.len(),
                self.controller.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Deletes the records and creates `specs` in their place (as an administrator would).
    pub async fn replace(
        &self,
        old: &[AuditRecord],
        specs: &[AuditRecordSpec],
    ) -> anyhow::Result<()> {
        let api = self.records_api();
        for record in old {
            api.delete(&record.name_any(), &DeleteParams::default())
                .await?;
        }
        for spec in specs {
            api.create(
                &PostParams::default(),
                &AuditRecord::for_spec(self.ns(), spec.clone()),
            )
            .await?;
        }
        Ok(())
    }
}

/// A controller that reads its signing key from a file in `keys` (outside the cluster) and
/// publishes to `registry`.
fn controller_options(
    name: &str,
    keys: &tempfile::TempDir,
    registry: &Registry,
    extra: &[&str],
) -> ControllerOptions {
    let mut options = ControllerOptions::named(name);
    options.args = vec![
        format!(
            "--audit-signing-key-file={}",
            keys.path().join("signer.key").display()
        ),
        format!("--audit-store={}/audit", registry.host()),
        "--audit-store-insecure=true".to_owned(),
    ];
    options.args.extend(extra.iter().map(|a| (*a).to_owned()));
    options
}

/// Specs from `from` on with the hash chain recomputed, as an administrator who knows the
/// (public) hash function would.
fn rechain(specs: &mut [AuditRecordSpec], from: usize) {
    for i in from..specs.len() {
        specs[i].previous_hash = (i > 0).then(|| specs[i - 1].hash.clone());
        specs[i].hash = record_hash(&specs[i]).expect("hashable");
    }
}

fn strategy() -> serde_json::Value {
    json!({"canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}]}})
}

#[tokio::test]
async fn every_tampering_by_a_cluster_admin_is_named_against_the_published_checkpoint()
-> anyhow::Result<()> {
    let log = SignedLog::start("audit-log", &[]).await?;
    let rollouts = log.rollouts();
    rollouts
        .create(
            &PostParams::default(),
            &manifests::rollout("ledger", 2, DIGEST_V1, strategy())?,
        )
        .await?;
    wait_for(&rollouts, "ledger", "v1 Healthy", healthy(None)).await?;
    set_digest(&rollouts, "ledger", DIGEST_V2).await?;
    wait_for(
        &rollouts,
        "ledger",
        "the pause",
        at(1, RolloutPhase::Paused),
    )
    .await?;
    let kept_early = log.keys.path().join("early.checkpoint");
    log.settled("ledger").await?;
    let early = log.plugin(&[
        "audit",
        "checkpoint",
        "ledger",
        "--store",
        &format!("{}/audit", log.registry.host()),
        "--store-insecure",
    ])?;
    anyhow::ensure!(
        early.status.success(),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    std::fs::write(&kept_early, &early.stdout)?;
    promote(&rollouts, "ledger", "go").await?;
    let done = wait_for(&rollouts, "ledger", "v2 Healthy", healthy(None)).await?;
    assert_eq!(
        done.status.and_then(|s| s.phase),
        Some(RolloutPhase::Healthy)
    );
    let records = log.settled("ledger").await?;
    let n = records.len();
    assert!(n >= 4, "records of both revisions: {n}");
    assert!(
        records.iter().all(|r| r.spec.signature.is_some()),
        "every record is signed"
    );

    let (ok, text) = log.verify("ledger", std::slice::from_ref(&kept_early))?;
    assert!(ok, "an intact log verifies: {text}");
    assert!(
        text.contains(&format!(
            "{n} records included in the signed checkpoint of size {n}"
        )),
        "{text}"
    );
    assert!(text.contains("consistent with 1 kept checkpoint"), "{text}");

    let specs: Vec<AuditRecordSpec> = records.iter().map(|r| r.spec.clone()).collect();

    // 1. Rewrite record 2, recompute the chain after it and patch the Rollout's head: the
    //    hash chain says intact, the signed log names record 2.
    let mut rewritten = specs.clone();
    rewritten[2].actor = "someone-else".to_owned();
    rechain(&mut rewritten, 2);
    log.replace(&records[2..], &rewritten[2..]).await?;
    let head_hash = rewritten[n - 1].hash.clone();
    rollouts
        .patch_status(
            "ledger",
            &PatchParams::apply("rollgate-audit").force(),
            &Patch::Apply(json!({
                "apiVersion": "rollgate.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "ledger"},
                "status": {"auditHead": {"sequence": n - 1, "hash": head_hash}},
            })),
        )
        .await?;
    let chain_only = log.plugin(&["audit", "verify", "ledger"])?;
    assert!(
        chain_only.status.success(),
        "the chain alone misses a recomputed rewrite: {}",
        String::from_utf8_lossy(&chain_only.stdout)
    );
    let (ok, text) = log.verify("ledger", &[])?;
    assert!(
        !ok && text.contains("record 2 is not in the signed log"),
        "rewrite: {text}"
    );
    log.replace(&log.records("ledger").await?, &specs).await?;
    let (ok, text) = log.verify("ledger", &[])?;
    assert!(ok, "restored: {text}");

    // 2. Delete a record in the middle.
    log.replace(&records[1..2], &[]).await?;
    let (ok, text) = log.verify("ledger", &[])?;
    assert!(
        !ok && text.contains("record 1 is missing"),
        "deletion: {text}"
    );
    log.replace(&log.records("ledger").await?, &specs).await?;

    // 3. Insert a record beyond the head, chained correctly.
    let mut inserted = specs[n - 1].clone();
    inserted.sequence = n as u64;
    inserted.message = Some("forged".to_owned());
    inserted.previous_hash = Some(specs[n - 1].hash.clone());
    inserted.hash = record_hash(&inserted)?;
    log.replace(&[], &[inserted]).await?;
    let (ok, text) = log.verify("ledger", &[])?;
    assert!(
        !ok && text.contains(&format!("(sequence {n}) was not written by the controller")),
        "insertion: {text}"
    );
    log.replace(&log.records("ledger").await?, &specs).await?;

    // 4. Reorder records 1 and 3 (sequences swapped, chain recomputed).
    let mut reordered = specs.clone();
    reordered.swap(1, 3);
    for (i, spec) in reordered.iter_mut().enumerate() {
        spec.sequence = i as u64;
    }
    rechain(&mut reordered, 1);
    log.replace(&records[1..], &reordered[1..]).await?;
    let (ok, text) = log.verify("ledger", &[])?;
    assert!(
        !ok && text.contains("record 1 is not in the signed log"),
        "reordering: {text}"
    );
    log.replace(&log.records("ledger").await?, &specs).await?;

    // 5. Truncate the newest two records.
    log.replace(&records[n - 2..], &[]).await?;
    let (ok, text) = log.verify("ledger", &[])?;
    assert!(
        !ok && text.contains(&format!("record {} is missing", n - 2)),
        "truncation: {text}"
    );
    log.replace(&log.records("ledger").await?, &specs).await?;
    let (ok, text) = log.verify("ledger", std::slice::from_ref(&kept_early))?;
    assert!(ok, "restored at the end: {text}");
    Ok(())
}

#[tokio::test]
async fn records_an_admin_plants_are_refused_and_the_log_goes_on_around_them() -> anyhow::Result<()>
{
    let mut log = SignedLog::start("audit-planted", &[]).await?;
    let rollouts = log.rollouts();
    rollouts
        .create(
            &PostParams::default(),
            &manifests::rollout("vault", 2, DIGEST_V1, strategy())?,
        )
        .await?;
    wait_for(&rollouts, "vault", "v1 Healthy", healthy(None)).await?;
    let records = log.settled("vault").await?;
    let n = records.len();
    let last = records[n - 1].spec.clone();
    // Plant the next two records, chained, at the names the controller would use, and let
    // the controller start again (it reloads its log from the cluster and the store).
    let mut planted = Vec::new();
    let mut previous = last.clone();
    for offset in 0..2u64 {
        let mut spec = last.clone();
        spec.sequence = n as u64 + offset;
        spec.message = Some("planted".to_owned());
        spec.signature = None;
        spec.previous_hash = Some(previous.hash.clone());
        spec.hash = record_hash(&spec)?;
        previous = spec.clone();
        planted.push(spec);
    }
    log.replace(&[], &planted).await?;
    log.controller.kill();
    log.controller = log.start_controller("audited-again", &[])?;

    set_digest(&rollouts, "vault", DIGEST_V2).await?;
    wait_for(&rollouts, "vault", "the pause", at(1, RolloutPhase::Paused)).await?;
    promote(&rollouts, "vault", "go").await?;
    wait_for(&rollouts, "vault", "v2 Healthy", healthy(None)).await?;
    let started = Instant::now();
    let (all, head) = loop {
        let all = log.records("vault").await?;
        let head = rollouts
            .get("vault")
            .await?
            .status
            .and_then(|s| s.audit_head)
            .unwrap_or_default();
        let signed = all.iter().filter(|r| r.spec.signature.is_some()).count() as u64;
        if head.behind == Some(0) && head.published_size == Some(signed) && signed > n as u64 {
            break (all, head);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "never settled: {head:?}\n{}",
            log.controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The controller wrote its own records at those sequences, under other names.
    let own_at_n: Vec<&AuditRecord> = all
        .iter()
        .filter(|r| r.spec.sequence == n as u64 && r.spec.signature.is_some())
        .collect();
    assert_eq!(own_at_n.len(), 1, "the controller's record {n}: {all:#?}");
    assert_ne!(
        own_at_n[0].name_any(),
        AuditRecord::for_spec(log.ns(), planted[0].clone()).name_any()
    );
    assert!(head.published_size.unwrap_or(0) > n as u64);
    assert!(
        log.controller
            .metric("rollgate_audit_foreign_records_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(log.client.clone(), log.ns())
        .list(&ListParams::default())
        .await?;
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("ForeignAuditRecord")),
        "a ForeignAuditRecord Event"
    );
    let (ok, text) = log.verify("vault", &[])?;
    let planted_name = AuditRecord::for_spec(log.ns(), planted[0].clone()).name_any();
    assert!(
        !ok && text.contains(&planted_name) && text.contains("was not written by the controller"),
        "{text}"
    );
    assert!(
        !text.contains("is missing") && !text.contains("is not in the signed log"),
        "the controller's own log is whole: {text}"
    );
    Ok(())
}
