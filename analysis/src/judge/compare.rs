//! Kayenta-style classification of one metric: canary samples against baseline samples.
//!
//! # Rules
//! 1. Non-finite values are never dropped silently. With [`NanStrategy::Worst`] (the default)
//!    `+Inf` and `−Inf` are kept as the largest and smallest values (a `histogram_quantile`
//!    beyond the last bucket is the slowest latency there is), and `NaN` counts as the **worst
//!    value for the metric's direction**: `+Inf` for [`Direction::Increase`], `−Inf` for
//!    [`Direction::Decrease`], on either side (a NaN in both revisions cancels out). With
//!    [`Direction::Either`] a NaN has no worst value and the metric **fails** (NoData counted
//!    as a failure, whatever `must_have_data` says). In the rank test `+Inf` stands as a value
//!    beyond everything observed: the largest finite value of both samples plus the larger of
//!    their range and its own magnitude (1 when both are 0), `−Inf` symmetrically below the
//!    smallest ([`stand_ins`]); ranks are then exact and the Hodges-Lehmann shift and the mean
//!    ratio stay finite and on the metric's scale. The other strategies are explicit choices,
//!    reported in the reason: [`NanStrategy::Remove`] drops non-finite values and
//!    [`NanStrategy::ReplaceWithZero`] replaces them with 0.
//! 2. If either sample is then empty the metric is [`Classification::NoData`]; that counts
//!    as a failure in the score when the metric [`must_have_data`](MetricConfig::must_have_data),
//!    and fails the whole judgement when the metric is [`critical`](MetricConfig::critical).
//!    Missing data is never a pass.
//! 3. Otherwise [`mann_whitney`] gives `U`, the p-value, the Hodges-Lehmann shift `HL`
//!    (canary − baseline) and its interval at [`confidence`](MetricConfig::confidence)
//!    (0.98 by default, as Kayenta). The effect size is the ratio of means canary/baseline.
//! 4. **High** when the direction is [`Direction::Increase`] or [`Direction::Either`], the
//!    interval's lower bound is above `+0.25·|HL|`, and the effect size is at least
//!    [`allowed_increase`](MetricConfig::allowed_increase).
//!    **Low**, symmetrically, when the direction is [`Direction::Decrease`] or
//!    [`Direction::Either`], the upper bound is below `−0.25·|HL|`, and the effect size is at
//!    most `1 / allowed_increase`. Otherwise **Pass**.
//! 5. A critical metric fails the whole judgement ([`MetricJudgement::failed_critical`]) when
//!    it is High with effect size `≥ critical_increase`, Low with effect size
//!    `≤ 1 / critical_increase`, or NoData.
//!
//! The mean ratio is `mean(canary)/mean(baseline)` when both means are `≥ 0` (`0/0 = 1`,
//! `x/0 = +∞`); with a negative mean it is not meaningful and is reported as NaN, in which case
//! (as in Kayenta) the effect-size conditions of rules 4 and 5 hold by default.

use std::fmt;

pub use super::direction::Direction;
use super::error::JudgeError;
use super::mann_whitney::{ConfidenceInterval, mann_whitney};
pub use super::non_finite::NanStrategy;
use super::non_finite::{clean, stand_ins};

/// The classification of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// No meaningful difference in a bad direction.
    Pass,
    /// The canary is higher than the baseline.
    High,
    /// The canary is lower than the baseline.
    Low,
    /// At least one side had no (finite) data.
    NoData,
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "Pass",
            Self::High => "High",
            Self::Low => "Low",
            Self::NoData => "NoData",
        })
    }
}

/// How one metric is judged. [`MetricConfig::new`] gives Kayenta's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricConfig {
    /// The metric's name, used in reasons.
    pub name: String,
    /// The score group the metric belongs to.
    pub group: String,
    /// Which change is bad.
    pub direction: Direction,
    /// Minimum mean ratio canary/baseline for High (its reciprocal is the maximum for Low),
    /// `> 0`; 1.0 means any significant shift counts.
    pub allowed_increase: f64,
    /// Mean ratio from which a High (reciprocal: Low) critical metric fails everything, `> 0`.
    pub critical_increase: f64,
    /// Whether High/Low beyond the critical increase, or NoData, fails the whole judgement.
    pub critical: bool,
    /// Whether NoData counts as a failure in the score.
    pub must_have_data: bool,
    /// What to do with non-finite values.
    pub nan_strategy: NanStrategy,
    /// The metric's weight inside its group, finite and `≥ 0`.
    pub weight: f64,
    /// Confidence of the interval for the shift, in (0, 1).
    pub confidence: f64,
}

