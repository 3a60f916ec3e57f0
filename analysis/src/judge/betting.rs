//! An anytime-valid test that the canary's error rate is worse than the baseline's which does
//! not assume Poisson or binomial counts: a betting test on the canary's share of each
//! interval's errors (testing by betting, Shafer 2021; Waudby-Smith & Ramdas, "Estimating means
//! of bounded random variables by betting", JRSS-B 2023).
//!
//! # Statistic
//! In interval `t` the canary serves `r_t` requests with `c_t` errors and the baseline `s_t`
//! requests with `b_t` errors; `T_t = c_t + b_t` and `π_t = r_t / (r_t + s_t)` is the canary's
//! share of the traffic. When `T_t > 0` (and both sides served requests) the interval's outcome
//! is `g_t = (c_t / T_t) / π_t − 1`, the canary's share of the errors relative to its share of
//! the traffic, minus one. It is bounded below, `g_t ≥ −1`, whatever the counts: that bound,
//! not a distribution, is what the validity rests on. An interval without errors or without
//! traffic on a side is skipped (it carries no evidence either way).
//!
//! # Hypothesis
//! Let `F_{t−1}` hold everything up to interval `t − 1` and `G_t` add interval `t`'s request
//! counts and total errors `T_t`. The null hypothesis ("the canary is no worse") is
//!
//! > **H0**: for every interval with `T_t > 0`, `E[c_t / T_t | G_t] ≤ π_t`.
//!
//! It holds, with equality, in each of these cases (and any mixture of them over intervals):
//! 1. **A common rate per interval** (binomial or Poisson counts, with any shared drift):
//!    every request of interval `t` fails independently with a probability `p_t` that is the
//!    same for both revisions (it may move with the time of day, load, a dependency, or the
//!    past). Given `T_t`, `c_t` is hypergeometric (binomial for Poisson counts) with mean
//!    `T_t·π_t`.
//! 2. **Equal traffic and exchangeable revisions** (overdispersion of any size): `r_t = s_t`
//!    and, given `F_{t−1}`, the pair `(c_t, b_t)` has the same law as `(b_t, c_t)`; for example
//!    each revision's error rate is drawn afresh every interval from the same distribution
//!    (a Beta-binomial of any dispersion, independently per revision), possibly on top of a
//!    shared drift. By symmetry `E[c_t / T_t | G_t] = ½ = π_t`.
//!
//! and with `<` for a better canary in case 1 (a smaller per-request rate: given `T_t`, `c_t`
//! is then Fisher's noncentral hypergeometric with odds ratio below 1, stochastically smaller
//! than the central one).
//!
//! It is **not** guaranteed (i) with unequal traffic *and* per-revision rates that differ from
//! interval to interval (then `E[c_t/T_t]` is close to, not exactly, `π_t`;
//! `judge_simulation` measures that case), nor (ii) when a revision's own deviation persists
//! across intervals (the canary is worse for a while, given its past): that is a real,
//! temporary regression, and the test is meant to see it.
//!
//! # Wealth and validity
//! For a bet `f ∈ [0, 1)`, `W_t(f) = Π_{u ≤ t} (1 + f·g_u)` is positive (`1 + f·g ≥ 1 − f`) and,
//! under H0, `E[1 + f·g_t | G_t] ≤ 1`, hence `E[W_t(f) | F_{t−1}] ≤ W_{t−1}(f)`: a non-negative
//! supermartingale with `W_0 = 1`, whatever the dependence between intervals, the dispersion
//! of the counts or the traffic volumes. The test's wealth is the average over a fixed grid of
//! [`BETS`] bets `f_k = k / (BETS + 1)`, `W_t = (1/K)·Σ_k W_t(f_k)`, again a non-negative
//! supermartingale with `W_0 = 1` (a mixture over constant bets needs no predictable estimate
//! and adapts to the best bet at a cost of at most `ln K` in log-wealth). Ville's inequality
//! gives `P(∃t: W_t ≥ 1/α) ≤ α`: the canary is found worse when `W_t ≥ 1/α`, the always-valid
//! p-value is `min(1, min_{u ≤ t} 1/W_u)`, and the false-abort rate stays below `α` however
//! often the test is looked at.
//!
//! # Power
//! Each interval counts once, however many errors it holds, so an interval should hold a
//! handful of errors (see docs/analysis.md for picking it). A 2× regression with 500 + 500
//! requests per interval at a 1% baseline is found in about 25 intervals (binomial counts) to
//! about 37 (six times the binomial variance); `judge_simulation` prints the figures.

