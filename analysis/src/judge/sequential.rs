//! An anytime-valid sequential test that the canary's error rate is worse than the baseline's:
//! a mixture sequential probability ratio test (mSPRT) on the rate ratio of two Poisson counts.
//!
//! # Model
//! In interval `t` the canary serves `r_t` requests with `c_t` errors and the baseline `s_t`
//! requests with `b_t` errors. Errors are modelled as Poisson with rates `ψ·λ_t·r_t` and
//! `λ_t·s_t`: `λ_t` (the baseline's error rate, a nuisance that may drift between intervals)
//! is shared and `ψ = e^θ` is the canary/baseline rate ratio. We test `H0: ψ ≤ 1` (canary no
//! worse) against `ψ > 1`, one-sided: only "canary worse" matters.
//!
//! # Statistic
//! Conditionally on the interval's total `T_t = c_t + b_t`, `c_t ~ Binomial(T_t, p_t(θ))` with
//! `p_t(θ) = r_t·e^θ / (r_t·e^θ + s_t)`, which no longer involves `λ_t` (as in Lindon et al.,
//! KDD 2022, for Poisson counts). The likelihood ratio of `θ` against `θ = 0` is
//! `L_t(θ) = Π_u e^{θ·c_u} · ((r_u + s_u)/(r_u·e^θ + s_u))^{T_u}`.
//! Mixing over a prior `π` on `θ > 0` gives `M_t = ∫ L_t(θ) dπ(θ)` (Johari et al., "Peeking at
//! A/B tests", KDD 2017). The prior is a half-normal of scale `τ`
//! ([`SequentialConfig::prior_scale`]) on the log ratio, discretised on a grid of
//! [`GRID_POINTS`] points; a discrete prior is a prior, so the discretisation costs no
//! validity.
//!
//! # Validity
//! Under `ψ = 1`, `E[e^{θc}((r+s)/(re^θ+s))^T | T] = 1`, so each `L_t(θ)` and hence `M_t` is a
//! non-negative martingale with mean 1; under `ψ < 1` the factor is below 1 for `θ > 0`
//! (supermartingale). If the counts are binomial rather than Poisson, the conditional law of
//! `c_t` given `T_t` is hypergeometric, which is smaller than the binomial in the convex order
//! (Hoeffding, 1963), so `M_t` is still a supermartingale. Ville's inequality then gives
//! `P(∃t: M_t ≥ 1/α) ≤ α`: the always-valid p-value `p_t = min(1, min_{u≤t} 1/M_u)` may be
//! looked at after every interval, and the false-abort rate stays below `α`. This assumes the
//! request counts carry no information about how the errors split between canary and
//! baseline (they are traffic volumes, not outcomes).
//!
//! # Use
//! Feed per-interval increments with [`SequentialTest::observe`] or running totals with
//! [`SequentialTest::observe_cumulative`]; both return the current [`SequentialResult`].
//! Once [`SequentialDecision::CanaryWorse`] is reached it stays (the p-value never increases).

use super::error::JudgeError;

/// Number of grid points of the discretised prior on the log rate ratio.
pub const GRID_POINTS: usize = 48;

/// Grid range of the prior, in units of its scale `τ`.
const GRID_SPAN: f64 = 4.0;

/// Error and request counts of one interval (or, for [`SequentialTest::observe_cumulative`],
/// running totals). Counts are `f64` so that Prometheus results can be passed as they come;
/// errors are meant to be counts of events.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counts {
    /// Canary errors.
    pub canary_errors: f64,
    /// Canary requests.
    pub canary_requests: f64,
    /// Baseline errors.
    pub baseline_errors: f64,
    /// Baseline requests.
    pub baseline_requests: f64,
}

/// The test's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequentialConfig {
    /// Significance: the bound on the false-abort rate, in (0, 1). Default 0.01.
    pub alpha: f64,
    /// Scale `τ` of the half-normal prior on `ln(canary rate / baseline rate)`, `> 0`.
    /// Default `ln 2`: tuned for regressions of 1.5×–4×.
    pub prior_scale: f64,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            prior_scale: std::f64::consts::LN_2,
        }
    }
}

/// What to do after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequentialDecision {
    /// Not enough evidence yet that the canary is worse.
    Continue,
    /// The canary's error rate is worse than the baseline's at level `alpha`: abort.
    CanaryWorse,
}

/// The state of the test after the latest observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequentialResult {
    /// Always-valid p-value (non-increasing over time).
    pub p_value: f64,
    /// Natural log of the mixture likelihood ratio `M_t` (the e-value) now.
    pub log_e_value: f64,
    /// The decision at the configured `alpha`.
    pub decision: SequentialDecision,
    /// Number of intervals observed.
    pub intervals: u64,
    /// Running totals of what was observed.
    pub totals: Counts,
    /// The maximum-likelihood rate ratio canary/baseline so far (NaN before any error).
    pub rate_ratio: f64,
}

