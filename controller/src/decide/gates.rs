//! The gates as one decision sees them: image verification (the Verified condition, Degraded
//! when refused) and the approval gate (the gate status, the Approved condition, and the
//! AwaitingApproval phase while it waits or after a rejection).

use rollgate_crds::rollout::{GateStatus, RolloutPhase, condition_types};

use super::decision::{Decision, VerificationGate};
use super::{ApprovalGate, TransitionKind, Verification};

impl Decision<'_, '_> {
    /// Applies the verification verdict to status: Verified condition, and Degraded when
    /// refused.
    pub fn verification(&mut self) -> VerificationGate {
        match &self.observed.gates.verification {
            Verification::Passed { reason, message } => {
                let (reason, message) = (reason.clone(), message.clone());
                self.condition(condition_types::VERIFIED, true, &reason, message);
                VerificationGate::Passed
            }
            Verification::Refused(reason) => {
                let reason = reason.clone();
                if self.old.phase != Some(RolloutPhase::Degraded) {
                    self.note(TransitionKind::VerificationFailed, reason.clone());
                }
                self.condition(
                    condition_types::VERIFIED,
                    false,
                    "VerificationFailed",
                    reason.clone(),
                );
                self.phase(RolloutPhase::Degraded, reason);
                VerificationGate::Held
            }
            Verification::Pending => {
                self.condition(
                    condition_types::VERIFIED,
                    false,
                    "Verifying",
                    "verifying image signatures",
                );
                self.phase(RolloutPhase::Progressing, "verifying image signatures");
                VerificationGate::Held
            }
        }
    }

    /// Evaluates the approval gate of the desired revision: records the gate and the Approved
    /// condition, and on waiting or rejection sets the AwaitingApproval phase with a message
    /// that starts with `what` (for example `step 2` or `promotion`). True when the gate is open.
    pub fn approval_gate(&mut self, what: &str) -> bool {
        let revision = self.observed.desired_revision.to_owned();
        let count = |approvers: &[String]| i32::try_from(approvers.len()).unwrap_or(i32::MAX);
        match self.observed.gates.approval.clone() {
            ApprovalGate::Open { approvers } => {
                let message = format!("{what}: approved by {}", approvers.join(", "));
                self.condition(condition_types::APPROVED, true, "Approved", message);
                let received = count(&approvers);
                self.status.gate = Some(GateStatus {
                    revision,
                    required: received,
                    received,
                    approvers,
                    rejected_by: None,
                    ignored: self.observed.gates.approval_ignored.clone(),
                });
                true
            }
            ApprovalGate::Waiting {
                required,
                approvers,
            } => {
                let received = count(&approvers);
                let message = format!("{what}: waiting for approval ({received} of {required})");
                self.condition(
                    condition_types::APPROVED,
                    false,
                    "AwaitingApproval",
                    message.clone(),
                );
                self.status.gate = Some(GateStatus {
                    revision,
                    required,
                    received,
                    approvers,
                    rejected_by: None,
                    ignored: self.observed.gates.approval_ignored.clone(),
                });
                self.phase(RolloutPhase::AwaitingApproval, message);
                false
            }
            ApprovalGate::Rejected { by, reason } => {
                let message = format!("{what}: rejected by {by}: {reason}");
                self.condition(
                    condition_types::APPROVED,
                    false,
                    "Rejected",
                    message.clone(),
                );
                let gate = self.status.gate.get_or_insert_with(|| GateStatus {
                    revision,
                    ..GateStatus::default()
                });
                gate.rejected_by = Some(by);
                gate.ignored = self.observed.gates.approval_ignored.clone();
                self.phase(RolloutPhase::AwaitingApproval, message);
                false
            }
        }
    }

    /// Whether the first revision of a Rollout may become stable: at once when revisions need
    /// no approval, otherwise once its gate is open (a Rollout deleted and created again, or
    /// created new, never puts an unapproved revision into service).
    pub fn first_revision_approved(&mut self) -> bool {
        !self.observed.rollout.spec.needs_approval() || self.approval_gate("first revision")
    }
}
