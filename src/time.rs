//! Event time: milliseconds since the Unix epoch, parsed from and printed as RFC 3339.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::Duration;

/// A point in event time, in milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

/// Parses an RFC 3339 timestamp (any offset) into milliseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<Millis, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp ({e})"))
}

/// Formats milliseconds as RFC 3339 in UTC with millisecond precision, e.g.
/// `2026-01-01T10:00:00.000Z`; the fixed form keeps outputs byte-for-byte stable.
pub fn format_rfc3339(millis: Millis) -> String {
    match DateTime::<Utc>::from_timestamp_millis(millis) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{millis}ms"),
    }
}

/// A duration as whole milliseconds, saturating for absurdly long settings.
pub fn duration_millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_prints_utc_millis() {
        let ms = parse_rfc3339("2026-01-01T10:00:00+02:00").unwrap();
        assert_eq!(format_rfc3339(ms), "2026-01-01T08:00:00.000Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z").unwrap(), 1500);
    }

    #[test]
    fn rejects_bad_timestamps_naming_the_text() {
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-01 10:00"] {
            let err = parse_rfc3339(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
