//! The parts of a Rollout that name policies: which ImagePolicy verifies it and who approves it.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{DURATION_CEL_MESSAGE, DURATION_CEL_RULE};

/// A reference to the cluster-scoped ImagePolicy that verifies a Rollout's images.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationPolicyRef {
    /// Name of the ImagePolicy.
    #[schemars(length(min = 1, max = 253))]
    pub image_policy: String,
}

/// The approval gate policy: how many distinct people must approve a revision, and who may.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicy {
    /// Number of distinct approvers a revision needs. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub required_approvals: Option<i32>,

    /// Who may approve. When empty, anyone allowed by RBAC to create Approvals may approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Approvers>,

    /// Whether the person who changed the template may approve their own change. Defaults to
    /// false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_self_approval: Option<bool>,

    /// How long an approval stays valid after it is given, for example `24h`. Unset means it
    /// does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(DURATION_CEL_RULE).message(DURATION_CEL_MESSAGE))]
    pub expires_after: Option<String>,
}

impl ApprovalPolicy {
    /// The number of distinct approvals required, with the default applied.
    pub fn required_approvals(&self) -> i32 {
        self.required_approvals.unwrap_or(1)
    }

    /// Whether the requester may approve their own change, with the default applied.
    pub fn allows_self_approval(&self) -> bool {
        self.allow_self_approval.unwrap_or(false)
    }
}

/// The people allowed to approve: a user listed by name, or a member of a listed group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Approvers {
    /// User names, as the API server authenticates them (for example `alice` or
    /// `system:serviceaccount:ops:release-bot`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub users: Vec<String>,

    /// Group names, as the API server authenticates them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub groups: Vec<String>,
}
