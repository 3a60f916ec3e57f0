//! `audit verify --public-key --store`, `audit checkpoint` and `audit keygen`: the audit log
//! checked against the signed checkpoints published outside the cluster.
//!
//! Records are found by content (`spec.rollout`), never by label or name, and grouped per
//! Rollout uid; each uid's newest publication is fetched from the store and every record is
//! checked against it (`rollgate_crds::audit::log_check`). The live Rollout's uid is checked
//! even when none of its records is left, so deleting them all is caught too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use kube::Api;
use rollgate_crds::audit::checkpoint::{LogVerifier, generate_key, origin};
use rollgate_crds::audit::log_check::verify_log;
use rollgate_crds::audit::store::{CheckpointStore, RegistryAuth, StoreLocation};
use rollgate_crds::{AuditRecord, Rollout};

use super::audit::records_of;
use crate::connect::Connection;

/// What `audit verify` checks against.
pub struct LogArgs<'a> {
    /// The trusted verifier key file.
    pub public_key: &'a Path,
    /// The store and whether it is plain HTTP.
    pub store: (&'a str, bool),
    /// Older checkpoints kept by the auditor.
    pub checkpoints: &'a [PathBuf],
    /// Extra uids to check.
    pub uids: &'a [String],
}

fn store(location: (&str, bool)) -> Result<CheckpointStore> {
    let location = StoreLocation::parse(location.0, location.1)?;
    Ok(CheckpointStore::new(location, RegistryAuth::Anonymous))
}

/// The uids to check: the live Rollout's, those of the records, and the extra ones.
fn uids(rollout: Option<&Rollout>, records: &[AuditRecord], extra: &[String]) -> Vec<String> {
    let mut uids: Vec<String> = rollout
        .and_then(|r| r.metadata.uid.clone())
        .into_iter()
        .collect();
    uids.extend(records.iter().map(|r| r.spec.rollout_uid.clone()));
    uids.extend(extra.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    uids.retain(|uid| seen.insert(uid.clone()));
    uids
}

/// Verifies every log of the Rollout `name`; prints one block per uid; fails when any is not
/// intact.
pub async fn verify(connection: &Connection, name: &str, args: LogArgs<'_>) -> Result<ExitCode> {
    let key = std::fs::read_to_string(args.public_key)
        .with_context(|| format!("read {}", args.public_key.display()))?;
    let verifier = LogVerifier::new(&key).context("the public key")?;
    let kept: Vec<String> = args
        .checkpoints
        .iter()
        .map(|path| {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
        })
        .collect::<Result<_>>()?;
    let store = store(args.store)?;
    let records = records_of(connection, name).await?;
    let rollout = Api::<Rollout>::namespaced(connection.client.clone(), &connection.namespace)
        .get_opt(name)
        .await
        .context("get the rollout")?;
    let namespace = &connection.namespace;
    let mut ok = true;
    for uid in uids(rollout.as_ref(), &records, args.uids) {
        let tree = origin(namespace, name, &uid);
        let mine: Vec<AuditRecord> = records
            .iter()
            .filter(|r| r.spec.rollout_uid == uid)
            .cloned()
            .collect();
        let Some(published) = store
            .fetch((namespace, name, &uid))
            .await
            .context("fetch the published checkpoint")?
        else {
            ok = false;
            println!(
                "BROKEN: audit log of rollout {name} (uid {uid}): no checkpoint published in the store ({} records in the cluster)",
                mine.len()
            );
            continue;
        };
        let kept: Vec<String> = kept
            .iter()
            .filter(|note| note.starts_with(&format!("{tree}\n")))
            .cloned()
            .collect();
        let report = verify_log(&verifier, &tree, &published, &mine, &kept);
        if report.intact() {
            println!(
                "OK: audit log of rollout {name} (uid {uid}): {} records included in the signed checkpoint of size {}{}{}",
                report.verified,
                report.size,
                if kept.is_empty() {
                    String::new()
                } else {
                    format!(", consistent with {} kept checkpoint(s)", kept.len())
                },
                if report.pending.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} written but not yet published: {}",
                        report.pending.len(),
                        report.pending.join(", ")
                    )
                },
            );
        } else {
            ok = false;
            println!(
                "BROKEN: audit log of rollout {name} (uid {uid}): {}",
                report.problems[0]
            );
            for problem in &report.problems[1..] {
                println!("  also: {problem}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the newest signed checkpoint of the Rollout's log (the live Rollout's uid, or `uid`).
pub async fn checkpoint(
    connection: &Connection,
    name: &str,
    location: (&str, bool),
    uid: Option<String>,
) -> Result<ExitCode> {
    let uid = match uid {
        Some(uid) => uid,
        None => Api::<Rollout>::namespaced(connection.client.clone(), &connection.namespace)
            .get(name)
            .await
            .context("get the rollout")?
            .metadata
            .uid
            .context("the rollout has no uid")?,
    };
    let published = store(location)?
        .fetch((&connection.namespace, name, &uid))
        .await?
        .context("no checkpoint published for this rollout")?;
    print!("{}", published.checkpoint);
    Ok(ExitCode::SUCCESS)
}

/// Writes a new key pair.
pub fn keygen(name: &str, private_key: &Path, public_key: &Path) -> Result<ExitCode> {
    let (signer, verifier) = generate_key(name);
    write_private(private_key, &format!("{signer}\n"))?;
    std::fs::write(public_key, format!("{verifier}\n"))
        .with_context(|| format!("write {}", public_key.display()))?;
    println!("{verifier}");
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(content.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}
