//! The decide stage, pure: from what the fetch stage read to the plan. The gate inputs are
//! built here, in one place, from the verification verdict, the AnalysisRuns of the current
//! attempt and the Approvals; then the state machine ([`crate::decide`]) decides.

use k8s_openapi::jiff::Timestamp;

use super::fetch::Fetched;
use crate::analysis::observe;
use crate::approvals;
use crate::decide::{ApprovalGate, GateInputs, Observed, Plan, actions, decide};

/// What the gates report for the desired revision and the attempt the decision is at.
pub fn gate_inputs(fetched: &Fetched, now: Timestamp) -> GateInputs {
    let rollout = &fetched.rollout;
    let status = rollout.status.clone().unwrap_or_default();
    let attempt = actions::attempt_for_gates(&status, &fetched.desired_revision);
    let analyses = observe::outcomes(&fetched.runs, &fetched.desired_revision, attempt);
    let (approval, approval_ignored) = if approvals::uses_approval(rollout) {
        let gate = approvals::gate(
            rollout,
            &fetched.approvals,
            &fetched.desired_revision,
            &fetched.images,
            now,
        );
        (gate.approval, gate.ignored)
    } else {
        let required = rollout
            .spec
            .approval
            .as_ref()
            .map_or(1, |policy| policy.required_approvals());
        let waiting = ApprovalGate::Waiting {
            required,
            approvers: Vec::new(),
        };
        (waiting, Vec::new())
    };
    GateInputs {
        verification: fetched.verification.clone(),
        approval,
        approval_ignored,
        analyses,
    }
}

/// The plan for the fetched Rollout at `now`.
pub fn plan(fetched: &Fetched, now: Timestamp) -> Plan {
    let gates = gate_inputs(fetched, now);
    decide(&Observed {
        rollout: &fetched.rollout,
        desired_revision: &fetched.desired_revision,
        desired_images: &fetched.images,
        revisions: &fetched.revisions,
        gates: &gates,
        now,
    })
}
