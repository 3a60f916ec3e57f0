//! The canary score: per-metric judgements combined into 0..100 and a Pass/Marginal/Fail verdict.
//!
//! # Rules (Kayenta's)
//! - Per group: `100 × Pass / (Pass + High + Low + NoDataFail)`, each metric counted with its
//!   [`weight`](super::compare::MetricConfig::weight). NoData on a metric that does not
//!   require data is left out of the group; a group with nothing counted is left out of the
//!   score.
//! - Groups are combined by their weights ([`ScoreConfig::group_weights`]; a group not listed
//!   weighs 1).
//! - The score is forced to 0 when a critical metric fails, when at least half of the metrics
//!   have no data, and when nothing at all could be counted: missing data is never a pass.
//! - `score ≥ pass_threshold` → [`ScoreVerdict::Pass`], `≥ marginal_threshold` →
//!   [`ScoreVerdict::Marginal`], else [`ScoreVerdict::Fail`].

use super::compare::{Classification, MetricConfig, MetricJudgement};
use super::error::JudgeError;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreVerdict {
    /// Score at or above the pass threshold.
    Pass,
    /// Score between the marginal and the pass threshold.
    Marginal,
    /// Score below the marginal threshold.
    Fail,
}

/// Thresholds and group weights of the score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreConfig {
    /// Score at or above which the canary passes, in [0, 100] (default 95).
    pub pass_threshold: f64,
    /// Score at or above which the canary is marginal, in [0, pass_threshold] (default 75).
    pub marginal_threshold: f64,
    /// Weight of each named group, finite and `≥ 0`; unlisted groups weigh 1.
    pub group_weights: Vec<(String, f64)>,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            pass_threshold: 95.0,
            marginal_threshold: 75.0,
            group_weights: Vec::new(),
        }
    }
}

/// One judged metric with its group and weight, as the score takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredMetric {
    /// The metric's group.
    pub group: String,
    /// The metric's weight inside its group.
    pub weight: f64,
    /// The metric's judgement.
    pub judgement: MetricJudgement,
}

impl ScoredMetric {
    /// Pairs a judgement with the group and weight of the configuration that produced it.
    pub fn new(config: &MetricConfig, judgement: MetricJudgement) -> Self {
        Self {
            group: config.group.clone(),
            weight: config.weight,
            judgement,
        }
    }
}

/// One group's part of the score.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupScore {
    /// The group.
    pub group: String,
    /// The group's weight.
    pub weight: f64,
    /// Weighted count of Pass metrics.
    pub pass: f64,
    /// Weighted count of High, Low and required-NoData metrics.
    pub failed: f64,
    /// `100 × pass / (pass + failed)`, or `None` when nothing was counted.
    pub score: Option<f64>,
}

/// The combined judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// 0..100.
    pub score: f64,
    /// The verdict from the thresholds.
    pub verdict: ScoreVerdict,
    /// Per-group details, in order of first appearance.
    pub groups: Vec<GroupScore>,
    /// Names of the critical metrics that failed.
    pub failed_critical: Vec<String>,
    /// Why: the rule that set the score.
    pub reason: String,
}

fn validate(config: &ScoreConfig) -> Result<(), JudgeError> {
    if !(0.0..=100.0).contains(&config.pass_threshold) {
        return Err(JudgeError::InvalidConfig {
            field: "pass_threshold",
            value: config.pass_threshold,
            reason: "must lie in [0, 100]",
        });
    }
    if !(0.0..=config.pass_threshold).contains(&config.marginal_threshold) {
        return Err(JudgeError::InvalidConfig {
            field: "marginal_threshold",
            value: config.marginal_threshold,
            reason: "must lie in [0, pass_threshold]",
        });
    }
    for &(_, weight) in &config.group_weights {
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(JudgeError::InvalidConfig {
                field: "group_weights",
                value: weight,
                reason: "must be finite and >= 0",
            });
        }
    }
    Ok(())
}

