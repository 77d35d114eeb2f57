//! The handlers of the read API's routes: each parses its request, reads through
//! [`ReadSide`], and answers JSON or an [`ApiError`].

use super::recommend::{self, Needs, RecRequest, RecSettings};
use super::search_order::{self, SearchOrderRequest};
use super::{activity, ApiError, ReadSide, RecType, DEFAULT_LIMIT, MAX_BODY_BYTES, MAX_LIMIT};
use crate::catalog::ProductCatalog;
use crate::rules::{profile, Ctx, Outputs};
use crate::time::format_rfc3339;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Serialize)]
pub(super) struct ProfileAnswer {
    /// The key whose profile this is (the customer, when an anonymous id signed in).
    shopper: String,
    customer_id: Option<String>,
    /// The stream time the profile is read at.
    as_of: String,
    #[serde(flatten)]
    profile: crate::decision::Profile,
}

pub(super) async fn get_profile(
    State(read): State<Arc<ReadSide>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ProfileAnswer>, ApiError> {
    let shopper = read
        .shopper(&key, &headers)?
        .ok_or_else(|| ApiError::UnknownShopper(key.clone()))?;
    let catalog = ProductCatalog::default();
    let mut outputs = Outputs::default();
    let ctx = Ctx {
        now: shopper.now,
        rules: &read.config.rules,
        catalog: &catalog,
        out: &mut outputs,
    };
    let record = profile::record(&shopper.key, &shopper.state, &ctx);
    Ok(Json(ProfileAnswer {
        shopper: shopper.key.clone(),
        customer_id: shopper.state.customer_id.clone(),
        as_of: format_rfc3339(shopper.now),
        profile: record,
    }))
}

/// The query parameters of `GET /v1/recommendations`.
pub const RECOMMENDATION_PARAMETERS: [&str; 5] = ["type", "shopper", "sku", "category", "limit"];

fn parse_recommendation(params: &HashMap<String, String>) -> Result<RecRequest, ApiError> {
    if let Some(unknown) = params
        .keys()
        .find(|k| !RECOMMENDATION_PARAMETERS.contains(&k.as_str()))
    {
        return Err(ApiError::BadParameter {
            name: "query",
            problem: format!(
                "has unknown parameter `{unknown}` (known: {})",
                RECOMMENDATION_PARAMETERS.join(", ")
            ),
        });
    }
    let non_empty = |name: &'static str| -> Result<Option<String>, ApiError> {
        match params.get(name) {
            Some(v) if v.is_empty() => Err(ApiError::bad(name, "must not be empty")),
            other => Ok(other.cloned()),
        }
    };
    let type_name = non_empty("type")?.ok_or_else(|| ApiError::bad("type", "is required"))?;
    let rec_type = RecType::from_name(&type_name).ok_or_else(|| {
        let known: Vec<&str> = RecType::ALL.iter().map(|t| t.name()).collect();
        ApiError::bad(
            "type",
            format!("`{type_name}` is not a type (one of {})", known.join(", ")),
        )
    })?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(
                    "limit",
                    format!("`{text}` must be a whole number from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    let category = non_empty("category")?;
    if let Some(category) = &category {
        if category.split('/').any(str::is_empty) {
            return Err(ApiError::bad(
                "category",
                format!("`{category}` is not a category path (e.g. `women/dresses`)"),
            ));
        }
    }
    let request = RecRequest {
        rec_type,
        shopper_key: non_empty("shopper")?,
        sku: non_empty("sku")?,
        category,
        limit,
    };
    let missing = |name: &'static str| {
        ApiError::bad(name, format!("is required for type `{}`", rec_type.name()))
    };
    match rec_type.needs() {
        Needs::Shopper if request.shopper_key.is_none() => Err(missing("shopper")),
        Needs::Sku if request.sku.is_none() => Err(missing("sku")),
        Needs::ShopperOrSku if request.shopper_key.is_none() && request.sku.is_none() => {
            Err(missing("shopper"))
        }
        _ => Ok(request),
    }
}

pub(super) async fn get_recommendations(
    State(read): State<Arc<ReadSide>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = parse_recommendation(&params)?;
    // An unknown shopper is not an error: they get what a shopper without history gets.
    let shopper = match &request.shopper_key {
        Some(key) => read.shopper(key, &headers)?,
        None => None,
    };
    let config = &read.config;
    let settings = RecSettings {
        api: &config.api,
        recs: &config.rules.recs,
        interests: &config.rules.interests,
    };
    let index = read.products.read().unwrap_or_else(|p| p.into_inner());
    let answer = recommend::recommend(&request, shopper.as_ref(), &index, &settings)?;
    drop(index);
    Ok(Json(answer).into_response())
}

fn activity_of(read: &ReadSide) -> Result<&activity::RecentActivity, ApiError> {
    read.activity.as_deref().ok_or_else(|| {
        ApiError::Unavailable(
            "recent decisions are kept by a running processor (`run`, `demo`), not in a \
             state directory"
                .into(),
        )
    })
}

#[derive(Serialize)]
pub(super) struct DecisionsAnswer {
    shopper: String,
    decisions: Vec<crate::decision::Decision>,
}

/// The decisions recently made about a shopper (as the output topics carry them),
/// newest first; an empty list when there are none.
pub(super) async fn get_decisions(
    State(read): State<Arc<ReadSide>>,
    Path(key): Path<String>,
) -> Result<Json<DecisionsAnswer>, ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad("key", "must not be empty"));
    }
    let decisions = activity_of(&read)?.decisions(&key);
    Ok(Json(DecisionsAnswer {
        shopper: key,
        decisions,
    }))
}

