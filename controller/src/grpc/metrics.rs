//! The RolloutService's own metrics: TokenReviews sent (by outcome) and WatchRollouts streams
//! (open, and refused by a limit). They can be registered in the controller's registry
//! ([`GrpcMetrics::register`]) and are read directly by tests.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The label of the TokenReview counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `authenticated`, `refused` or `error`.
    pub outcome: String,
}

/// The label of the refused-stream counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// `caller` or `total`.
    pub limit: String,
}

/// The RolloutService's metrics.
#[derive(Debug, Default)]
pub struct GrpcMetrics {
    /// TokenReviews sent to the API server, by outcome.
    pub token_reviews: Family<OutcomeLabels, Counter>,
    /// WatchRollouts streams open now.
    pub open_streams: Gauge,
    /// WatchRollouts calls refused with RESOURCE_EXHAUSTED, by the limit that refused them.
    pub refused_streams: Family<LimitLabels, Counter>,
}

impl GrpcMetrics {
    /// Counts one TokenReview with `outcome`.
    pub fn token_review(&self, outcome: &str) {
        let labels = OutcomeLabels {
            outcome: outcome.to_owned(),
        };
        self.token_reviews.get_or_create(&labels).inc();
    }

    /// TokenReviews sent so far, whatever their outcome.
    pub fn token_reviews_total(&self) -> u64 {
        ["authenticated", "refused", "error"]
            .iter()
            .map(|outcome| {
                let labels = OutcomeLabels {
                    outcome: (*outcome).to_owned(),
                };
                self.token_reviews.get_or_create(&labels).get()
            })
            .sum()
    }

    /// Registers every metric in `registry` under the `rollgate_grpc_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rollgate_grpc_token_reviews",
            "TokenReviews the RolloutService sent, by outcome",
            self.token_reviews.clone(),
        );
        registry.register(
            "rollgate_grpc_open_streams",
            "WatchRollouts streams open",
            self.open_streams.clone(),
        );
        registry.register(
            "rollgate_grpc_refused_streams",
            "WatchRollouts calls refused by a stream limit",
            self.refused_streams.clone(),
        );
    }
}
