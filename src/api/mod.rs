//! The read API for the storefront (CONTRACT §5.7): a shopper's profile, thirteen
//! kinds of recommendations and a personalized search order, as JSON under `/v1` on
//! the HTTP port.
//!
//! Handlers read committed state only: shoppers from the store (what the last commit
//! wrote, never the stream thread's cache), products from the [`ProductIndex`] that the
//! product table feeds. `personalizer query` runs the same router over a state
//! directory, so an answer there is the answer the server gives.

pub mod activity;
mod forward;
pub mod query;
mod recommend;
mod search_order;
pub mod shoppers;

pub use forward::{ForwardOutcome, Forwarder, Owner, Owners, FORWARDED_HEADER};
pub use recommend::{RecType, DEFAULT_LIMIT, MAX_LIMIT};
pub use search_order::MAX_SKUS;

use crate::catalog::ProductCatalog;
use crate::config::Config;
use crate::product_index::SharedProductIndex;
use crate::rules::{profile, Ctx, Outputs};
use crate::store::StoreError;
use crate::telemetry::metrics::Metrics;
use crate::time::format_rfc3339;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use recommend::{Needs, RecRequest, RecSettings};
use search_order::SearchOrderRequest;
use serde::Serialize;
use shoppers::{ShopperView, StoreShoppers};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every route of the API, as the router mounts them (the OpenAPI document's paths).
pub const ROUTES: [(&str, &str); 5] = [
    ("get", "/v1/shoppers/{key}/profile"),
    ("get", "/v1/recommendations"),
    ("post", "/v1/shoppers/{key}/search-order"),
    ("get", "/v1/shoppers/{key}/decisions"),
    ("get", "/v1/activity"),
];

/// Why a request was not answered; each becomes `{"error": "..."}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("parameter `{name}` {problem}")]
    BadParameter { name: &'static str, problem: String },
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("no profile for shopper `{0}`")]
    UnknownShopper(String),
    #[error("unknown SKU `{0}`")]
    UnknownSku(String),
    #[error("no such route: {0}")]
    NoRoute(String),
    #[error("request body over {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("partition {partition}, which holds this shopper, is not served by this instance")]
    NotHere {
        partition: u16,
        /// The key the owner is to read (the customer, when the key asked about is an
        /// anonymous id that signed in).
        key: String,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnknownShopper(_) | ApiError::UnknownSku(_) | ApiError::NoRoute(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotHere { .. } | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn store(error: StoreError) -> ApiError {
        ApiError::Internal(error.to_string())
    }

    fn bad(name: &'static str, problem: impl Into<String>) -> ApiError {
        ApiError::BadParameter {
            name,
            problem: problem.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let elsewhere = match &self {
            ApiError::NotHere { partition, key } => Some(forward::Elsewhere {
                partition: *partition,
                key: key.clone(),
            }),
            _ => None,
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if let Some(elsewhere) = elsewhere {
            response.extensions_mut().insert(elsewhere);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// What the handlers read: settings, shoppers and products.
pub struct ReadSide {
    pub config: Arc<Config>,
    pub shoppers: StoreShoppers,
    pub products: SharedProductIndex,
    /// Recent decisions per shopper (a running processor only).
    pub activity: Option<Arc<activity::RecentActivity>>,
}

impl ReadSide {
    /// The shopper a request asks about: `key`, unless the instance that forwarded the
    /// request already found that `key` became another (see [`SHOPPER_KEY_HEADER`]).
    fn shopper(&self, key: &str, headers: &HeaderMap) -> Result<Option<ShopperView>, ApiError> {
        if key.is_empty() {
            return Err(ApiError::bad("key", "must not be empty"));
        }
        let resolved = headers
            .get(SHOPPER_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty());
        self.shoppers.shopper(resolved.unwrap_or(key))
    }
}

/// Set on a forwarded request: the shopper key the owner is to read. Sending it is no
/// different from asking about that key directly.
pub const SHOPPER_KEY_HEADER: &str = "x-personalizer-shopper-key";

/// The API's counters: handles on the process's metrics (cheap clones).
#[derive(Clone)]
pub struct ApiMetrics {
    requests: prometheus::IntCounterVec,
    duration: prometheus::HistogramVec,
    pub forwards: prometheus::IntCounterVec,
}

impl ApiMetrics {
    pub fn of(metrics: &Metrics) -> ApiMetrics {
        ApiMetrics {
            requests: metrics.api_requests.clone(),
            duration: metrics.api_request_duration.clone(),
            forwards: metrics.api_forwards.clone(),
        }
    }
}

/// Where the HTTP port finds the API once the processor has opened its state: empty
/// while starting (requests then get a 503), set once.
#[derive(Clone, Default)]
pub struct ApiSlot {
    router: Arc<std::sync::OnceLock<Router>>,
    bound: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
}

impl ApiSlot {
    /// The HTTP port records the address it is bound to (the advertised URL's default).
    pub fn set_bound(&self, address: std::net::SocketAddr) {
        let _ = self.bound.set(address);
    }

    pub fn bound(&self) -> Option<std::net::SocketAddr> {
        self.bound.get().copied()
    }

    /// Serves `router` from now on; a second call is ignored (the first one stays).
    pub fn publish(&self, router: Router) {
        let _ = self.router.set(router);
    }

    pub fn router(&self) -> Option<Router> {
        self.router.get().cloned()
    }
}

/// Answers a request that reached `/v1` before the API was published.
pub fn not_open_yet() -> Response {
    ApiError::Unavailable(
        "the processor is starting: its state is not open yet; retry shortly".into(),
    )
    .into_response()
}

/// The API's routes over `read`, with the token check and metrics around them.
/// `forwarder`: live, where requests about shoppers served elsewhere go.
pub fn router(
    read: Arc<ReadSide>,
    metrics: Option<ApiMetrics>,
    forwarder: Option<Forwarder>,
) -> Router {
    let token = read.config.api.token.clone().map(Arc::<str>::from);
    Router::new()
        .route("/v1/shoppers/{key}/profile", get(get_profile))
        .route("/v1/recommendations", get(get_recommendations))
        .route("/v1/shoppers/{key}/search-order", post(post_search_order))
        .route("/v1/shoppers/{key}/decisions", get(get_decisions))
        .route("/v1/activity", get(get_activity))
        .fallback(|request: Request| async move {
            ApiError::NoRoute(format!("{} {}", request.method(), request.uri().path()))
        })
        .layer(axum::middleware::from_fn(move |request, next| {
            forward::forward_if_elsewhere(forwarder.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            check_token(token.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            measure(metrics.clone(), request, next)
        }))
        .with_state(read)
}

/// The metric label of a path: one of a few routes, never the key in it.
fn route_label(path: &str) -> &'static str {
    let shopper = |suffix: &str| path.starts_with("/v1/shoppers/") && path.ends_with(suffix);
    if path == "/v1/recommendations" {
        "recommendations"
    } else if shopper("/profile") {
        "profile"
    } else if shopper("/search-order") {
        "search_order"
    } else if shopper("/decisions") || path == "/v1/activity" {
        "activity"
    } else {
        "other"
    }
}

async fn measure(metrics: Option<ApiMetrics>, request: Request, next: Next) -> Response {
    let route = route_label(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(metrics) = metrics {
        metrics
            .duration
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
        metrics
            .requests
            .with_label_values(&[route, response.status().as_str()])
            .inc();
    }
    response
}

async fn check_token(token: Option<Arc<str>>, request: Request, next: Next) -> Response {
    if let Some(token) = token {
        if !bearer_matches(request.headers(), &token) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// Whether the request carries `Bearer <token>`, compared in constant time so the
/// answer's timing says nothing about how much of a guess was right.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (given, expected) = (given.as_bytes(), token.as_bytes());
    let mut difference = u8::from(given.len() != expected.len());
    for (i, byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(i).copied().unwrap_or(0);
    }
    difference == 0
}

#[derive(Serialize)]
struct ProfileAnswer {
    /// The key whose profile this is (the customer, when an anonymous id signed in).
    shopper: String,
    customer_id: Option<String>,
    /// The stream time the profile is read at.
    as_of: String,
    #[serde(flatten)]
    profile: crate::decision::Profile,
}

async fn get_profile(
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

async fn get_recommendations(
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
struct DecisionsAnswer {
    shopper: String,
    decisions: Vec<crate::decision::Decision>,
}

/// The decisions recently made about a shopper (as the output topics carry them),
/// newest first; an empty list when there are none.
async fn get_decisions(
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
struct ActivityAnswer {
    shoppers: Vec<activity::ActiveShopper>,
}

/// The shoppers decisions were recently made about, the most recent first.
async fn get_activity(
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

async fn post_search_order(
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

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_token_must_match_exactly() {
        assert!(bearer_matches(&headers("Bearer s3cret"), "s3cret"));
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret!",
            "bearer s3cret",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!bearer_matches(&headers(wrong), "s3cret"), "{wrong}");
        }
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret"));
    }

    #[test]
    fn route_labels_are_the_series_the_metrics_start_at_zero() {
        let paths = [
            "/v1/shoppers/k/profile",
            "/v1/recommendations",
            "/v1/shoppers/k/search-order",
            "/v1/activity",
            "/v1/elsewhere",
        ];
        let labels: Vec<&str> = paths.iter().map(|p| route_label(p)).collect();
        assert_eq!(labels, crate::telemetry::metrics::API_ROUTES);
    }

    #[test]
    fn metric_labels_never_carry_a_key() {
        assert_eq!(route_label("/v1/shoppers/c-123/profile"), "profile");
        assert_eq!(
            route_label("/v1/shoppers/c-123/search-order"),
            "search_order"
        );
        assert_eq!(route_label("/v1/recommendations"), "recommendations");
        assert_eq!(route_label("/v1/shoppers/c-123"), "other");
    }

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
