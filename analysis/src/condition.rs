//! CEL success and failure conditions over a query's `result`, judged with Argo Rollouts'
//! semantics.
//!
//! `result` is a number when the query returned a scalar or a single sample, and a list of
//! numbers otherwise (one per series of an instant vector; every sample of every series of a
//! range query, series by series). A measurement is:
//! - Failed when the failure condition is true;
//! - otherwise Successful when the success condition is true;
//! - Failed when only a success condition is set and it is false;
//! - Successful when only a failure condition is set and it is false;
//! - Inconclusive when both are set and neither is true.
//!
//! Unlike Argo, a metric with neither condition is refused (Argo passes it): a measurement
//! never passes without a judgement. Empty results and results that are only NaN are
//! Inconclusive before any condition runs, so missing data is never a pass. A condition that
//! does not compile is a bad request ([`ConditionError`]); one that fails at run time (for
//! example comparing a list with a number) or does not yield a boolean is an Error verdict.

use cel::{Context, Program, Value};

/// A measurement's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The measurement passed.
    Successful,
    /// The measurement failed.
    Failed,
    /// The measurement neither passed nor failed.
    Inconclusive,
    /// The measurement could not be judged.
    Error,
}

/// A judged measurement: the outcome and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The outcome.
    pub outcome: Outcome,
    /// Which condition decided, on which value.
    pub reason: String,
}

/// The value a query returned, as the conditions see it.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultValue {
    /// A scalar or a single sample.
    Number(f64),
    /// Several samples.
    List(Vec<f64>),
}

impl ResultValue {
    /// Builds the value from samples: one sample is a number, otherwise a list.
    pub fn from_samples(samples: Vec<f64>) -> Self {
        match samples.as_slice() {
            [single] => ResultValue::Number(*single),
            _ => ResultValue::List(samples),
        }
    }

    fn samples(&self) -> &[f64] {
        match self {
            ResultValue::Number(value) => std::slice::from_ref(value),
            ResultValue::List(values) => values,
        }
    }

    fn to_cel(&self) -> Value {
        match self {
            ResultValue::Number(value) => Value::Float(*value),
            ResultValue::List(values) => Value::List(
                values
                    .iter()
                    .map(|v| Value::Float(*v))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        }
    }
}

impl std::fmt::Display for ResultValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultValue::Number(value) => write!(f, "{value}"),
            ResultValue::List(values) => {
                let items: Vec<String> = values.iter().map(f64::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

/// A condition that does not compile, or a metric without any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The CEL does not parse.
    #[error("{field} `{condition}` is not valid CEL: {message}")]
    Compile {
        /// `successCondition` or `failureCondition`.
        field: &'static str,
        /// The condition as written.
        condition: String,
        /// The parser's message.
        message: String,
    },
    /// Neither condition is set.
    #[error("the metric has neither successCondition nor failureCondition")]
    NoCondition,
}

struct Compiled {
    field: &'static str,
    source: String,
    program: Program,
}

/// A metric's compiled conditions.
pub struct Conditions {
    success: Option<Compiled>,
    failure: Option<Compiled>,
}

impl std::fmt::Debug for Conditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conditions")
            .field("success", &self.success.as_ref().map(|c| &c.source))
            .field("failure", &self.failure.as_ref().map(|c| &c.source))
            .finish()
    }
}

fn compile(field: &'static str, source: &str) -> Result<Option<Compiled>, ConditionError> {
    let source = source.trim();
    if source.is_empty() {
        return Ok(None);
    }
    let program = Program::compile(source).map_err(|error| ConditionError::Compile {
        field,
        condition: source.to_owned(),
        message: error.to_string().trim().to_owned(),
    })?;
    Ok(Some(Compiled {
        field,
        source: source.to_owned(),
        program,
    }))
}

impl Conditions {
    /// Compiles the conditions; an empty string means the condition is not set.
    pub fn compile(success: &str, failure: &str) -> Result<Self, ConditionError> {
        let conditions = Conditions {
            success: compile("successCondition", success)?,
            failure: compile("failureCondition", failure)?,
        };
        if conditions.success.is_none() && conditions.failure.is_none() {
            return Err(ConditionError::NoCondition);
        }
        Ok(conditions)
    }

    /// Judges `value` (`None`: the query returned no data).
    pub fn judge(&self, value: Option<&ResultValue>) -> Judgement {
        let Some(value) = value.filter(|v| !v.samples().is_empty()) else {
            return Judgement {
                outcome: Outcome::Inconclusive,
                reason: "the query returned no data".to_owned(),
            };
        };
        if value.samples().iter().all(|v| v.is_nan()) {
            return Judgement {
                outcome: Outcome::Inconclusive,
                reason: format!("the query returned only NaN ({value})"),
            };
        }
        let failure = match self
            .failure
            .as_ref()
            .map(|c| evaluate(c, value))
            .transpose()
        {
            Ok(result) => result,
            Err(judgement) => return judgement,
        };
        let success = match self
            .success
            .as_ref()
            .map(|c| evaluate(c, value))
            .transpose()
        {
            Ok(result) => result,
            Err(judgement) => return judgement,
        };
        let describe = |compiled: &Option<Compiled>, holds: bool| {
            compiled
                .as_ref()
                .map(|c| format!("{} `{}` is {holds} for result {value}", c.field, c.source))
        };
        let (outcome, reason) = match (failure, success) {
            (Some(true), _) => (Outcome::Failed, describe(&self.failure, true)),
            (_, Some(true)) => (Outcome::Successful, describe(&self.success, true)),
            (None, Some(false)) => (Outcome::Failed, describe(&self.success, false)),
            (Some(false), None) => (Outcome::Successful, describe(&self.failure, false)),
            _ => (
                Outcome::Inconclusive,
                Some(format!(
                    "neither {} nor {}",
                    describe(&self.failure, false).unwrap_or_default(),
                    describe(&self.success, false).unwrap_or_default()
                )),
            ),
        };
        Judgement {
            outcome,
            reason: reason.unwrap_or_default(),
        }
    }
}

/// Runs one condition: `Ok(bool)`, or an Error judgement.
fn evaluate(compiled: &Compiled, value: &ResultValue) -> Result<bool, Judgement> {
    let mut context = Context::default();
    context.add_variable_from_value("result", value.to_cel());
    let error = |message: String| Judgement {
        outcome: Outcome::Error,
        reason: format!(
            "{} `{}` could not be evaluated for result {value}: {message}",
            compiled.field, compiled.source
        ),
    };
    match compiled.program.execute(&context) {
        Ok(Value::Bool(holds)) => Ok(holds),
        Ok(other) => Err(error(format!("it returned {other:?}, not a boolean"))),
        Err(failure) => Err(error(failure.to_string())),
    }
}

#[cfg(test)]
#[path = "condition_tests.rs"]
mod tests;
