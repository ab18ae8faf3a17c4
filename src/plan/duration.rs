//! Duration text: a number of seconds or `500ms`, `30s`, `5m`, `1h`; think ranges `3s..8s`.

use std::time::Duration;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "`{0}` is not a duration: write a number of seconds or e.g. \"500ms\", \"30s\", \"5m\", \"1h\""
    )]
    Malformed(String),
    #[error("`{0}` is negative; durations must be 0 or more")]
    Negative(String),
    #[error("`{0}` is too long: durations are at most 365 days")]
    TooLong(String),
}

/// Parses `500ms`, `30s`, `1.5s`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| DurationError::Malformed(text.to_owned()))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(DurationError::Malformed(text.to_owned())),
    };
    seconds(value * scale, text)
}

/// The longest duration a plan may give. Far past any real test, and far enough from
/// `Duration`/`Instant` limits that sums of phases and deadlines never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A number of seconds as a `Duration`.
pub fn seconds(value: f64, text: &str) -> Result<Duration, DurationError> {
    if value.is_nan() {
        return Err(DurationError::Malformed(text.to_owned()));
    }
    if value < 0.0 {
        return Err(DurationError::Negative(text.to_owned()));
    }
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| DurationError::TooLong(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_durations_past_a_year() {
        assert!(parse_duration("365d").is_err());
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert_eq!(
            parse_duration("10000000000000000000"),
            Err(DurationError::TooLong("10000000000000000000".to_owned()))
        );
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(matches!(
            parse_duration("5 mins"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration(""),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("-3s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999h"),
            Err(DurationError::TooLong(_))
        ));
    }
}
