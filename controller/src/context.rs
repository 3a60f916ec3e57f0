//! What every reconcile shares: the client, the event recorder, the audit log, the caches.
//! (Why a reconcile fails is [`crate::error::Error`].)

use std::sync::{Arc, RwLock};

use kube::runtime::events::{Recorder, Reporter};

use crate::acting_as::ActingAsReviews;
use crate::audit::AuditLog;
use crate::caches::{self, Caches};
use crate::freshness::WrittenStatuses;
use crate::metrics::Metrics;
use crate::shards::Shards;
use crate::verification::ImageVerification;
use crate::write::FieldManager;

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
    /// The shards this replica writes for (every Rollout, when not sharded).
    pub shards: Shards,
    /// The stores of ReplicaSets, AnalysisRuns and Approvals of the current leadership term.
    caches: RwLock<Caches>,
}

impl Context {
    /// A context whose events name `instance` as the reporting controller instance.
    pub fn new(client: kube::Client, instance: String, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: FieldManager::Controller.name().to_owned(),
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
            shards: Shards::all(),
            caches: RwLock::new(caches::caches().0),
        }
    }

    /// The stores reconciles read from (until [`Context::install_caches`], stores without a
    /// writer: a reconcile fails with [`crate::caches::CachesStopped`]).
    pub fn caches(&self) -> Caches {
        self.caches
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Makes reconciles read from `caches`: those a new leadership term fills.
    pub fn install_caches(&self, caches: Caches) {
        *self
            .caches
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = caches;
    }
}
