//! Unit tests of the pure analysis parts: building runs, reading verdicts, the requests.

use k8s_openapi::jiff::Timestamp;
use rollgate_crds::Rollout;
use rollgate_crds::analysis::{
    AnalysisPhase, AnalysisRun, AnalysisRunStatus, AnalysisTemplateSpec, ComparisonClass,
    RunRevisions,
};
use rollgate_crds::rollout::RolloutPhase;
use rollgate_proto::v1 as pb;
use serde_json::json;

use super::build::{BuildError, ResolvedTemplate, build_run, key_label, parse_key_label, step_of};
use super::observe::outcomes;
use super::requests::{MetricRequest, compared, evaluated, request_for};
use super::runner::is_stale;
use crate::decide::{AnalysisKey, AnalysisOutcome};

fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "team", "uid": "u-1"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}},
            "strategy": {"canary": {
                "analysis": {"templates": [{"templateName": "latency"}]},
                "steps": [
                    {"setWeight": 20},
                    {"analysis": {
                        "templates": [{"templateName": "errors"}, {"templateName": "latency"}],
                        "args": [{"name": "service", "value": "web"}]
                    }}
                ]
            }}
        }
    }))
    .expect("a Rollout")
}

fn template(args: serde_json::Value, metric: &str) -> AnalysisTemplateSpec {
    serde_json::from_value(json!({
        "args": args,
        "metrics": [{
            "name": metric,
            "interval": "10s",
            "count": 3,
            "provider": {"prometheus": {
                "address": "http://prometheus:9090",
                "query": "sum(rate(errors{service=\"{{args.service}}\"}[1m]))",
                "timeout": "5s"
            }},
            "successCondition": "result < 0.05"
        }]
    }))
    .expect("a template")
}

fn revisions() -> RunRevisions {
    RunRevisions {
        canary: "bbbbbbbbbb".into(),
        stable: Some("aaaaaaaaaa".into()),
    }
}

#[test]
fn analysis_keys_round_trip_through_their_labels() {
    for key in [
        AnalysisKey::Step(3),
        AnalysisKey::Background,
        AnalysisKey::PrePromotion,
        AnalysisKey::PostPromotion,
    ] {
        assert_eq!(parse_key_label(&key_label(&key)), Some(key));
    }
    assert_eq!(parse_key_label("step-x"), None);
}

#[test]
fn a_run_merges_the_templates_metrics_and_resolves_the_args() {
    let rollout = rollout();
    let key = AnalysisKey::Step(1);
    let step = step_of(&rollout, &key).expect("the analysis step");
    let templates = [
        ResolvedTemplate {
            name: "errors".into(),
            spec: template(json!([{"name": "service"}]), "error-rate"),
        },
        ResolvedTemplate {
            name: "latency".into(),
            spec: template(json!([{"name": "quantile", "value": "0.99"}]), "p99"),
        },
    ];
    let run = build_run(&rollout, &key, step, &templates, revisions(), 2).expect("a run");
    assert_eq!(
        run.metadata.name.as_deref(),
        Some("web-bbbbbbbbbb-step-1-2")
    );
    assert_eq!(run.metadata.namespace.as_deref(), Some("team"));
    let labels = run.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["rollgate.io/analysis"], "step-1");
    assert_eq!(labels["rollgate.io/attempt"], "2");
    assert_eq!(labels["rollgate.io/revision"], "bbbbbbbbbb");
    let owner = &run.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!((owner.uid.as_str(), owner.controller), ("u-1", Some(true)));
    let names: Vec<_> = run.spec.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["error-rate", "p99"]);
    let args: Vec<_> = run
        .spec
        .args
        .iter()
        .map(|a| (a.name.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(args, [("quantile", "0.99"), ("service", "web")]);
}

#[test]
fn a_run_without_a_value_for_an_argument_names_it() {
    let rollout = rollout();
    let key = AnalysisKey::Background;
    let step = step_of(&rollout, &key).expect("background analysis");
    let templates = [ResolvedTemplate {
        name: "latency".into(),
        spec: template(json!([{"name": "service"}]), "p99"),
    }];
    let error = build_run(&rollout, &key, step, &templates, revisions(), 0).unwrap_err();
    assert_eq!(
        error,
        BuildError::MissingArgument {
            key: "background".into(),
            template: "latency".into(),
            argument: "service".into()
        }
    );
    assert!(error.to_string().contains("set it in the step's args"));
}

#[test]
fn two_templates_with_the_same_metric_are_refused() {
    let rollout = rollout();
    let key = AnalysisKey::Step(1);
    let step = step_of(&rollout, &key).expect("step");
    let same = ResolvedTemplate {
        name: "errors".into(),
        spec: template(json!([]), "error-rate"),
    };
    let error = build_run(&rollout, &key, step, &[same.clone(), same], revisions(), 0).unwrap_err();
    assert!(
        matches!(error, BuildError::DuplicateMetric { .. }),
        "{error}"
    );
}

fn run(key: &str, revision: &str, attempt: i32, phase: Option<AnalysisPhase>) -> AnalysisRun {
    let mut run: AnalysisRun = serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": format!("web-{revision}-{key}-{attempt}"), "labels": {
            "rollgate.io/rollout": "web",
            "rollgate.io/revision": revision,
            "rollgate.io/analysis": key,
            "rollgate.io/attempt": attempt.to_string()
        }},
        "spec": {"rollout": "web", "revisions": {"canary": revision}, "metrics": []}
    }))
    .expect("a run");
    run.status = phase.map(|phase| AnalysisRunStatus {
        phase,
        message: Some(format!("{phase:?} because")),
        ..AnalysisRunStatus::default()
    });
    run
}

