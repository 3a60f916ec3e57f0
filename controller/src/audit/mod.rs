//! The audit trail the controller writes: one AuditRecord per event of a Rollout, as a leaf of
//! the Rollout's Merkle log, with a Kubernetes Event beside each, and signed checkpoints of the
//! log published outside the cluster.
//!
//! # What is recorded
//!
//! [`events::audit_events`] turns a reconcile's plan into events (transitions, approvals,
//! rejections, the gate opening, analysis verdicts, verification), each with its actor and
//! reason.
//!
//! # The log
//!
//! One RFC 6962 Merkle tree per Rollout uid (see `rollgate_crds::audit::merkle`): a Rollout's
//! log stays small, is verified on its own, and a new Rollout of the same name starts anew.
//! With a signing key ([`settings::AuditSettings`]), every record carries the controller's
//! signature for its index, and after each batch of records the controller signs a checkpoint
//! (C2SP tlog-checkpoint) and publishes it with the leaf hashes to the external store
//! (`rollgate_crds::audit::store`, an OCI registry).
//!
//! # Durability
//!
//! [`AuditLog::prepare`] builds the records of a plan before its status write, which commits
//! them in `status.auditOutbox` (see [`outbox`] for the exactly-once argument);
//! [`AuditLog::flush`] writes them after it, and again at the start of every reconcile, until
//! they are written and published. A write or publication that fails is retried with an
//! exponential backoff (the reconcile is requeued) and the Rollout's `status.auditHead` says
//! how far behind the trail is, with why.
//!
//! # Foreign records
//!
//! A record the controller did not write, whatever its name or labels, is never taken into the
//! log ([`state`], [`writer`]): it is counted in `rollgate_audit_foreign_records_total`,
//! reported with a Warning Event `ForeignAuditRecord` on the Rollout, and `audit verify` names
//! it.

pub mod events;
pub mod outbox;
mod published;
pub mod settings;
pub mod state;
pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::events::Recorder;
use rollgate_crds::audit::checkpoint::{LogSigner, origin};
use rollgate_crds::audit::merkle::record_leaf_hash;
use rollgate_crds::audit::store::CheckpointStore;
use rollgate_crds::audit::{AuditEvent, ChainHead, next_record, record_hash};
use rollgate_crds::names::ROLLOUT_UID_LABEL;
use rollgate_crds::{AuditRecord, AuditRecordSpec, Rollout};

use crate::metrics::Metrics;
use outbox::EntryState;
use state::TreeState;

/// Why the log cannot take a record now.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The Rollout has no namespace or uid.
    #[error("the Rollout has no namespace or uid")]
    Unidentified,
    /// The log could not be loaded (API server or external store).
    #[error("the audit log cannot be loaded: {0}")]
    Load(String),
    /// A record could not be built.
    #[error("an audit record cannot be built: {0}")]
    Build(String),
}

/// What a flush left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flushed {
    /// Records committed but not yet written or published.
    pub behind: u64,
    /// When to try again, if behind.
    pub retry_after: Option<Duration>,
}

/// Appends AuditRecords to Rollouts' logs.
pub struct AuditLog {
    client: kube::Client,
    metrics: Arc<Metrics>,
    recorder: Option<Recorder>,
    signer: Option<LogSigner>,
    store: Option<CheckpointStore>,
    trees: Mutex<HashMap<String, TreeState>>,
}

struct Target {
    namespace: String,
    name: String,
    uid: String,
    origin: String,
}

fn target(rollout: &Rollout) -> Result<Target, AuditError> {
    let (Some(namespace), Some(uid)) = (rollout.namespace(), rollout.uid()) else {
        return Err(AuditError::Unidentified);
    };
    let name = rollout.name_any();
    Ok(Target {
        origin: origin(&namespace, &name, &uid),
        namespace,
        name,
        uid,
    })
}

impl AuditLog {
    /// An audit log writing through `client`, without a key (records only, no checkpoints)
    /// until [`AuditLog::configure`].
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Self {
        AuditLog {
            client,
            metrics,
            recorder: None,
            signer: None,
            store: None,
            trees: Mutex::default(),
        }
    }

    /// Uses `signer` and `store` from now on, and `recorder` for Events about foreign records.
    pub fn configure(
        &mut self,
        signer: Option<LogSigner>,
        store: Option<CheckpointStore>,
        recorder: Recorder,
    ) {
        self.signer = signer;
        self.store = store;
        self.recorder = Some(recorder);
    }

