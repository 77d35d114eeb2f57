//! Any instance answers any key (interactive queries): a request about a shopper whose
//! partition another instance owns is sent on to that owner, which answers from its
//! own committed state; the answer goes back unchanged.
//!
//! A request travels at most [`MAX_HOPS`] times: two hops are needed when an anonymous
//! id that signed in lives on one instance and the customer it became on another (which
//! may be the instance the request came from); and two instances with different views
//! of the group during a rebalance pass a request back and forth only that often.

use super::{ApiError, MAX_BODY_BYTES, SHOPPER_KEY_HEADER};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Set on a request one instance sends another: the instances it has been through,
/// comma-separated.
pub const FORWARDED_HEADER: &str = "x-personalizer-forwarded-by";
/// Most times one request is sent on.
pub const MAX_HOPS: usize = 2;

/// The instance that owns a customer partition, as the instances topic says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub instance: String,
    /// Where its HTTP port is reached (`http.advertised_url`).
    pub url: String,
}

/// Who owns which customer partition (the live runtime's directory of instances).
pub trait Owners: Send + Sync {
    fn owner(&self, partition: u16) -> Option<Owner>;
    /// This instance's id, so it never forwards to itself.
    fn this_instance(&self) -> &str;
}

/// What became of a request that had to go to another instance (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardOutcome {
    /// The owner answered (with whatever status it answered).
    Answered,
    /// No instance is known to own the partition.
    NoOwner,
    /// The owner did not answer in time, or refused the connection.
    OwnerUnreachable,
}

impl ForwardOutcome {
    pub const ALL: [ForwardOutcome; 3] = [
        ForwardOutcome::Answered,
        ForwardOutcome::NoOwner,
        ForwardOutcome::OwnerUnreachable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ForwardOutcome::Answered => "answered",
            ForwardOutcome::NoOwner => "no_owner",
            ForwardOutcome::OwnerUnreachable => "owner_unreachable",
        }
    }
}

/// A response's note that the shopper's partition is served elsewhere.
#[derive(Debug, Clone)]
pub(super) struct Elsewhere {
    pub partition: u16,
    /// The key the owner is to read.
    pub key: String,
}

/// Sends requests on to their owners.
#[derive(Clone)]
pub struct Forwarder {
    owners: Arc<dyn Owners>,
    client: Client<HttpConnector, Body>,
    timeout: Duration,
    outcomes: Option<prometheus::IntCounterVec>,
}

impl Forwarder {
    pub fn new(
        owners: Arc<dyn Owners>,
        timeout: Duration,
        outcomes: Option<prometheus::IntCounterVec>,
    ) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Forwarder {
            owners,
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            outcomes,
        }
    }

    fn count(&self, outcome: ForwardOutcome) {
        if let Some(outcomes) = &self.outcomes {
            outcomes.with_label_values(&[outcome.label()]).inc();
        }
    }

    /// Sends the request (its parts and buffered body) to the owner of `partition`.
    async fn send(
        &self,
        elsewhere: &Elsewhere,
        parts: &axum::http::request::Parts,
        body: Bytes,
        through: &[String],
    ) -> Response {
        let partition = elsewhere.partition;
        let owner = match self.owners.owner(partition) {
            Some(owner) if owner.instance != self.owners.this_instance() => owner,
            _ => {
                self.count(ForwardOutcome::NoOwner);
                return ApiError::Unavailable(format!(
                    "partition {partition}, which holds this shopper, has no other owner \
                     known to this instance (a rebalance may be under way); retry shortly"
                ))
                .into_response();
            }
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let uri = format!("{}{path}", owner.url.trim_end_matches('/'));
        let mut request = Request::builder().method(parts.method.clone()).uri(&uri);
        for (name, value) in &parts.headers {
            let ours = [FORWARDED_HEADER, SHOPPER_KEY_HEADER].contains(&name.as_str());
            if name != axum::http::header::HOST && !ours {
                request = request.header(name, value);
            }
        }
        if let Ok(key) = HeaderValue::from_str(&elsewhere.key) {
            request = request.header(SHOPPER_KEY_HEADER, key);
        }
        let mut chain = through.to_vec();
        chain.push(self.owners.this_instance().to_string());
        let this = HeaderValue::from_str(&chain.join(","))
            .unwrap_or_else(|_| HeaderValue::from_static("instance"));
        let request = match request
            .header(FORWARDED_HEADER, this)
            .body(Body::from(body))
        {
            Ok(request) => request,
            Err(e) => {
                return ApiError::Internal(format!("cannot forward to {uri}: {e}")).into_response()
            }
        };
        let unreachable = |problem: String| {
            ApiError::Unavailable(format!(
                "partition {partition} is served by instance `{}` at {}, which {problem}",
                owner.instance, owner.url
            ))
            .into_response()
        };
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => {
                self.count(ForwardOutcome::Answered);
                let (parts, body) = response.into_parts();
                Response::from_parts(parts, Body::new(body))
            }
            Ok(Err(e)) => {
                self.count(ForwardOutcome::OwnerUnreachable);
                unreachable(format!("cannot be reached: {e}"))
            }
            Err(_) => {
                self.count(ForwardOutcome::OwnerUnreachable);
                unreachable(format!("did not answer within {:?}", self.timeout))
            }
        }
    }
}