impl MetricConfig {
    /// A metric in group `default` with direction Either, allowed and critical increase 1.0,
    /// not critical, data not required, non-finite values as the worst ([`NanStrategy::Worst`]),
    /// weight 1 and confidence 0.98.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            group: "default".to_owned(),
            direction: Direction::Either,
            allowed_increase: 1.0,
            critical_increase: 1.0,
            critical: false,
            must_have_data: false,
            nan_strategy: NanStrategy::Worst,
            weight: 1.0,
            confidence: 0.98,
        }
    }

    /// Checks every numeric field; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), JudgeError> {
        let positive = |field, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(JudgeError::InvalidConfig {
                    field,
                    value,
                    reason: "must be finite and > 0",
                })
            }
        };
        positive("allowed_increase", self.allowed_increase)?;
        positive("critical_increase", self.critical_increase)?;
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(JudgeError::InvalidConfig {
                field: "weight",
                value: self.weight,
                reason: "must be finite and >= 0",
            });
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(JudgeError::InvalidConfig {
                field: "confidence",
                value: self.confidence,
                reason: "must lie strictly between 0 and 1",
            });
        }
        Ok(())
    }
}

/// The judgement of one metric. For [`Classification::NoData`] the statistics are NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricJudgement {
    /// The metric's name.
    pub metric: String,
    /// The classification.
    pub classification: Classification,
    /// Number of canary values judged (after NaN handling).
    pub n_canary: usize,
    /// Number of baseline values judged (after NaN handling).
    pub n_baseline: usize,
    /// The canary's Mann-Whitney U.
    pub u_statistic: f64,
    /// Two-sided p-value of the Mann-Whitney test.
    pub p_value: f64,
    /// Hodges-Lehmann shift canary − baseline.
    pub hodges_lehmann: f64,
    /// Confidence interval of the shift.
    pub interval: ConfidenceInterval,
    /// Ratio of means canary/baseline (NaN when not meaningful).
    pub effect_size: f64,
    /// Whether this metric fails the whole judgement (critical metric).
    pub failed_critical: bool,
    /// Whether this is NoData on a metric that must have data (a failure in the score).
    pub no_data_failure: bool,
    /// Why: the metric, the numbers and the rule that decided.
    pub reason: String,
}

/// The judgement of a metric without statistics (NoData).
fn no_data(
    config: &MetricConfig,
    (n_canary, n_baseline): (usize, usize),
    failure: bool,
    reason: String,
) -> MetricJudgement {
    MetricJudgement {
        metric: config.name.clone(),
        classification: Classification::NoData,
        n_canary,
        n_baseline,
        u_statistic: f64::NAN,
        p_value: f64::NAN,
        hodges_lehmann: f64::NAN,
        interval: ConfidenceInterval {
            lower: f64::NAN,
            upper: f64::NAN,
            confidence: config.confidence,
        },
        effect_size: f64::NAN,
        failed_critical: config.critical,
        no_data_failure: failure,
        reason,
    }
}

/// Mean without overflow for huge values.
fn mean(sample: &[f64]) -> f64 {
    let n = sample.len() as f64;
    sample.iter().map(|v| v / n).sum()
}

/// The ratio of means canary/baseline, NaN when a mean is negative.
pub fn mean_ratio(canary: &[f64], baseline: &[f64]) -> f64 {
    let (c, b) = (mean(canary), mean(baseline));
    if c < 0.0 || b < 0.0 {
        f64::NAN
    } else if b == 0.0 {
        if c == 0.0 { 1.0 } else { f64::INFINITY }
    } else {
        c / b
    }
}