/// A running mixture SPRT; see the module doc.
#[derive(Debug, Clone)]
pub struct SequentialTest {
    config: SequentialConfig,
    /// `e^θ_k` for each grid point.
    ratios: Vec<f64>,
    /// `θ_k` for each grid point.
    thetas: Vec<f64>,
    /// `ln π_k + ln L_t(θ_k)`.
    log_terms: Vec<f64>,
    p_value: f64,
    log_e_value: f64,
    intervals: u64,
    totals: Counts,
    /// Sum over intervals of `T_u · r_u / (r_u + s_u)`: expected canary errors under H0.
    null_canary_errors: f64,
}

fn check_count(field: &'static str, value: f64) -> Result<(), JudgeError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(JudgeError::InvalidCount {
            field,
            value,
            reason: "must be finite and >= 0",
        })
    }
}

pub(super) fn check(counts: &Counts) -> Result<(), JudgeError> {
    check_count("canary_errors", counts.canary_errors)?;
    check_count("canary_requests", counts.canary_requests)?;
    check_count("baseline_errors", counts.baseline_errors)?;
    check_count("baseline_requests", counts.baseline_requests)?;
    for (field, errors, requests) in [
        (
            "canary_errors",
            counts.canary_errors,
            counts.canary_requests,
        ),
        (
            "baseline_errors",
            counts.baseline_errors,
            counts.baseline_requests,
        ),
    ] {
        if errors > requests {
            return Err(JudgeError::InvalidCount {
                field,
                value: errors,
                reason: "exceeds the requests of the same side",
            });
        }
    }
    Ok(())
}

/// `ln Σ e^{v}` without overflow.
fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

