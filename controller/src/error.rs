//! Why a reconcile failed, and the short label each kind has in metrics and logs.

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
    /// The reconcile took longer than its deadline and was abandoned (it is retried).
    #[error("the reconcile took longer than {0:?} and was abandoned")]
    Deadline(std::time::Duration),
    /// The stores a reconcile reads from stopped before they synced (the process is stopping).
    #[error("{0}")]
    CachesStopped(#[from] crate::caches::CachesStopped),
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
            Error::CachesStopped(_) => "caches_stopped",
            Error::Deadline(_) => "deadline",
        }
    }
}
