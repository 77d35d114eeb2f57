//! `rules.offers`: category discount offers (CONTRACT §5.5).

use super::{invalid, ConfigError, Dur};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OffersConfig {
    /// No offer for a category the shopper ordered in within this long.
    pub lookback: Dur,
    /// The offers, e.g. `[[rules.offers.codes]] code = "DRESSES10"`.
    pub codes: Vec<OfferConfig>,
}

/// One offer: its code goes to a shopper whose interest in `category` reaches
/// `min_score`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferConfig {
    pub code: String,
    /// A category path prefix, `/`-joined, e.g. `women/dresses`.
    pub category: String,
    pub min_score: f64,
}

impl Default for OffersConfig {
    fn default() -> Self {
        OffersConfig {
            lookback: Dur(Duration::from_secs(30 * 86_400)),
            codes: Vec::new(),
        }
    }
}

impl OffersConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, offer) in self.codes.iter().enumerate() {
            let setting = |field: &str| format!("rules.offers.codes[{i}].{field}");
            if offer.code.trim().is_empty() {
                return Err(invalid(&setting("code"), "an offer needs a code"));
            }
            if let Some(first) = self.codes[..i].iter().position(|o| o.code == offer.code) {
                return Err(invalid(
                    &setting("code"),
                    format!("`{}` is already the code of offer {first}", offer.code),
                ));
            }
            if offer.category.is_empty()
                || offer.category.starts_with('/')
                || offer.category.ends_with('/')
                || offer.category.contains("//")
            {
                return Err(invalid(
                    &setting("category"),
                    format!(
                        "`{}` is not a category path; write e.g. \"women/dresses\"",
                        offer.category
                    ),
                ));
            }
            if !(offer.min_score.is_finite() && offer.min_score > 0.0) {
                return Err(invalid(&setting("min_score"), "must be a number above 0"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(code: &str, category: &str, min_score: f64) -> OfferConfig {
        OfferConfig {
            code: code.into(),
            category: category.into(),
            min_score,
        }
    }

    #[test]
    fn bad_offers_are_named() {
        let cases = [
            (offer("", "women", 8.0), "rules.offers.codes[0].code"),
            (offer("A", "/women", 8.0), "rules.offers.codes[0].category"),
            (offer("A", "women", 0.0), "rules.offers.codes[0].min_score"),
        ];
        for (bad, setting) in cases {
            let c = OffersConfig {
                codes: vec![bad],
                ..OffersConfig::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(setting), "{err}");
        }
        let c = OffersConfig {
            codes: vec![offer("A", "women", 8.0), offer("A", "men", 8.0)],
            ..OffersConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("rules.offers.codes[1].code"), "{err}");
        assert!(OffersConfig::default().validate().is_ok());
    }
}
