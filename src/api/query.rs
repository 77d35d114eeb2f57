//! `personalizer query --state-dir DIR PATH`: one GET of the read API, answered from a
//! stopped processor's or a replay's state directory by the router the server runs.

use super::shoppers::StoreShoppers;
use super::{router, ApiError, ReadSide};
use crate::config::Config;
use crate::engine::product_table;
use crate::product_index::ProductIndex;
use crate::store::{Store, StoreError};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot read the state directory")]
    Store(#[from] StoreError),
    #[error("{0} is not a directory: give the state directory of `run` or `replay --state-dir`")]
    NoDirectory(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("`{0}` is not a path of the API (it starts with `/v1/`)")]
    NotAPath(String),
    #[error("cannot run the query: {0}")]
    Runtime(String),
}

/// The read side over the state in `dir`: its shoppers and its product table.
pub fn open(config: Config, dir: &Path) -> Result<ReadSide, QueryError> {
    if !dir.is_dir() {
        return Err(QueryError::NoDirectory(dir.display().to_string()));
    }
    let store = Arc::new(Store::open_read_only(dir, &config.state)?);
    let index = ProductIndex::shared(config.rules.products.popularity_half_life.millis());
    {
        let mut index = index.write().unwrap_or_else(|p| p.into_inner());
        product_table::for_each_record(&store, |record| index.apply(record))?;
    }
    Ok(ReadSide {
        shoppers: StoreShoppers::from_directory(store)?,
        products: index,
        activity: None,
        config: Arc::new(config),
    })
}

/// Sends `GET path` (or a POST with `body`) through the API's router; returns the
/// status and the JSON body. The token check is skipped: whoever can read the state
/// directory can read everything in it anyway.
pub fn answer(
    read: ReadSide,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<(StatusCode, String), QueryError> {
    if !path.starts_with("/v1/") {
        return Err(QueryError::NotAPath(path.to_string()));
    }
    let mut read = read;
    let mut config = (*read.config).clone();
    config.api.token = None;
    read.config = Arc::new(config);
    let app = router(Arc::new(read), None, None);
    let mut request = Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .map_err(|_| QueryError::NotAPath(path.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| QueryError::Runtime(e.to_string()))?;
    runtime.block_on(async move {
        let response = app
            .oneshot(request)
            .await
            .map_err(|e| QueryError::Runtime(e.to_string()))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| QueryError::Runtime(e.to_string()))?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    })
}