/// Answers locally; when the answer is that the shopper lives elsewhere, and the
/// request was not itself forwarded, asks the owner instead.
pub(super) async fn forward_if_elsewhere(
    forwarder: Option<Forwarder>,
    request: Request,
    next: Next,
) -> Response {
    let Some(forwarder) = forwarder else {
        return next.run(request).await;
    };
    let through: Vec<String> = request
        .headers()
        .get(FORWARDED_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    if through.len() >= MAX_HOPS {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::BodyTooLarge.into_response();
    };
    let local = next
        .run(Request::from_parts(parts.clone(), Body::from(body.clone())))
        .await;
    match local.extensions().get::<Elsewhere>() {
        Some(elsewhere) if local.status() == StatusCode::SERVICE_UNAVAILABLE => {
            let elsewhere = elsewhere.clone();
            forwarder.send(&elsewhere, &parts, body, &through).await
        }
        _ => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::shoppers::{ServedPartitions, StoreShoppers};
    use crate::api::{router, ReadSide};
    use crate::config::{Config, StateConfig};
    use crate::product_index::ProductIndex;
    use crate::store::Store;
    use tower::ServiceExt;

    struct FixedOwners(Option<Owner>);

    impl Owners for FixedOwners {
        fn owner(&self, _partition: u16) -> Option<Owner> {
            self.0.clone()
        }
        fn this_instance(&self) -> &str {
            "a"
        }
    }

    /// An instance that serves no partition, with `owner` owning every one.
    async fn ask(owner: Option<Owner>, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let store = Arc::new(Store::open_temporary(&StateConfig::default()).unwrap());
        let read = ReadSide {
            config: Arc::new(Config::default()),
            shoppers: StoreShoppers::new(store, 4, Some(Arc::new(ServedPartitions::new(4)))),
            products: ProductIndex::shared(1_000),
            activity: None,
        };
        let forwarder = Forwarder::new(
            Arc::new(FixedOwners(owner)),
            Duration::from_millis(500),
            None,
        );
        let app = router(Arc::new(read), None, Some(forwarder));
        let mut request = Request::builder().uri("/v1/shoppers/c1/profile");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn an_owner_that_cannot_be_reached_is_named_in_a_503() {
        // Nothing listens on port 1.
        let owner = Owner {
            instance: "b".into(),
            url: "http://127.0.0.1:1".into(),
        };
        let (status, body) = ask(Some(owner), &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("instance `b` at http://127.0.0.1:1")
                && body.contains("cannot be reached"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn no_known_owner_and_too_many_hops_are_503s_not_loops() {
        let (status, body) = ask(None, &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no other owner"), "{body}");
        // A request that has travelled its hops is answered here, whatever the answer.
        let owner = Owner {
            instance: "b".into(),
            url: "http://127.0.0.1:1".into(),
        };
        let (status, body) = ask(Some(owner), &[(FORWARDED_HEADER, "b,c")]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("not served by this instance"), "{body}");
    }

    #[test]
    fn outcomes_are_the_series_the_metrics_start_at_zero() {
        let labels: Vec<&str> = ForwardOutcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels, crate::telemetry::metrics::API_FORWARD_OUTCOMES);
    }
}
