//! Stage 7: what is on record. `kubectl rollgate history` lists the Rollout's revisions and its
//! audit records; `kubectl rollgate audit verify` recomputes the records' hash chain.

use anyhow::{Result, bail};

use super::Walk;
use crate::objects::ROLLOUT;

impl Walk<'_> {
    /// Stage 7: history and the audit chain.
    pub(super) async fn history_and_audit(&mut self) -> Result<()> {
        self.narrator.stage(
            7,
            "History and audit",
            "Every revision is a ReplicaSet kept for rollback, and every decision (verified,\n\
             measured, approved, aborted, refused) is meant to leave an AuditRecord: each record\n\
             holds the hash of the one before, so removing or editing one breaks the chain.",
        );
        self.plugin
            .run_ok(&self.admin(), &["history", ROLLOUT])
            .await?;
        let verify = self
            .plugin
            .run(&self.admin(), &["audit", "verify", ROLLOUT])
            .await?;
        let said = String::from_utf8_lossy(&verify.stdout).into_owned();
        let audit = if verify.status.success() {
            "the audit chain verifies"
        } else if said.contains("no audit records") {
            self.narrator.note(
                "no AuditRecords yet: this build of the controller does not write them, so \
                 there is no chain to verify (not an error of the demo)",
            );
            "no audit records to verify yet (the controller does not write them in this build)"
        } else {
            bail!("kubectl rollgate audit verify found a broken chain: {said}");
        };
        self.narrator.done(7, &format!("history shown; {audit}"));
        Ok(())
    }
}
