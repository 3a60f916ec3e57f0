//! The audit trail the controller writes: one AuditRecord per event of a Rollout, appended to
//! the Rollout's hash chain, with a Kubernetes Event beside each.
//!
//! # What is recorded
//!
//! [`events::audit_events`] turns a reconcile's plan into events (transitions, approvals,
//! rejections, the gate opening, analysis verdicts, verification), each with its actor and
//! reason. They are recorded after the plan is applied, so a record never claims something the
//! cluster did not do.
//!
//! # Appending to the chain
//!
//! The head of each chain (the newest record) is kept in memory per Rollout uid and loaded
//! from the API server (the records labelled with the uid, highest sequence) the first time a
//! Rollout needs it. A record is created with a plain POST under its deterministic name
//! (`<rollout>-<uid8>-<sequence>`), never updated: if the name exists (409, another controller
//! instance wrote that sequence during a leader hand-over, or the cache is stale), the head is
//! reloaded and the record is rebuilt on top of it. Other failures are retried with a short
//! backoff; an event that still cannot be written is logged and counted in
//! `rollgate_audit_failures_total` (alert on it), and is not retried later: the chain stays
//! intact, but without that record.
//!
//! After writing, the controller stores the new head in the Rollout's `status.auditHead` (with
//! a field manager of its own, `rollgate-audit`, so the reconciler's status writes never
//! overwrite it), so that deleting the newest records is detected by `audit verify`.
//!
//! Records carry no owner reference: they outlive the Rollout.

pub mod events;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use rollgate_crds::audit::{AuditEvent, ROLLOUT_UID_LABEL, next_record};
use rollgate_crds::rollout::AuditHead;
use rollgate_crds::{AuditRecord, AuditRecordSpec, Rollout};
use serde_json::json;

use crate::metrics::Metrics;

/// The field manager of `status.auditHead`.
pub const AUDIT_FIELD_MANAGER: &str = "rollgate-audit";

/// Attempts per record (a 409 reloads the head; other errors back off).
const ATTEMPTS: u32 = 4;

/// Appends AuditRecords to Rollouts' chains.
pub struct AuditLog {
    client: kube::Client,
    metrics: Arc<Metrics>,
    heads: Mutex<HashMap<String, AuditRecordSpec>>,
}

impl AuditLog {
    /// An audit log writing through `client`.
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Self {
        AuditLog {
            client,
            metrics,
            heads: Mutex::default(),
        }
    }

    /// Appends `events` to `rollout`'s chain, in order, and records the new head in its status.
    /// Returns how many records were written; failures are logged and counted, not returned,
    /// because the transitions they describe have already been applied.
    pub async fn append(&self, rollout: &Rollout, events: Vec<AuditEvent>) -> usize {
        if events.is_empty() {
            return 0;
        }
        let (Some(namespace), Some(uid)) = (rollout.namespace(), rollout.uid()) else {
            return 0;
        };
        let api: Api<AuditRecord> = Api::namespaced(self.client.clone(), &namespace);
        let name = rollout.name_any();
        let mut head = self.cached_head(&uid);
        let mut written = 0;
        for event in events {
            match self
                .write((&api, &namespace), &name, &uid, head.take(), event)
                .await
            {
                Ok(record) => {
                    written += 1;
                    head = Some(record);
                }
                Err((error, current)) => {
                    self.metrics.audit_failures.inc();
                    tracing::error!(rollout = %name, %namespace, %error, "could not write an audit record");
                    head = current;
                }
            }
        }
        let Some(head) = head else {
            return written;
        };
        if written > 0 {
            self.record_head(rollout, &head).await;
        }
        self.heads
            .lock()
            .expect("audit head cache poisoned")
            .insert(uid, head);
        written
    }

    fn cached_head(&self, uid: &str) -> Option<AuditRecordSpec> {
        self.heads
            .lock()
            .expect("audit head cache poisoned")
            .get(uid)
            .cloned()
    }

    /// Writes one record after `head` (loaded from the API server when unknown). On failure,
    /// returns the error and the best known head.
    async fn write(
        &self,
        (api, namespace): (&Api<AuditRecord>, &str),
        rollout: &str,
        uid: &str,
        mut head: Option<AuditRecordSpec>,
        event: AuditEvent,
    ) -> Result<AuditRecordSpec, (String, Option<AuditRecordSpec>)> {
        let mut loaded = false;
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if head.is_none() && !loaded {
                match self.load_head(api, uid).await {
                    Ok(found) => {
                        head = found;
                        loaded = true;
                    }
                    Err(error) => {
                        last_error = format!("load the chain head: {error}");
                        backoff(attempt).await;
                        continue;
                    }
                }
            }
            let spec = next_record(head.as_ref(), rollout, uid, event.clone(), Timestamp::now())
                .map_err(|error| (error.to_string(), head.clone()))?;
            let record = AuditRecord::for_spec(namespace, spec.clone());
            self.metrics.request("create_audit_record");
            match api.create(&PostParams::default(), &record).await {
                Ok(_) => {
                    self.metrics.audit_records.inc();
                    return Ok(spec);
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    // Someone wrote this sequence: rebuild on the real head.
                    last_error = format!("record {} exists", record.name_any());
                    head = None;
                    loaded = false;
                }
                Err(error) => {
                    last_error = error.to_string();
                    backoff(attempt).await;
                }
            }
        }
        Err((last_error, head))
    }

    /// The newest record of chain `uid`, from the API server.
    async fn load_head(
        &self,
        api: &Api<AuditRecord>,
        uid: &str,
    ) -> Result<Option<AuditRecordSpec>, kube::Error> {
        self.metrics.request("list_audit_records");
        let records = api
            .list(&ListParams::default().labels(&format!("{ROLLOUT_UID_LABEL}={uid}")))
            .await?;
        Ok(records
            .items
            .into_iter()
            .map(|record| record.spec)
            .filter(|spec| spec.rollout_uid == uid)
            .max_by_key(|spec| spec.sequence))
    }

    /// Stores `head` in the Rollout's `status.auditHead`.
    async fn record_head(&self, rollout: &Rollout, head: &AuditRecordSpec) {
        let Some(namespace) = rollout.namespace() else {
            return;
        };
        let patch = json!({
            "apiVersion": Rollout::api_version(&()),
            "kind": Rollout::kind(&()),
            "metadata": {"name": rollout.name_any()},
            "status": {"auditHead": AuditHead {
                sequence: head.sequence,
                hash: head.hash.clone(),
            }},
        });
        let rollouts: Api<Rollout> = Api::namespaced(self.client.clone(), &namespace);
        self.metrics.request("apply_audit_head");
        if let Err(error) = rollouts
            .patch_status(
                &rollout.name_any(),
                &PatchParams::apply(AUDIT_FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            tracing::warn!(rollout = %rollout.name_any(), %error, "could not record the audit chain head");
        }
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
}
