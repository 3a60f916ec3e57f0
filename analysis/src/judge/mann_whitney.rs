//! The two-sided Mann-Whitney U (Wilcoxon rank-sum) test of canary against baseline, with the
//! Hodges-Lehmann estimate of the shift and its confidence interval.
//!
//! # Test
//! Mid-ranks are given to ties. `U` is the canary's statistic,
//! `U = R_canary − n(n+1)/2 = #{canary > baseline} + ½·#{canary = baseline}` over all pairs
//! (R's `W`, scipy's `statistic` with the canary as `x`). The p-value is the normal
//! approximation with tie and continuity correction, as R's
//! `wilcox.test(canary, baseline, exact = FALSE, correct = TRUE)` and scipy's
//! `mannwhitneyu(canary, baseline, method = "asymptotic", use_continuity = True)`:
//! `σ² = nm/12 · ((N+1) − Σ(t³−t)/(N(N−1)))` over the tie groups of the pooled sample,
//! `z = (U − nm/2 − sign(U − nm/2)·½)/σ`, `p = min(1, 2·Φ(−|z|))`. When every value is tied
//! (`σ = 0`) there is no evidence either way and `p = 1`, `z = 0`.
//!
//! # Estimate and interval
//! The Hodges-Lehmann estimate is the median of the `n·m` differences `canary[i] − baseline[j]`
//! (the mean of the two middle ones when `n·m` is even).
//!
//! The interval reproduces R's `wilcox.test(conf.int = TRUE, exact = FALSE, correct = TRUE)`
//! *exactly*, without its `uniroot` tolerance. R finds the roots in `d` of
//! `f(d) = (U(d) − nm/2 − sign(U(d) − nm/2)·½)/σ_d − z_q`, where `U(d)` is the statistic of
//! `canary − d` against `baseline` and `z_q = ±Φ⁻¹(1 − α/2)`. Between two consecutive
//! pairwise differences `U(d) = #{D > d}` is constant and the only ties are those inside each
//! sample, so `σ_d = σ₀ = sqrt(nm/12 · ((N+1) − (Σ_canary(t³−t) + Σ_baseline(t³−t))/(N(N−1))))`;
//! `f` is a non-increasing step function that jumps only at pairwise differences, so each root
//! is an order statistic `D(k)` of the differences. Solving the step condition gives
//! `lower = D(k_lo)` with `k_lo = max(1, ⌈nm/2 − ½ − z·σ₀⌉)` and
//! `upper = D(k_hi)` with `k_hi = min(nm, ⌈nm/2 + ½ + z·σ₀⌉)`; the clamps are R's fallbacks to
//! `min(D)` and `max(D)` when `f` has no sign change. The order statistics are found by
//! the private `pairwise` module without materialising the differences, in about `O((n + m)·log)`.

use statrs::distribution::{ContinuousCDF, Normal};

use super::error::JudgeError;
use super::pairwise::PairwiseDifferences;

/// A two-sided confidence interval for the shift canary − baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceInterval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// The confidence level, in (0, 1).
    pub confidence: f64,
}

/// The result of [`mann_whitney`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// Number of canary values.
    pub n_canary: usize,
    /// Number of baseline values.
    pub n_baseline: usize,
    /// The canary's U statistic (R's `W`).
    pub u_statistic: f64,
    /// The standardised statistic with continuity correction (positive: canary higher).
    pub z: f64,
    /// Two-sided p-value, normal approximation with tie and continuity correction.
    pub p_value: f64,
    /// Hodges-Lehmann estimate of the shift canary − baseline.
    pub hodges_lehmann: f64,
    /// Confidence interval for the shift, as R's `wilcox.test(conf.int = TRUE)`.
    pub interval: ConfidenceInterval,
}

/// Tie and rank summaries of two sorted samples, gathered in one merge.
struct Merged {
    /// `#{x > y} + ½·#{x = y}`.
    u: f64,
    /// `Σ(t³ − t)` over the tie groups of the pooled sample.
    pooled_ties: f64,
    /// `Σ(t³ − t)` over the tie groups inside each sample, added.
    within_ties: f64,
    /// Per canary value `x[i]`, `#{j : y[j] < x[i]}`.
    below: Vec<usize>,
}

