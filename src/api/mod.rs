//! The HTTP port: `/metrics` (Prometheus text format), `/healthz` (liveness) and
//! `/readyz` (readiness). It runs on its own thread with a small tokio runtime, so a
//! busy stream thread never delays a scrape or a probe.

use crate::telemetry::health::Verdict;
use crate::telemetry::Telemetry;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("setting `http.listen`: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Runtime(std::io::Error),
}

/// The running server; dropping it stops it.
pub struct ApiServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// The address it listens on (with the port the system chose for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ApiServer {
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
pub fn serve(listen: &str, telemetry: Arc<Telemetry>) -> Result<ApiServer, ApiError> {
    let bind_error = |source| ApiError::Bind {
        addr: listen.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(ApiError::Runtime)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(telemetry);
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
                let server = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                if let Err(error) = server.await {
                    tracing::error!(%error, "the HTTP server stopped");
                }
            });
        })
        .map_err(ApiError::Runtime)?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    Ok(ApiServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

pub fn router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(telemetry)
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