use super::error::JudgeError;
use super::sequential::{Counts, SequentialDecision, SequentialResult, check};

/// Number of constant bets the wealth averages over.
pub const BETS: usize = 19;

/// The test's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BettingConfig {
    /// Significance: the bound on the false-abort rate, in (0, 1). Default 0.01.
    pub alpha: f64,
}

impl Default for BettingConfig {
    fn default() -> Self {
        Self { alpha: 0.01 }
    }
}

/// A running betting test; see the module doc.
#[derive(Debug, Clone)]
pub struct BettingTest {
    config: BettingConfig,
    /// `ln W_t(f_k)` for each bet.
    log_wealth: [f64; BETS],
    log_e_value: f64,
    p_value: f64,
    intervals: u64,
    totals: Counts,
}

/// The bet `f_k` of grid point `k` (0-based).
fn bet(k: usize) -> f64 {
    (k + 1) as f64 / (BETS + 1) as f64
}

/// `ln((1/K)·Σ e^{v})` without overflow.
fn log_mean_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = values.iter().map(|v| (v - max).exp()).sum();
    max + (sum / values.len() as f64).ln()
}

impl BettingTest {
    /// A fresh test; fails if `alpha` is not in (0, 1).
    pub fn new(config: BettingConfig) -> Result<Self, JudgeError> {
        if !(config.alpha > 0.0 && config.alpha < 1.0) {
            return Err(JudgeError::InvalidConfig {
                field: "alpha",
                value: config.alpha,
                reason: "must lie strictly between 0 and 1",
            });
        }
        Ok(Self {
            config,
            log_wealth: [0.0; BETS],
            log_e_value: 0.0,
            p_value: 1.0,
            intervals: 0,
            totals: Counts::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BettingConfig {
        &self.config
    }

    /// The interval's outcome `g_t`, or `None` when it carries no evidence.
    pub fn outcome(counts: &Counts) -> Option<f64> {
        let errors = counts.canary_errors + counts.baseline_errors;
        let traffic = counts.canary_requests + counts.baseline_requests;
        if errors <= 0.0 || counts.canary_requests <= 0.0 || counts.baseline_requests <= 0.0 {
            return None;
        }
        let share = counts.canary_requests / traffic;
        Some((counts.canary_errors / errors) / share - 1.0)
    }

    /// Adds one interval's counts (increments) and returns the updated result.
    pub fn observe(&mut self, counts: Counts) -> Result<SequentialResult, JudgeError> {
        check(&counts)?;
        if let Some(g) = Self::outcome(&counts) {
            for (k, log_wealth) in self.log_wealth.iter_mut().enumerate() {
                *log_wealth += (bet(k) * g).ln_1p();
            }
            self.log_e_value = log_mean_exp(&self.log_wealth);
            self.p_value = self.p_value.min((-self.log_e_value.max(0.0)).exp());
        }
        self.intervals += 1;
        self.totals.canary_errors += counts.canary_errors;
        self.totals.canary_requests += counts.canary_requests;
        self.totals.baseline_errors += counts.baseline_errors;
        self.totals.baseline_requests += counts.baseline_requests;
        Ok(self.result())
    }

    /// The current result; `rate_ratio` is the ratio of the error rates over all intervals.
    pub fn result(&self) -> SequentialResult {
        let t = &self.totals;
        let rate_ratio = if t.canary_requests > 0.0 && t.baseline_errors > 0.0 {
            (t.canary_errors / t.canary_requests) / (t.baseline_errors / t.baseline_requests)
        } else {
            f64::NAN
        };
        SequentialResult {
            p_value: self.p_value,
            log_e_value: self.log_e_value,
            decision: if self.p_value <= self.config.alpha {
                SequentialDecision::CanaryWorse
            } else {
                SequentialDecision::Continue
            },
            intervals: self.intervals,
            totals: self.totals,
            rate_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(ce: f64, cr: f64, be: f64, br: f64) -> Counts {
        Counts {
            canary_errors: ce,
            canary_requests: cr,
            baseline_errors: be,
            baseline_requests: br,
        }
    }

    fn test() -> BettingTest {
        BettingTest::new(BettingConfig::default()).unwrap()
    }

    #[test]
    fn intervals_without_evidence_change_nothing() {
        let mut t = test();
        for c in [
            counts(0.0, 500.0, 0.0, 500.0),
            counts(0.0, 0.0, 3.0, 500.0),
            counts(2.0, 500.0, 0.0, 0.0),
        ] {
            let r = t.observe(c).unwrap();
            assert_eq!((r.log_e_value, r.p_value), (0.0, 1.0));
        }
        assert_eq!(t.result().intervals, 3);
    }

    #[test]
    fn even_split_of_errors_loses_a_little() {
        // g = 0 exactly: no change; g = ±0.5 alternating: the wealth of every bet shrinks.
        let mut t = test();
        t.observe(counts(5.0, 500.0, 5.0, 500.0)).unwrap();
        assert_eq!(t.result().log_e_value, 0.0);
        for _ in 0..20 {
            t.observe(counts(3.0, 500.0, 1.0, 500.0)).unwrap();
            t.observe(counts(1.0, 500.0, 3.0, 500.0)).unwrap();
        }
        let r = t.result();
        // The first +0.5 raised the wealth a little (the p-value keeps that); the rest lost.
        assert!(r.log_e_value < 0.0 && r.p_value > 0.5, "{r:?}");
        assert_eq!(r.decision, SequentialDecision::Continue);
    }

    #[test]
    fn clear_regression_aborts_and_stays_aborted() {
        let mut t = test();
        let mut aborted = None;
        for i in 0..60 {
            let r = t.observe(counts(20.0, 500.0, 5.0, 500.0)).unwrap();
            if aborted.is_none() && r.decision == SequentialDecision::CanaryWorse {
                aborted = Some(i);
            }
            if aborted.is_some() {
                assert_eq!(r.decision, SequentialDecision::CanaryWorse);
            }
        }
        // g = 0.6 each interval: the best bet grows by ln(1 + 0.95·0.6) = 0.45 per interval,
        // and the average over 19 bets costs at most ln 19 = 2.9: at most 17 intervals.
        assert!(aborted.unwrap() < 17, "{aborted:?}");
        assert!((t.result().rate_ratio - 4.0).abs() < 1e-12);
        // Better intervals afterwards lower the wealth but not the p-value.
        for _ in 0..60 {
            t.observe(counts(0.0, 500.0, 5.0, 500.0)).unwrap();
        }
        assert_eq!(t.result().decision, SequentialDecision::CanaryWorse);
    }

    #[test]
    fn outcome_accounts_for_the_traffic_split() {
        // 10% of the traffic and 10% of the errors: no evidence.
        assert_eq!(
            BettingTest::outcome(&counts(1.0, 100.0, 9.0, 900.0)),
            Some(0.0)
        );
        // All the errors on a 10% canary: g = 9, the largest possible.
        let g = BettingTest::outcome(&counts(4.0, 100.0, 0.0, 900.0)).unwrap();
        assert!((g - 9.0).abs() < 1e-12);
        assert_eq!(
            BettingTest::outcome(&counts(0.0, 100.0, 4.0, 900.0)),
            Some(-1.0)
        );
    }

    #[test]
    fn wealth_is_the_mean_of_the_constant_bets() {
        let mut t = test();
        let steps = [(3.0, 1.0), (0.0, 2.0), (7.0, 7.0), (9.0, 2.0)];
        for (c, b) in steps {
            t.observe(counts(c, 400.0, b, 400.0)).unwrap();
        }
        let direct: f64 = (0..BETS)
            .map(|k| {
                steps
                    .iter()
                    .map(|&(c, b)| 1.0 + bet(k) * (2.0 * c / (c + b) - 1.0))
                    .product::<f64>()
            })
            .sum::<f64>()
            / BETS as f64;
        assert!((t.result().log_e_value - direct.ln()).abs() < 1e-12);
    }

    #[test]
    fn invalid_input_is_refused() {
        assert!(BettingTest::new(BettingConfig { alpha: 1.0 }).is_err());
        assert!(BettingTest::new(BettingConfig { alpha: f64::NAN }).is_err());
        let mut t = test();
        assert!(t.observe(counts(f64::INFINITY, 1.0, 0.0, 1.0)).is_err());
        assert!(t.observe(counts(2.0, 1.0, 0.0, 1.0)).is_err());
        assert_eq!(t.result().intervals, 0);
    }

    #[test]
    fn huge_counts_stay_finite() {
        let mut t = test();
        for _ in 0..10_000 {
            t.observe(counts(1e12, 1e15, 0.0, 1e15)).unwrap();
        }
        let r = t.result();
        assert!(r.log_e_value.is_finite() && r.log_e_value > 1000.0);
        assert_eq!(r.p_value, 0.0);
    }
}