fn ties_term(t: usize) -> f64 {
    let t = t as f64;
    t * t * t - t
}

/// Columns compared at once when counting the baseline values below a canary value.
const CHUNK: usize = 8;

/// Interleaved chains of canary values when counting.
const LANES: usize = 4;

/// The length of each run of equal values in a sorted sample.
fn runs(sorted: &[f64]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let first = *sorted.get(start)?;
        let mut end = start + 1;
        while end < sorted.len() && sorted[end] == first {
            end += 1;
        }
        let run = (start, end - start);
        start = end;
        Some(run)
    })
}

/// Summarises two sorted samples: `U` from `#{y < x[i]}` for every `i` and the tie groups from
/// the runs of equal values, with `(a+b)³ − (a+b) = (a³ − a) + (b³ − b) + 3ab(a+b)` for a
/// value held `a` times by `x` and `b` times by `y`.
///
/// `#{y < x[i]}` is at least its value for `x[i − LANES]` (both ascend); from there it is
/// counted [`CHUNK`] values at a time without branching on the data (the values below `x[i]`
/// are a prefix of `y`), and the [`LANES`] interleaved chains overlap in the processor.
fn merge(x: &[f64], y: &[f64]) -> Merged {
    let padded: Vec<f64> = y.iter().copied().chain([f64::INFINITY; CHUNK]).collect();
    let mut below = vec![0usize; x.len()];
    for (i, &xi) in x.iter().enumerate() {
        let mut q = i.checked_sub(LANES).map_or(0, |earlier| below[earlier]);
        loop {
            let ys: &[f64; CHUNK] = padded[q..q + CHUNK]
                .try_into()
                .expect("the padding holds a whole chunk");
            let step: usize = ys.iter().map(|&v| usize::from(v < xi)).sum();
            q += step;
            if step < CHUNK {
                break;
            }
        }
        below[i] = q;
    }
    let mut u = below.iter().sum::<usize>() as f64;
    let mut within_ties = 0.0;
    let mut cross_ties = 0.0;
    for (start, a) in runs(x) {
        let (value, first_equal) = (x[start], below[start]);
        let mut b = 0;
        while padded[first_equal + b] == value {
            b += 1;
        }
        u += 0.5 * (a * b) as f64;
        within_ties += ties_term(a);
        cross_ties += 3.0 * (a * b) as f64 * (a + b) as f64;
    }
    for (_, b) in runs(y) {
        within_ties += ties_term(b);
    }
    Merged {
        u,
        pooled_ties: within_ties + cross_ties,
        within_ties,
        below,
    }
}

fn sorted_checked(sample: &[f64], name: &'static str) -> Result<Vec<f64>, JudgeError> {
    if sample.is_empty() {
        return Err(JudgeError::EmptySample { sample: name });
    }
    if let Some((index, &value)) = sample.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(JudgeError::NonFiniteValue {
            sample: name,
            index,
            value,
        });
    }
    // Sorting integer keys is about twice as fast as sorting floats with a comparator.
    let mut keys: Vec<u64> = sample.iter().map(|&v| order_key(v)).collect();
    keys.sort_unstable();
    Ok(keys.into_iter().map(from_order_key).collect())
}

/// Maps a float to an integer with the same order as `f64::total_cmp`.
fn order_key(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Inverse of [`order_key`].
fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    })
}