/// Judges one metric's canary samples against its baseline samples; see the module doc for
/// the rules. Fails only on an invalid configuration.
pub fn compare(
    config: &MetricConfig,
    canary: &[f64],
    baseline: &[f64],
) -> Result<MetricJudgement, JudgeError> {
    config.validate()?;
    let name = &config.name;
    let extremes = stand_ins(canary, baseline);
    let (Some((canary, canary_bad)), Some((baseline, baseline_bad))) = (
        clean(canary, config.nan_strategy, config.direction, extremes),
        clean(baseline, config.nan_strategy, config.direction, extremes),
    ) else {
        let nans = |sample: &[f64]| sample.iter().filter(|v| v.is_nan()).count();
        return Ok(no_data(
            config,
            (canary.len(), baseline.len()),
            true,
            format!(
                "metric `{name}`: NoData — NaN values (canary {}, baseline {}) have no worst value for direction Either: the measurement fails (set a direction, or nanStrategy Remove or ReplaceWithZero)",
                nans(canary),
                nans(baseline)
            ),
        ));
    };
    let handled = match config.nan_strategy {
        NanStrategy::Worst => "kept as the worst or extreme values",
        NanStrategy::Remove => "removed",
        NanStrategy::ReplaceWithZero => "replaced with 0",
    };
    let nan_note = if canary_bad + baseline_bad > 0 {
        format!("; non-finite values {handled}: canary {canary_bad}, baseline {baseline_bad}")
    } else {
        String::new()
    };

    if canary.is_empty() || baseline.is_empty() {
        let consequence = match (config.critical, config.must_have_data) {
            (true, _) => "critical metric: fails the judgement",
            (false, true) => "data required: counts as a failure",
            (false, false) => "data not required: left out of the score",
        };
        return Ok(no_data(
            config,
            (canary.len(), baseline.len()),
            config.must_have_data || config.critical,
            format!(
                "metric `{name}`: NoData — {} canary and {} baseline values{nan_note}; {consequence}",
                canary.len(),
                baseline.len()
            ),
        ));
    }

    let test = mann_whitney(&canary, &baseline, config.confidence)?;
    let effect = mean_ratio(&canary, &baseline);
    let hl = test.hodges_lehmann;
    let (lower, upper) = (test.interval.lower, test.interval.upper);
    let tolerance = 0.25 * hl.abs();
    let allowed_decrease = 1.0 / config.allowed_increase;
    let critical_decrease = 1.0 / config.critical_increase;
    let increase_bad = matches!(config.direction, Direction::Increase | Direction::Either);
    let decrease_bad = matches!(config.direction, Direction::Decrease | Direction::Either);
    let shifted_up = lower > tolerance;
    let shifted_down = upper < -tolerance;
    let big_up = effect.is_nan() || effect >= config.allowed_increase;
    let big_down = effect.is_nan() || effect <= allowed_decrease;

    let (classification, rule) = if shifted_up && increase_bad && big_up {
        (
            Classification::High,
            format!(
                "lower bound {lower:.6} > 0.25·|HL| = {tolerance:.6} and mean ratio {effect:.4} >= allowed increase {:.4}",
                config.allowed_increase
            ),
        )
    } else if shifted_down && decrease_bad && big_down {
        (
            Classification::Low,
            format!(
                "upper bound {upper:.6} < -0.25·|HL| = {:.6} and mean ratio {effect:.4} <= allowed decrease {allowed_decrease:.4}",
                -tolerance
            ),
        )
    } else if shifted_up && !increase_bad {
        (
            Classification::Pass,
            format!(
                "canary higher (lower bound {lower:.6} > 0.25·|HL|) but direction {:?} does not fail increases",
                config.direction
            ),
        )
    } else if shifted_down && !decrease_bad {
        (
            Classification::Pass,
            format!(
                "canary lower (upper bound {upper:.6} < -0.25·|HL|) but direction {:?} does not fail decreases",
                config.direction
            ),
        )
    } else if shifted_up {
        (
            Classification::Pass,
            format!(
                "canary higher but mean ratio {effect:.4} < allowed increase {:.4}",
                config.allowed_increase
            ),
        )
    } else if shifted_down {
        (
            Classification::Pass,
            format!(
                "canary lower but mean ratio {effect:.4} > allowed decrease {allowed_decrease:.4}"
            ),
        )
    } else {
        (
            Classification::Pass,
            format!(
                "interval [{lower:.6}, {upper:.6}] lies neither above +0.25·|HL| nor below -0.25·|HL| = {tolerance:.6}"
            ),
        )
    };

    let failed_critical = config.critical
        && match classification {
            Classification::High => effect.is_nan() || effect >= config.critical_increase,
            Classification::Low => effect.is_nan() || effect <= critical_decrease,
            Classification::Pass | Classification::NoData => false,
        };
    let critical_note = if failed_critical {
        format!(
            "; critical metric beyond critical increase {:.4}: fails the judgement",
            config.critical_increase
        )
    } else {
        String::new()
    };
    let reason = format!(
        "metric `{name}`: {classification} — {rule} (HL {hl:.6}, {:.0}% interval [{lower:.6}, {upper:.6}], U = {}, p = {:.4e}, n = {}/{}){nan_note}{critical_note}",
        config.confidence * 100.0,
        test.u_statistic,
        test.p_value,
        test.n_canary,
        test.n_baseline,
    );
    Ok(MetricJudgement {
        metric: name.clone(),
        classification,
        n_canary: test.n_canary,
        n_baseline: test.n_baseline,
        u_statistic: test.u_statistic,
        p_value: test.p_value,
        hodges_lehmann: hl,
        interval: test.interval,
        effect_size: effect,
        failed_critical,
        no_data_failure: false,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: u32, offset: f64, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|i| offset + scale * f64::from((i * 37) % 101) / 100.0)
            .collect()
    }

    fn judge(config: &MetricConfig, canary: &[f64], baseline: &[f64]) -> MetricJudgement {
        compare(config, canary, baseline).unwrap()
    }

    #[test]
    fn clear_increase_is_high_and_decrease_is_low() {
        let base = ramp(60, 100.0, 10.0);
        let high = ramp(60, 150.0, 10.0);
        let config = MetricConfig::new("latency");
        let up = judge(&config, &high, &base);
        assert_eq!(up.classification, Classification::High, "{}", up.reason);
        assert!(up.reason.contains("latency") && up.reason.contains("lower bound"));
        assert!(!up.failed_critical);
        let down = judge(&config, &base, &high);
        assert_eq!(down.classification, Classification::Low, "{}", down.reason);
    }

    #[test]
    fn direction_limits_what_fails() {
        let base = ramp(60, 100.0, 10.0);
        let high = ramp(60, 150.0, 10.0);
        let mut config = MetricConfig::new("throughput");
        config.direction = Direction::Decrease;
        let r = judge(&config, &high, &base);
        assert_eq!(r.classification, Classification::Pass);
        assert!(r.reason.contains("does not fail increases"), "{}", r.reason);
        config.direction = Direction::Increase;
        assert_eq!(
            judge(&config, &base, &high).classification,
            Classification::Pass
        );
        assert_eq!(
            judge(&config, &high, &base).classification,
            Classification::High
        );
    }

    #[test]
    fn small_effect_below_allowed_increase_passes() {
        let base = ramp(200, 100.0, 1.0);
        let high = ramp(200, 101.0, 1.0);
        let mut config = MetricConfig::new("latency");
        assert_eq!(
            judge(&config, &high, &base).classification,
            Classification::High
        );
        config.allowed_increase = 1.1;
        let r = judge(&config, &high, &base);
        assert_eq!(r.classification, Classification::Pass);
        assert!(r.reason.contains("allowed increase"), "{}", r.reason);
        assert!((r.effect_size - 1.00995).abs() < 1e-3);
    }

    #[test]
    fn identical_and_all_tied_samples_pass() {
        let sample = ramp(40, 5.0, 3.0);
        let config = MetricConfig::new("m");
        let r = judge(&config, &sample, &sample);
        assert_eq!(r.classification, Classification::Pass);
        assert_eq!(r.effect_size, 1.0);
        let r = judge(&config, &[2.0; 10], &[2.0; 12]);
        assert_eq!(r.classification, Classification::Pass);
        assert_eq!(r.p_value, 1.0);
    }

    #[test]
    fn nan_only_and_empty_are_no_data_never_pass() {
        let mut config = MetricConfig::new("errors");
        config.nan_strategy = NanStrategy::Remove;
        let r = judge(&config, &[f64::NAN, f64::NAN], &[1.0, 2.0]);
        assert_eq!(r.classification, Classification::NoData);
        assert!(!r.no_data_failure && !r.failed_critical);
        assert!(
            r.reason.contains("non-finite values removed: canary 2"),
            "{}",
            r.reason
        );
        config.must_have_data = true;
        let r = judge(&config, &[1.0], &[]);
        assert_eq!(r.classification, Classification::NoData);
        assert!(r.no_data_failure && !r.failed_critical);
        config.critical = true;
        let r = judge(&config, &[], &[]);
        assert!(r.failed_critical && r.reason.contains("critical"));
    }

    #[test]
    fn nan_is_the_worst_value_for_the_direction() {
        let base = ramp(40, 100.0, 10.0);
        // Three values in four are NaN (a canary that mostly fails to report).
        let canary: Vec<f64> = base
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % 4 == 0 { v } else { f64::NAN })
            .collect();
        let mut config = MetricConfig::new("latency");
        config.direction = Direction::Increase;
        let r = judge(&config, &canary, &base);
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert_eq!((r.n_canary, r.n_baseline), (40, 40));
        assert!(
            r.reason.contains("worst") && r.reason.contains("canary 30"),
            "{}",
            r.reason
        );
        // For a metric whose decrease is bad, NaN is the lowest value.
        config.direction = Direction::Decrease;
        assert_eq!(
            judge(&config, &canary, &base).classification,
            Classification::Low
        );
        // NaN on both sides at the same rate cancels out.
        config.direction = Direction::Increase;
        assert_eq!(
            judge(&config, &canary, &canary).classification,
            Classification::Pass
        );
        // A NaN in the baseline only makes the canary look better: never High.
        assert_eq!(
            judge(&config, &base, &canary).classification,
            Classification::Pass
        );
    }

    #[test]
    fn nan_with_direction_either_fails_and_infinities_are_extremes() {
        let base = ramp(40, 100.0, 10.0);
        let config = MetricConfig::new("latency");
        let r = judge(&config, &[1.0, f64::NAN], &base);
        assert_eq!(r.classification, Classification::NoData);
        assert!(r.no_data_failure, "{}", r.reason);
        assert!(r.reason.contains("direction Either"), "{}", r.reason);
        // +Inf is the slowest value there is; -Inf the fastest.
        let slow: Vec<f64> = base
            .iter()
            .map(|v| if *v > 102.0 { f64::INFINITY } else { *v })
            .collect();
        let r = judge(&config, &slow, &base);
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        assert!(r.hodges_lehmann.is_finite() && r.interval.lower.is_finite());
        let fast: Vec<f64> = base
            .iter()
            .map(|v| if *v > 102.0 { f64::NEG_INFINITY } else { *v })
            .collect();
        assert_eq!(
            judge(&config, &fast, &base).classification,
            Classification::Low
        );
        let r = judge(&config, &[f64::INFINITY; 3], &[f64::NEG_INFINITY; 3]);
        assert!(r.hodges_lehmann.is_finite(), "{}", r.reason);
    }

    #[test]
    fn replace_with_zero_keeps_the_values() {
        let mut config = MetricConfig::new("errors");
        config.nan_strategy = NanStrategy::ReplaceWithZero;
        let r = judge(&config, &[f64::NAN, f64::INFINITY], &[0.0, 0.0]);
        assert_eq!(r.classification, Classification::Pass);
        assert_eq!((r.n_canary, r.n_baseline), (2, 2));
        assert!(r.reason.contains("replaced with 0"));
    }

    #[test]
    fn critical_metric_fails_beyond_critical_increase() {
        let base = ramp(60, 100.0, 10.0);
        let high = ramp(60, 150.0, 10.0);
        let mut config = MetricConfig::new("errors");
        config.critical = true;
        config.critical_increase = 2.0;
        let r = judge(&config, &high, &base);
        assert_eq!(r.classification, Classification::High);
        assert!(!r.failed_critical, "ratio ~1.5 is below 2.0");
        config.critical_increase = 1.3;
        let r = judge(&config, &high, &base);
        assert!(r.failed_critical && r.reason.contains("fails the judgement"));
        let r = judge(&config, &base, &high);
        assert_eq!(r.classification, Classification::Low);
        assert!(r.failed_critical);
    }

    #[test]
    fn mean_ratio_edge_cases() {
        assert_eq!(mean_ratio(&[0.0], &[0.0]), 1.0);
        assert_eq!(mean_ratio(&[1.0], &[0.0]), f64::INFINITY);
        assert!(mean_ratio(&[-1.0], &[2.0]).is_nan());
        assert_eq!(mean_ratio(&[1e308, 1e308], &[1e308]), 1.0);
    }

    #[test]
    fn single_values_and_huge_values() {
        let config = MetricConfig::new("m");
        let r = judge(&config, &[3.0], &[1.0]);
        assert_eq!(r.classification, Classification::High, "{}", r.reason);
        let r = judge(&config, &[1e308, 1.5e308], &[1e308, 1.2e308]);
        assert!(r.hodges_lehmann.is_finite() && r.effect_size.is_finite());
    }

    #[test]
    fn invalid_config_names_the_field() {
        let mut config = MetricConfig::new("m");
        config.allowed_increase = 0.0;
        let err = compare(&config, &[1.0], &[1.0]).unwrap_err();
        assert!(err.to_string().contains("allowed_increase"));
        let mut config = MetricConfig::new("m");
        config.weight = f64::NAN;
        assert!(
            compare(&config, &[1.0], &[1.0])
                .unwrap_err()
                .to_string()
                .contains("weight")
        );
    }
}
