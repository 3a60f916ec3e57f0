//! Unit tests of the CEL conditions and their Argo semantics.

use super::*;

fn judge(success: &str, failure: &str, value: ResultValue) -> Judgement {
    Conditions::compile(success, failure)
        .expect("conditions compile")
        .judge(Some(&value))
}

#[test]
fn success_condition_alone_passes_or_fails() {
    let passed = judge("result < 0.05", "", ResultValue::Number(0.01));
    assert_eq!(passed.outcome, Outcome::Successful);
    assert!(
        passed
            .reason
            .contains("successCondition `result < 0.05` is true")
    );
    assert!(passed.reason.contains("0.01"), "{}", passed.reason);
    let failed = judge("result < 0.05", "", ResultValue::Number(0.2));
    assert_eq!(failed.outcome, Outcome::Failed);
    assert!(
        failed.reason.contains("is false for result 0.2"),
        "{}",
        failed.reason
    );
}

#[test]
fn failure_condition_alone_fails_or_passes() {
    assert_eq!(
        judge("", "result >= 0.05", ResultValue::Number(0.2)).outcome,
        Outcome::Failed
    );
    assert_eq!(
        judge("", "result >= 0.05", ResultValue::Number(0.0)).outcome,
        Outcome::Successful
    );
}

#[test]
fn failure_wins_and_neither_is_inconclusive() {
    let both_true = judge("result > 0.0", "result > 0.1", ResultValue::Number(0.5));
    assert_eq!(both_true.outcome, Outcome::Failed);
    assert!(both_true.reason.contains("failureCondition"));
    let neither = judge("result < 0.01", "result > 0.1", ResultValue::Number(0.05));
    assert_eq!(neither.outcome, Outcome::Inconclusive);
    assert!(neither.reason.contains("neither"), "{}", neither.reason);
}

#[test]
fn integers_and_floats_compare() {
    assert_eq!(
        judge("result < 1", "", ResultValue::Number(0.5)).outcome,
        Outcome::Successful
    );
    assert_eq!(
        judge("result == 0", "", ResultValue::Number(0.0)).outcome,
        Outcome::Successful
    );
}

#[test]
fn a_vector_is_a_list() {
    let value = ResultValue::from_samples(vec![0.01, 0.02]);
    assert_eq!(
        judge("result.all(x, x < 0.05)", "", value.clone()).outcome,
        Outcome::Successful
    );
    assert_eq!(
        judge("size(result) == 2 && result[1] > 0.015", "", value).outcome,
        Outcome::Successful
    );
    assert_eq!(
        ResultValue::from_samples(vec![0.3]),
        ResultValue::Number(0.3)
    );
}

#[test]
fn no_data_and_nan_are_inconclusive_never_successful() {
    let conditions = Conditions::compile("result < 0.05", "").unwrap();
    let empty = conditions.judge(None);
    assert_eq!(empty.outcome, Outcome::Inconclusive);
    assert!(empty.reason.contains("no data"));
    let empty_list = conditions.judge(Some(&ResultValue::List(Vec::new())));
    assert_eq!(empty_list.outcome, Outcome::Inconclusive);
    let nan = conditions.judge(Some(&ResultValue::Number(f64::NAN)));
    assert_eq!(nan.outcome, Outcome::Inconclusive);
    assert!(nan.reason.contains("NaN"));
    let nan_list = conditions.judge(Some(&ResultValue::List(vec![f64::NAN, f64::NAN])));
    assert_eq!(nan_list.outcome, Outcome::Inconclusive);
}

#[test]
fn runtime_errors_and_non_booleans_are_errors() {
    let list = ResultValue::List(vec![0.1, 0.2]);
    let type_error = judge("result < 0.05", "", list);
    assert_eq!(type_error.outcome, Outcome::Error);
    assert!(
        type_error.reason.contains("could not be evaluated"),
        "{}",
        type_error.reason
    );
    let number = judge("result + 1.0", "", ResultValue::Number(1.0));
    assert_eq!(number.outcome, Outcome::Error);
    assert!(number.reason.contains("not a boolean"));
}

#[test]
fn bad_cel_is_refused_naming_the_condition() {
    let error = Conditions::compile("result <", "").unwrap_err();
    assert!(matches!(
        &error,
        ConditionError::Compile { field: "successCondition", condition, .. } if condition == "result <"
    ));
    assert!(
        error.to_string().contains("successCondition `result <`"),
        "{error}"
    );
    let error = Conditions::compile("result < 1", "result >>> 2").unwrap_err();
    assert!(error.to_string().contains("failureCondition"), "{error}");
    assert_eq!(
        Conditions::compile(" ", "").unwrap_err(),
        ConditionError::NoCondition
    );
}
