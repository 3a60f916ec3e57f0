//! What the audit log tells the world outside its records: signed checkpoints published to the
//! external store, the head and lag in the Rollout's `status.auditHead` (written under the
//! audit log's own field manager), and a Warning Event and metric for every record found that
//! the controller did not write.

use kube::api::Api;
use kube::{Resource, ResourceExt};
use rollgate_crds::Rollout;
use rollgate_crds::rollout::AuditHead;
use serde_json::json;

use super::state::TreeState;
use super::{AuditLog, Target};
use crate::events::{Activity, Notice};
use crate::write::{self, FieldManager, Part};

impl AuditLog {
    /// Publishes a signed checkpoint of `tree` when the store lags behind it.
    pub(super) async fn publish(
        &self,
        target: &Target,
        tree: &mut TreeState,
    ) -> Result<(), String> {
        let (Some(signer), Some(store)) = (&self.signer, &self.store) else {
            return Ok(());
        };
        let size = tree.leaves.len() as u64;
        if tree.published >= size {
            return Ok(());
        }
        let publication = signer
            .publication(&target.origin, &tree.leaves)
            .map_err(|error| error.to_string())?;
        let key = (
            target.namespace.as_str(),
            target.name.as_str(),
            target.uid.as_str(),
        );
        self.metrics.audit_checkpoints_published.inc();
        store
            .publish(key, size, &publication)
            .await
            .map_err(|error| format!("publishing the checkpoint of size {size}: {error}"))?;
        tree.published = size;
        Ok(())
    }

    /// Reports something in the Rollout's audit trail the controller did not write.
    pub(super) async fn foreign(&self, rollout: &Rollout, what: &str) {
        self.metrics.audit_foreign_records.inc();
        tracing::warn!(rollout = %rollout.name_any(), what, "foreign audit record refused");
        let Some(recorder) = &self.recorder else {
            return;
        };
        let note =
            format!("{what} was not written by the controller; it is not part of the audit log");
        let notice = Notice::warning(Activity::Audit, "ForeignAuditRecord", note);
        crate::events::publish(recorder, &rollout.object_ref(&()), notice).await;
    }

    /// Stores the head, publication and lag of `tree` in the Rollout's `status.auditHead`,
    /// when they changed.
    pub(super) async fn record_head(
        &self,
        rollout: &Rollout,
        tree: &mut TreeState,
        behind: u64,
        message: Option<&str>,
    ) {
        let Some(last) = tree.last.clone() else {
            return;
        };
        let key = (tree.leaves.len() as u64, tree.published, behind);
        if tree.recorded == Some(key) && message.is_none() {
            return;
        }
        let head = AuditHead {
            sequence: last.sequence,
            hash: last.hash.clone(),
            published_size: self.store.as_ref().map(|_| tree.published),
            behind: Some(behind),
            message: message.map(|m| m.chars().take(1000).collect()),
        };
        let body = write::partial::<Rollout>(
            json!({"name": rollout.name_any()}),
            [("status", json!({"auditHead": head}))],
        );
        let Some(namespace) = rollout.namespace() else {
            return;
        };
        let rollouts: Api<Rollout> = Api::namespaced(self.client.clone(), &namespace);
        match write::apply(
            &rollouts,
            FieldManager::Audit,
            Part::Status,
            &rollout.name_any(),
            &body,
        )
        .await
        {
            Ok(_) => tree.recorded = Some(key),
            Err(error) => {
                tracing::warn!(rollout = %rollout.name_any(), %error, "could not record the audit head")
            }
        }
    }
}
