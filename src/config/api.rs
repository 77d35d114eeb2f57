//! `[api]`: the read API's settings (CONTRACT §5.7), and `[rules.recs.complements]`.

use super::{invalid, ConfigError, Dur};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// When set, every `/v1` request needs `Authorization: Bearer <token>`. Prefer the
    /// environment (`PERSONALIZER_API__TOKEN`) to the file.
    pub token: Option<String>,
    /// Recommendations leave out what the shopper bought within this long.
    pub exclude_bought_for: Dur,
    /// `recommended_for_you`: the k-th most recent view weighs `recent_view_decay^k`.
    pub recent_view_decay: f64,
    /// How long a request forwarded to the instance that owns its shopper may take
    /// before it is answered with a 503 naming that instance.
    pub forward_timeout: Dur,
    pub search_order: SearchOrderWeights,
}

/// What each signal adds to a SKU's score in a shopper's search order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchOrderWeights {
    /// Times the shopper's interest score for the SKU's category path.
    pub interest: f64,
    /// Per earlier click of the shopper on the SKU for the same query.
    pub click: f64,
    /// When the SKU is among the shopper's recently viewed.
    pub viewed: f64,
    /// When the shopper bought the SKU.
    pub bought: f64,
    /// Times `ln(1 + views_7d)`: the SKU's popularity, for every shopper alike.
    pub popularity: f64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            exclude_bought_for: Dur(Duration::from_secs(30 * 86_400)),
            recent_view_decay: 0.8,
            forward_timeout: Dur(Duration::from_secs(2)),
            search_order: SearchOrderWeights::default(),
        }
    }
}

impl Default for SearchOrderWeights {
    fn default() -> Self {
        SearchOrderWeights {
            interest: 1.0,
            click: 5.0,
            viewed: 2.0,
            bought: 1.0,
            popularity: 0.5,
        }
    }
}

impl ApiConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.token {
            if token.trim().is_empty() {
                return Err(invalid(
                    "api.token",
                    "must not be empty (leave it out to serve /v1 without a token)",
                ));
            }
        }
        if self.forward_timeout.0 < Duration::from_millis(10) {
            return Err(invalid("api.forward_timeout", "must be at least 10ms"));
        }
        if !(self.recent_view_decay > 0.0 && self.recent_view_decay <= 1.0) {
            return Err(invalid(
                "api.recent_view_decay",
                "must be above 0 and at most 1",
            ));
        }
        let w = &self.search_order;
        for (setting, value) in [
            ("interest", w.interest),
            ("click", w.click),
            ("viewed", w.viewed),
            ("bought", w.bought),
            ("popularity", w.popularity),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(
                    &format!("api.search_order.{setting}"),
                    "must be a number of at least 0",
                ));
            }
        }
        Ok(())
    }
}

/// `[rules.recs.complements]`: for a category path prefix, the categories whose most
/// purchased products complement it (`"women/dresses" = ["women/shoes", "bags"]`).
pub fn validate_complements(table: &BTreeMap<String, Vec<String>>) -> Result<(), ConfigError> {
    let bad_path = |p: &str| p.is_empty() || p.split('/').any(str::is_empty);
    for (category, complements) in table {
        if bad_path(category) {
            return Err(invalid(
                &format!("rules.recs.complements.\"{category}\""),
                "is not a category path (components joined with `/`, none empty)",
            ));
        }
        if complements.is_empty() {
            return Err(invalid(
                &format!("rules.recs.complements.\"{category}\""),
                "must list at least one category",
            ));
        }
        if let Some(bad) = complements.iter().find(|c| bad_path(c)) {
            return Err(invalid(
                &format!("rules.recs.complements.\"{category}\""),
                format!("`{bad}` is not a category path"),
            ));
        }
    }
    Ok(())
}
