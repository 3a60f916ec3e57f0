//! Which change of a metric is bad: what every judge of a comparison needs to know first.

/// Which change of the metric is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Only an increase fails (latency, errors).
    Increase,
    /// Only a decrease fails (throughput, success rate).
    Decrease,
    /// Both fail.
    #[default]
    Either,
}
