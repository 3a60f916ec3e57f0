//! The duration grammar of rollgate's API: one or more `<digits><unit>` parts, unit `ms`, `s`,
//! `m` or `h`, for example `30s`, `5m`, `1h30m` or `250ms`.
//!
//! The grammar is deliberately smaller than Go's `time.ParseDuration` (no fractions, no signs,
//! no `us`/`ns`): a pause or an expiry never needs them, and a small grammar is one the CRD's
//! CEL rule ([`DURATION_CEL_RULE`]) and this parser agree on exactly. The API server rejects
//! anything else, so a stored object always parses here.

use std::time::Duration;

/// The regular expression a duration string must match (RE2 syntax, used by the CEL rule).
pub const DURATION_PATTERN: &str = "^([0-9]{1,6}(ms|s|m|h))+$";

/// Digits a duration component may have.
const MAX_DIGITS: usize = 6;

/// The CEL rule that checks a duration field against [`DURATION_PATTERN`].
pub const DURATION_CEL_RULE: &str = "self.matches('^([0-9]{1,6}(ms|s|m|h))+$')";

/// The message the API server returns when a duration field does not parse.
pub const DURATION_CEL_MESSAGE: &str = "must be a duration such as 30s, 5m, 1h30m or 250ms (units ms, s, m, h; at most 6 digits a unit)";

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("duration is empty")]
    Empty,
    /// A part had no digits before its unit, or digits without a unit.
    #[error("duration {input:?} is malformed at byte {position}: expected <digits><unit>")]
    Malformed {
        /// The whole input.
        input: String,
        /// Where parsing stopped.
        position: usize,
    },
    /// A part had a unit other than ms, s, m or h.
    #[error("duration {input:?} has an unknown unit at byte {position} (units are ms, s, m, h)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// Where the unit starts.
        position: usize,
    },
    /// The value does not fit in a `Duration`.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses a duration in rollgate's grammar.
///
/// ```
/// use std::time::Duration;
/// use rollgate_crds::duration::parse_duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert!(parse_duration("10").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let bytes = input.as_bytes();
    let mut position = 0;
    let mut total = Duration::ZERO;
    while position < bytes.len() {
        let digits_start = position;
        while position < bytes.len() && bytes[position].is_ascii_digit() {
            position += 1;
        }
        if position == digits_start || position == bytes.len() {
            return Err(DurationError::Malformed {
                input: input.to_owned(),
                position,
            });
        }
        // At most six digits a component, as the schema's pattern says: a duration stays far
        // inside what timers and timestamps can add (so no spec can overflow a deadline).
        if position - digits_start > MAX_DIGITS {
            return Err(DurationError::Overflow(input.to_owned()));
        }
        let amount: u64 = input[digits_start..position]
            .parse()
            .map_err(|_| DurationError::Overflow(input.to_owned()))?;
        let rest = &input[position..];
        let (unit_millis, unit_len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return Err(DurationError::UnknownUnit {
                input: input.to_owned(),
                position,
            });
        };
        let millis = amount
            .checked_mul(unit_millis)
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        position += unit_len;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combinations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("1h30m15s").unwrap(),
            Duration::from_secs(5415)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_what_the_cel_rule_refuses() {
        for bad in [
            "", "10", "s", "1.5s", "-1s", "1d", "1us", "1 s", "1h 2m", "m5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn cel_rule_uses_the_pattern() {
        assert!(DURATION_CEL_RULE.contains(DURATION_PATTERN));
    }
}
