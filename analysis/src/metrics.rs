//! The analysis service's Prometheus metrics, served on the admin port at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rollgate_proto::v1::Verdict;

/// Labels of the verdict counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `successful`, `failed`, `inconclusive` or `error`.
    pub verdict: String,
}

/// Every metric the analysis service exports.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Evaluations answered, by verdict.
    pub evaluations: Family<VerdictLabels, Counter>,
    /// Comparisons answered, by verdict.
    pub comparisons: Family<VerdictLabels, Counter>,
    /// Seconds a Prometheus query took.
    pub query_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rollgate_analysis");
        let evaluations = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "evaluations",
            "Evaluate requests answered, by verdict",
            evaluations.clone(),
        );
        let comparisons = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "comparisons",
            "Compare requests answered, by verdict",
            comparisons.clone(),
        );
        let query_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "query_duration_seconds",
            "Seconds a Prometheus query took",
            query_duration.clone(),
        );
        Metrics {
            registry,
            evaluations,
            comparisons,
            query_duration,
        }
    }
}

fn label(verdict: Verdict) -> VerdictLabels {
    let verdict = match verdict {
        Verdict::Unspecified => "unspecified",
        Verdict::Successful => "successful",
        Verdict::Failed => "failed",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Error => "error",
    };
    VerdictLabels {
        verdict: verdict.to_owned(),
    }
}

impl Metrics {
    /// Counts one evaluation.
    pub fn evaluated(&self, verdict: Verdict) {
        self.evaluations.get_or_create(&label(verdict)).inc();
    }

    /// Counts one comparison.
    pub fn compared(&self, verdict: Verdict) {
        self.comparisons.get_or_create(&label(verdict)).inc();
    }

    /// The registry in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
