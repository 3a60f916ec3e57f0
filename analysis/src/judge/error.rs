//! The errors the judges return for input they cannot judge.

use thiserror::Error;

/// Why a judge refused its input. Each message names the offending field and the reason.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum JudgeError {
    /// A sample that must hold at least one value was empty.
    #[error("sample `{sample}` is empty: the test needs at least one value")]
    EmptySample {
        /// Which sample (`canary` or `baseline`).
        sample: &'static str,
    },
    /// A sample held NaN or an infinite value where only finite values are accepted.
    #[error("sample `{sample}` holds a non-finite value ({value}) at index {index}")]
    NonFiniteValue {
        /// Which sample (`canary` or `baseline`).
        sample: &'static str,
        /// The index of the first offending value.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A configuration field was out of its allowed range.
    #[error("invalid `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// The configuration field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// What the field must satisfy.
        reason: &'static str,
    },
    /// A count fed to the sequential test was invalid.
    #[error("invalid `{field}` = {value}: {reason}")]
    InvalidCount {
        /// The count field.
        field: &'static str,
        /// The value given.
        value: f64,
        /// What the count must satisfy.
        reason: &'static str,
    },
}
