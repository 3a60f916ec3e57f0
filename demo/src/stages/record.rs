//! Stage 7: what is on record. `kubectl rollgate history` lists the Rollout's revisions and its
//! audit records; `kubectl rollgate audit verify` checks every record against the signed
//! checkpoints the controller published to the registry, outside the cluster's API, with the
//! verifier key kept on this machine.

use anyhow::{Result, ensure};

use super::Walk;
use crate::objects::ROLLOUT;

impl Walk<'_> {
    /// Stage 7: history and the verifiable audit log.
    pub(super) async fn history_and_audit(&mut self) -> Result<()> {
        self.narrator.stage(
            7,
            "History and audit",
            "Every revision is a ReplicaSet kept for rollback, and every decision (verified,\n\
             measured, approved, aborted, refused) is an AuditRecord, a leaf of a Merkle tree\n\
             whose signed checkpoints the controller publishes outside the cluster: an auditor\n\
             with the public key finds any record rewritten, removed, inserted or reordered.",
        );
        self.plugin
            .run_ok(&self.admin(), &["history", ROLLOUT])
            .await?;
        let key = self.stack.audit_verifier.to_string_lossy().into_owned();
        let store = self.stack.install.audit_store();
        // The newest records may still be on their way to the store: the controller publishes
        // a checkpoint after each batch of records.
        let mut attempts = 0;
        let verified = loop {
            attempts += 1;
            let verify = self
                .plugin
                .run(
                    &self.admin(),
                    &[
                        "audit",
                        "verify",
                        ROLLOUT,
                        "--public-key",
                        &key,
                        "--store",
                        &store,
                        "--store-insecure",
                    ],
                )
                .await?;
            if verify.status.success() || attempts == 5 {
                break verify;
            }
            self.narrator
                .note("the newest records are not in a published checkpoint yet: again in 3s");
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        };
        ensure!(
            verified.status.success(),
            "kubectl rollgate audit verify failed: {}",
            String::from_utf8_lossy(&verified.stdout).trim()
        );
        self.narrator.done(
            7,
            "history shown; every audit record verified against the signed checkpoints \
             published outside the cluster",
        );
        Ok(())
    }
}
