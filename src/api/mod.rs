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
mod routes;
mod search_order;
pub mod shoppers;

pub use forward::{ForwardOutcome, Forwarder, Owner, Owners, FORWARDED_HEADER};
pub use recommend::{RecType, DEFAULT_LIMIT, MAX_LIMIT};
pub use routes::RECOMMENDATION_PARAMETERS;
pub use search_order::MAX_SKUS;

use crate::config::Config;
use crate::product_index::SharedProductIndex;
use crate::store::StoreError;
use crate::telemetry::metrics::Metrics;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use shoppers::{ShopperView, StoreShoppers};
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
        .route("/v1/shoppers/{key}/profile", get(routes::get_profile))
        .route("/v1/recommendations", get(routes::get_recommendations))
        .route(
            "/v1/shoppers/{key}/search-order",
            post(routes::post_search_order),
        )
        .route("/v1/shoppers/{key}/decisions", get(routes::get_decisions))
        .route("/v1/activity", get(routes::get_activity))
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
}