    /// The outbox the status write of `events` must commit: the entries not yet written from
    /// the current outbox, then a signed record per event.
    pub async fn prepare(
        &self,
        rollout: &Rollout,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<String>, AuditError> {
        let current = rollout
            .status
            .as_ref()
            .map(|status| status.audit_outbox.clone())
            .unwrap_or_default();
        if events.is_empty() {
            return Ok(current);
        }
        let target = target(rollout)?;
        let tree = self.tree(rollout, &target).await?;
        let (entries, _) = outbox::decode(&current);
        let unwritten: Vec<AuditRecordSpec> = outbox::unwritten(&tree.leaves, &entries)
            .into_iter()
            .filter(|spec| self.own(&target.origin, spec))
            .collect();
        let mut previous = unwritten.last().cloned().or(tree.last.clone());
        let first = tree.leaves.len() as u64 + unwritten.len() as u64;
        let mut new = Vec::new();
        for (sequence, event) in (first..).zip(events) {
            let mut spec = next_record(
                previous.as_ref(),
                &target.name,
                &target.uid,
                event,
                Timestamp::now(),
            )
            .map_err(|error| AuditError::Build(error.to_string()))?;
            if spec.sequence != sequence {
                // The newest record is missing from the cluster: chain onto its leaf hash.
                spec.sequence = sequence;
                spec.previous_hash = (sequence > 0).then(|| {
                    previous.as_ref().map_or_else(
                        || tree.leaves.last().map(hex::encode).unwrap_or_default(),
                        |p| p.hash.clone(),
                    )
                });
                spec.hash =
                    record_hash(&spec).map_err(|error| AuditError::Build(error.to_string()))?;
            }
            if let Some(signer) = &self.signer {
                signer
                    .sign_record(&target.origin, &mut spec)
                    .map_err(|error| AuditError::Build(error.to_string()))?;
            }
            previous = Some(spec.clone());
            new.push(spec);
        }
        Ok(outbox::next_outbox(&current, &unwritten, &new))
    }

    /// Writes what the Rollout's status committed and is not yet in the log (after a crash).
    pub async fn flush_committed(&self, rollout: &Rollout) -> Flushed {
        let committed = rollout
            .status
            .as_ref()
            .map(|status| status.audit_outbox.clone())
            .unwrap_or_default();
        self.flush(rollout, &committed).await
    }

    /// Writes the entries of `committed` (an outbox a status write committed) not yet in the
    /// log, publishes a checkpoint, and stores the head in the Rollout's status.
    pub async fn flush(&self, rollout: &Rollout, committed: &[String]) -> Flushed {
        let (entries, malformed) = outbox::decode(committed);
        let Ok(target) = target(rollout) else {
            return Flushed::default();
        };
        if entries.is_empty() && malformed == 0 && !self.trees_has(&target.uid) {
            return Flushed::default();
        }
        let mut tree = match self.tree(rollout, &target).await {
            Ok(tree) => tree,
            Err(error) => {
                self.metrics.audit_failures.inc();
                tracing::error!(rollout = %target.name, %error, "audit log unavailable");
                return Flushed {
                    behind: entries.len() as u64,
                    retry_after: Some(backoff(1)),
                };
            }
        };
        if malformed > 0 {
            self.foreign(rollout, "a malformed audit outbox entry")
                .await;
        }
        let api: Api<AuditRecord> = Api::namespaced(self.client.clone(), &target.namespace);
        let mut failure = None;
        for entry in &entries {
            match outbox::entry_state(&tree.leaves, entry) {
                EntryState::Written => continue,
                EntryState::Conflict => {
                    if entry.sequence >= tree.leaves.len() as u64 {
                        // Follows a gap: an earlier entry failed; retried later.
                        break;
                    }
                    continue;
                }
                EntryState::Next => {}
            }
            if !self.own(&target.origin, entry) {
                self.foreign(
                    rollout,
                    "an audit outbox entry not signed by the controller",
                )
                .await;
                break;
            }
            match writer::write(&api, &target.namespace, entry).await {
                Ok(written) => {
                    if let writer::Written::Relocated { squatter } = &written {
                        self.foreign(rollout, &format!("AuditRecord {squatter}"))
                            .await;
                    }
                    if written != writer::Written::Existed {
                        self.metrics.audit_records.inc();
                    }
                    if let Ok(leaf) = record_leaf_hash(entry) {
                        tree.push(leaf, entry.clone());
                    }
                }
                Err(error) => {
                    failure = Some(format!("writing record {}: {error}", entry.sequence));
                    break;
                }
            }
        }
        if failure.is_none() {
            failure = self.publish(&target, &mut tree).await.err();
        }
        let unwritten = outbox::unwritten(&tree.leaves, &entries).len() as u64;
        let unpublished = match self.store {
            Some(_) => tree.leaves.len() as u64 - tree.published,
            None => 0,
        };
        let behind = unwritten + unpublished;
        if let Some(error) = &failure {
            tree.failures += 1;
            self.metrics.audit_failures.inc();
            tracing::warn!(rollout = %target.name, %error, behind, "the audit trail is behind");
        } else {
            tree.failures = 0;
        }
        self.record_head(rollout, &mut tree, behind, failure.as_deref())
            .await;
        let retry_after = (behind > 0).then(|| backoff(tree.failures));
        self.trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target.uid.clone(), tree);
        Flushed {
            behind,
            retry_after,
        }
    }

