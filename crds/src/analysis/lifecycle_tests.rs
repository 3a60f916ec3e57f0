//! Unit tests of the AnalysisRun lifecycle: one test per rule.

use super::*;
use crate::analysis::run::RunRevisions;
use crate::analysis::template::{MetricProvider, PrometheusMetric};

fn metric(name: &str) -> MetricSpec {
    MetricSpec {
        name: name.to_owned(),
        provider: MetricProvider {
            prometheus: Some(PrometheusMetric {
                address: "http://prometheus:9090".to_owned(),
                query: Some("vector(0)".to_owned()),
                timeout: None,
            }),
        },
        success_condition: Some("result < 0.05".to_owned()),
        ..MetricSpec::default()
    }
}

fn run_spec(metrics: Vec<MetricSpec>) -> AnalysisRunSpec {
    AnalysisRunSpec {
        rollout: "checkout".to_owned(),
        revisions: RunRevisions {
            canary: "abc".to_owned(),
            stable: Some("def".to_owned()),
        },
        metrics,
        ..AnalysisRunSpec::default()
    }
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

fn outcome(metric: &str, phase: AnalysisPhase, message: &str) -> Option<NewMeasurement> {
    Some(NewMeasurement {
        metric: metric.to_owned(),
        measurement: Measurement {
            phase,
            value: Some("0.01".to_owned()),
            message: Some(message.to_owned()),
            ..Measurement::default()
        },
    })
}

/// Starts the run at t(0) and records `phases` for metric `m` at `step` seconds apart.
fn run_through(spec: &AnalysisRunSpec, phases: &[AnalysisPhase], step: i64) -> Transition {
    let mut transition = advance(spec, None, t(0), None).unwrap();
    for (index, phase) in phases.iter().enumerate() {
        let now = t(index as i64 * step);
        transition = advance(
            spec,
            Some(&transition.status),
            now,
            outcome("m", *phase, &format!("measurement {index}")),
        )
        .unwrap();
    }
    transition
}

#[test]
fn a_new_run_starts_running_with_every_metric_due() {
    let spec = run_spec(vec![metric("a"), metric("b")]);
    let transition = advance(&spec, None, t(0), None).unwrap();
    assert_eq!(transition.status.phase, AnalysisPhase::Running);
    assert_eq!(transition.status.started_at, Some(Time(t(0))));
    assert_eq!(transition.due, ["a", "b"]);
    assert_eq!(transition.next_measurement_at, None);
    let names: Vec<_> = transition
        .status
        .metric_results
        .iter()
        .map(|r| &r.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn initial_delay_postpones_the_first_measurement() {
    let mut delayed = metric("m");
    delayed.initial_delay = Some("30s".to_owned());
    let spec = run_spec(vec![delayed]);
    let started = advance(&spec, None, t(0), None).unwrap();
    assert!(started.due.is_empty());
    assert_eq!(started.next_measurement_at, Some(t(30)));
    let later = advance(&spec, Some(&started.status), t(29), None).unwrap();
    assert!(later.due.is_empty());
    let due = advance(&spec, Some(&started.status), t(30), None).unwrap();
    assert_eq!(due.due, ["m"]);
}

#[test]
fn without_interval_one_measurement_decides() {
    let spec = run_spec(vec![metric("m")]);
    let done = run_through(&spec, &[AnalysisPhase::Successful], 0);
    assert_eq!(done.status.phase, AnalysisPhase::Successful);
    assert_eq!(done.status.finished_at, Some(Time(t(0))));
    assert!(done.due.is_empty());
    assert_eq!(done.next_measurement_at, None);
    let message = done.status.message.unwrap();
    assert!(message.contains("measurement 0"), "{message}");
}

#[test]
fn interval_and_count_schedule_the_measurements() {
    let mut repeated = metric("m");
    repeated.interval = Some("1m".to_owned());
    repeated.count = Some(3);
    let spec = run_spec(vec![repeated]);
    let first = run_through(&spec, &[AnalysisPhase::Successful], 60);
    assert_eq!(first.status.phase, AnalysisPhase::Running);
    assert!(first.due.is_empty());
    assert_eq!(first.next_measurement_at, Some(t(60)));
    let early = advance(&spec, Some(&first.status), t(59), None).unwrap();
    assert!(early.due.is_empty());
    let on_time = advance(&spec, Some(&first.status), t(60), None).unwrap();
    assert_eq!(on_time.due, ["m"]);
    let done = run_through(&spec, &[AnalysisPhase::Successful; 3], 60);
    assert_eq!(done.status.phase, AnalysisPhase::Successful);
    assert_eq!(done.status.metric_results[0].count, 3);
    assert_eq!(done.status.metric_results[0].successful, 3);
}

#[test]
fn interval_without_count_runs_until_terminated() {
    let mut background = metric("m");
    background.interval = Some("10s".to_owned());
    let mut spec = run_spec(vec![background]);
    let running = run_through(&spec, &[AnalysisPhase::Successful; 20], 10);
    assert_eq!(running.status.phase, AnalysisPhase::Running);
    assert_eq!(running.next_measurement_at, Some(t(200)));
    spec.terminate = Some(true);
    let ended = advance(&spec, Some(&running.status), t(205), None).unwrap();
    assert_eq!(
        ended.status.phase,
        AnalysisPhase::Inconclusive,
        "a terminated metric never passes"
    );
    assert!(ended.due.is_empty());
}

#[test]
fn terminating_a_run_with_a_failed_measurement_ends_it_in_error() {
    let mut tolerant = metric("m");
    tolerant.interval = Some("10s".to_owned());
    tolerant.count = Some(10);
    tolerant.failure_limit = Some(3);
    let mut spec = run_spec(vec![tolerant]);
    let running = run_through(
        &spec,
        &[
            AnalysisPhase::Successful,
            AnalysisPhase::Failed,
            AnalysisPhase::Successful,
        ],
        10,
    );
    assert_eq!(running.status.phase, AnalysisPhase::Running);
    spec.terminate = Some(true);
    let ended = advance(&spec, Some(&running.status), t(100), None).unwrap();
    assert_eq!(ended.status.phase, AnalysisPhase::Error);
    assert!(
        ended.status.metric_results[0]
            .message
            .as_deref()
            .unwrap()
            .contains("1 failed"),
    );
}

#[test]
fn one_failure_fails_by_default() {
    let spec = run_spec(vec![metric("m")]);
    let failed = run_through(&spec, &[AnalysisPhase::Failed], 0);
    assert_eq!(failed.status.phase, AnalysisPhase::Failed);
    let message = failed.status.message.unwrap();
    assert!(message.contains("\"m\""), "{message}");
    assert!(message.contains("failureLimit 0"), "{message}");
    assert!(message.contains("measurement 0"), "{message}");
}

#[test]
fn failure_limit_tolerates_that_many_failures() {
    let mut tolerant = metric("m");
    tolerant.interval = Some("10s".to_owned());
    tolerant.count = Some(5);
    tolerant.failure_limit = Some(2);
    let spec = run_spec(vec![tolerant]);
    let use_failures = |n| vec![AnalysisPhase::Failed; n];
    assert_eq!(
        run_through(&spec, &use_failures(2), 10).status.phase,
        AnalysisPhase::Running
    );
    assert_eq!(
        run_through(&spec, &use_failures(3), 10).status.phase,
        AnalysisPhase::Failed
    );
    let mut mixed = use_failures(2);
    mixed.extend([AnalysisPhase::Successful; 3]);
    assert_eq!(
        run_through(&spec, &mixed, 10).status.phase,
        AnalysisPhase::Successful
    );
}

#[test]
fn inconclusive_beyond_its_limit_ends_the_run_inconclusive() {
    let spec_default = run_spec(vec![metric("m")]);
    let run = run_through(&spec_default, &[AnalysisPhase::Inconclusive], 0);
    assert_eq!(run.status.phase, AnalysisPhase::Inconclusive);
    let mut tolerant = metric("m");
    tolerant.interval = Some("10s".to_owned());
    tolerant.count = Some(2);
    tolerant.inconclusive_limit = Some(1);
    let spec_tolerant = run_spec(vec![tolerant]);
    let run = run_through(
        &spec_tolerant,
        &[AnalysisPhase::Inconclusive, AnalysisPhase::Successful],
        10,
    );
    assert_eq!(run.status.phase, AnalysisPhase::Successful);
}

#[test]
fn errors_beyond_the_consecutive_limit_end_the_run_in_error() {
    let spec = run_spec(vec![metric("m")]);
    let four = run_through(&spec, &[AnalysisPhase::Error; 4], 10);
    assert_eq!(four.status.phase, AnalysisPhase::Running);
    assert_eq!(four.status.metric_results[0].count, 0);
    assert_eq!(four.status.metric_results[0].consecutive_error, 4);
    let five = run_through(&spec, &[AnalysisPhase::Error; 5], 10);
    assert_eq!(five.status.phase, AnalysisPhase::Error);
    assert!(
        five.status
            .message
            .unwrap()
            .contains("consecutiveErrorLimit 4")
    );
}

#[test]
fn a_measurement_between_errors_resets_the_streak() {
    let mut repeated = metric("m");
    repeated.interval = Some("10s".to_owned());
    repeated.count = Some(10);
    let spec = run_spec(vec![repeated]);
    let mut phases = vec![AnalysisPhase::Error; 4];
    phases.push(AnalysisPhase::Successful);
    phases.extend([AnalysisPhase::Error; 4]);
    let run = run_through(&spec, &phases, 10);
    assert_eq!(run.status.phase, AnalysisPhase::Running);
    let result = &run.status.metric_results[0];
    assert_eq!((result.error, result.consecutive_error), (8, 4));
}

#[test]
fn an_error_is_retried_after_the_shorter_of_interval_and_ten_seconds() {
    let single = run_spec(vec![metric("m")]);
    let run = run_through(&single, &[AnalysisPhase::Error], 0);
    assert_eq!(run.next_measurement_at, Some(t(10)));
    let mut slow = metric("m");
    slow.interval = Some("5m".to_owned());
    slow.count = Some(2);
    let run = run_through(&run_spec(vec![slow]), &[AnalysisPhase::Error], 0);
    assert_eq!(run.next_measurement_at, Some(t(10)));
    let mut fast = metric("m");
    fast.interval = Some("2s".to_owned());
    fast.count = Some(2);
    let run = run_through(&run_spec(vec![fast]), &[AnalysisPhase::Error], 0);
    assert_eq!(run.next_measurement_at, Some(t(2)));
}

#[test]
fn only_the_last_measurements_are_kept() {
    let mut repeated = metric("m");
    repeated.interval = Some("1s".to_owned());
    repeated.count = Some(100);
    let spec = run_spec(vec![repeated]);
    let run = run_through(&spec, &[AnalysisPhase::Successful; 15], 1);
    let result = &run.status.metric_results[0];
    assert_eq!(result.measurements.len(), MAX_MEASUREMENTS);
    assert_eq!(result.count, 15);
    assert_eq!(
        result.measurements[0].message.as_deref(),
        Some("measurement 5")
    );
    assert_eq!(MAX_MEASUREMENTS, 10, "the schema's maxItems says 10");
}

#[test]
fn the_worst_metric_decides_and_ends_the_run_at_once() {
    let mut slow = metric("slow");
    slow.interval = Some("1m".to_owned());
    slow.count = Some(10);
    let spec = run_spec(vec![slow, metric("m")]);
    let run = run_through(&spec, &[AnalysisPhase::Failed], 0);
    assert_eq!(run.status.phase, AnalysisPhase::Failed);
    assert!(run.due.is_empty());
    assert_eq!(run.status.metric_results[0].phase, AnalysisPhase::Running);

    let mut errors = metric("e");
    errors.consecutive_error_limit = Some(0);
    let mut inconclusive = metric("i");
    inconclusive.interval = Some("1m".to_owned());
    inconclusive.count = Some(2);
    inconclusive.inconclusive_limit = Some(5);
    let spec = run_spec(vec![errors, inconclusive]);
    let start = advance(&spec, None, t(0), None).unwrap();
    let errored = advance(
        &spec,
        Some(&start.status),
        t(1),
        outcome("e", AnalysisPhase::Error, "prometheus unreachable"),
    )
    .unwrap();
    assert_eq!(errored.status.phase, AnalysisPhase::Error);
    assert!(
        errored
            .status
            .message
            .as_deref()
            .unwrap()
            .contains("prometheus unreachable")
    );
}

#[test]
fn every_metric_must_succeed() {
    let spec = run_spec(vec![metric("a"), metric("b")]);
    let start = advance(&spec, None, t(0), None).unwrap();
    let one = advance(
        &spec,
        Some(&start.status),
        t(1),
        outcome("a", AnalysisPhase::Successful, "a ok"),
    )
    .unwrap();
    assert_eq!(one.status.phase, AnalysisPhase::Running);
    assert_eq!(one.due, ["b"]);
    let both = advance(
        &spec,
        Some(&one.status),
        t(2),
        outcome("b", AnalysisPhase::Successful, "b ok"),
    )
    .unwrap();
    assert_eq!(both.status.phase, AnalysisPhase::Successful);
    let message = both.status.message.unwrap();
    assert!(
        message.contains("a ok") && message.contains("b ok"),
        "{message}"
    );
}

#[test]
fn terminate_keeps_a_failure() {
    let mut spec = run_spec(vec![metric("m")]);
    let failed = run_through(&spec, &[AnalysisPhase::Failed], 0);
    spec.terminate = Some(true);
    let after = advance(&spec, Some(&failed.status), t(5), None).unwrap();
    assert_eq!(after.status.phase, AnalysisPhase::Failed);
}

#[test]
fn a_completed_run_does_not_change() {
    let spec = run_spec(vec![metric("m")]);
    let done = run_through(&spec, &[AnalysisPhase::Successful], 0);
    let again = advance(
        &spec,
        Some(&done.status),
        t(100),
        outcome("m", AnalysisPhase::Failed, "late"),
    )
    .unwrap();
    assert_eq!(again.status, done.status);
}

#[test]
fn a_late_measurement_of_a_completed_metric_is_ignored() {
    let mut slow = metric("slow");
    slow.interval = Some("1m".to_owned());
    slow.count = Some(2);
    let spec = run_spec(vec![metric("m"), slow]);
    let run = run_through(&spec, &[AnalysisPhase::Successful], 0);
    let late = advance(
        &spec,
        Some(&run.status),
        t(1),
        outcome("m", AnalysisPhase::Failed, "late"),
    )
    .unwrap();
    assert_eq!(late.status.metric_results[0], run.status.metric_results[0]);
    assert_eq!(late.status.phase, AnalysisPhase::Running);
}

#[test]
fn bad_input_is_refused() {
    let spec = run_spec(vec![metric("m")]);
    let start = advance(&spec, None, t(0), None).unwrap();
    assert_eq!(
        advance(
            &spec,
            Some(&start.status),
            t(1),
            outcome("nope", AnalysisPhase::Successful, "")
        ),
        Err(LifecycleError::UnknownMetric("nope".to_owned()))
    );
    assert!(matches!(
        advance(
            &spec,
            Some(&start.status),
            t(1),
            outcome("m", AnalysisPhase::Running, "")
        ),
        Err(LifecycleError::NotAnOutcome { .. })
    ));
}

#[test]
fn measurements_get_a_finish_time() {
    let spec = run_spec(vec![metric("m")]);
    let run = run_through(&spec, &[AnalysisPhase::Successful], 0);
    assert_eq!(
        run.status.metric_results[0].measurements[0].finished_at,
        Some(Time(t(0)))
    );
}
