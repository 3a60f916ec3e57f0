//! Non-finite samples (NaN, ±Inf) in a comparison: never dropped silently. What each
//! [`NanStrategy`] does with them, and the finite values that stand for ±Inf in the rank test
//! (rule 1 of [`super::compare`]).

use super::direction::Direction;

/// Bound on the values the rank test sees: a quarter of the largest `f64`, so that
/// differences of two values stay finite.
const MAGNITUDE: f64 = f64::MAX / 4.0;

/// The values that stand for `−Inf` and `+Inf` in the rank test of `canary` against
/// `baseline`: beyond every finite value of both (see the module doc).
pub fn stand_ins(canary: &[f64], baseline: &[f64]) -> (f64, f64) {
    let finite = || {
        canary
            .iter()
            .chain(baseline)
            .copied()
            .filter(|v| v.is_finite())
    };
    let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (
            lo.min(v.clamp(-MAGNITUDE, MAGNITUDE)),
            hi.max(v.clamp(-MAGNITUDE, MAGNITUDE)),
        )
    });
    if lo > hi {
        return (-1.0, 1.0);
    }
    let width = |edge: f64| {
        let w = (hi - lo).max(edge.abs());
        if w > 0.0 { w } else { 1.0 }
    };
    (
        (lo - width(lo)).max(-2.0 * MAGNITUDE),
        (hi + width(hi)).min(2.0 * MAGNITUDE),
    )
}

/// What to do with non-finite values (NaN, ±Inf).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NanStrategy {
    /// Keep ±Inf as the extremes and count NaN as the worst value for the direction; with
    /// direction Either a NaN fails the metric. See the module doc.
    #[default]
    Worst,
    /// Drop them (an explicit choice: the reason says how many).
    Remove,
    /// Replace them with 0.
    ReplaceWithZero,
}

/// Applies the NaN strategy; returns the cleaned sample and how many values it touched, or
/// `None` when a NaN has no worst value (strategy Worst, direction Either).
pub(super) fn clean(
    sample: &[f64],
    strategy: NanStrategy,
    direction: Direction,
    (low, high): (f64, f64),
) -> Option<(Vec<f64>, usize)> {
    let bad = sample.iter().filter(|v| !v.is_finite()).count();
    let cleaned = match strategy {
        NanStrategy::Worst => {
            let nan = match direction {
                Direction::Increase => Some(high),
                Direction::Decrease => Some(low),
                Direction::Either => None,
            };
            sample
                .iter()
                .map(|&v| {
                    if v.is_nan() {
                        nan
                    } else if v == f64::INFINITY {
                        Some(high)
                    } else if v == f64::NEG_INFINITY {
                        Some(low)
                    } else {
                        Some(v.clamp(-MAGNITUDE, MAGNITUDE))
                    }
                })
                .collect::<Option<Vec<f64>>>()?
        }
        NanStrategy::Remove => sample.iter().copied().filter(|v| v.is_finite()).collect(),
        NanStrategy::ReplaceWithZero => sample
            .iter()
            .map(|&v| if v.is_finite() { v } else { 0.0 })
            .collect(),
    };
    Some((cleaned, bad))
}
