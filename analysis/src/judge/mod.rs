//! The judges: pure statistics that decide whether a canary's samples are worse than its
//! baseline's (a Kayenta-style Mann-Whitney comparison and a sequential, anytime-valid test).
//!
//! - [`mann_whitney`]: the two-sided Mann-Whitney U test with the Hodges-Lehmann shift and its
//!   confidence interval (R's `wilcox.test(exact = FALSE, correct = TRUE, conf.int = TRUE)`).
//! - [`compare`]: Kayenta's classification of one metric (Pass, High, Low, NoData).
//! - [`score`]: the weighted 0..100 score of judged metrics and its Pass/Marginal/Fail verdict.
//! - [`sequential`]: a mixture SPRT on error counts that may abort a bad canary after any
//!   interval while keeping the false-abort rate below `alpha`, valid for Poisson counts.
//! - [`betting`]: a betting test on each interval's share of errors, valid without a count
//!   model (overdispersion, drift); [`method`] chooses between the two.
//!
//! - [`samples`]: range-query samples thinned to independent ones for the rank test.
//! - [`counters`]: per-interval increments of running totals, counter resets skipped.
//!
//! Everything here is pure: no I/O, no clocks, deterministic.

pub mod betting;
pub mod compare;
pub mod counters;
mod direction;
pub mod error;
pub mod mann_whitney;
pub mod method;
mod non_finite;
mod pairwise;
pub mod samples;
pub mod score;
pub mod sequential;

pub use betting::{BettingConfig, BettingTest};
pub use compare::{
    Classification, Direction, MetricConfig, MetricJudgement, NanStrategy, compare, mean_ratio,
};
pub use counters::{Increments, increments};
pub use error::JudgeError;
pub use mann_whitney::{ConfidenceInterval, MannWhitney, mann_whitney};
pub use method::{ErrorRateTest, SequentialMethod};
pub use score::{GroupScore, Score, ScoreConfig, ScoreVerdict, ScoredMetric, score};
pub use sequential::{
    Counts, SequentialConfig, SequentialDecision, SequentialResult, SequentialTest,
};
