//! `rules.interests`, `rules.profiles` and `rules.sites`: the shopper profile's settings
//! (CONTRACT §5.1, §5.2, §5.6).

use super::{invalid, ConfigError, Dur};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterestsConfig {
    /// Interest in a category halves over this much event time.
    pub half_life: Dur,
    /// Category paths kept per shopper; when full, the lowest-scoring one is dropped.
    pub max_categories: usize,
    /// `preferred_department` needs at least this score.
    pub min_score: f64,
    /// Category paths listed in the profile's `top_categories`.
    pub top_n: usize,
    /// Distinct SKUs kept in `recently_viewed`.
    pub recent_max: usize,
    /// Distinct SKUs bought kept per shopper (newest first) for the read API's
    /// exclusions and bought-with recommendations.
    pub purchases_max: usize,
    /// Clicked search results kept per shopper (query and SKU) for the search order.
    pub search_clicks_max: usize,
    pub weights: InterestWeights,
}

/// What each kind of event adds to the interest in its product's category path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterestWeights {
    pub product_viewed: f64,
    pub wishlist_added: f64,
    pub cart_item_added: f64,
    /// Per line of `order_completed` (not per unit).
    pub order_line: f64,
    /// Added to the viewed category path itself.
    pub category_viewed: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesConfig {
    /// When false, no interests or profiles are kept or published (the email triggers
    /// alone).
    pub enabled: bool,
    /// A changed profile is published at most once per this much stream time per shopper.
    pub publish_interval: Dur,
}

/// `[rules.sites.<code>]`: a storefront site and the countries it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// ISO 3166-1 alpha-2 codes, e.g. `["AU", "NZ"]`.
    pub countries: Vec<String>,
}

impl Default for InterestsConfig {
    fn default() -> Self {
        InterestsConfig {
            half_life: Dur(Duration::from_secs(14 * 86_400)),
            max_categories: 64,
            min_score: 3.0,
            top_n: 5,
            recent_max: 20,
            purchases_max: 50,
            search_clicks_max: 50,
            weights: InterestWeights::default(),
        }
    }
}

impl Default for InterestWeights {
    fn default() -> Self {
        InterestWeights {
            product_viewed: 1.0,
            wishlist_added: 3.0,
            cart_item_added: 4.0,
            order_line: 8.0,
            category_viewed: 0.5,
        }
    }
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        ProfilesConfig {
            enabled: true,
            publish_interval: Dur(Duration::from_secs(10)),
        }
    }
}

impl InterestsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.half_life.0 < Duration::from_secs(1) {
            return Err(invalid("rules.interests.half_life", "must be at least 1s"));
        }
        for (setting, value) in [
            ("max_categories", self.max_categories),
            ("top_n", self.top_n),
            ("recent_max", self.recent_max),
            ("purchases_max", self.purchases_max),
            ("search_clicks_max", self.search_clicks_max),
        ] {
            if !(1..=1000).contains(&value) {
                return Err(invalid(
                    &format!("rules.interests.{setting}"),
                    "must be between 1 and 1000",
                ));
            }
        }
        if !(self.min_score.is_finite() && self.min_score >= 0.0) {
            return Err(invalid(
                "rules.interests.min_score",
                "must be a number of at least 0",
            ));
        }
        let w = &self.weights;
        for (setting, value) in [
            ("product_viewed", w.product_viewed),
            ("wishlist_added", w.wishlist_added),
            ("cart_item_added", w.cart_item_added),
            ("order_line", w.order_line),
            ("category_viewed", w.category_viewed),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(
                    &format!("rules.interests.weights.{setting}"),
                    "must be a number of at least 0",
                ));
            }
        }
        Ok(())
    }
}

impl ProfilesConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.publish_interval.0.is_zero() {
            return Err(invalid(
                "rules.profiles.publish_interval",
                "must be longer than 0s",
            ));
        }
        Ok(())
    }
}

/// Checks site codes and their countries: every country an assigned ISO 3166-1 alpha-2
/// code, and no country served by two sites (the suggestion would be ambiguous).
pub fn validate_sites(sites: &BTreeMap<String, SiteConfig>) -> Result<(), ConfigError> {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (code, site) in sites {
        if code.is_empty() {
            return Err(invalid("rules.sites", "a site code must not be empty"));
        }
        for (i, country) in site.countries.iter().enumerate() {
            let setting = format!("rules.sites.{code}.countries[{i}]");
            if !is_country_code(country) {
                return Err(invalid(
                    &setting,
                    format!(
                        "`{country}` is not an ISO 3166-1 alpha-2 country code \
                         (two capital letters, e.g. \"AU\")"
                    ),
                ));
            }
            if let Some(other) = owner.insert(country, code) {
                return Err(invalid(
                    &setting,
                    format!("`{country}` is already served by site `{other}`"),
                ));
            }
        }
    }
    Ok(())
}

/// The officially assigned ISO 3166-1 alpha-2 codes, plus `XK` (Kosovo), which geo-IP
/// databases report although ISO has not assigned it.
const COUNTRY_CODES: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY \
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && COUNTRY_CODES.split(' ').any(|c| c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_list_holds_every_assigned_code_once() {
        let codes: Vec<&str> = COUNTRY_CODES.split(' ').collect();
        assert_eq!(codes.len(), 250, "249 assigned codes and XK");
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(codes.iter().all(|c| c.len() == 2));
        for code in ["AU", "NZ", "US", "GB", "DE", "XK"] {
            assert!(is_country_code(code), "{code}");
        }
        for code in ["UK", "EU", "au", "AUS", "", "A"] {
            assert!(!is_country_code(code), "{code}");
        }
    }

    #[test]
    fn sites_name_the_bad_country() {
        let mut sites = BTreeMap::new();
        sites.insert(
            "au".to_string(),
            SiteConfig {
                countries: vec!["AU".into(), "UK".into()],
            },
        );
        let err = validate_sites(&sites).unwrap_err().to_string();
        assert!(err.contains("rules.sites.au.countries[1]"), "{err}");
        assert!(err.contains("`UK`"), "{err}");

        sites.insert(
            "au".to_string(),
            SiteConfig {
                countries: vec!["AU".into(), "NZ".into()],
            },
        );
        sites.insert(
            "nz".to_string(),
            SiteConfig {
                countries: vec!["NZ".into()],
            },
        );
        let err = validate_sites(&sites).unwrap_err().to_string();
        assert!(err.contains("rules.sites.nz.countries[0]"), "{err}");
        assert!(err.contains("already served by site `au`"), "{err}");
    }
}
