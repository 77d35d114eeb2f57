//! `rules.segments`: customer segments (CONTRACT §5.3).

use super::{invalid, ConfigError, Dur};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const DAY: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentsConfig {
    /// When false, no segments are kept, changed or published.
    pub enabled: bool,
    /// `lifecycle:new` while the first order is younger than this.
    pub new_for: Dur,
    /// `lifecycle:active` while the last order is younger than this.
    pub active_for: Dur,
    /// `lifecycle:at_risk` until the last order is this old; `lifecycle:lapsed` after.
    pub lapsed_after: Dur,
    /// Orders younger than this count for `high_value` and RFM frequency and monetary.
    pub value_window: Dur,
    /// `high_value`: order totals within `value_window` sum to at least this.
    pub high_value_total: f64,
    /// `cart_abandoner`: an abandoned-cart reminder younger than this, no order since.
    pub cart_abandoner_for: Dur,
    /// Orders kept per shopper within `value_window` (the oldest go first).
    pub max_orders: usize,
    pub rfm: RfmConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RfmConfig {
    /// R is 5, 4, 3, 2 for days since the last order up to each of these; else 1.
    pub recency_days: [u32; 4],
    /// F is 1 + how many of these the number of orders within `value_window` reaches.
    pub frequency: [u32; 4],
    /// M is 1 + how many of these the order value within `value_window` reaches.
    pub monetary: [f64; 4],
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        SegmentsConfig {
            enabled: true,
            new_for: Dur(Duration::from_secs(30 * DAY)),
            active_for: Dur(Duration::from_secs(90 * DAY)),
            lapsed_after: Dur(Duration::from_secs(180 * DAY)),
            value_window: Dur(Duration::from_secs(365 * DAY)),
            high_value_total: 500.0,
            cart_abandoner_for: Dur(Duration::from_secs(7 * DAY)),
            max_orders: 200,
            rfm: RfmConfig::default(),
        }
    }
}

impl Default for RfmConfig {
    fn default() -> Self {
        RfmConfig {
            recency_days: [30, 60, 120, 240],
            frequency: [2, 3, 4, 6],
            monetary: [50.0, 150.0, 400.0, 1000.0],
        }
    }
}

fn increasing<T: PartialOrd + Copy>(setting: &str, values: &[T]) -> Result<(), ConfigError> {
    for i in 1..values.len() {
        if values[i] <= values[i - 1] {
            return Err(invalid(
                &format!("{setting}[{i}]"),
                "thresholds must be strictly increasing",
            ));
        }
    }
    Ok(())
}

impl SegmentsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (setting, value) in [
            ("new_for", self.new_for),
            ("active_for", self.active_for),
            ("lapsed_after", self.lapsed_after),
            ("value_window", self.value_window),
            ("cart_abandoner_for", self.cart_abandoner_for),
        ] {
            if value.0.is_zero() {
                return Err(invalid(
                    &format!("rules.segments.{setting}"),
                    "must be longer than 0s",
                ));
            }
        }
        if self.lapsed_after.0 <= self.active_for.0 {
            return Err(invalid(
                "rules.segments.lapsed_after",
                "must be longer than `rules.segments.active_for` (at risk lies between them)",
            ));
        }
        if !(self.high_value_total.is_finite() && self.high_value_total > 0.0) {
            return Err(invalid(
                "rules.segments.high_value_total",
                "must be a number above 0",
            ));
        }
        if !(1..=10_000).contains(&self.max_orders) {
            return Err(invalid(
                "rules.segments.max_orders",
                "must be between 1 and 10000",
            ));
        }
        if self.rfm.recency_days[0] == 0 {
            return Err(invalid(
                "rules.segments.rfm.recency_days[0]",
                "must be at least 1",
            ));
        }
        increasing("rules.segments.rfm.recency_days", &self.rfm.recency_days)?;
        increasing("rules.segments.rfm.frequency", &self.rfm.frequency)?;
        if self.rfm.monetary.iter().any(|m| !m.is_finite()) {
            return Err(invalid("rules.segments.rfm.monetary", "must be numbers"));
        }
        increasing("rules.segments.rfm.monetary", &self.rfm.monetary)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_that_do_not_increase_are_named() {
        let mut c = SegmentsConfig::default();
        c.rfm.frequency = [2, 3, 3, 6];
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("rules.segments.rfm.frequency[2]"), "{err}");
        let mut c = SegmentsConfig::default();
        c.rfm.monetary = [50.0, 40.0, 400.0, 1000.0];
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("rules.segments.rfm.monetary[1]"), "{err}");
        let mut c = SegmentsConfig::default();
        c.lapsed_after = c.active_for;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("rules.segments.lapsed_after"), "{err}");
        assert!(SegmentsConfig::default().validate().is_ok());
    }
}