/// Combines judged metrics into a score and verdict; fails only on an invalid configuration
/// (thresholds, group or metric weights).
pub fn score(metrics: &[ScoredMetric], config: &ScoreConfig) -> Result<Score, JudgeError> {
    validate(config)?;
    let mut groups: Vec<GroupScore> = Vec::new();
    for metric in metrics {
        if !(metric.weight.is_finite() && metric.weight >= 0.0) {
            return Err(JudgeError::InvalidConfig {
                field: "weight",
                value: metric.weight,
                reason: "must be finite and >= 0",
            });
        }
        let index = match groups.iter().position(|g| g.group == metric.group) {
            Some(index) => index,
            None => {
                let weight = config
                    .group_weights
                    .iter()
                    .find(|(name, _)| *name == metric.group)
                    .map_or(1.0, |&(_, w)| w);
                groups.push(GroupScore {
                    group: metric.group.clone(),
                    weight,
                    pass: 0.0,
                    failed: 0.0,
                    score: None,
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        let judgement = &metric.judgement;
        match judgement.classification {
            Classification::Pass => group.pass += metric.weight,
            Classification::High | Classification::Low => group.failed += metric.weight,
            Classification::NoData if judgement.no_data_failure => group.failed += metric.weight,
            Classification::NoData => {}
        }
    }
    let (mut weighted, mut total_weight) = (0.0, 0.0);
    for group in &mut groups {
        let counted = group.pass + group.failed;
        if counted > 0.0 {
            let value = 100.0 * group.pass / counted;
            group.score = Some(value);
            weighted += group.weight * value;
            total_weight += group.weight;
        }
    }
    let failed_critical: Vec<String> = metrics
        .iter()
        .filter(|m| m.judgement.failed_critical)
        .map(|m| m.judgement.metric.clone())
        .collect();
    let no_data = metrics
        .iter()
        .filter(|m| m.judgement.classification == Classification::NoData)
        .count();

    let (value, reason) = if metrics.is_empty() {
        (0.0, "no metrics were judged".to_owned())
    } else if !failed_critical.is_empty() {
        (
            0.0,
            format!("critical metric(s) failed: {}", failed_critical.join(", ")),
        )
    } else if 2 * no_data >= metrics.len() {
        (
            0.0,
            format!(
                "{no_data} of {} metrics have no data (at least half)",
                metrics.len()
            ),
        )
    } else if total_weight <= 0.0 {
        (0.0, "no metric or group carried any weight".to_owned())
    } else {
        let value = weighted / total_weight;
        (
            value,
            format!("weighted score {value:.2} over {} group(s)", groups.len()),
        )
    };
    let verdict = if value >= config.pass_threshold && value > 0.0 {
        ScoreVerdict::Pass
    } else if value >= config.marginal_threshold && value > 0.0 {
        ScoreVerdict::Marginal
    } else {
        ScoreVerdict::Fail
    };
    Ok(Score {
        score: value,
        verdict,
        groups,
        failed_critical,
        reason: format!(
            "{reason}: {verdict:?} (pass >= {}, marginal >= {})",
            config.pass_threshold, config.marginal_threshold
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::compare::compare;

    fn judged(name: &str, group: &str, class: Classification) -> ScoredMetric {
        let mut config = MetricConfig::new(name);
        config.group = group.to_owned();
        let (canary, baseline): (Vec<f64>, Vec<f64>) = match class {
            Classification::Pass => (vec![1.0, 2.0, 3.0], vec![1.0, 2.0, 3.0]),
            Classification::High => (
                (0..30).map(|i| f64::from(i) + 100.0).collect(),
                (0..30).map(f64::from).collect(),
            ),
            Classification::Low => (
                (0..30).map(f64::from).collect(),
                (0..30).map(|i| f64::from(i) + 100.0).collect(),
            ),
            Classification::NoData => (vec![], vec![1.0]),
        };
        let judgement = compare(&config, &canary, &baseline).unwrap();
        assert_eq!(judgement.classification, class);
        ScoredMetric::new(&config, judgement)
    }

    #[test]
    fn all_pass_scores_100() {
        let metrics = vec![
            judged("a", "g", Classification::Pass),
            judged("b", "g", Classification::Pass),
        ];
        let s = score(&metrics, &ScoreConfig::default()).unwrap();
        assert_eq!((s.score, s.verdict), (100.0, ScoreVerdict::Pass));
    }

    #[test]
    fn weighted_groups() {
        let metrics = vec![
            judged("a", "latency", Classification::Pass),
            judged("b", "latency", Classification::High),
            judged("c", "errors", Classification::Pass),
            judged("d", "errors", Classification::Pass),
            judged("e", "errors", Classification::Pass),
            judged("f", "errors", Classification::Low),
        ];
        let config = ScoreConfig {
            group_weights: vec![("latency".into(), 1.0), ("errors".into(), 3.0)],
            ..ScoreConfig::default()
        };
        let s = score(&metrics, &config).unwrap();
        // (1·50 + 3·75) / 4 = 68.75
        assert!((s.score - 68.75).abs() < 1e-12);
        assert_eq!(s.verdict, ScoreVerdict::Fail);
        let config = ScoreConfig {
            marginal_threshold: 60.0,
            ..config
        };
        assert_eq!(
            score(&metrics, &config).unwrap().verdict,
            ScoreVerdict::Marginal
        );
    }

    #[test]
    fn no_data_rules() {
        // Optional NoData is left out; required NoData fails.
        let mut metrics = vec![
            judged("a", "g", Classification::Pass),
            judged("b", "g", Classification::Pass),
            judged("c", "g", Classification::NoData),
        ];
        assert_eq!(
            score(&metrics, &ScoreConfig::default()).unwrap().score,
            100.0
        );
        metrics[2].judgement.no_data_failure = true;
        let s = score(&metrics, &ScoreConfig::default()).unwrap();
        assert!((s.score - 200.0 / 3.0).abs() < 1e-12);
        // Half without data forces 0.
        metrics.push(judged("d", "g", Classification::NoData));
        let s = score(&metrics, &ScoreConfig::default()).unwrap();
        assert_eq!((s.score, s.verdict), (0.0, ScoreVerdict::Fail));
        assert!(s.reason.contains("no data"));
        // Nothing at all is never a pass.
        let s = score(&[], &ScoreConfig::default()).unwrap();
        assert_eq!(s.verdict, ScoreVerdict::Fail);
    }

    #[test]
    fn failing_critical_metric_forces_zero() {
        let mut metrics = vec![
            judged("a", "g", Classification::Pass),
            judged("b", "g", Classification::High),
        ];
        metrics[1].judgement.failed_critical = true;
        let s = score(&metrics, &ScoreConfig::default()).unwrap();
        assert_eq!((s.score, s.verdict), (0.0, ScoreVerdict::Fail));
        assert_eq!(s.failed_critical, vec!["b".to_owned()]);
    }

    #[test]
    fn invalid_thresholds_are_refused() {
        let config = ScoreConfig {
            pass_threshold: 50.0,
            marginal_threshold: 60.0,
            ..ScoreConfig::default()
        };
        assert!(
            score(&[], &config)
                .unwrap_err()
                .to_string()
                .contains("marginal_threshold")
        );
    }
}