impl SequentialTest {
    /// A fresh test; fails if `alpha` is not in (0, 1) or `prior_scale` is not finite and `> 0`.
    pub fn new(config: SequentialConfig) -> Result<Self, JudgeError> {
        if !(config.alpha > 0.0 && config.alpha < 1.0) {
            return Err(JudgeError::InvalidConfig {
                field: "alpha",
                value: config.alpha,
                reason: "must lie strictly between 0 and 1",
            });
        }
        if !(config.prior_scale.is_finite() && config.prior_scale > 0.0) {
            return Err(JudgeError::InvalidConfig {
                field: "prior_scale",
                value: config.prior_scale,
                reason: "must be finite and > 0",
            });
        }
        let step = GRID_SPAN * config.prior_scale / GRID_POINTS as f64;
        let thetas: Vec<f64> = (0..GRID_POINTS).map(|k| (k as f64 + 0.5) * step).collect();
        let raw: Vec<f64> = thetas
            .iter()
            .map(|t| -0.5 * (t / config.prior_scale).powi(2))
            .collect();
        let norm = log_sum_exp(&raw);
        Ok(Self {
            config,
            ratios: thetas.iter().map(|t| t.exp()).collect(),
            log_terms: raw.iter().map(|w| w - norm).collect(),
            thetas,
            p_value: 1.0,
            log_e_value: 0.0,
            intervals: 0,
            totals: Counts::default(),
            null_canary_errors: 0.0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SequentialConfig {
        &self.config
    }

    /// Adds one interval's counts (increments) and returns the updated result.
    pub fn observe(&mut self, counts: Counts) -> Result<SequentialResult, JudgeError> {
        check(&counts)?;
        let (c, r) = (counts.canary_errors, counts.canary_requests);
        let (b, s) = (counts.baseline_errors, counts.baseline_requests);
        let errors = c + b;
        if errors > 0.0 {
            let exposure = r + s;
            let ln_exposure = exposure.ln();
            for ((term, &theta), &ratio) in self
                .log_terms
                .iter_mut()
                .zip(&self.thetas)
                .zip(&self.ratios)
            {
                *term += c * theta + errors * (ln_exposure - (r * ratio + s).ln());
            }
            self.null_canary_errors += errors * r / exposure;
            self.log_e_value = log_sum_exp(&self.log_terms);
            self.p_value = self.p_value.min((-self.log_e_value.max(0.0)).exp());
        }
        self.intervals += 1;
        self.totals.canary_errors += c;
        self.totals.canary_requests += r;
        self.totals.baseline_errors += b;
        self.totals.baseline_requests += s;
        Ok(self.result())
    }

    /// Takes running totals, observes the increment since the previous totals, and returns the
    /// updated result. A total that went down (a counter reset) is refused.
    pub fn observe_cumulative(&mut self, totals: Counts) -> Result<SequentialResult, JudgeError> {
        check(&totals)?;
        let previous = self.totals;
        for (field, now, before) in [
            (
                "canary_errors",
                totals.canary_errors,
                previous.canary_errors,
            ),
            (
                "canary_requests",
                totals.canary_requests,
                previous.canary_requests,
            ),
            (
                "baseline_errors",
                totals.baseline_errors,
                previous.baseline_errors,
            ),
            (
                "baseline_requests",
                totals.baseline_requests,
                previous.baseline_requests,
            ),
        ] {
            if now < before {
                return Err(JudgeError::InvalidCount {
                    field,
                    value: now,
                    reason: "running total went down (counter reset?)",
                });
            }
        }
        let increment = Counts {
            canary_errors: totals.canary_errors - previous.canary_errors,
            canary_requests: totals.canary_requests - previous.canary_requests,
            baseline_errors: totals.baseline_errors - previous.baseline_errors,
            baseline_requests: totals.baseline_requests - previous.baseline_requests,
        };
        let result = self.observe(increment)?;
        // Keep the caller's totals exactly (no rounding drift from the subtraction).
        self.totals = totals;
        Ok(SequentialResult { totals, ..result })
    }

    /// The current result.
    pub fn result(&self) -> SequentialResult {
        let canary = self.totals.canary_errors;
        let expected = self.null_canary_errors;
        let errors = self.totals.canary_errors + self.totals.baseline_errors;
        // The conditional MLE of ψ when the split is constant: observed/expected odds.
        let rate_ratio = if errors > 0.0 {
            (canary / expected) / ((errors - canary) / (errors - expected))
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

    #[test]
    fn no_errors_is_no_evidence() {
        let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
        for _ in 0..100 {
            let r = test.observe(counts(0.0, 1000.0, 0.0, 1000.0)).unwrap();
            assert_eq!(r.p_value, 1.0);
            assert_eq!(r.decision, SequentialDecision::Continue);
        }
        assert!(test.result().rate_ratio.is_nan());
        // Empty intervals are fine too.
        test.observe(counts(0.0, 0.0, 0.0, 0.0)).unwrap();
    }

    #[test]
    fn clear_regression_aborts_and_stays_aborted() {
        let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
        let mut aborted_at = None;
        for i in 0..50 {
            let r = test.observe(counts(30.0, 1000.0, 10.0, 1000.0)).unwrap();
            if r.decision == SequentialDecision::CanaryWorse && aborted_at.is_none() {
                aborted_at = Some(i);
            }
            if aborted_at.is_some() {
                assert_eq!(r.decision, SequentialDecision::CanaryWorse);
            }
        }
        assert!(aborted_at.unwrap() < 5, "{aborted_at:?}");
        assert!((test.result().rate_ratio - 3.0).abs() < 1e-9);
    }

    #[test]
    fn better_canary_never_aborts() {
        let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
        for _ in 0..200 {
            let r = test.observe(counts(2.0, 1000.0, 20.0, 1000.0)).unwrap();
            assert_eq!(r.decision, SequentialDecision::Continue);
        }
        assert!(test.result().log_e_value < 0.0);
    }

    #[test]
    fn unequal_traffic_split_is_accounted_for() {
        // 10% canary traffic with the same error rate: no evidence accumulates.
        let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
        for _ in 0..500 {
            test.observe(counts(1.0, 100.0, 9.0, 900.0)).unwrap();
        }
        assert_eq!(test.result().decision, SequentialDecision::Continue);
        assert!((test.result().rate_ratio - 1.0).abs() < 1e-9);
    }

    #[test]
    fn cumulative_equals_incremental() {
        let steps = [
            counts(1.0, 100.0, 0.0, 100.0),
            counts(4.0, 250.0, 1.0, 240.0),
            counts(2.0, 90.0, 3.0, 110.0),
        ];
        let mut inc = SequentialTest::new(SequentialConfig::default()).unwrap();
        let mut cum = SequentialTest::new(SequentialConfig::default()).unwrap();
        let mut total = Counts::default();
        for step in steps {
            total.canary_errors += step.canary_errors;
            total.canary_requests += step.canary_requests;
            total.baseline_errors += step.baseline_errors;
            total.baseline_requests += step.baseline_requests;
            let a = inc.observe(step).unwrap();
            let b = cum.observe_cumulative(total).unwrap();
            assert!((a.log_e_value - b.log_e_value).abs() < 1e-12);
            assert_eq!(a.totals, b.totals);
        }
        let err = cum
            .observe_cumulative(counts(0.0, 0.0, 0.0, 0.0))
            .unwrap_err();
        assert!(err.to_string().contains("went down"));
    }

    #[test]
    fn invalid_input_is_refused() {
        assert!(
            SequentialTest::new(SequentialConfig {
                alpha: 0.0,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            SequentialTest::new(SequentialConfig {
                prior_scale: f64::NAN,
                ..Default::default()
            })
            .is_err()
        );
        let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
        assert!(
            test.observe(counts(f64::NAN, 1.0, 0.0, 1.0))
                .unwrap_err()
                .to_string()
                .contains("canary_errors")
        );
        assert!(test.observe(counts(0.0, 1.0, -1.0, 1.0)).is_err());
        let err = test.observe(counts(5.0, 1.0, 0.0, 1.0)).unwrap_err();
        assert!(err.to_string().contains("exceeds"));
        assert_eq!(test.result().intervals, 0);
    }

    #[test]
    fn huge_counts_stay_finite() {
        let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
        let r = test.observe(counts(2e12, 1e15, 1e12, 1e15)).unwrap();
        assert!(r.log_e_value.is_finite() && r.log_e_value > 1e9);
        assert_eq!(r.p_value, 0.0);
        assert_eq!(r.decision, SequentialDecision::CanaryWorse);
    }
}