    fn own(&self, origin: &str, spec: &AuditRecordSpec) -> bool {
        self.signer
            .as_ref()
            .is_none_or(|signer| signer.signed_record(origin, spec))
    }

    /// Forgets the trees of the Rollouts whose uid `forget` picks: another replica may have
    /// appended to them (a shard that moved and came back), so they are loaded again.
    pub fn forget(&self, forget: impl Fn(&str) -> bool) {
        self.trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|uid, _| !forget(uid));
    }

    fn trees_has(&self, uid: &str) -> bool {
        self.trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(uid)
    }

    /// The tree of `target`, from the cache or loaded (see [`state`]).
    async fn tree(&self, rollout: &Rollout, target: &Target) -> Result<TreeState, AuditError> {
        if let Some(tree) = self
            .trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&target.uid)
        {
            return Ok(tree.clone());
        }
        let published = match (&self.signer, &self.store) {
            (Some(signer), Some(store)) => {
                let key = (
                    target.namespace.as_str(),
                    target.name.as_str(),
                    target.uid.as_str(),
                );
                match store.fetch(key).await {
                    Ok(Some(published)) => {
                        state::own_publication(signer, &target.origin, &published).ok_or_else(
                            || AuditError::Load("the published checkpoint is not ours".to_owned()),
                        )?
                    }
                    Ok(None) => Vec::new(),
                    Err(error) => return Err(AuditError::Load(error.to_string())),
                }
            }
            _ => Vec::new(),
        };
        let api: Api<AuditRecord> = Api::namespaced(self.client.clone(), &target.namespace);
        let records: Vec<AuditRecord> = api
            .list(&ListParams::default().labels(&format!("{ROLLOUT_UID_LABEL}={}", target.uid)))
            .await
            .map_err(|error| AuditError::Load(error.to_string()))?
            .items
            .into_iter()
            .filter(|record| record.spec.rollout_uid == target.uid)
            .collect();
        let legacy_head = rollout
            .status
            .as_ref()
            .and_then(|status| status.audit_head.as_ref())
            .map(ChainHead::from);
        let (tree, foreign) = state::rebuild(
            self.signer.as_ref(),
            &target.origin,
            published,
            records,
            legacy_head.as_ref(),
        );
        for name in foreign {
            self.foreign(rollout, &format!("AuditRecord {name}")).await;
        }
        self.trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target.uid.clone(), tree.clone());
        Ok(tree)
    }
}

/// The wait before retry `failures` (1 s, doubling, at most a minute), from backon's
/// exponential schedule.
fn backoff(failures: u32) -> Duration {
    const MAX: Duration = Duration::from_secs(60);
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(MAX)
        .with_factor(2.0)
        .without_max_times()
        .build()
        // Past 2^6 s the schedule is at its cap: no need to walk it further.
        .nth(failures.min(8) as usize)
        .unwrap_or(MAX)
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn the_retry_wait_doubles_from_a_second_up_to_a_minute() {
        let waits: Vec<u64> = [0, 1, 2, 5, 6, 40, u32::MAX]
            .map(|failures| backoff(failures).as_secs())
            .to_vec();
        assert_eq!(waits, [1, 2, 4, 32, 60, 60, 60]);
    }
}
