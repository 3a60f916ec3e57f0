//! Order statistics of the pairwise differences `x[i] − y[j]` of two sorted samples, found
//! without materialising the `n·m` differences.
//!
//! With `x` and `y` sorted ascending, the differences form an implicit matrix whose rows
//! (fixed `i`) decrease with `j` and whose columns (fixed `j`) increase with `i`; this holds for
//! the rounded floating-point differences too, because rounding is monotone. For a threshold
//! `t`, one sweep in `O(n + m)` counts exactly the differences `≤ t` and finds the largest
//! difference `≤ t` and the smallest `> t` ([`PairwiseDifferences::sweep`]).
//!
//! To find the `k`-th smallest difference `D(k)` we keep a bracket of two sweeps,
//! `count(lo) < k ≤ count(hi)`, so `D(k)` lies in `[ceil(lo), floor(hi)]` (the smallest
//! difference above `lo`, the largest at or below `hi`), and shrink it. The next threshold is
//! predicted by the secant through the two cached sweeps whose counts are nearest (the rank
//! function is smooth for continuous data), aimed [`AIM`] ranks inside the far side of the
//! bracket so that it closes from both sides; the first guess is the difference of the sample
//! medians. Whenever two sweeps in a row did not halve the candidates (outliers), a candidate
//! picked at random is the pivot instead (a fixed-seed generator: the result never depends on
//! it). Every pivot is clamped to `[ceil(lo), floor(hi))`, so each sweep removes at least one
//! distinct value, and runs of tied values end the search as soon as `ceil(lo) = floor(hi)`.
//! Once at most [`GATHER`] candidates remain, they are collected and the answer is taken with
//! `select_nth_unstable`. Sweeps are cached, so the order statistics needed for a
//! Hodges-Lehmann estimate and its interval share their brackets; a caller that counted a
//! sweep already hands it over with [`PairwiseDifferences::record`] (the Mann-Whitney merge
//! counts the one at 0).
//!
//! A sweep is branch-free on the data: each row's count is advanced [`CHUNK`] columns at a
//! time by counting the comparisons that hold (they are a prefix of the chunk), starting from
//! the larger of the bracket's position and the position [`LANES`] rows earlier, so that
//! several independent chains of rows overlap in the processor. That made the 2×500-sample
//! judgement about twice as fast as a two-pointer walk whose exit branch mispredicts on
//! every row.

/// Candidate count under which the remaining candidates are gathered and selected directly.
const GATHER: usize = 512;

/// How far inside the bracket (in ranks) a predicted pivot aims, so that the bracket closes
/// from both sides.
const AIM: usize = GATHER / 4;

/// Sweep budget for one order statistic, after which the candidates are gathered regardless.
const MAX_SWEEPS: usize = 96;

/// Columns a sweep compares at once.
const CHUNK: usize = 8;

/// Interleaved chains of rows in a sweep.
const LANES: usize = 4;

/// The [`CHUNK`] values `y[p..p + CHUNK]` (sentinels past the end), for `p ≤ m`.
fn chunk(padded: &[f64], p: usize) -> &[f64; CHUNK] {
    padded[p + 1..p + 1 + CHUNK]
        .try_into()
        .expect("the padding holds a whole chunk")
}

/// How many of `x − y[p + q]` (`q < CHUNK`) exceed `t`: a prefix, as they descend.
fn count_greater(x: f64, t: f64, ys: &[f64; CHUNK]) -> usize {
    ys.iter().map(|&y| usize::from(x - y > t)).sum()
}

/// One counting sweep at a threshold.
struct Sweep {
    /// The threshold.
    value: f64,
    /// Number of differences `≤ value`.
    count_le: usize,
    /// The largest difference `≤ value` (−∞ if none).
    floor: f64,
    /// The smallest difference `> value` (+∞ if none).
    ceil: f64,
    /// Per row `i`, the number of columns `j` with `x[i] − y[j] > value`.
    positions: Vec<usize>,
}

