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
        humantime::parse_duration(&text).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. \"90s\", \"60m\", \"24h\", \"30d\""
            ))
        })
    }
}
