//! The choice between the two sequential error-rate tests, behind one type.
//!
//! | method | assumes | use when |
//! |---|---|---|
//! | [`SequentialMethod::Betting`] | only that, given the past, the canary's expected share of an interval's errors is at most its share of the traffic (exact for binomial/Poisson counts with any shared drift, and for equal traffic with overdispersion of any size) | real traffic: error rates that wander from interval to interval, per revision |
//! | [`SequentialMethod::MixtureSprt`] | Poisson (or binomial) counts given a rate common to both revisions per interval | counts that are truly binomial, or very unequal traffic with few errors per interval |
//!
//! See [`super::betting`] and [`super::sequential`] for the proofs.

use super::betting::{BettingConfig, BettingTest};
use super::error::JudgeError;
use super::sequential::{Counts, SequentialConfig, SequentialResult, SequentialTest};

/// Which sequential test judges the error rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SequentialMethod {
    /// The mixture SPRT on Poisson counts ([`SequentialTest`]).
    #[default]
    MixtureSprt,
    /// The betting test on each interval's error share ([`BettingTest`]).
    Betting,
}

/// A running sequential error-rate test of either method.
#[derive(Debug, Clone)]
pub enum ErrorRateTest {
    /// A mixture SPRT.
    MixtureSprt(SequentialTest),
    /// A betting test.
    Betting(BettingTest),
}

impl ErrorRateTest {
    /// A fresh test of `method` at level `alpha` (other settings at their defaults).
    pub fn new(method: SequentialMethod, alpha: f64) -> Result<Self, JudgeError> {
        Ok(match method {
            SequentialMethod::MixtureSprt => {
                Self::MixtureSprt(SequentialTest::new(SequentialConfig {
                    alpha,
                    ..SequentialConfig::default()
                })?)
            }
            SequentialMethod::Betting => Self::Betting(BettingTest::new(BettingConfig { alpha })?),
        })
    }

    /// Adds one interval's counts (increments) and returns the updated result.
    pub fn observe(&mut self, counts: Counts) -> Result<SequentialResult, JudgeError> {
        match self {
            Self::MixtureSprt(test) => test.observe(counts),
            Self::Betting(test) => test.observe(counts),
        }
    }

    /// The current result.
    pub fn result(&self) -> SequentialResult {
        match self {
            Self::MixtureSprt(test) => test.result(),
            Self::Betting(test) => test.result(),
        }
    }
}
