//! The HTTP port: `/metrics` (Prometheus text format), `/healthz` (liveness) and
//! `/readyz` (readiness). It runs on its own thread with a small tokio runtime, so a
//! busy stream thread never delays a scrape or a probe.
//!
//! The port must outlive whatever clients do to it: at most [`MAX_CONNECTIONS`] are
//! served at once (more wait in the kernel's backlog), a client has
//! [`HEADER_READ_TIMEOUT`] to send a request's headers, a connection is closed after
//! [`CONNECTION_LIFETIME`], and a failed accept (no file descriptors left, say) is
//! retried after a pause instead of ending the server.

use crate::api::ApiSlot;
use crate::telemetry::health::Verdict;
use crate::telemetry::Telemetry;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's headers (also between requests on a
/// kept-alive connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may stay open; scrapers and probes simply reconnect.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Pause after a failed accept before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per this long about failing accepts.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("setting `http.listen`: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Runtime(std::io::Error),
}

/// The running server; dropping it stops it.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// The address it listens on (with the port the system chose for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds `listen` now (so a taken port is a start-up error naming the setting) and
/// serves from a thread of its own.
pub fn serve(
    listen: &str,
    telemetry: Arc<Telemetry>,
    api: ApiSlot,
) -> Result<HttpServer, HttpError> {
    let bind_error = |source| HttpError::Bind {
        addr: listen.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(HttpError::Runtime)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    api.set_bound(addr);
    let app = router(telemetry, api);
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::error!(%error, "the HTTP server cannot use its socket");
                        return;
                    }
                };
                accept_loop(listener, app, stopped).await;
            });
        })
        .map_err(HttpError::Runtime)?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz and the read API under /v1");
    Ok(HttpServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Accepts connections until `stopped`, serving each on a task of its own.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let room = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut last_error_logged: Option<Instant> = None;
    loop {
        // Room first: beyond the limit, clients wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&room).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut stopped => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    if last_error_logged.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                        last_error_logged = Some(Instant::now());
                        tracing::warn!(%error, "cannot accept an HTTP connection; retrying");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // Closed by the client, by a timeout, or at the end of its lifetime.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(permit);
        });
    }
}

pub fn router(telemetry: Arc<Telemetry>, api: ApiSlot) -> Router {
    let probes = Router::new()
        .route("/", get(merchant_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(telemetry);
    // The read API comes from the processor once its state is open; until then its
    // paths answer 503. `/metrics` and the probes never need a token. A fallback, not a
    // `/v1/{*rest}` route, so the API's own routes see only their own path parameters.
    probes.fallback(move |request: Request| {
        let api = api.clone();
        async move {
            if request.uri().path() != "/v1" && !request.uri().path().starts_with("/v1/") {
                return StatusCode::NOT_FOUND.into_response();
            }
            match api.router() {
                Some(router) => match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                None => crate::api::not_open_yet(),
            }
        }
    })
}

/// The merchant's page: plain HTML and a little JavaScript that read the API (no data
/// of its own, so it needs no token; its requests to `/v1` carry one when set).
const MERCHANT_PAGE: &str = include_str!("ui/merchant.html");

async fn merchant_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        MERCHANT_PAGE,
    )
        .into_response()
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry.render_metrics(),
    )
        .into_response()
}

async fn healthz(State(telemetry): State<Arc<Telemetry>>) -> Response {
    probe(telemetry.health.liveness())
}

async fn readyz(State(telemetry): State<Arc<Telemetry>>) -> Response {
    probe(telemetry.health.readiness())
}

fn probe(verdict: Verdict) -> Response {
    let status = if verdict.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", verdict.reason)).into_response()
}
