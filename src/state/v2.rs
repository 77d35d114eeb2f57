//! Format version 2 of a SKU's stored state: the waiting requests inside the value, as
//! before they were stored apart. Kept so that values written by earlier builds still
//! load. Never change this layout.

use super::{ProductActivity, ProductInfo, ProductState, StockRequest, StockRequests};
use crate::time::Millis;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub(super) struct ProductStateV2 {
    quantity: Option<u64>,
    last_restock_at: Option<Millis>,
    last_restock_event: Option<String>,
    details: Option<ProductInfo>,
    requests: BTreeMap<String, StockRequest>,
    expiry_armed: Option<Millis>,
    activity: Option<Box<ProductActivity>>,
}

impl From<super::v1::ProductStateV1> for ProductStateV2 {
    fn from(old: super::v1::ProductStateV1) -> Self {
        ProductStateV2 {
            quantity: old.quantity,
            last_restock_at: old.last_restock_at,
            last_restock_event: old.last_restock_event,
            details: old.details,
            requests: old.requests,
            expiry_armed: old.expiry_armed,
            activity: None,
        }
    }
}

impl From<ProductStateV2> for ProductState {
    fn from(old: ProductStateV2) -> Self {
        ProductState {
            quantity: old.quantity,
            last_restock_at: old.last_restock_at,
            last_restock_event: old.last_restock_event,
            details: old.details,
            // Changed: the next write stores them apart.
            requests: StockRequests::from_map(old.requests, true),
            expiry_armed: old.expiry_armed,
            activity: old.activity,
        }
    }
}
