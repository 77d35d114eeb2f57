//! Format version 1 of the stored states (a shopper before profiles, a SKU before
//! popularity and co-occurrence), kept so that values written by earlier builds still
//! load. Never change these layouts.

use super::{
    Cart, PendingStockRequest, ProductInfo, ProductState, ShopperProfile, ShopperState,
    StockRequest,
};
use crate::time::Millis;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub(super) struct ShopperStateV1 {
    customer_id: Option<String>,
    merged_into: Option<String>,
    aliases: Vec<String>,
    last_activity_at: Option<Millis>,
    last_order_at: Option<Millis>,
    consent: Option<bool>,
    carts: Vec<Cart>,
    reminder_armed: Option<Millis>,
    stock_requests: Vec<PendingStockRequest>,
}

impl From<ShopperStateV1> for ShopperState {
    fn from(old: ShopperStateV1) -> Self {
        ShopperState {
            customer_id: old.customer_id,
            merged_into: old.merged_into,
            aliases: old.aliases,
            last_activity_at: old.last_activity_at,
            last_order_at: old.last_order_at,
            consent: old.consent,
            carts: old.carts,
            reminder_armed: old.reminder_armed,
            stock_requests: old.stock_requests,
            profile: ShopperProfile::default(),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ProductStateV1 {
    pub(super) quantity: Option<u64>,
    pub(super) last_restock_at: Option<Millis>,
    pub(super) last_restock_event: Option<String>,
    pub(super) details: Option<ProductInfo>,
    pub(super) requests: BTreeMap<String, StockRequest>,
    pub(super) expiry_armed: Option<Millis>,
}

impl From<ProductStateV1> for ProductState {
    /// Through version 2, which added `activity` (none here).
    fn from(old: ProductStateV1) -> Self {
        super::v2::ProductStateV2::from(old).into()
    }
}
