//! Durations in the configuration file, written as text (`"90s"`, `"60m"`, `"30d"`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A duration written as text, e.g. `"60m"`, `"24h"`, `"30d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn minutes(m: u64) -> Dur {
        Dur(Duration::from_secs(m * 60))
    }
    pub const fn hours(h: u64) -> Dur {
        Dur(Duration::from_secs(h * 3600))
    }
    pub fn millis(self) -> i64 {
        crate::time::duration_millis(self.0)
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if let Some(duration) = parse_fractional(&text) {
            return Ok(Dur(duration));
        }
        humantime::parse_duration(&text).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. \"90s\", \"60m\", \"24h\", \"3.5d\""
            ))
        })
    }
}

/// A single fractional quantity and unit, e.g. `"3.5d"` or `"1.5h"`, which humantime
/// does not read; `None` for anything else (humantime then reads it, or says why not).
fn parse_fractional(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    if !number.contains('.') {
        return None;
    }
    let seconds_per_unit = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3_600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let millis = (value * seconds_per_unit * 1_000.0).round();
    (millis.is_finite() && millis < u64::MAX as f64).then(|| Duration::from_millis(millis as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Dur, String> {
        serde_json::from_value(serde_json::Value::String(text.into())).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_and_fractional_durations_parse() {
        assert_eq!(parse("90s").unwrap(), Dur(Duration::from_secs(90)));
        assert_eq!(parse("3.5d").unwrap(), Dur(Duration::from_secs(302_400)));
        assert_eq!(parse("1.5h").unwrap(), Dur(Duration::from_secs(5_400)));
        assert_eq!(parse("0.5s").unwrap(), Dur(Duration::from_millis(500)));
    }

    #[test]
    fn malformed_durations_are_errors_that_show_the_text() {
        for bad in [
            "3.5",
            "3.5x",
            "1..5d",
            ".d",
            "d",
            "",
            "-1d",
            "3.5 fortnights",
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(error.contains("is not a duration"), "{bad}: {error}");
        }
    }
}
