//! What every reconcile shares: the client, the event recorder, the audit log, and the error
//! type.

use std::sync::Arc;

use kube::runtime::events::{Recorder, Reporter};

use crate::acting_as::ActingAsReviews;
use crate::audit::AuditLog;
use crate::freshness::WrittenStatuses;
use crate::metrics::Metrics;
use crate::verification::ImageVerification;

/// The field manager of every write rollgate makes.
pub const FIELD_MANAGER: &str = "rollgate-controller";

/// Shared by every reconcile.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// Publishes an Event for every transition.
    pub recorder: Recorder,
    /// Exported metrics.
    pub metrics: Arc<Metrics>,
    /// Signature verification, unless it is off (`--image-verification=off`).
    pub verification: Option<ImageVerification>,
    /// Appends AuditRecords to Rollouts' chains.
    pub audit: AuditLog,
    /// The statuses this process wrote, so a decision is never made from an older one.
    pub written: WrittenStatuses,
    /// Recent answers to whether an approver could act as a requester.
    pub acting_as: ActingAsReviews,
}

impl Context {
    /// A context whose events name `instance` as the reporting controller instance.
    pub fn new(client: kube::Client, instance: String, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: Some(instance),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            audit: AuditLog::new(client.clone(), metrics.clone()),
            client,
            metrics,
            verification: None,
            written: WrittenStatuses::default(),
            acting_as: ActingAsReviews::default(),
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The pod template could not be hashed.
    #[error("revision hash: {0}")]
    RevisionHash(#[from] rollgate_crds::revision::RevisionHashError),
    /// The audit log cannot take the plan's records now; nothing is applied until it can.
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The Rollout lacks a namespace (it is namespaced; this is a malformed object).
    #[error("the Rollout has no namespace")]
    NoNamespace,
    /// The object changed since the decision read it (a conditional write was refused); it
    /// is decided again from the newer version.
    #[error("{0} changed since it was read; deciding again")]
    Stale(String),
    /// An AnalysisRun's lifecycle refused its input (a metric duration that does not parse).
    #[error("analysis run: {0}")]
    Lifecycle(#[from] rollgate_crds::analysis::lifecycle::LifecycleError),
}

impl Error {
    /// A short label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::RevisionHash(_) => "revision_hash",
            Error::NoNamespace => "no_namespace",
            Error::Stale(_) => "stale",
            Error::Audit(_) => "audit",
            Error::Lifecycle(_) => "analysis_lifecycle",
        }
    }
}
