//! Format version 1 of a shopper's stored state (before profiles), kept so that values
//! written by earlier builds still load. Never change this layout.

use super::{Cart, PendingStockRequest, ShopperProfile, ShopperState};
use crate::time::Millis;
use serde::Deserialize;

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