#[derive(Serialize)]
pub(super) struct ActivityAnswer {
    shoppers: Vec<activity::ActiveShopper>,
}

/// The shoppers decisions were recently made about, the most recent first.
pub(super) async fn get_activity(
    State(read): State<Arc<ReadSide>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ActivityAnswer>, ApiError> {
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "limit") {
        return Err(ApiError::bad(
            "query",
            format!("has unknown parameter `{unknown}` (known: limit)"),
        ));
    }
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad(
                    "limit",
                    format!("`{text}` must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    Ok(Json(ActivityAnswer {
        shoppers: activity_of(&read)?.active(limit),
    }))
}

pub(super) async fn post_search_order(
    State(read): State<Arc<ReadSide>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::BodyTooLarge)?;
    let request = SearchOrderRequest::parse(&bytes)?;
    let shopper = read.shopper(&key, &headers)?;
    let config = &read.config;
    let index = read.products.read().unwrap_or_else(|p| p.into_inner());
    let answer = search_order::order(
        &request,
        shopper.as_ref(),
        &index,
        &config.api.search_order,
        &config.rules.interests,
    );
    drop(index);
    Ok(Json(answer).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn problem(pairs: &[(&str, &str)]) -> (&'static str, String) {
        match parse_recommendation(&params(pairs)) {
            Err(ApiError::BadParameter { name, problem }) => (name, problem),
            other => panic!("expected a bad parameter, got {other:?}"),
        }
    }

    #[test]
    fn bad_recommendation_parameters_are_named() {
        assert_eq!(problem(&[]).0, "type");
        assert_eq!(problem(&[("type", "best")]).0, "type");
        assert_eq!(problem(&[("type", "trending"), ("limit", "0")]).0, "limit");
        assert_eq!(
            problem(&[("type", "trending"), ("limit", "101")]).0,
            "limit"
        );
        assert_eq!(problem(&[("type", "trending"), ("limit", "x")]).0, "limit");
        assert_eq!(problem(&[("type", "viewed_viewed")]).0, "sku");
        assert_eq!(problem(&[("type", "recently_viewed")]).0, "shopper");
        assert_eq!(problem(&[("type", "complements")]).0, "shopper");
        assert_eq!(
            problem(&[("type", "trending"), ("category", "a//b")]).0,
            "category"
        );
        assert_eq!(
            problem(&[("type", "trending"), ("shopper", "")]).0,
            "shopper"
        );
        let (name, text) = problem(&[("type", "trending"), ("colour", "red")]);
        assert_eq!(name, "query");
        assert!(text.contains("`colour`"), "{text}");
        let ok = parse_recommendation(&params(&[("type", "trending")])).unwrap();
        assert_eq!((ok.limit, ok.rec_type), (DEFAULT_LIMIT, RecType::Trending));
    }
}
