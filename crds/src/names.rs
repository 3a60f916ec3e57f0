//! Every name rollgate puts on the API: its group and version, its kinds, and each
//! `rollgate.io/*` label and annotation. The one place they are spelled; everything else imports
//! them from here.

/// The API group of every rollgate resource.
pub const API_GROUP: &str = "rollgate.io";
/// The API version of every rollgate resource.
pub const API_VERSION: &str = "v1alpha1";

/// Every kind rollgate serves, Rollout first.
pub const KINDS: [&str; 7] = [
    "Rollout",
    "AnalysisTemplate",
    "ClusterAnalysisTemplate",
    "AnalysisRun",
    "ImagePolicy",
    "Approval",
    "AuditRecord",
];

/// The label with the name of the Rollout an object belongs to: on its ReplicaSets and pods,
/// AnalysisRuns, Approvals and AuditRecords (set only when the name is a valid label value).
pub const ROLLOUT_LABEL: &str = "rollgate.io/rollout";
/// The label with the uid of the Rollout an AuditRecord belongs to.
pub const ROLLOUT_UID_LABEL: &str = "rollgate.io/rollout-uid";
/// The pod label that carries the revision hash, on pods and in Service selectors (and on
/// AnalysisRuns, the revision they measure).
pub const REVISION_LABEL: &str = "rollgate.io/revision";
/// The label with the revision an Approval approves.
pub const APPROVAL_REVISION_LABEL: &str = "rollgate.io/approval-revision";
/// The label with the analysis an AnalysisRun is for (`step-<n>`, `background`, ...).
pub const ANALYSIS_KEY_LABEL: &str = "rollgate.io/analysis";
/// The label with the attempt of the revision an AnalysisRun measures.
pub const ATTEMPT_LABEL: &str = "rollgate.io/attempt";

/// The annotation, stamped at admission, naming who created or last changed a Rollout's spec.
pub const REQUESTED_BY_ANNOTATION: &str = "rollgate.io/requested-by";
/// The annotation that lets a Rollout manage a Service or HTTPRoute it did not create; its
/// value is the Rollout's name.
pub const MANAGED_BY_ANNOTATION: &str = "rollgate.io/managed-by-rollout";
/// The annotation that marks an ImagePolicy as the cluster default (value `"true"`).
pub const DEFAULT_POLICY_ANNOTATION: &str = "rollgate.io/default-policy";
/// The pod-template annotation that requests break-glass for a revision; its value is the
/// justification, which must not be blank.
pub const BREAK_GLASS_ANNOTATION: &str = "rollgate.io/break-glass";
