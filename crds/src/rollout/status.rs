//! The observed state of a Rollout, written only by the controller through the status
//! subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a Rollout is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RolloutPhase {
    /// A revision is being rolled out.
    #[default]
    Progressing,
    /// Waiting for a person to promote (a pause step without duration, or `spec.paused`).
    Paused,
    /// Waiting for the approval gate of the current revision.
    AwaitingApproval,
    /// The stable revision is the desired revision and is available.
    Healthy,
    /// Something is wrong that needs attention (failed verification, missed deadline); the
    /// stable revision keeps serving.
    Degraded,
    /// The rollout was aborted; traffic is back on the stable revision.
    Aborted,
}

/// The observed state of a Rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Where the Rollout is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,

    /// A human-readable explanation of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Index of the canary step being executed; equal to the number of steps once all are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,

    /// Revision hash of the desired pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,

    /// Revision hash of the revision that serves production traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,

    /// The images, pinned by digest, of the desired revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current_images: Vec<ContainerImage>,

    /// The images, pinned by digest, of the stable revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stable_images: Vec<ContainerImage>,

    /// Percent of traffic on the canary revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,

    /// Pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Pods of the desired revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,

    /// Ready pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Available pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,

    /// The label selector of the pods, as a string, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Conditions of types Progressing, Available, Verified, Approved, Analysis and Healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The approval gate the rollout waits at, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateStatus>,

    /// Names of the AnalysisRuns of the current revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis_runs: Vec<String>,

    /// Why and when the rollout was aborted, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortStatus>,

    /// How many times the current revision was retried after an abort; analyses are run per
    /// attempt, so a retry never reuses the verdict that aborted the previous attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,

    /// When the current step began (the clock of timed pauses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_start_time: Option<Time>,

    /// When the rollout last made progress (the clock of the progress deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_time: Option<Time>,

    /// Blue-green: when the active Service was switched to the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Time>,

    /// Whether a person paused the rollout (the `pause` action); `resume` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_by_user: Option<bool>,

    /// The latest action a person requested. Written by clients (the CLI, the gRPC API) to the
    /// status subresource, so a GitOps tool that syncs the spec never undoes it; the controller
    /// acts on it once and records its id in `handledAction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_action: Option<UserAction>,

    /// The id of the last user action the controller acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_action: Option<String>,

    /// What came of the last user action the controller handled: carried out, or ignored and
    /// why (issued for another revision or attempt, or nothing to act on). Clients wait for it
    /// rather than report a request that will not happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_outcome: Option<ActionOutcome>,

    /// The newest AuditRecord the controller wrote for this Rollout, so that deleting the
    /// newest records is detected too (`kubectl rollgate audit verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,

    /// The audit outbox: the records of this status's transitions, committed with it before
    /// they are written as AuditRecords (each the JSON of a record spec signed by the
    /// controller), so a crash never loses one. Written only by the controller; see
    /// `docs/audit.md`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 256))]
    pub audit_outbox: Vec<String>,
}

/// The newest record of a Rollout's audit chain.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuditHead {
    /// Its sequence number.
    pub sequence: u64,
    /// Its hash.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub hash: String,
    /// Leaves of the Rollout's Merkle log covered by the newest checkpoint published outside
    /// the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_size: Option<u64>,
    /// Records committed but not yet written or published; above 0 the trail is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind: Option<u64>,
    /// Why the trail is behind, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

impl From<&AuditHead> for crate::audit::ChainHead {
    fn from(head: &AuditHead) -> Self {
        crate::audit::ChainHead {
            sequence: head.sequence,
            hash: head.hash.clone(),
        }
    }
}

/// What came of a user action.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActionOutcome {
    /// The action's id.
    pub id: String,
    /// Whether the controller carried it out (false: ignored).
    pub carried_out: bool,
    /// What was done, or why it was ignored.
    pub message: String,
}

/// An action a person requested on a rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserAction {
    /// Unique id of the request; a new request needs a new id.
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// What to do.
    pub action: UserActionKind,
    /// Who asked.
    pub by: String,
    /// The revision (template hash) the action was issued for; it is ignored for any other.
    #[schemars(length(min = 1, max = 64))]
    pub revision: String,
    /// The attempt (`status.attempt`, 0 for the first) of that revision it was issued for; it
    /// is ignored for any other, so a retry or abort meant for one try never hits the next.
    #[schemars(range(min = 0))]
    pub attempt: i32,
    /// Why, for the audit record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was asked.
    pub time: Time,
}

/// The actions a person can request.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserActionKind {
    /// Continue past the current pause, or an inconclusive analysis.
    Promote,
    /// Skip every remaining pause and analysis step; approval gates still apply.
    PromoteFull,
    /// Send all traffic back to stable and scale the canary down.
    Abort,
    /// Restart an aborted rollout from step 0.
    Retry,
    /// Stop advancing steps until resumed.
    Pause,
    /// Undo a pause.
    Resume,
}

/// The names of the condition types a Rollout reports.
pub mod condition_types {
    /// The rollout is making progress within its deadline.
    pub const PROGRESSING: &str = "Progressing";
    /// Enough pods are available.
    pub const AVAILABLE: &str = "Available";
    /// Every image of the current revision passed its ImagePolicy.
    pub const VERIFIED: &str = "Verified";
    /// The approval gate of the current revision is open.
    pub const APPROVED: &str = "Approved";
    /// The analysis of the current revision has not failed.
    pub const ANALYSIS: &str = "Analysis";
    /// The stable revision is the desired one and is available.
    pub const HEALTHY: &str = "Healthy";
}

/// A container's image, pinned by digest.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerImage {
    /// Container name.
    pub container: String,
    /// Image reference, `name@sha256:<hex>`.
    pub image: String,
}

/// The state of an approval gate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GateStatus {
    /// The revision hash the gate is for.
    pub revision: String,
    /// Distinct approvals required.
    pub required: i32,
    /// Valid approvals received.
    pub received: i32,
    /// Who approved, in order of approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Who rejected the revision, if anyone did; a rejection closes the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    /// Approvals of this revision that did not count, each with why (at most 20, oldest
    /// first; approvals of other revisions are not listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<IgnoredApproval>,
}

/// An Approval that did not count at a gate, and why.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredApproval {
    /// The Approval's name.
    pub approval: String,
    /// Its approver.
    pub approver: String,
    /// Why, as one CamelCase word: `OtherDigests`, `NotAllowed`, `Expired`, `SelfApproval`,
    /// `CouldActAsRequester` or `Duplicate`.
    pub reason: String,
    /// Why, for people (for `CouldActAsRequester`, the permission through which the approver
    /// could have acted as the requester).
    pub message: String,
}

/// Why and when a rollout was aborted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AbortStatus {
    /// Why it was aborted.
    pub reason: String,
    /// Who or what aborted it: a user name, or `analysis`, `progress-deadline`.
    pub by: String,
    /// When it was aborted.
    pub time: Time,
}