#[test]
fn only_runs_of_the_revision_and_attempt_count() {
    let runs = [
        run("step-1", "bbbbbbbbbb", 1, Some(AnalysisPhase::Failed)),
        run("step-1", "bbbbbbbbbb", 0, Some(AnalysisPhase::Successful)),
        run("background", "bbbbbbbbbb", 1, None),
        run("step-3", "cccccccccc", 1, Some(AnalysisPhase::Successful)),
        run(
            "pre-promotion",
            "bbbbbbbbbb",
            1,
            Some(AnalysisPhase::Inconclusive),
        ),
        run(
            "post-promotion",
            "bbbbbbbbbb",
            1,
            Some(AnalysisPhase::Error),
        ),
    ];
    let seen = outcomes(&runs, "bbbbbbbbbb", 1);
    assert_eq!(
        seen.get(&AnalysisKey::Step(1)),
        Some(&AnalysisOutcome::Failed("Failed because".into()))
    );
    assert_eq!(
        seen.get(&AnalysisKey::Background),
        Some(&AnalysisOutcome::Running)
    );
    assert_eq!(seen.get(&AnalysisKey::Step(3)), None, "another revision");
    assert_eq!(
        seen.get(&AnalysisKey::PrePromotion),
        Some(&AnalysisOutcome::Inconclusive(
            "Inconclusive because".into()
        ))
    );
    assert_eq!(
        seen.get(&AnalysisKey::PostPromotion),
        Some(&AnalysisOutcome::Error("Error because".into()))
    );
    let earlier = outcomes(&runs, "bbbbbbbbbb", 0);
    assert_eq!(
        earlier.get(&AnalysisKey::Step(1)),
        Some(&AnalysisOutcome::Successful)
    );
}

#[test]
fn running_runs_of_another_revision_or_attempt_or_a_finished_rollout_are_stale() {
    let running = run("background", "bbbbbbbbbb", 1, Some(AnalysisPhase::Running));
    assert!(!is_stale(
        &running,
        "bbbbbbbbbb",
        1,
        Some(RolloutPhase::Progressing)
    ));
    assert!(is_stale(
        &running,
        "cccccccccc",
        1,
        Some(RolloutPhase::Progressing)
    ));
    assert!(is_stale(
        &running,
        "bbbbbbbbbb",
        2,
        Some(RolloutPhase::Progressing)
    ));
    assert!(is_stale(
        &running,
        "bbbbbbbbbb",
        1,
        Some(RolloutPhase::Healthy)
    ));
    assert!(is_stale(
        &running,
        "bbbbbbbbbb",
        1,
        Some(RolloutPhase::Aborted)
    ));
    let done = run("background", "bbbbbbbbbb", 1, Some(AnalysisPhase::Failed));
    assert!(
        !is_stale(&done, "cccccccccc", 1, Some(RolloutPhase::Healthy)),
        "already ended"
    );
}

#[test]
fn a_threshold_metric_is_an_evaluate_with_args_revisions_and_timeout() {
    let rollout = rollout();
    let key = AnalysisKey::Step(1);
    let step = step_of(&rollout, &key).expect("step");
    let templates = [ResolvedTemplate {
        name: "errors".into(),
        spec: template(json!([{"name": "service"}]), "error-rate"),
    }];
    let run = build_run(&rollout, &key, step, &templates, revisions(), 0).expect("run");
    let Some(MetricRequest::Evaluate(request)) = request_for(
        &run.spec,
        &run.spec.metrics[0],
        Timestamp::UNIX_EPOCH,
        Timestamp::UNIX_EPOCH,
    ) else {
        panic!("an Evaluate request");
    };
    let metric = request.metric.expect("metric");
    assert_eq!(metric.success_condition, "result < 0.05");
    let prometheus = metric.prometheus.expect("prometheus");
    assert_eq!(prometheus.timeout.map(|t| t.seconds), Some(5));
    assert_eq!(request.args["service"], "web");
    let revisions = request.revisions.expect("revisions");
    assert_eq!(
        (revisions.canary.as_str(), revisions.stable.as_str()),
        ("bbbbbbbbbb", "aaaaaaaaaa")
    );
}

