//! `rules.products` and `rules.recs`: the product side's settings (CONTRACT §5.4).

use super::{invalid, ConfigError, Dur};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

const DAY: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductsConfig {
    /// When false, no popularity, co-occurrence or product records are kept or published
    /// (stock and back-in-stock requests are kept either way).
    pub enabled: bool,
    /// Views, cart adds and purchases halve over this much event time (`views_7d`, …).
    pub popularity_half_life: Dur,
    /// `trending_score` is 0 while the 24-hour view count is below this.
    pub trending_min_views: f64,
    /// `trending`: among this many highest trending scores of the product's department.
    pub trending_top: usize,
    /// `low_stock`: from 1 unit up to this many.
    pub low_stock_at: u64,
    /// `new_arrival`: first seen within this long.
    pub new_arrival_for: Dur,
    /// `view_to_purchase` and `view_to_cart` are null while views are below this.
    pub conversion_min_views: f64,
    /// A changed product record is published at most once per this much stream time per SKU.
    pub publish_interval: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecsConfig {
    /// Viewed with: SKUs the shopper viewed within this long before a view pair with it.
    pub coview_window: Dur,
    /// Viewed with: at most this many of those (the most recent).
    pub coview_max: usize,
    /// Bought with: pairs are made among this many first lines of an order.
    pub order_pair_lines: usize,
    /// Viewed then bought: SKUs viewed within this long before an order (and not bought).
    pub view_before_order: Dur,
    /// Co-occurrence counts (and the views and orders that rank them) halve over this long.
    pub half_life: Dur,
    /// Neighbours kept per SKU and kind; when full, the weakest is evicted.
    pub max_neighbours: usize,
    /// Neighbours listed per kind in the product record.
    pub top_n: usize,
    /// `complements`: for a category path prefix, the categories whose most purchased
    /// products complement it (the read API's `complements` type, after bought-with).
    pub complements: BTreeMap<String, Vec<String>>,
}

impl Default for ProductsConfig {
    fn default() -> Self {
        ProductsConfig {
            enabled: true,
            popularity_half_life: Dur(Duration::from_secs(DAY * 7 / 2)),
            trending_min_views: 5.0,
            trending_top: 100,
            low_stock_at: 5,
            new_arrival_for: Dur(Duration::from_secs(14 * DAY)),
            conversion_min_views: 20.0,
            publish_interval: Dur(Duration::from_secs(5)),
        }
    }
}

impl Default for RecsConfig {
    fn default() -> Self {
        RecsConfig {
            coview_window: Dur::minutes(30),
            coview_max: 5,
            order_pair_lines: 20,
            view_before_order: Dur(Duration::from_secs(7 * DAY)),
            half_life: Dur(Duration::from_secs(90 * DAY)),
            max_neighbours: 50,
            top_n: 20,
            complements: BTreeMap::new(),
        }
    }
}

impl ProductsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (setting, value) in [
            ("popularity_half_life", self.popularity_half_life),
            ("publish_interval", self.publish_interval),
        ] {
            if value.0 < Duration::from_secs(1) {
                return Err(invalid(
                    &format!("rules.products.{setting}"),
                    "must be at least 1s",
                ));
            }
        }
        for (setting, value) in [
            ("trending_min_views", self.trending_min_views),
            ("conversion_min_views", self.conversion_min_views),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(
                    &format!("rules.products.{setting}"),
                    "must be a number of at least 0",
                ));
            }
        }
        if !(1..=100_000).contains(&self.trending_top) {
            return Err(invalid(
                "rules.products.trending_top",
                "must be between 1 and 100000",
            ));
        }
        Ok(())
    }
}

impl RecsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.half_life.0 < Duration::from_secs(1) {
            return Err(invalid("rules.recs.half_life", "must be at least 1s"));
        }
        // Each bound caps the messages one event sends to the product side.
        for (setting, value, most) in [
            ("coview_max", self.coview_max, 50),
            ("order_pair_lines", self.order_pair_lines, 100),
            ("max_neighbours", self.max_neighbours, 1000),
            ("top_n", self.top_n, 1000),
        ] {
            if value > most {
                return Err(invalid(
                    &format!("rules.recs.{setting}"),
                    format!("must be at most {most}"),
                ));
            }
        }
        super::api::validate_complements(&self.complements)?;
        if self.max_neighbours == 0 {
            return Err(invalid("rules.recs.max_neighbours", "must be at least 1"));
        }
        if self.top_n > self.max_neighbours {
            return Err(invalid(
                "rules.recs.top_n",
                format!(
                    "must not exceed rules.recs.max_neighbours ({})",
                    self.max_neighbours
                ),
            ));
        }
        Ok(())
    }
}
