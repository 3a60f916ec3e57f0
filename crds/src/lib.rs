//! rollgate's Kubernetes API (`rollgate.io/v1alpha1`): the custom resource types, the pure
//! helpers that every other crate shares (the revision hash, the duration grammar), and the
//! generator of the CRD YAML under `crds/yaml/`.
//!
//! The types carry only serde, schemars and kube-derive: no client, no runtime. Every field has a
//! doc comment, which becomes the description that `kubectl explain` shows, and the schema
//! carries the validation (OpenAPI bounds and CEL rules) so the API server rejects a bad spec
//! with a message that names the field.

pub mod analysis;
pub mod approval;
pub mod audit;
pub mod duration;
pub mod generate;
pub mod image_policy;
pub mod managed_by;
pub mod names;
pub mod policies;
pub mod requester;
pub mod revision;
pub mod rollout;

pub use analysis::{
    AnalysisRun, AnalysisRunSpec, AnalysisRunStatus, AnalysisTemplate, AnalysisTemplateSpec,
    ClusterAnalysisTemplate,
};
pub use approval::{Approval, ApprovalSpec};
pub use audit::{AuditRecord, AuditRecordSpec};
pub use image_policy::{ImagePolicy, ImagePolicySpec};
pub use rollout::{Rollout, RolloutSpec, RolloutStatus};

pub use names::{API_GROUP, API_VERSION, KINDS};
