//! The `Rollout` resource: a Deployment-like workload plus a delivery strategy.
//!
//! Defaults that the schema does not write into the object (so a GitOps tool sees exactly what
//! it applied) are applied by the helper methods here: `replicas` 1, `revisionHistoryLimit` 10,
//! `progressDeadlineSeconds` 600.

pub mod intents;
mod policy;
mod status;
mod strategy;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use policy::{ApprovalPolicy, Approvers, VerificationPolicyRef};
pub use status::{
    AbortStatus, ActionOutcome, AuditHead, ContainerImage, GateStatus, IgnoredApproval,
    RolloutPhase, RolloutStatus, UserAction, UserActionKind, condition_types,
};
pub use strategy::{
    AnalysisArg, AnalysisStep, AnalysisTemplateRef, ApprovalStep, BlueGreenStrategy, CanaryStep,
    CanaryStrategy, GatewayApiRouting, PauseStep, RolloutStrategy, TrafficRouting,
};

/// The replica count used when `spec.replicas` is not set.
pub const DEFAULT_REPLICAS: i32 = 1;
/// The number of old ReplicaSets kept when `spec.revisionHistoryLimit` is not set.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// The progress deadline used when `spec.progressDeadlineSeconds` is not set.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// A Rollout releases each new revision of its pod template as a canary or blue-green rollout,
/// gated by image verification, analysis and approvals.
// The printer columns repeat `type_ = ...` by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rollgate.io",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "rgro",
    category = "rollgate",
    validation = kube::core::Rule::new("self.metadata.name.size() <= 63")
        .message("metadata.name may have at most 63 characters: rollgate labels the Rollout's ReplicaSets and pods with it (rollgate.io/rollout), and a label value holds at most 63"),
    doc = "A Rollout releases each new revision of its pod template as a canary or blue-green rollout, only for verified image digests, gated by analysis and approvals.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired number of pods"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Pods of all revisions"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.updatedReplicas",
        description = "Pods of the current revision"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas",
        description = "Available pods"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Rollout phase"
    ),
    printcolumn(
        name = "Step",
        type_ = "integer",
        json_path = ".status.currentStepIndex",
        description = "Index of the current canary step"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "Percent of traffic on the canary"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.selector.matchLabels) || (has(self.template.metadata) && has(self.template.metadata.labels) && self.selector.matchLabels.all(k, k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k]))"
).message("selector.matchLabels must match template.metadata.labels").field_path(".selector"))]
pub struct RolloutSpec {
    /// Number of desired pods. Defaults to 1, at most 100,000. Scaled by `kubectl scale` and the
    /// HorizontalPodAutoscaler through the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub replicas: Option<i32>,

    /// Label selector for the pods of every revision. Must match the template's labels; rollgate
    /// adds the revision label `rollgate.io/revision` to tell revisions apart.
    pub selector: LabelSelector,

    /// The pod template. A change to it is a new revision, identified by a hash of its
    /// canonical form, that rolls out through the strategy.
    pub template: PodTemplateSpec,

    /// How many old ReplicaSets to keep for rollback. Defaults to 10, at most 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub revision_history_limit: Option<i32>,

    /// Seconds a revision may take to make progress before the Rollout is marked Degraded.
    /// Defaults to 600, at most 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2592000))]
    pub progress_deadline_seconds: Option<i32>,

    /// Abort the rollout (traffic back to stable) when the progress deadline passes, instead of
    /// only marking it Degraded. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,

    /// Pause the rollout: no step advances while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,

    /// How a new revision is released: exactly one of `canary` or `blueGreen`.
    pub strategy: RolloutStrategy,

    /// Which ImagePolicy verifies this Rollout's images. The cluster default policy applies
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationPolicyRef>,

    /// Who must approve a revision at its approval gates (canary `approval` steps and blue-green
    /// promotion without autoPromotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
}

impl RolloutSpec {
    /// The desired replica count, with the default applied.
    pub fn desired_replicas(&self) -> i32 {
        self.replicas.unwrap_or(DEFAULT_REPLICAS)
    }

    /// The number of old ReplicaSets to keep, with the default applied.
    pub fn revision_history_limit(&self) -> i32 {
        self.revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
    }

    /// The progress deadline in seconds, with the default applied.
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// Whether the rollout is paused by its spec.
    pub fn is_paused(&self) -> bool {
        self.paused.unwrap_or(false)
    }

    /// Whether a revision needs the approval gate before it serves: a canary with an approval
    /// step, or a blue-green rollout without `autoPromotion`. The first revision of a Rollout
    /// too (see the controller's decide module).
    pub fn needs_approval(&self) -> bool {
        let canary = self
            .strategy
            .canary
            .as_ref()
            .is_some_and(|canary| canary.steps.iter().any(|step| step.approval.is_some()));
        let blue_green = self
            .strategy
            .blue_green
            .as_ref()
            .is_some_and(|blue_green| blue_green.auto_promotion != Some(true));
        canary || blue_green
    }
}