/// The implicit matrix of pairwise differences of two ascending samples, with a cache of the
/// counting sweeps done so far.
pub(crate) struct PairwiseDifferences<'a> {
    x: &'a [f64],
    y: &'a [f64],
    /// `y` after a −∞ and before [`CHUNK`] +∞ sentinels: `padded[j + 1] = y[j]`.
    padded: Vec<f64>,
    sweeps: Vec<Sweep>,
    scratch: Vec<f64>,
    rng: u64,
}

impl<'a> PairwiseDifferences<'a> {
    /// Wraps two non-empty, ascending, NaN-free samples.
    pub(crate) fn new(x: &'a [f64], y: &'a [f64]) -> Self {
        debug_assert!(!x.is_empty() && !y.is_empty());
        debug_assert!(x.is_sorted() && y.is_sorted());
        let (n, m) = (x.len(), y.len());
        let (min, max) = (x[0] - y[m - 1], x[n - 1] - y[0]);
        // Two virtual bounds: below everything (nothing counted) and at the maximum.
        let below = Sweep {
            value: min,
            count_le: 0,
            floor: f64::NEG_INFINITY,
            ceil: min,
            positions: vec![m; n],
        };
        let top = Sweep {
            value: max,
            count_le: n * m,
            floor: max,
            ceil: f64::INFINITY,
            positions: vec![0; n],
        };
        let mut padded = Vec::with_capacity(m + 1 + CHUNK);
        padded.push(f64::NEG_INFINITY);
        padded.extend_from_slice(y);
        padded.extend([f64::INFINITY; CHUNK]);
        Self {
            x,
            y,
            padded,
            sweeps: vec![below, top],
            scratch: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// The number of differences, `n·m`.
    pub(crate) fn len(&self) -> usize {
        self.x.len() * self.y.len()
    }

    /// The median of the differences (mean of the two middle ones when `n·m` is even).
    pub(crate) fn median(&mut self) -> f64 {
        let total = self.len();
        if total % 2 == 1 {
            self.select(total.div_ceil(2), false).0
        } else {
            let (a, b) = self.select(total / 2, true);
            a / 2.0 + b / 2.0
        }
    }

    /// The `k`-th smallest difference, `1 ≤ k ≤ n·m`.
    pub(crate) fn order_statistic(&mut self, k: usize) -> f64 {
        self.select(k, false).0
    }

    /// The `k`-th smallest difference and, when `want_next`, the `(k+1)`-th (else NaN).
    fn select(&mut self, k: usize, want_next: bool) -> (f64, f64) {
        let total = self.len();
        debug_assert!(k >= 1 && k <= total && (!want_next || k < total));
        let (mut lo, mut hi) = self.bracket(k);
        let mut stalls = 0;
        for _ in 0..MAX_SWEEPS {
            let (c_lo, c_hi) = (self.sweeps[lo].count_le, self.sweeps[hi].count_le);
            let (smallest, largest) = (self.sweeps[lo].ceil, self.sweeps[hi].floor);
            if smallest >= largest {
                // Every candidate has the same value.
                let next = if !want_next {
                    f64::NAN
                } else if c_hi > k {
                    largest
                } else {
                    self.sweeps[hi].ceil
                };
                return (largest, next);
            }
            let candidates = c_hi - c_lo;
            if candidates <= GATHER {
                break;
            }
            // Aim just inside the side of the bracket that is further from `k`, so that the
            // bracket closes from both sides.
            let (gap_lo, gap_hi) = (k - c_lo, c_hi - k);
            let target = if gap_lo > gap_hi {
                k as f64 - AIM.min(gap_lo / 2) as f64
            } else {
                k as f64 + AIM.min(gap_hi / 2) as f64
            };
            let pivot = if stalls >= 2 {
                self.random_candidate(lo, hi)
            } else {
                let (v_lo, v_hi) = (self.sweeps[lo].value, self.sweeps[hi].value);
                let chord = v_lo + (target - c_lo as f64) * ((v_hi - v_lo) / candidates as f64);
                match self.predict(target) {
                    Some(t) => t,
                    None if chord.is_finite() => chord,
                    None => self.random_candidate(lo, hi),
                }
            };
            // Within [smallest, largest): the sweep then removes at least one distinct value.
            let pivot = pivot.clamp(smallest, largest.next_down());
            let new = self.sweep(pivot, lo, hi);
            if self.sweeps[new].count_le < k {
                lo = new;
            } else {
                hi = new;
            }
            let remaining = self.sweeps[hi].count_le - self.sweeps[lo].count_le;
            stalls = if remaining * 2 > candidates {
                stalls + 1
            } else {
                0
            };
        }
        self.gather_and_select(k, want_next, lo, hi)
    }

    /// A guess of the value of rank `target`: the secant through the two cached sweeps whose
    /// counts are nearest to it; with a single real sweep, a slope from the samples' spread;
    /// with none, the difference of the sample medians.
    fn predict(&self, target: f64) -> Option<f64> {
        let distance = |s: &Sweep| (s.count_le as f64 - target).abs();
        let mut nearest: Option<&Sweep> = None;
        let mut second: Option<&Sweep> = None;
        for sweep in &self.sweeps[2..] {
            if nearest.is_none_or(|n| distance(sweep) < distance(n)) {
                second = nearest;
                nearest = Some(sweep);
            } else if second.is_none_or(|n| distance(sweep) < distance(n)) {
                second = Some(sweep);
            }
        }
        let (x, y) = (self.x, self.y);
        let (n, m) = (x.len(), y.len());
        let guess = match (nearest, second) {
            (Some(a), Some(b)) if a.count_le != b.count_le => {
                a.value
                    + (target - a.count_le as f64)
                        * ((b.value - a.value) / (b.count_le as f64 - a.count_le as f64))
            }
            (Some(a), _) => {
                // Rank density of the differences near their centre, from the quartiles:
                // about n·m·0.54/IQR(D), with IQR(D)² ≈ IQR(x)² + IQR(y)².
                let iqr_x = x[3 * n / 4] - x[n / 4];
                let iqr_y = y[3 * m / 4] - y[m / 4];
                let spread = iqr_x.hypot(iqr_y);
                a.value + (target - a.count_le as f64) * spread / (0.54 * (n * m) as f64)
            }
            (None, _) => x[n / 2] - y[m / 2],
        };
        guess.is_finite().then_some(guess)
    }

    /// The tightest cached bracket for rank `k`: (largest count `< k`, smallest count `≥ k`).
    fn bracket(&self, k: usize) -> (usize, usize) {
        let (mut lo, mut hi) = (0, 1);
        for (index, sweep) in self.sweeps.iter().enumerate() {
            if sweep.count_le < k && sweep.count_le > self.sweeps[lo].count_le {
                lo = index;
            }
            if sweep.count_le >= k && sweep.count_le < self.sweeps[hi].count_le {
                hi = index;
            }
        }
        (lo, hi)
    }

    /// Counts the differences `≤ t` (with `lo.value ≤ t ≤ hi.value`), caches the sweep and
    /// returns its index.
    ///
    /// Row `i`'s position `p` (the number of `j` with `x[i] − y[j] > t`) is at least the
    /// bracket's `hi_pos[i]` and, because `x` ascends, at least row `i − LANES`'s. From there it
    /// is counted [`CHUNK`] columns at a time without branching on the data: within a row the
    /// differences descend, so the ones `> t` are a prefix and their count is the step. The
    /// [`LANES`] interleaved chains of rows are independent of each other, so the processor
    /// overlaps them. When no row's window is wider than a chunk, every row starts at
    /// `hi_pos[i]` alone.
    fn sweep(&mut self, t: f64, lo: usize, hi: usize) -> usize {
        let (x, padded) = (self.x, &self.padded);
        let lo_pos = &self.sweeps[lo].positions;
        let hi_pos = &self.sweeps[hi].positions;
        let narrow = lo_pos
            .iter()
            .zip(hi_pos)
            .all(|(&end, &start)| end - start <= CHUNK);
        let mut positions = hi_pos.clone();
        if narrow {
            for (p, &xi) in positions.iter_mut().zip(x) {
                *p += count_greater(xi, t, chunk(padded, *p));
            }
        } else {
            for (i, &xi) in x.iter().enumerate() {
                let mut p = positions[i];
                if let Some(&earlier) = i.checked_sub(LANES).map(|e| &positions[e]) {
                    p = p.max(earlier);
                }
                loop {
                    let step = count_greater(xi, t, chunk(padded, p));
                    p += step;
                    if step < CHUNK {
                        break;
                    }
                }
                positions[i] = p;
            }
        }
        self.record(t, positions)
    }

    /// Caches a sweep at `t` whose `positions[i]` is the number of `j` with `x[i] − y[j] > t`
    /// (for example one the caller counted already) and returns its index.
    pub(crate) fn record(&mut self, t: f64, positions: Vec<usize>) -> usize {
        debug_assert_eq!(positions.len(), self.x.len());
        let (x, padded) = (self.x, &self.padded);
        let m = self.y.len();
        // Each row's largest difference `≤ t` is at `y[p]`, its smallest `> t` at `y[p − 1]`;
        // the sentinels make them −∞ and +∞ past the ends. Independent accumulators per lane
        // keep the reductions off one dependency chain.
        let mut floors = [f64::NEG_INFINITY; LANES];
        let mut ceils = [f64::INFINITY; LANES];
        let mut greater = 0usize;
        for (i, (&xi, &p)) in x.iter().zip(&positions).enumerate() {
            let lane = i % LANES;
            let at = xi - padded[p + 1];
            let before = xi - padded[p];
            floors[lane] = if at > floors[lane] { at } else { floors[lane] };
            ceils[lane] = if before < ceils[lane] {
                before
            } else {
                ceils[lane]
            };
            greater += p;
        }
        let floor = floors.into_iter().fold(f64::NEG_INFINITY, f64::max);
        let ceil = ceils.into_iter().fold(f64::INFINITY, f64::min);
        self.sweeps.push(Sweep {
            value: t,
            count_le: x.len() * m - greater,
            floor,
            ceil,
            positions,
        });
        self.sweeps.len() - 1
    }

    /// A candidate (a difference in `(lo, hi]`) chosen uniformly at random.
    fn random_candidate(&mut self, lo: usize, hi: usize) -> f64 {
        // xorshift64*: deterministic, and the answer never depends on it.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let draw = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let (lo_pos, hi_pos) = (&self.sweeps[lo].positions, &self.sweeps[hi].positions);
        let candidates = self.sweeps[hi].count_le - self.sweeps[lo].count_le;
        let mut offset = (draw % candidates as u64) as usize;
        for (i, (&start, &end)) in hi_pos.iter().zip(lo_pos).enumerate() {
            let row = end - start;
            if offset < row {
                return self.x[i] - self.y[start + offset];
            }
            offset -= row;
        }
        self.sweeps[hi].floor
    }

    /// Collects the candidates of the bracket and selects rank `k` (and `k+1` when wanted).
    fn gather_and_select(&mut self, k: usize, want_next: bool, lo: usize, hi: usize) -> (f64, f64) {
        let (x, y) = (self.x, self.y);
        self.scratch.clear();
        let (lo_pos, hi_pos) = (&self.sweeps[lo].positions, &self.sweeps[hi].positions);
        for (i, (&start, &end)) in hi_pos.iter().zip(lo_pos).enumerate() {
            let xi = x[i];
            self.scratch.extend(y[start..end].iter().map(|&yj| xi - yj));
        }
        let index = k - self.sweeps[lo].count_le - 1;
        let (_, &mut answer, above) = self.scratch.select_nth_unstable_by(index, f64::total_cmp);
        let next = if !want_next {
            f64::NAN
        } else if let Some(min) = above.iter().copied().reduce(f64::min) {
            min
        } else {
            self.sweeps[hi].ceil
        };
        (answer, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(x: &[f64], y: &[f64]) -> Vec<f64> {
        let mut all: Vec<f64> = x
            .iter()
            .flat_map(|&a| y.iter().map(move |&b| a - b))
            .collect();
        all.sort_by(f64::total_cmp);
        all
    }

    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    fn check_all_ranks(x: &mut [f64], y: &mut [f64]) {
        x.sort_by(f64::total_cmp);
        y.sort_by(f64::total_cmp);
        let all = brute(x, y);
        for k in 1..=all.len() {
            let mut pd = PairwiseDifferences::new(x, y);
            assert_eq!(pd.order_statistic(k), all[k - 1], "rank {k}");
        }
    }

    #[test]
    fn every_rank_of_small_samples_matches_brute_force() {
        let mut x = [3.0, 1.0, 4.0, 1.0, 5.0];
        let mut y = [9.0, 2.0, 6.0];
        check_all_ranks(&mut x, &mut y);
        let mut x = [7.0];
        let mut y = [1.0];
        check_all_ranks(&mut x, &mut y);
    }

    #[test]
    fn large_continuous_samples_match_brute_force() {
        let mut state = 7u64;
        let mut x: Vec<f64> = (0..300).map(|_| lcg(&mut state) * 10.0).collect();
        let mut y: Vec<f64> = (0..257).map(|_| lcg(&mut state).powi(3) * 1e3).collect();
        x.sort_by(f64::total_cmp);
        y.sort_by(f64::total_cmp);
        let all = brute(&x, &y);
        let mut pd = PairwiseDifferences::new(&x, &y);
        for k in [1, 2, 1000, 38_550, 38_551, 40_000, all.len() - 1, all.len()] {
            assert_eq!(pd.order_statistic(k), all[k - 1], "rank {k}");
        }
        let expected = (all[all.len() / 2 - 1] + all[all.len() / 2]) / 2.0;
        assert_eq!(PairwiseDifferences::new(&x, &y).median(), expected);
    }

    #[test]
    fn heavy_ties_and_outliers_match_brute_force() {
        let mut state = 11u64;
        let mut x: Vec<f64> = (0..200).map(|_| (lcg(&mut state) * 4.0).floor()).collect();
        let mut y: Vec<f64> = (0..180).map(|_| (lcg(&mut state) * 3.0).floor()).collect();
        x.push(1e12);
        y.push(-1e15);
        x.sort_by(f64::total_cmp);
        y.sort_by(f64::total_cmp);
        let all = brute(&x, &y);
        let mut pd = PairwiseDifferences::new(&x, &y);
        for k in (1..=all.len()).step_by(997) {
            assert_eq!(pd.order_statistic(k), all[k - 1], "rank {k}");
        }
        let half = all.len() / 2;
        assert_eq!(
            PairwiseDifferences::new(&x, &y).median(),
            (all[half - 1] + all[half]) / 2.0
        );
    }

    #[test]
    fn a_recorded_sweep_gives_the_same_order_statistics() {
        let mut state = 5u64;
        let mut x: Vec<f64> = (0..120).map(|_| (lcg(&mut state) * 30.0).round()).collect();
        let mut y: Vec<f64> = (0..90).map(|_| lcg(&mut state) * 25.0).collect();
        x.sort_by(f64::total_cmp);
        y.sort_by(f64::total_cmp);
        let all = brute(&x, &y);
        for t in [0.0, 3.5, -100.0, 100.0] {
            let positions = x
                .iter()
                .map(|&xi| y.iter().filter(|&&yj| xi - yj > t).count())
                .collect();
            let mut pd = PairwiseDifferences::new(&x, &y);
            let index = pd.record(t, positions);
            let sweep = &pd.sweeps[index];
            let le = all.iter().filter(|&&d| d <= t).count();
            assert_eq!(sweep.count_le, le, "t = {t}");
            let floor = all.get(le.wrapping_sub(1)).copied();
            assert_eq!(sweep.floor, floor.unwrap_or(f64::NEG_INFINITY), "t = {t}");
            assert_eq!(sweep.ceil, all.get(le).copied().unwrap_or(f64::INFINITY));
            for k in [1, 2, 5000, 5400, 5401, all.len()] {
                assert_eq!(pd.order_statistic(k), all[k - 1], "t = {t}, rank {k}");
            }
        }
    }

    #[test]
    fn all_equal_differences() {
        let x = vec![2.0; 40];
        let y = vec![-1.0; 30];
        let mut pd = PairwiseDifferences::new(&x, &y);
        assert_eq!(pd.median(), 3.0);
        assert_eq!(pd.order_statistic(1), 3.0);
        assert_eq!(pd.order_statistic(1200), 3.0);
    }
}
