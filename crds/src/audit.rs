//! The `AuditRecord` resource: one immutable, hash-chained record of something that happened
//! to a Rollout.
//!
//! # Chain
//!
//! Records of one Rollout (one `rolloutUid`) form a chain: `sequence` counts from 0 without
//! gaps, `previousHash` is the `hash` of the record before (absent on record 0), and `hash` is
//! computed over the record's own spec by [`chain::record_hash`]. Changing, deleting,
//! inserting or reordering a record breaks a link that [`chain::verify_chain`] names.
//!
//! # Naming and lifetime
//!
//! A record is named `<rollout>-<first 8 characters of the Rollout's uid>-<sequence, 10
//! digits>` ([`chain::record_name`]), so a Rollout's records sort by sequence and a new Rollout
//! of the same name starts a chain of its own. Records carry no owner reference: they outlive
//! the Rollout and are deleted only deliberately. They carry the labels [`ROLLOUT_LABEL`] (when
//! the Rollout's name is a valid label value) and [`ROLLOUT_UID_LABEL`], for selection.
//!
//! # Immutability
//!
//! A CEL transition rule refuses any change to the spec, and the admission policy
//! `rollgate-audit-records` (under `crds/policies/`) refuses any update that changes the spec,
//! labels or annotations, for everyone. A cluster administrator can still delete a record and
//! create another in its place, or remove the policy: the chain is what detects that.

pub mod chain;
pub mod checkpoint;
pub mod log_check;
pub mod merkle;
#[cfg(feature = "store")]
pub mod store;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{ROLLOUT_LABEL, ROLLOUT_UID_LABEL};

pub use chain::{
    AuditEvent, BrokenLink, ChainError, ChainHead, LinkProblem, chains_by_uid, next_record,
    record_hash, record_name, recorded_head, verify_chain, verify_records,
};

/// The actor of everything the controller does on its own.
pub const CONTROLLER_ACTOR: &str = "rollgate-controller";

/// An AuditRecord records one thing that happened to a Rollout: who did it, why, with which
/// numbers. Immutable and hash-chained per Rollout.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rollgate.io",
    version = "v1alpha1",
    kind = "AuditRecord",
    namespaced,
    shortname = "rgau",
    category = "rollgate",
    doc = "An AuditRecord records one event of a Rollout (a transition, a verification, an analysis verdict, an approval, a user action) with its actor and reason. Records are immutable and hash-chained per Rollout, and outlive it.",
    printcolumn(
        name = "Rollout",
        type_ = "string",
        json_path = ".spec.rollout",
        description = "The Rollout the record is about"
    ),
    printcolumn(
        name = "Seq",
        type_ = "integer",
        json_path = ".spec.sequence",
        description = "Position in the Rollout's chain"
    ),
    printcolumn(
        name = "Event",
        type_ = "string",
        json_path = ".spec.event",
        description = "What happened"
    ),
    printcolumn(
        name = "Actor",
        type_ = "string",
        json_path = ".spec.actor",
        description = "Who or what did it"
    ),
    printcolumn(
        name = "Time",
        type_ = "date",
        json_path = ".spec.time",
        description = "When it happened"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf")
    .message("an AuditRecord is immutable"))]
#[x_kube(validation = kube::core::Rule::new("self.sequence == 0 ? !has(self.previousHash) : has(self.previousHash)")
    .message("previousHash is set on every record but the first (sequence 0)"))]
pub struct AuditRecordSpec {
    /// Name of the Rollout.
    #[schemars(length(min = 1, max = 253))]
    pub rollout: String,

    /// Uid of the Rollout; the chain is per uid, so a new Rollout of the same name starts anew.
    #[schemars(length(min = 1, max = 64))]
    pub rollout_uid: String,

    /// Position in the chain, from 0, without gaps.
    #[schemars(range(min = 0))]
    pub sequence: u64,

    /// The `hash` of the record before this one; absent on the first record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub previous_hash: Option<String>,

    /// SHA-256 (hex) over the canonical form of this spec without `hash`; see rollgate's
    /// audit chain documentation.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub hash: String,

    /// When it happened.
    pub time: Time,

    /// What happened.
    pub event: AuditEventKind,

    /// Who or what did it: a user name, or `rollgate-controller`.
    #[schemars(length(min = 1, max = 253))]
    pub actor: String,

    /// The revision hash the event is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub revision: Option<String>,

    /// A short machine-readable reason, for example `AnalysisFailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub reason: Option<String>,

    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,

    /// The numbers behind the event, as strings: digest, key id, policy, weights, analysis
    /// values, groups, comment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub details: BTreeMap<String, String>,

    /// The controller's signature (base64 Ed25519) of this record as leaf `sequence` of its
    /// Rollout's Merkle log; absent on records written before the Merkle log and when the
    /// controller runs without a signing key. See [`checkpoint::leaf_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub signature: Option<String>,
}

/// The kinds of events recorded.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditEventKind {
    /// A new revision (template hash) was detected.
    RevisionDetected,
    /// Image verification of a revision finished (passed, refused or break-glass).
    Verification,
    /// A canary step (or blue-green phase) was entered.
    StepEntered,
    /// A canary step was completed.
    StepCompleted,
    /// The canary weight was set.
    WeightSet,
    /// An analysis reached a verdict.
    AnalysisVerdict,
    /// Someone approved a revision.
    Approval,
    /// Someone rejected a revision.
    Rejection,
    /// The approval gate of a revision opened.
    GateOpened,
    /// Someone promoted the rollout.
    Promote,
    /// The rollout was aborted, by a person or by the controller.
    Abort,
    /// An aborted rollout was retried.
    Retry,
    /// Someone paused the rollout.
    Pause,
    /// Someone resumed the rollout.
    Resume,
    /// A person's action was not carried out (issued for another revision or attempt, or
    /// nothing to act on); the actor is who asked.
    ActionIgnored,
    /// The rollout went Degraded.
    Degraded,
    /// The desired revision became stable.
    Completed,
    /// The phase changed in another way.
    PhaseChanged,
}

impl AuditRecord {
    /// The object for a record spec in `namespace`: its name and labels come from the spec.
    pub fn for_spec(namespace: &str, spec: AuditRecordSpec) -> AuditRecord {
        let mut record = AuditRecord::new(&record_name(&spec), spec);
        record.metadata.namespace = Some(namespace.to_owned());
        let mut labels = BTreeMap::new();
        if is_label_value(&record.spec.rollout) {
            labels.insert(ROLLOUT_LABEL.to_owned(), record.spec.rollout.clone());
        }
        if is_label_value(&record.spec.rollout_uid) {
            labels.insert(
                ROLLOUT_UID_LABEL.to_owned(),
                record.spec.rollout_uid.clone(),
            );
        }
        record.metadata.labels = Some(labels);
        record
    }
}

/// Whether `value` is a valid label value (at most 63 characters, alphanumeric at both ends,
/// `-`, `_` and `.` inside).
pub fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value
            .bytes()
            .next()
            .is_none_or(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_none_or(|b| b.is_ascii_alphanumeric())
}
