//! Samples for the Mann-Whitney judge from Prometheus range queries, thinned so that the judge
//! is not fed overlapping (dependent) or repeated samples.
//!
//! A `compare` metric's query is a range query: Prometheus evaluates it at every `step` of the
//! window. When the query has a range selector (`rate(x[1m])`, `histogram_quantile(0.99,
//! rate(bucket[1m]))`, a subquery `[5m:30s]`), consecutive evaluations closer than that range
//! share most of their raw samples: with a 1-minute range and a 10-second step, five sixths of
//! each value is the previous one again, and the Mann-Whitney test, which assumes independent
//! samples, would see 30 values where there are 5 independent ones and fail healthy canaries
//! far more often than its confidence says. A step shorter than the scrape interval repeats
//! raw samples outright.
//!
//! So each series is thinned to samples at least the query's longest range apart
//! ([`range_of`], [`thin`]): consecutive kept samples then read disjoint raw data. A query
//! without a range selector is thinned by nothing (it reads one raw sample per evaluation;
//! keep its step at or above the scrape interval).

use std::time::Duration;

/// The longest range in `query`'s range selectors and subqueries (`[5m]`, `[1h30m]`,
/// `[5m:30s]` counts 5m), or `None` when it has none. Brackets inside string literals (label
/// matchers such as `code=~"5[0-9]{2}"`) are skipped.
pub fn range_of(query: &str) -> Option<Duration> {
    let mut longest: Option<Duration> = None;
    let mut chars = query.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut escaped = false;
                for (_, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' && c != '`' {
                        escaped = true;
                    } else if d == c {
                        break;
                    }
                }
            }
            '[' => {
                let rest = &query[index + 1..];
                let end = rest.find([']', ':']).unwrap_or(rest.len());
                if let Some(range) = duration(rest[..end].trim()) {
                    longest = Some(longest.map_or(range, |l| l.max(range)));
                }
            }
            _ => {}
        }
    }
    longest
}

/// A PromQL duration (`1h30m`, `500ms`, `2d`).
fn duration(text: &str) -> Option<Duration> {
    const UNITS: [(&str, f64); 7] = [
        ("ms", 0.001),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
        ("d", 86_400.0),
        ("w", 604_800.0),
        ("y", 31_536_000.0),
    ];
    if text.is_empty() {
        return None;
    }
    let mut seconds = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, factor) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit))?;
        seconds += number * factor;
        rest = &rest[unit.len()..];
    }
    Some(Duration::from_secs_f64(seconds))
}

/// The values of one series (`timestamps` in seconds, ascending) keeping the first sample and
/// then each sample at least `spacing` after the last one kept.
pub fn thin(timestamps: &[f64], values: &[f64], spacing: Duration) -> Vec<f64> {
    let spacing = spacing.as_secs_f64();
    let mut kept = Vec::new();
    let mut last = f64::NEG_INFINITY;
    for (&time, &value) in timestamps.iter().zip(values) {
        // A millisecond of slack: Prometheus' step timestamps are exact multiples.
        if time - last >= spacing - 1e-3 {
            kept.push(value);
            last = time;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_longest_range() {
        let secs = Duration::from_secs;
        assert_eq!(range_of("up"), None);
        assert_eq!(range_of("rate(x[1m])"), Some(secs(60)));
        assert_eq!(
            range_of(
                "histogram_quantile(0.99, sum by (le) (rate(b[30s]))) / avg_over_time(y[1h30m])"
            ),
            Some(secs(5400))
        );
        assert_eq!(
            range_of("max_over_time(rate(x[1m])[5m:30s])"),
            Some(secs(300))
        );
        assert_eq!(range_of("rate(x[500ms])"), Some(Duration::from_millis(500)));
        // Brackets in label matchers are not ranges.
        assert_eq!(
            range_of(r#"sum(rate(x{code=~"5[0-9]{2}"}[2m]))"#),
            Some(secs(120))
        );
        assert_eq!(range_of(r#"x{a="\"[9h]"}"#), None);
        assert_eq!(range_of("x[bad]"), None);
        assert_eq!(range_of("x[5m"), Some(secs(300)));
        assert_eq!(range_of("x[]"), None);
    }

    #[test]
    fn thinning_keeps_samples_a_range_apart() {
        let times: Vec<f64> = (0..30).map(|i| 1000.0 + 10.0 * f64::from(i)).collect();
        let values: Vec<f64> = (0..30).map(f64::from).collect();
        let kept = thin(&times, &values, Duration::from_secs(60));
        assert_eq!(kept, [0.0, 6.0, 12.0, 18.0, 24.0]);
        assert_eq!(thin(&times, &values, Duration::ZERO).len(), 30);
        // Gaps (a series that was absent) restart the spacing from the next sample.
        let kept = thin(
            &[0.0, 10.0, 200.0, 230.0, 260.0],
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            Duration::from_secs(60),
        );
        assert_eq!(kept, [1.0, 3.0, 5.0]);
    }
}