/// Runs the two-sided Mann-Whitney test of `canary` against `baseline` and computes the
/// Hodges-Lehmann shift with its interval at `confidence` (e.g. 0.98).
///
/// Both samples must be non-empty and finite (filter NaN first, see
/// [`super::compare`]); `confidence` must lie in (0, 1).
pub fn mann_whitney(
    canary: &[f64],
    baseline: &[f64],
    confidence: f64,
) -> Result<MannWhitney, JudgeError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(JudgeError::InvalidConfig {
            field: "confidence",
            value: confidence,
            reason: "must lie strictly between 0 and 1",
        });
    }
    let x = sorted_checked(canary, "canary")?;
    let y = sorted_checked(baseline, "baseline")?;
    let (n, m) = (x.len() as f64, y.len() as f64);
    let total = n + m;
    let merged = merge(&x, &y);
    let half = n * m / 2.0;
    let normal = Normal::standard();

    let variance = n * m / 12.0 * ((total + 1.0) - merged.pooled_ties / (total * (total - 1.0)));
    let sigma = variance.max(0.0).sqrt();
    let deviation = merged.u - half;
    let (z, p_value) = if sigma > 0.0 {
        let corrected = deviation - deviation.signum() * 0.5 * f64::from(deviation != 0.0);
        let z = corrected / sigma;
        (z, (2.0 * normal.sf(z.abs())).min(1.0))
    } else {
        (0.0, 1.0)
    };

    let mut differences = PairwiseDifferences::new(&x, &y);
    // `x[i] − y[j] > 0` exactly when `y[j] < x[i]`: the merge counted the sweep at 0.
    differences.record(0.0, merged.below);
    let hodges_lehmann = differences.median();
    let count = differences.len();
    let sigma0 = (n * m / 12.0 * ((total + 1.0) - merged.within_ties / (total * (total - 1.0))))
        .max(0.0)
        .sqrt();
    let quantile = normal.inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    let rank = |value: f64| -> usize { (value.ceil().max(1.0) as usize).min(count) };
    let lower = differences.order_statistic(rank(half - 0.5 - quantile * sigma0));
    let upper = differences.order_statistic(rank(half + 0.5 + quantile * sigma0));

    Ok(MannWhitney {
        n_canary: x.len(),
        n_baseline: y.len(),
        u_statistic: merged.u,
        z,
        p_value,
        hodges_lehmann,
        interval: ConfidenceInterval {
            lower,
            upper,
            confidence,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_non_finite_samples_are_refused() {
        assert_eq!(
            mann_whitney(&[], &[1.0], 0.98),
            Err(JudgeError::EmptySample { sample: "canary" })
        );
        assert_eq!(
            mann_whitney(&[1.0], &[], 0.98),
            Err(JudgeError::EmptySample { sample: "baseline" })
        );
        assert!(matches!(
            mann_whitney(&[1.0, f64::NAN], &[1.0], 0.98),
            Err(JudgeError::NonFiniteValue {
                sample: "canary",
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            mann_whitney(&[1.0], &[f64::INFINITY], 0.98),
            Err(JudgeError::NonFiniteValue {
                sample: "baseline",
                ..
            })
        ));
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(
                mann_whitney(&[1.0], &[2.0], bad),
                Err(JudgeError::InvalidConfig {
                    field: "confidence",
                    ..
                })
            ));
        }
    }

    #[test]
    fn order_keys_sort_like_total_cmp() {
        let mut values = vec![
            3.5,
            -0.0,
            0.0,
            -1e300,
            1e-310,
            -2.0,
            7.0,
            f64::MIN,
            f64::MAX,
        ];
        let mut keys: Vec<u64> = values.iter().map(|&v| order_key(v)).collect();
        keys.sort_unstable();
        let sorted: Vec<f64> = keys.into_iter().map(from_order_key).collect();
        values.sort_by(f64::total_cmp);
        assert_eq!(
            sorted.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn merge_matches_counting_every_pair() {
        let mut state = 3u64;
        let mut draw = |scale: f64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 * scale).floor()
        };
        for (n, m, scale) in [
            (40, 35, 6.0),
            (200, 150, 40.0),
            (9, 300, 3.0),
            (64, 64, 1e9),
        ] {
            let mut x: Vec<f64> = (0..n).map(|_| draw(scale)).collect();
            let mut y: Vec<f64> = (0..m).map(|_| draw(scale) + 0.5 * draw(2.0)).collect();
            x.sort_by(f64::total_cmp);
            y.sort_by(f64::total_cmp);
            let merged = merge(&x, &y);
            let mut u = 0.0;
            for &a in &x {
                u += y
                    .iter()
                    .map(|&b| f64::from(a > b) + 0.5 * f64::from(a == b))
                    .sum::<f64>();
            }
            let below: Vec<usize> = x
                .iter()
                .map(|&a| y.iter().filter(|&&b| b < a).count())
                .collect();
            let ties = |sample: &[f64]| -> f64 {
                let mut values: Vec<f64> = sample.to_vec();
                values.dedup();
                values
                    .iter()
                    .map(|&v| ties_term(sample.iter().filter(|&&s| s == v).count()))
                    .sum()
            };
            let mut pooled: Vec<f64> = x.iter().chain(&y).copied().collect();
            pooled.sort_by(f64::total_cmp);
            assert_eq!(merged.u, u, "n = {n}, m = {m}");
            assert_eq!(merged.below, below);
            assert_eq!(merged.within_ties, ties(&x) + ties(&y));
            assert_eq!(merged.pooled_ties, ties(&pooled));
        }
    }

    #[test]
    fn all_ties_give_no_evidence() {
        let r = mann_whitney(&[5.0; 10], &[5.0; 7], 0.98).unwrap();
        assert_eq!(r.u_statistic, 35.0);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.z, 0.0);
        assert_eq!(r.hodges_lehmann, 0.0);
        assert_eq!((r.interval.lower, r.interval.upper), (0.0, 0.0));
    }

    #[test]
    fn single_values() {
        let r = mann_whitney(&[3.0], &[1.0], 0.98).unwrap();
        assert_eq!(r.u_statistic, 1.0);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.hodges_lehmann, 2.0);
        assert_eq!((r.interval.lower, r.interval.upper), (2.0, 2.0));
    }

    #[test]
    fn identical_samples_are_centred_on_zero() {
        let sample: Vec<f64> = (0..50).map(|i| f64::from(i) * 0.37).collect();
        let r = mann_whitney(&sample, &sample, 0.98).unwrap();
        assert_eq!(r.u_statistic, 1250.0);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.hodges_lehmann, 0.0);
        assert!(r.interval.lower < 0.0 && r.interval.upper > 0.0);
        assert_eq!(r.interval.lower, -r.interval.upper);
    }

    #[test]
    fn clear_shift_is_detected_in_both_directions() {
        let base: Vec<f64> = (0..40).map(|i| f64::from(i % 13)).collect();
        let high: Vec<f64> = base.iter().map(|v| v + 20.0).collect();
        let up = mann_whitney(&high, &base, 0.98).unwrap();
        assert_eq!(up.u_statistic, 1600.0);
        assert!(up.p_value < 1e-10 && up.z > 0.0);
        assert_eq!(up.hodges_lehmann, 20.0);
        assert!(up.interval.lower > 0.0);
        let down = mann_whitney(&base, &high, 0.98).unwrap();
        assert_eq!(down.u_statistic, 0.0);
        assert_eq!(down.p_value, up.p_value);
        assert_eq!(down.hodges_lehmann, -20.0);
        assert!(down.interval.upper < 0.0);
    }

    #[test]
    fn huge_values_stay_finite() {
        let canary = [1e300, 2e300, 3e300, 4e300];
        let baseline = [-1e300, 0.0, 1e300];
        let r = mann_whitney(&canary, &baseline, 0.9).unwrap();
        assert!(r.hodges_lehmann.is_finite() && r.p_value.is_finite());
        assert!((r.hodges_lehmann - 2.5e300).abs() <= 1e286);
        assert!(r.interval.lower <= r.hodges_lehmann && r.hodges_lehmann <= r.interval.upper);
    }

    #[test]
    fn interval_contains_estimate_and_widens_with_confidence() {
        let canary: Vec<f64> = (0..30).map(|i| f64::from((i * 7) % 11) + 1.5).collect();
        let baseline: Vec<f64> = (0..25).map(|i| f64::from((i * 5) % 9)).collect();
        let narrow = mann_whitney(&canary, &baseline, 0.8).unwrap();
        let wide = mann_whitney(&canary, &baseline, 0.99).unwrap();
        assert!(wide.interval.lower <= narrow.interval.lower);
        assert!(wide.interval.upper >= narrow.interval.upper);
        assert!(narrow.interval.lower <= narrow.hodges_lehmann);
        assert!(narrow.hodges_lehmann <= narrow.interval.upper);
    }
}