#[test]
fn a_compare_metric_is_a_compare_over_a_window_ending_now() {
    let spec: AnalysisTemplateSpec = serde_json::from_value(json!({"metrics": [{
        "name": "latency",
        "interval": "1m",
        "provider": {"prometheus": {"address": "http://prometheus:9090"}},
        "compare": {
            "canaryQuery": "latency{revision=\"{{revision.canary}}\"}",
            "baselineQuery": "latency{revision=\"{{revision.stable}}\"}",
            "allowedIncrease": 1.2
        }
    }]}))
    .expect("a template");
    let rollout = rollout();
    let key = AnalysisKey::Background;
    let step = step_of(&rollout, &key).expect("step");
    let templates = [ResolvedTemplate {
        name: "latency".into(),
        spec,
    }];
    let run = build_run(&rollout, &key, step, &templates, revisions(), 0).expect("run");
    let now = Timestamp::from_second(1_000_000).expect("time");
    let Some(MetricRequest::Compare(request)) =
        request_for(&run.spec, &run.spec.metrics[0], now, now)
    else {
        panic!("a Compare request");
    };
    let window = request.window.expect("window");
    assert_eq!(window.end.map(|t| t.seconds), Some(1_000_000));
    assert_eq!(window.start.map(|t| t.seconds), Some(1_000_000 - 60));
    assert_eq!(window.step.map(|s| s.seconds), Some(2));
    let comparison = request.comparison.expect("comparison");
    assert_eq!(comparison.allowed_increase, Some(1.2));
    // Unset in the template, absent on the wire: the analysis service's default applies.
    assert_eq!(comparison.confidence, None);
    assert_eq!(comparison.direction, pb::Direction::Increase as i32);
    assert!(
        request
            .queries
            .expect("queries")
            .canary_query
            .contains("revision.canary")
    );
}

#[test]
fn an_unknown_or_error_verdict_is_never_a_pass() {
    let verdict_of = |verdict: i32| {
        evaluated(pb::EvaluateResponse {
            verdict,
            value: "0.01".into(),
            ..pb::EvaluateResponse::default()
        })
        .phase
    };
    for verdict in [
        pb::Verdict::Error as i32,
        pb::Verdict::Unspecified as i32,
        42,
    ] {
        assert_eq!(verdict_of(verdict), AnalysisPhase::Error);
    }
    assert_eq!(
        verdict_of(pb::Verdict::Successful as i32),
        AnalysisPhase::Successful
    );
}

#[test]
fn a_comparison_keeps_its_statistics_as_numbers_and_leaves_out_what_was_not_computed() {
    let answer = compared(pb::CompareResponse {
        verdict: pb::Verdict::Failed as i32,
        classification: pb::Classification::High as i32,
        u_statistic: 12.0,
        p_value: Some(0.003),
        hodges_lehmann: 0.2,
        interval_lower: 0.1,
        interval_upper: f64::INFINITY,
        effect_size: 1.5,
        reason: "latency: High".into(),
    });
    assert_eq!(answer.phase, AnalysisPhase::Failed);
    assert_eq!(answer.value.as_deref(), Some("1.5000"));
    let comparison = answer.comparison.expect("statistics");
    assert_eq!(comparison.classification, Some(ComparisonClass::High));
    assert_eq!(comparison.p_value, Some(0.003));
    assert_eq!(comparison.hodges_lehmann, Some(0.2));
    assert_eq!(comparison.interval_upper, None, "not finite: absent");

    let no_data = compared(pb::CompareResponse {
        verdict: pb::Verdict::Inconclusive as i32,
        classification: pb::Classification::NoData as i32,
        u_statistic: f64::NAN,
        p_value: None,
        effect_size: f64::NAN,
        ..pb::CompareResponse::default()
    });
    let comparison = no_data.comparison.expect("statistics");
    assert_eq!(
        comparison.p_value, None,
        "a p-value not computed is absent, not 0"
    );
    assert_eq!(comparison.u_statistic, None);
    assert_eq!(no_data.value, None);
}
