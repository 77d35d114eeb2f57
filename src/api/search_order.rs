//! `POST /v1/shoppers/{key}/search-order` (CONTRACT §5.7): the search engine's results
//! for a query, reordered for one shopper. The answer is a permutation of the input:
//! nothing is added or dropped, and SKUs the shopper has no signal for keep their
//! relative order.

use super::shoppers::ShopperView;
use super::ApiError;
use crate::config::{InterestsConfig, SearchOrderWeights};
use crate::product_index::ProductIndex;
use crate::rules::interests;
use crate::state::normalize_query;
use serde::{Deserialize, Serialize};

/// Most SKUs one request may reorder.
pub const MAX_SKUS: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchOrderRequest {
    pub query: String,
    pub skus: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SearchOrderAnswer {
    pub skus: Vec<String>,
    pub scores: Vec<f64>,
}

impl SearchOrderRequest {
    /// Parses a request body, naming what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<SearchOrderRequest, ApiError> {
        let request: SearchOrderRequest =
            serde_json::from_slice(body).map_err(|e| ApiError::BadParameter {
                name: "body",
                problem: format!(
                    "must be a JSON object {{\"query\": string, \"skus\": [string]}}: {e}"
                ),
            })?;
        if request.skus.len() > MAX_SKUS {
            return Err(ApiError::BadParameter {
                name: "skus",
                problem: format!("holds {} SKUs; at most {MAX_SKUS}", request.skus.len()),
            });
        }
        if request.skus.iter().any(String::is_empty) {
            return Err(ApiError::BadParameter {
                name: "skus",
                problem: "a SKU is an empty string".into(),
            });
        }
        Ok(request)
    }
}

/// Scores every SKU and sorts by score, highest first; equal scores keep input order.
pub fn order(
    request: &SearchOrderRequest,
    shopper: Option<&ShopperView>,
    index: &ProductIndex,
    weights: &SearchOrderWeights,
    interests_config: &InterestsConfig,
) -> SearchOrderAnswer {
    let query = normalize_query(&request.query);
    let mut scored: Vec<(f64, &str)> = request
        .skus
        .iter()
        .map(|sku| {
            let product = index.get(sku);
            let mut score = product.map_or(0.0, |p| {
                weights.popularity * p.record.popularity.views_7d.max(0.0).ln_1p()
            });
            if let Some(shopper) = shopper {
                let profile = &shopper.state.profile;
                if let Some(path) = product.and_then(|p| p.path.as_deref()) {
                    score += weights.interest
                        * interests::path_score(profile, path, shopper.now, interests_config);
                }
                let clicks: u32 = profile
                    .search_clicks
                    .iter()
                    .filter(|c| c.sku == *sku && c.query == query)
                    .map(|c| c.clicks)
                    .sum();
                score += weights.click * f64::from(clicks);
                if profile.recent_views.iter().any(|v| v.sku == *sku) {
                    score += weights.viewed;
                }
                if profile.purchases.iter().any(|p| p.sku == *sku) {
                    score += weights.bought;
                }
            }
            (score, sku.as_str())
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    SearchOrderAnswer {
        skus: scored.iter().map(|(_, sku)| sku.to_string()).collect(),
        scores: scored.iter().map(|(score, _)| *score).collect(),
    }
}
