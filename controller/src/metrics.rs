//! The controller's Prometheus metrics, served on the admin port at `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rollgate_runtime::api_requests::RequestKind;

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error's kind (`Error::metric_label`).
    pub kind: String,
}

/// Labels of the API request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `get`, `list`, `watch`, `create`, `patch`, `delete`, ... as the API server names it.
    pub verb: String,
    /// `resource[/subresource]`, for example `rollouts/status`.
    pub resource: String,
}

/// Labels of the phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The Rollout phase.
    pub phase: String,
}

/// Every metric the controller exports.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles failed, by error kind.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Kubernetes API requests the process sent, by verb and resource (counted by a layer
    /// on its client: [`rollgate_runtime::api_requests`]).
    pub api_requests: Family<RequestLabels, Counter>,
    /// Rollouts by phase (as of their last reconcile by this instance).
    pub rollouts: Family<PhaseLabels, Gauge>,
    /// Seconds from a step's start to its completion.
    pub step_duration: Histogram,
    /// 1 while this instance holds the leader lease.
    pub leader: Gauge,
    /// How many shards this instance holds (sharded mode).
    pub shards_held: Gauge,
    /// Analysis measurements taken, by outcome.
    pub measurements: Family<PhaseLabels, Counter>,
    /// AuditRecords written.
    pub audit_records: Counter,
    /// Audit events that could not be written (after retries): each one is a gap an operator
    /// must look at.
    pub audit_failures: Counter,
    /// 1 when the admission policies that make the controller's state its own are in force.
    pub trust_policies_in_force: Gauge,
    /// Audit records (or outbox entries) found that the controller did not write: refused.
    pub audit_foreign_records: Counter,
    /// Signed checkpoints published to the external store.
    pub audit_checkpoints_published: Counter,
    phases: Mutex<BTreeMap<String, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rollgate");
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles failed, by error kind",
            reconcile_errors.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Kubernetes API requests sent, by verb and resource",
            api_requests.clone(),
        );
        let rollouts = Family::<PhaseLabels, Gauge>::default();
        registry.register("rollouts", "Rollouts by phase", rollouts.clone());
        let step_duration = Histogram::new(exponential_buckets(0.5, 2.0, 14));
        registry.register(
            "step_duration_seconds",
            "Seconds from a step's start to its completion",
            step_duration.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this instance holds the leader lease",
            leader.clone(),
        );
        let shards_held = Gauge::default();
        registry.register(
            "shards_held",
            "How many shards this instance holds (sharded mode)",
            shards_held.clone(),
        );
        let measurements = Family::<PhaseLabels, Counter>::default();
        registry.register(
            "analysis_measurements",
            "Analysis measurements taken, by outcome (Successful, Failed, Inconclusive, Error)",
            measurements.clone(),
        );
        let audit_records = Counter::default();
        registry.register(
            "audit_records",
            "AuditRecords written",
            audit_records.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_failures",
            "Audit events that could not be written after retries (alert on any)",
            audit_failures.clone(),
        );
        let trust_policies_in_force = Gauge::default();
        registry.register(
            "trust_policies_in_force",
            "1 when the ownership admission policies are installed and name this controller (alert on 0)",
            trust_policies_in_force.clone(),
        );
        let audit_foreign_records = Counter::default();
        registry.register(
            "audit_foreign_records",
            "Audit records the controller did not write, found and refused (alert on any)",
            audit_foreign_records.clone(),
        );
        let audit_checkpoints_published = Counter::default();
        registry.register(
            "audit_checkpoints_published",
            "Signed audit checkpoints published to the external store",
            audit_checkpoints_published.clone(),
        );
        Metrics {
            audit_checkpoints_published,
            trust_policies_in_force,
            registry,
            measurements,
            audit_records,
            audit_failures,
            audit_foreign_records,
            reconciles,
            reconcile_errors,
            api_requests,
            rollouts,
            step_duration,
            leader,
            shards_held,
            phases: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Counts one analysis measurement with outcome `phase`.
    pub fn measurement(&self, phase: &str) {
        self.measurements
            .get_or_create(&PhaseLabels {
                phase: phase.to_owned(),
            })
            .inc();
    }

    /// Counts one API request.
    pub fn api_request(&self, kind: &RequestKind) {
        self.api_requests
            .get_or_create(&RequestLabels {
                verb: kind.verb.to_owned(),
                resource: kind.resource.clone(),
            })
            .inc();
    }

    /// Records the phase of one Rollout (`namespace/name`) and refreshes the phase gauge.
    pub fn set_phase(&self, rollout: String, phase: String) {
        let mut phases = self
            .phases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if phases.get(&rollout) == Some(&phase) {
            return;
        }
        phases.insert(rollout, phase);
        self.rollouts.clear();
        for phase in phases.values() {
            self.rollouts
                .get_or_create(&PhaseLabels {
                    phase: phase.clone(),
                })
                .inc();
        }
    }

    /// The registry in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
