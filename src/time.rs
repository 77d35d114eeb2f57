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
    let mut text = Vec::with_capacity(RFC3339_LEN);
    write_rfc3339(&mut text, millis);
    String::from_utf8(text).expect("digits, punctuation and chrono's text are UTF-8")
}

const RFC3339_LEN: usize = "2026-01-01T10:00:00.000Z".len();
const DAY: Millis = 86_400_000;

/// Appends [`format_rfc3339`]'s text to `out`. Written digit by digit for the years 0 to
/// 9999: nearly every decision carries one or more instants, and chrono's `fmt`-based
/// formatting was 2.6 % of `replay`'s instructions. Other years go through chrono,
/// which writes them with a sign.
pub fn write_rfc3339(out: &mut Vec<u8>, millis: Millis) {
    let (year, month, day) = civil_date(millis.div_euclid(DAY));
    if !(0..=9999).contains(&year) {
        let text = match DateTime::<Utc>::from_timestamp_millis(millis) {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("{millis}ms"),
        };
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let of_day = millis.rem_euclid(DAY);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], i64::from(month));
    put_digits(&mut text[8..10], i64::from(day));
    put_digits(&mut text[11..13], of_day / 3_600_000);
    put_digits(&mut text[14..16], of_day / 60_000 % 60);
    put_digits(&mut text[17..19], of_day / 1_000 % 60);
    put_digits(&mut text[20..23], of_day % 1_000);
    out.extend_from_slice(&text);
}

/// Writes `value` (not negative, and with no more digits than `into` has) as decimal
/// digits filling `into`, zero-padded.
fn put_digits(into: &mut [u8], mut value: i64) {
    for digit in into.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian (year, month, day) of the day `days` after 1970-01-01.
///
/// Counted from 0000-03-01 instead, the calendar repeats every 400 years (146,097 days),
/// and within such an era each year starts in March, so February's leap day is the
/// last day of a year and the months from March on have lengths in a fixed pattern
/// (153 days per five months).
fn civil_date(days: i64) -> (i64, u32, u32) {
    const ERA_DAYS: i64 = 146_097;
    // Days from 0000-03-01 to 1970-01-01.
    let from_march_0000 = days + 719_468;
    let era = from_march_0000.div_euclid(ERA_DAYS);
    let day_of_era = from_march_0000.rem_euclid(ERA_DAYS);
    // Leap days before this day of the era: every 4th year but not the 100th, but the 400th.
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / (ERA_DAYS - 1)) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month as u32, day as u32)
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

    /// chrono's own formatting, which `format_rfc3339` used before it wrote the digits
    /// itself: the text of every instant must stay what earlier versions published.
    fn chrono_text(millis: Millis) -> String {
        match DateTime::<Utc>::from_timestamp_millis(millis) {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("{millis}ms"),
        }
    }

    #[test]
    fn formats_the_calendar_edges_as_chrono_does() {
        let edges = [
            "0000-01-01T00:00:00.000Z",
            "0000-02-29T23:59:59.999Z",
            "1899-12-31T23:59:59.999Z",
            "1900-02-28T12:00:00.000Z",
            "1900-03-01T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "1970-01-01T00:00:00.000Z",
            "2000-02-29T00:00:00.001Z",
            "2024-12-31T23:59:59.999Z",
            "2100-03-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
        ];
        for text in edges {
            let millis = parse_rfc3339(text).unwrap();
            assert_eq!(format_rfc3339(millis), text);
            assert_eq!(format_rfc3339(millis), chrono_text(millis));
        }
        // Outside the years 0 to 9999, and outside chrono's range, as chrono wrote them.
        for millis in [-62_167_219_200_001, 253_402_300_800_000, i64::MIN, i64::MAX] {
            assert_eq!(format_rfc3339(millis), chrono_text(millis), "{millis}");
        }
    }

    proptest::proptest! {
        #[test]
        fn formats_any_instant_as_chrono_does(millis in -70_000_000_000_000i64..260_000_000_000_000) {
            proptest::prop_assert_eq!(format_rfc3339(millis), chrono_text(millis));
        }

        #[test]
        fn appends_to_what_is_there(millis in 0i64..4_102_444_800_000) {
            let mut out = b"at ".to_vec();
            write_rfc3339(&mut out, millis);
            proptest::prop_assert_eq!(out, format!("at {}", chrono_text(millis)).into_bytes());
        }
    }

    #[test]
    fn rejects_bad_timestamps_naming_the_text() {
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-01 10:00"] {
            let err = parse_rfc3339(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
